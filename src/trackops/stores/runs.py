"""Run rows: create, read, update, soft-delete/restore, tags, params, batches, inputs and outputs.

Functions take an open connection; the caller owns the transaction, so a log-batch is all or
nothing. Rows are written as MLflow 3.17 writes them (run_uuid as 32 hex characters, source fields
``'UNKNOWN'``/``''``, status ``'RUNNING'``, the run name both in ``runs.name`` and in the
``mlflow.runName`` tag, artifact URI ``<experiment location>/<run_id>/artifacts``).

Writing to a deleted run is refused with INVALID_PARAMETER_VALUE "must be in the 'active' state",
the code MLflow 3.17's SQL store uses.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence

import orjson
import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import (
    DatasetInput,
    LifecycleStage,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
)
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist
from trackops.stores import experiments, metrics
from trackops.stores.names import random_run_name
from trackops.stores.rows import RUN_COLUMNS, chunks, load_runs, run_info_from_row
from trackops.stores.sql import DriverQuery, insert_ignoring_duplicates, upsert
from trackops.stores.uris import append_to_uri_path
from trackops.stores.validation import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    _batch_limit as batch_limit,
    validate_batch,
    validate_dataset_inputs,
    validate_metric,
    validate_param,
    validate_run_id,
    validate_tag,
)

RUN_NAME_TAG = "mlflow.runName"
ARTIFACTS_FOLDER = "artifacts"


# Built once: every write to a run reads its row first, and building a statement costs more than running it.
# Sent on the driver's cursor (DriverQuery): it is most of a log-metric's statements' Python time.
_BY_ID = DriverQuery(sa.select(*RUN_COLUMNS).where(s.runs.c.run_uuid == sa.bindparam("run_id")))
_BY_ID_LOCKED = DriverQuery(_BY_ID.statement.with_for_update())


def _row(conn: sa.Connection, run_id: str, *, lock: bool = False):
    row = (_BY_ID_LOCKED if lock else _BY_ID).first(conn, {"run_id": run_id})
    if row is None:
        raise ResourceDoesNotExist(f"Run with id={run_id} not found")
    return row


def active_row(conn: sa.Connection, run_id: str, *, lock: bool = False):
    """The run's row; ResourceDoesNotExist if missing, InvalidParameterValue if deleted."""
    row = _row(conn, run_id, lock=lock)
    if row.lifecycle_stage != LifecycleStage.ACTIVE.value:
        raise InvalidParameterValue(f"The run {run_id} must be in the 'active' state. "
                                    f"Current state is {row.lifecycle_stage}.")
    return row


def create(conn: sa.Connection, experiment_id: int | str, *, user_id: str | None = None,
           start_time: int | None = None, tags: Sequence[RunTag] = (), run_name: str | None = None) -> Run:
    """Start a run in an active experiment."""
    exp = experiments.get(conn, experiment_id)
    if exp.lifecycle_stage != LifecycleStage.ACTIVE.value:
        raise InvalidParameterValue(f"The experiment {exp.experiment_id} must be in the 'active' state. "
                                    f"Current state is {exp.lifecycle_stage}.")
    clean = {t.key: t for t in (validate_tag(t, f"tags[{i}]") for i, t in enumerate(tags))}
    tag_name = clean[RUN_NAME_TAG].value if RUN_NAME_TAG in clean else None
    if run_name and tag_name and run_name != tag_name:
        raise InvalidParameterValue(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
            f"(run_name='{run_name}', mlflow.runName='{tag_name}').")
    run_name = run_name or tag_name or random_run_name()
    if tag_name is None:
        clean[RUN_NAME_TAG] = RunTag(RUN_NAME_TAG, run_name)
    run_id = uuid.uuid4().hex
    conn.execute(s.runs.insert().values(
        run_uuid=run_id, name=run_name, source_type="UNKNOWN", source_name="", entry_point_name="",
        user_id="" if user_id is None else user_id, status=RunStatus.RUNNING.value,
        start_time=experiments.now_ms() if start_time is None else int(start_time), end_time=None,
        source_version="", lifecycle_stage=LifecycleStage.ACTIVE.value,
        artifact_uri=append_to_uri_path(exp.artifact_location, run_id, ARTIFACTS_FOLDER),
        experiment_id=int(exp.experiment_id), deleted_time=None))
    conn.execute(s.tags.insert(), [{"run_uuid": run_id, "key": t.key, "value": t.value} for t in clean.values()])
    return load_runs(conn, [run_id])[0]


def get(conn: sa.Connection, run_id: str) -> Run:
    runs = load_runs(conn, [run_id])
    if not runs:
        raise ResourceDoesNotExist(f"Run with id={run_id} not found")
    return runs[0]


def update_info(conn: sa.Connection, run_id: str, status: RunStatus | str | None = None,
                end_time: int | None = None, run_name: str | None = None) -> RunInfo:
    """Change status, end time and/or name (keeping the mlflow.runName tag in step)."""
    active_row(conn, run_id, lock=True)
    values: dict = {}
    if status is not None:
        values["status"] = _status(status).value
    if end_time is not None:
        values["end_time"] = int(end_time)
    if run_name:
        values["name"] = run_name
        upsert(conn, s.tags, [{"run_uuid": run_id, "key": RUN_NAME_TAG, "value": run_name}], ["value"])
    if values:
        conn.execute(s.runs.update().where(s.runs.c.run_uuid == run_id).values(**values))
    return run_info_from_row(_row(conn, run_id))


def _status(status: RunStatus | str | int) -> RunStatus:
    if isinstance(status, RunStatus):
        return status
    if isinstance(status, int) or (isinstance(status, str) and status.isdigit()):
        for candidate in RunStatus:
            if candidate.number == int(status):
                return candidate
    elif status in RunStatus.__members__:
        return RunStatus[status]
    raise InvalidParameterValue(f"Invalid run status {status!r}")


def delete(conn: sa.Connection, run_id: str) -> None:
    _row(conn, run_id, lock=True)
    conn.execute(s.runs.update().where(s.runs.c.run_uuid == run_id)
                 .values(lifecycle_stage=LifecycleStage.DELETED.value, deleted_time=experiments.now_ms()))
    experiments.delete_run_assessments(conn, [run_id])


def restore(conn: sa.Connection, run_id: str) -> None:
    _row(conn, run_id, lock=True)
    conn.execute(s.runs.update().where(s.runs.c.run_uuid == run_id)
                 .values(lifecycle_stage=LifecycleStage.ACTIVE.value, deleted_time=None))


def set_tags(conn: sa.Connection, run_id: str, tags: Sequence[RunTag]) -> None:
    """Upsert validated tags (last value wins for a repeated key); mlflow.runName renames the run."""
    latest = {t.key: t.value for t in tags}
    if not latest:
        return
    upsert(conn, s.tags, [{"run_uuid": run_id, "key": k, "value": v} for k, v in latest.items()], ["value"])
    if RUN_NAME_TAG in latest:
        conn.execute(s.runs.update().where(s.runs.c.run_uuid == run_id).values(name=latest[RUN_NAME_TAG]))


LOGGED_MODELS_TAG = "mlflow.log-model.history"
MODEL_FIELDS = ("artifact_path", "flavors", "utc_time_created", "run_id")  # what mlflow server requires


def record_logged_model(conn: sa.Connection, run_id: str, model: dict) -> None:
    """Append the summary of an MLmodel (`model`: the ``model_json`` object, its ``flavors`` an
    object or null) to the run's mlflow.log-model.history tag (a JSON list), as MLflow's legacy
    runs/log-model does; the run row is locked so two appends do not lose one."""
    summary = model_summary(model)
    active_row(conn, run_id, lock=True)
    previous = conn.execute(sa.select(s.tags.c.value).where(s.tags.c.run_uuid == run_id,
                                                            s.tags.c.key == LOGGED_MODELS_TAG)).scalar()
    history = orjson.loads(previous) if previous else []
    history.append(summary)
    value = json.dumps(history)
    set_tags(conn, run_id, [validate_tag(RunTag(LOGGED_MODELS_TAG, value))])


def model_summary(model: dict) -> dict:
    """What MLflow keeps of an MLmodel in mlflow.log-model.history (``Model.get_tags_dict``): run id,
    artifact path, creation time (now when it has none), model uuid, and the flavors without their
    ``config``. A model without one of `MODEL_FIELDS` is refused with mlflow server's message."""
    missing = [f for f in MODEL_FIELDS if f not in model]
    if missing:
        shown = "{" + ", ".join(repr(f) for f in missing) + "}"
        raise InvalidParameterValue(f"Model json is missing mandatory fields: {shown}")
    out: dict = {}
    if model["run_id"] is not None:
        out["run_id"] = model["run_id"]
    if model["artifact_path"] is not None:
        out["artifact_path"] = model["artifact_path"]
    created = model["utc_time_created"]
    out["utc_time_created"] = str(created or datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
    out["model_uuid"] = model.get("model_uuid")
    flavors = model["flavors"] if model["flavors"] is not None else {}
    out["flavors"] = {name: ({k: v for k, v in conf.items() if k != "config"} if isinstance(conf, dict) else conf)
                      for name, conf in flavors.items()}
    return out


def delete_tag(conn: sa.Connection, run_id: str, key: str) -> None:
    active_row(conn, run_id)
    deleted = conn.execute(s.tags.delete().where(s.tags.c.run_uuid == run_id, s.tags.c.key == key)).rowcount
    if not deleted:
        raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run_id}")


def log_params(conn: sa.Connection, run_id: str, params: Sequence[Param], *, single: bool = False) -> None:
    """Insert validated params; a key already logged with another value is InvalidParameterValue
    (`single`: worded as MLflow words it for log-parameter rather than for log-batch)."""
    if not params:
        return
    wanted = {p.key: p.value for p in params}
    _check_unchanged(conn, run_id, wanted, single)
    insert_ignoring_duplicates(conn, s.params, [{"run_uuid": run_id, "key": k, "value": v}
                                                for k, v in wanted.items()])
    # A concurrent writer may have logged one of these keys between the check and the insert.
    _check_unchanged(conn, run_id, wanted, single)


def _check_unchanged(conn: sa.Connection, run_id: str, wanted: dict[str, str], single: bool = False) -> None:
    p = s.params
    changed = []
    for part in chunks(list(wanted)):
        for key, value in conn.execute(sa.select(p.c.key, p.c.value).where(p.c.run_uuid == run_id,
                                                                           p.c.key.in_(part))):
            if value != wanted[key]:
                changed.append((key, value, wanted[key]))
    if changed and single:
        key, old, new = changed[0]
        raise InvalidParameterValue(f"Changing param values is not allowed. Param with key='{key}' was already "
                                    f"logged with value='{old}' for run ID='{run_id}'. Attempted logging new "
                                    f"value '{new}'.")
    if changed:  # MLflow's text: the list of dicts, as Python prints it
        detail = [{"key": k, "old_value": old, "new_value": new} for k, old, new in changed]
        raise InvalidParameterValue(
            f"Changing param values is not allowed. Params were already logged='{detail}' for run ID='{run_id}'.")


def log_batch(conn: sa.Connection, run_id: str, metric_list: Sequence[Metric] = (),
              params: Sequence[Param] = (), tags: Sequence[RunTag] = ()) -> None:
    """Validate and write metrics, params and tags of one run, all or nothing, as MLflow's log-batch."""
    validate_run_id(run_id)
    clean_params, clean_tags = validate_batch(metric_list, params, tags)
    row = active_row(conn, run_id)
    log_params(conn, run_id, clean_params)
    metrics.write_metrics(conn, run_id, metric_list, experiment_id=row.experiment_id)
    set_tags(conn, run_id, clean_tags)


def log_batch_points(conn: sa.Connection, run_id: str, points: Sequence[metrics.Point] = (),
                     params: Sequence[Param] = (), tags: Sequence[RunTag] = ()) -> None:
    """`log_batch` for metrics sent as (key, value, timestamp, step) tuples of plain types, with no
    model or dataset ids: the same checks, the same errors, no object per metric."""
    validate_run_id(run_id)
    good_keys: set[str] = set()
    for i, (key, value, timestamp, step) in enumerate(points):
        if key in good_keys and timestamp >= 0:
            continue  # the common case: a key already validated in this batch
        validate_metric(Metric(key, value, timestamp, step), f"metrics[{i}]")
        good_keys.add(key)
    clean_params, clean_tags = validate_batch((), params, tags)
    batch_limit("metrics", MAX_METRICS_PER_BATCH, len(points))
    batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, len(points) + len(params) + len(tags))
    active_row(conn, run_id)
    log_params(conn, run_id, clean_params)
    metrics.write_points(conn, run_id, points)
    set_tags(conn, run_id, clean_tags)


def log_metric(conn: sa.Connection, run_id: str, metric: Metric) -> None:
    validate_metric(metric)
    row = active_row(conn, run_id)
    metrics.write_metrics(conn, run_id, [metric], experiment_id=row.experiment_id)


def log_param(conn: sa.Connection, run_id: str, param: Param) -> None:
    clean = validate_param(param)
    active_row(conn, run_id)
    log_params(conn, run_id, [clean], single=True)


def set_tag(conn: sa.Connection, run_id: str, tag: RunTag) -> None:
    clean = validate_tag(tag)
    active_row(conn, run_id)
    set_tags(conn, run_id, [clean])


def log_inputs(conn: sa.Connection, run_id: str, datasets: Sequence[DatasetInput] = (),
               models: Sequence[LoggedModelInput] = ()) -> None:
    """Link datasets (created once per experiment, name and digest) and model inputs to a run."""
    validate_run_id(run_id)
    validate_dataset_inputs(datasets)
    row = active_row(conn, run_id)
    experiment_id = row.experiment_id
    # The first input for a (name, digest) wins, as in MLflow.
    unique: dict[tuple[str, str], DatasetInput] = {}
    for item in datasets:
        unique.setdefault((item.dataset.name, item.dataset.digest), item)
    d, i = s.datasets, s.inputs
    dataset_uuids: dict[tuple[str, str], str] = {}
    names = sorted({k[0] for k in unique})
    for part in chunks(names):
        for r in conn.execute(sa.select(d.c.name, d.c.digest, d.c.dataset_uuid)
                              .where(d.c.experiment_id == experiment_id, d.c.name.in_(part))):
            if (r.name, r.digest) in unique:
                dataset_uuids[(r.name, r.digest)] = r.dataset_uuid
    new_datasets = []
    for key, item in unique.items():
        if key not in dataset_uuids:
            dataset_uuids[key] = uuid.uuid4().hex
            ds = item.dataset
            new_datasets.append({"dataset_uuid": dataset_uuids[key], "experiment_id": experiment_id,
                                 "name": ds.name, "digest": ds.digest, "dataset_source_type": ds.source_type,
                                 "dataset_source": ds.source, "dataset_schema": ds.schema,
                                 "dataset_profile": ds.profile})
    if new_datasets:
        conn.execute(d.insert(), new_datasets)
    linked: set[str] = set()
    uuids = list(dataset_uuids.values())
    for part in chunks(uuids):
        linked.update(conn.execute(sa.select(i.c.source_id).where(
            i.c.source_type == "DATASET", i.c.source_id.in_(part), i.c.destination_type == "RUN",
            i.c.destination_id == run_id)).scalars())
    new_inputs, new_tags = [], []
    for key, item in unique.items():
        if dataset_uuids[key] in linked:
            continue
        input_uuid = uuid.uuid4().hex
        new_inputs.append({"input_uuid": input_uuid, "source_type": "DATASET", "source_id": dataset_uuids[key],
                           "destination_type": "RUN", "destination_id": run_id, "step": 0})
        new_tags.extend({"input_uuid": input_uuid, "name": t.key, "value": t.value} for t in item.tags)
    if new_inputs:
        conn.execute(i.insert(), new_inputs)
    if new_tags:
        insert_ignoring_duplicates(conn, s.input_tags, new_tags)
    insert_ignoring_duplicates(conn, i, [
        {"input_uuid": uuid.uuid4().hex, "source_type": "RUN_INPUT", "source_id": run_id,
         "destination_type": "MODEL_INPUT", "destination_id": m.model_id, "step": 0}
        for m in {m.model_id: m for m in models}.values()])


def log_outputs(conn: sa.Connection, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
    """Record logged models as outputs of a run, each with the step it was logged at."""
    active_row(conn, run_id)
    insert_ignoring_duplicates(conn, s.inputs, [
        {"input_uuid": uuid.uuid4().hex, "source_type": "RUN_OUTPUT", "source_id": run_id,
         "destination_type": "MODEL_OUTPUT", "destination_id": m.model_id, "step": int(m.step)}
        for m in {m.model_id: m for m in models}.values()])
