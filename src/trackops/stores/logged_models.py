"""The logged-model store: models logged in an experiment, their params, tags and metrics.

`LoggedModelStore(engine)` has the logged-model methods of MLflow 3.17's tracking store and
writes the rows MLflow writes: ``model_id`` ``m-<32 hex>``, a generated name when none is given,
status PENDING (stored as its number, 1) until finalized, ``lifecycle_stage 'active'``, and
``artifact_location`` = ``<experiment artifact location>/models/<model_id>/artifacts``. Each
method is one transaction.

Deleting is a soft delete, as in MLflow: ``lifecycle_stage 'deleted'`` and the update time set
(`trackops gc` removes such models for good). `get_logged_model` and searches do not return
deleted models; tags, params and status can still be changed on them, as in MLflow.

Metrics of a logged model are written by the tracking store's `log_metric`/`log_batch` when a
metric carries a ``model_id``; here they are only read.

Search page tokens are MLflow's for logged models: base64 of ``{"experiment_ids",
"filter_string", "order_by", "offset"}``, refused when the next request asks for something else.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
)
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist
from trackops.stores import experiments, search
from trackops.stores.names import random_run_name
from trackops.stores.rows import chunks
from trackops.stores.sql import TransactionScopes, insert_ignoring_duplicates, upsert
from trackops.stores.uris import append_to_uri_path

MODELS_FOLDER = "models"
ARTIFACTS_FOLDER = "artifacts"
_BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")

LM = s.logged_models
LMP = s.logged_model_params
LMT = s.logged_model_tags
LMM = s.logged_model_metrics

KeyValues = Sequence[LoggedModelTag] | Sequence[LoggedModelParameter] | Mapping[str, str] | None


def _pairs(items: KeyValues) -> dict[str, str]:
    """Tags or params as a dict; a repeated key keeps its last value."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): v for k, v in items.items()}
    return {item.key: item.value for item in items}


def validate_logged_model_name(name: str | None) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not name or any(c in name for c in _BAD_NAME_CHARS):
        raise InvalidParameterValue(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string and cannot "
            f"contain the following characters: {_BAD_NAME_CHARS}")


def _not_found(model_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")


# --- page tokens ---------------------------------------------------------------------------------

def encode_search_token(experiment_ids: list[str], filter_string: str | None,
                        order_by: list[dict[str, Any]] | None, offset: int) -> str:
    payload = {"experiment_ids": experiment_ids, "filter_string": filter_string, "order_by": order_by,
               "offset": offset}
    return base64.b64encode(json.dumps(payload).encode("utf-8")).decode("utf-8")


def decode_search_token(token: str, experiment_ids: list[str], filter_string: str | None,
                        order_by: list[dict[str, Any]] | None) -> int:
    """The offset in a token, after checking it was issued for the same search (as MLflow does)."""
    try:
        payload = json.loads(base64.b64decode(token.encode("utf-8"), validate=True).decode("utf-8"))
        if not isinstance(payload, dict):
            raise ValueError
        offset = payload.get("offset") or 0
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidParameterValue(f"Invalid page token: {token}.") from None
    if payload.get("experiment_ids") != experiment_ids:
        raise InvalidParameterValue("Experiment IDs in the page token do not match the requested experiment IDs. "
                                    f"Expected: {experiment_ids}. Found: {payload.get('experiment_ids')}")
    if (payload.get("filter_string") or None) != filter_string:
        raise InvalidParameterValue("Filter string in the page token does not match the requested filter string. "
                                    f"Expected: {filter_string}. Found: {payload.get('filter_string')}")
    if (payload.get("order_by") or None) != order_by:
        raise InvalidParameterValue("Order by in the page token does not match the requested order by. "
                                    f"Expected: {order_by}. Found: {payload.get('order_by')}")
    return offset


# --- loading -------------------------------------------------------------------------------------

def load_logged_models(conn: sa.Connection, model_ids: Sequence[str]) -> list[LoggedModel]:
    """Logged models with params, tags and metrics in four queries per chunk, in the order given."""
    ids = list(dict.fromkeys(model_ids))
    rows: dict[str, Any] = {}
    params: dict[str, dict[str, str]] = defaultdict(dict)
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    metrics: dict[str, list[Metric]] = defaultdict(list)
    for part in chunks(ids):
        for row in conn.execute(sa.select(LM).where(LM.c.model_id.in_(part))):
            rows[row.model_id] = row
        for row in conn.execute(sa.select(LMP.c.model_id, LMP.c.param_key, LMP.c.param_value)
                                .where(LMP.c.model_id.in_(part)).order_by(LMP.c.model_id, LMP.c.param_key)):
            params[row.model_id][row.param_key] = row.param_value
        for row in conn.execute(sa.select(LMT.c.model_id, LMT.c.tag_key, LMT.c.tag_value)
                                .where(LMT.c.model_id.in_(part)).order_by(LMT.c.model_id, LMT.c.tag_key)):
            tags[row.model_id][row.tag_key] = row.tag_value
        for row in conn.execute(sa.select(LMM).where(LMM.c.model_id.in_(part))
                                .order_by(LMM.c.model_id, LMM.c.metric_name, LMM.c.metric_timestamp_ms,
                                          LMM.c.metric_step, LMM.c.run_id)):
            metrics[row.model_id].append(Metric(
                key=row.metric_name, value=float(row.metric_value), timestamp=row.metric_timestamp_ms,
                step=row.metric_step, model_id=row.model_id, dataset_name=row.dataset_name,
                dataset_digest=row.dataset_digest, run_id=row.run_id))
    return [LoggedModel(
        experiment_id=str(r.experiment_id), model_id=r.model_id, name=r.name, artifact_location=r.artifact_location,
        creation_timestamp=r.creation_timestamp_ms, last_updated_timestamp=r.last_updated_timestamp_ms,
        model_type=r.model_type, source_run_id=r.source_run_id, status=LoggedModelStatus.from_number(r.status),
        status_message=r.status_message, tags=tags[i], params=params[i], metrics=metrics[i],
        lifecycle_stage=r.lifecycle_stage or LifecycleStage.ACTIVE.value)
        for i in ids if (r := rows.get(i)) is not None]


class LoggedModelStore(TransactionScopes):
    """MLflow's logged-model API over a head-schema database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    @staticmethod
    def _row(conn: sa.Connection, model_id: str, *, lock: bool = False):
        """The model's row, deleted or not (MLflow lets tags, params and status change after delete).

        Writes use the stored id from this row: MySQL's collation also matches an id in another case.
        """
        query = sa.select(LM.c.model_id, LM.c.experiment_id, LM.c.lifecycle_stage).where(LM.c.model_id == model_id)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise _not_found(model_id)
        return row

    def create_logged_model(self, experiment_id: str | int, name: str | None = None,
                            source_run_id: str | None = None, tags: KeyValues = None, params: KeyValues = None,
                            model_type: str | None = None) -> LoggedModel:
        """A new PENDING model in an active experiment, with a generated name when none is given."""
        validate_logged_model_name(name)
        model_tags, model_params = _pairs(tags), _pairs(params)
        with self._write() as conn:
            exp = experiments.get(conn, experiment_id)
            experiments.require_active(exp)
            model_id = f"m-{uuid.uuid4().hex}"
            when = experiments.now_ms()
            eid = int(exp.experiment_id)
            conn.execute(LM.insert().values(
                model_id=model_id, experiment_id=eid, name=name or random_run_name(),
                artifact_location=append_to_uri_path(exp.artifact_location, MODELS_FOLDER, model_id, ARTIFACTS_FOLDER),
                creation_timestamp_ms=when, last_updated_timestamp_ms=when, status=LoggedModelStatus.PENDING.number,
                lifecycle_stage=LifecycleStage.ACTIVE.value, model_type=model_type, source_run_id=source_run_id,
                status_message=None))
            if model_params:
                conn.execute(LMP.insert(), [{"model_id": model_id, "experiment_id": eid, "param_key": k,
                                             "param_value": v} for k, v in model_params.items()])
            if model_tags:
                conn.execute(LMT.insert(), [{"model_id": model_id, "experiment_id": eid, "tag_key": k,
                                             "tag_value": v} for k, v in model_tags.items()])
            return load_logged_models(conn, [model_id])[0]

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The model with params, tags and metrics; a deleted one only with allow_deleted."""
        with self._read() as conn:
            found = load_logged_models(conn, [model_id])
        if not found or (found[0].lifecycle_stage == LifecycleStage.DELETED.value and not allow_deleted):
            raise _not_found(model_id)
        return found[0]

    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus | int | str) -> LoggedModel:
        """Set the final status (READY or FAILED, by name, protobuf name or number)."""
        try:
            final = LoggedModelStatus.parse(status)
        except ValueError:
            raise InvalidParameterValue(f"Invalid logged model status {status!r}.") from None
        with self._write() as conn:
            model_id = self._row(conn, model_id, lock=True).model_id
            conn.execute(LM.update().where(LM.c.model_id == model_id)
                         .values(status=final.number, last_updated_timestamp_ms=experiments.now_ms()))
            return load_logged_models(conn, [model_id])[0]

    def delete_logged_model(self, model_id: str) -> None:
        """Soft delete: lifecycle_stage 'deleted' and the update time now."""
        with self._write() as conn:
            self._row(conn, model_id, lock=True)
            conn.execute(LM.update().where(LM.c.model_id == model_id)
                         .values(lifecycle_stage=LifecycleStage.DELETED.value,
                                 last_updated_timestamp_ms=experiments.now_ms()))

    def set_logged_model_tags(self, model_id: str, tags: KeyValues) -> None:
        """Set tags (overwriting values of existing keys; a repeated key keeps its last value)."""
        wanted = _pairs(tags)
        with self._write() as conn:
            row = self._row(conn, model_id)
            upsert(conn, LMT, [{"model_id": row.model_id, "experiment_id": row.experiment_id, "tag_key": k,
                                "tag_value": v} for k, v in wanted.items()], ["tag_value"])

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove a tag; a key the model does not have is ResourceDoesNotExist (as MLflow)."""
        with self._write() as conn:
            self._row(conn, model_id)
            deleted = conn.execute(LMT.delete().where(LMT.c.model_id == model_id, LMT.c.tag_key == key)).rowcount
            if not deleted:
                raise ResourceDoesNotExist(f"No tag with key {key!r} found for model with ID {model_id!r}.")

    def log_logged_model_params(self, model_id: str, params: KeyValues) -> None:
        """Add params. Logging a key again with the same value does nothing; another value is refused.

        (MLflow answers a repeated key with a database error; here it is INVALID_PARAMETER_VALUE.)
        """
        wanted = _pairs(params)
        if not wanted:
            with self._read() as conn:
                self._row(conn, model_id)
            return
        with self._write() as conn:
            row = self._row(conn, model_id)
            model_id = row.model_id
            insert_ignoring_duplicates(conn, LMP, [{"model_id": model_id, "experiment_id": row.experiment_id,
                                                    "param_key": k, "param_value": v} for k, v in wanted.items()])
            changed = []
            for part in chunks(list(wanted)):
                for key, value in conn.execute(sa.select(LMP.c.param_key, LMP.c.param_value)
                                               .where(LMP.c.model_id == model_id, LMP.c.param_key.in_(part))):
                    if value != wanted[key]:
                        changed.append(key)
            if changed:
                raise InvalidParameterValue(f"Changing param values is not allowed. Params {sorted(changed)} "
                                            f"were already logged for model with ID '{model_id}' with other values.")

    def search_logged_models(self, experiment_ids: Sequence[str | int], filter_string: str | None = None,
                             datasets: Sequence[Mapping[str, Any]] | None = None, max_results: int | None = None,
                             order_by: Sequence[Mapping[str, Any]] | None = None,
                             page_token: str | None = None, restrict=None) -> tuple[list[LoggedModel], str | None]:
        """One page of non-deleted models of the experiments, and the next page's token.

        `datasets` and `order_by` take MLflow's dicts (``{"dataset_name", "dataset_digest"}``;
        ``{"field_name", "ascending", "dataset_name", "dataset_digest"}``). Without max_results a
        page holds 100 models.
        """
        if datasets and not all(d.get("dataset_name") for d in datasets):
            raise InvalidParameterValue("`dataset_name` in the `datasets` clause must be specified.")
        ids = [str(e) for e in experiment_ids]
        order = [dict(o) for o in order_by] if order_by else None
        offset = decode_search_token(page_token, ids, filter_string, order) if page_token else 0
        if max_results is not None and (isinstance(max_results, bool) or not isinstance(max_results, int)
                                        or max_results < 1):
            raise InvalidParameterValue(f"Invalid value {max_results!r} for parameter 'max_results': "
                                        "it must be a positive integer")
        size = max_results or search.SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT
        query = search.logged_models_query(ids, filter_string, datasets, order, offset, size + 1)
        query = restrict(query) if restrict else query  # auth: only what the user may read (auth/sqlfilter.py)
        with self._read() as conn:
            found_ids = [row[0] for row in conn.execute(query)]
            found = load_logged_models(conn, found_ids[:size])
        token = encode_search_token(ids, filter_string, order, offset + size) if len(found_ids) > size else None
        return found, token
