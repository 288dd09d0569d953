"""Search queries for runs, experiments, registered models, model versions and logged models.

Each builder turns MLflow's filter and order_by strings (see `filter_grammar`) into ONE SQLAlchemy
Core ``SELECT`` of the matching keys in their final order, with offset and limit applied: all
filtering and sorting happen in the database, and a filter on a metric, param or tag is an
``EXISTS`` on its table's primary key. The statements are dialect-neutral; string comparisons are
compiled per dialect so that results match MLflow 3.17 on each:

- ``=``, ``!=``, ``IN`` and ``LIKE`` are case-sensitive everywhere: MySQL/MariaDB compare with
  ``BINARY`` (its default collations ignore case), SQLite runs ``LIKE`` as ``GLOB`` (MLflow sets
  ``PRAGMA case_sensitive_like``; a query cannot rely on a session pragma).
- ``ILIKE`` is case-insensitive everywhere (``lower(x) LIKE lower(y)`` off PostgreSQL).

Ordering follows MLflow: values present sort before missing ones in both directions (for run
metrics: numbers, then NaN, then missing), and ties are broken as MLflow does (runs by start_time
DESC then run id; experiments by id; models by name; versions by name then version DESC; logged
models by creation time DESC then id).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_types
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from trackops.db import schema as t
from trackops.entities import LoggedModelStatus, ViewType
from trackops.errors import InvalidParameterValue
from trackops.stores.filter_grammar import (
    EXPERIMENTS,
    LOGGED_MODELS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    RUNS,
    Comparison,
    GrammarError,
    OrderKey,
    parse_filter,
    parse_order_by,
    parse_order_by_list,
)
from trackops.stores.rows import RUN_COLUMNS

__all__ = [
    "GrammarError", "encode_page_token", "decode_page_token", "validate_max_results",
    "runs_query", "experiments_query", "registered_models_query", "model_versions_query",
    "logged_models_query", "parse_filter", "parse_order_by",
    "SEARCH_MAX_RESULTS_DEFAULT", "SEARCH_MAX_RESULTS_THRESHOLD",
    "SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT", "SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD",
    "SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT", "SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD",
    "SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT",
]

# MLflow 3.17's bounds on max_results.
SEARCH_MAX_RESULTS_DEFAULT = 1000  # runs and experiments
SEARCH_MAX_RESULTS_THRESHOLD = 50_000
SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT = 100
SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD = 1000
SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT = 10_000
SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD = 200_000
SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT = 100

RUN_NAME_TAG = "mlflow.runName"
DATASET_CONTEXT_TAG = "mlflow.data.context"
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
STAGE_DELETED_INTERNAL = "Deleted_Internal"


# --- pagination -------------------------------------------------------------------------------

def encode_page_token(offset: int) -> str:
    """The next_page_token MLflow sends: base64 of ``{"offset": N}``."""
    return base64.b64encode(json.dumps({"offset": int(offset)}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset in a page token; no token is offset 0, a malformed one `InvalidParameterValue`."""
    if not token:
        return 0
    try:
        raw = base64.b64decode(token, validate=True)
        offset = json.loads(raw)["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise InvalidParameterValue(f"Invalid page token {token!r}: not a token this server issued") from None
    if isinstance(offset, bool) or not isinstance(offset, (int, str)):
        raise InvalidParameterValue(f"Invalid page token {token!r}: bad offset")
    try:
        offset = int(offset)
    except ValueError:
        raise InvalidParameterValue(f"Invalid page token {token!r}: bad offset") from None
    if offset < 0:
        raise InvalidParameterValue(f"Invalid page token {token!r}: negative offset")
    if offset >= 2**63:  # beyond any OFFSET a database takes
        raise InvalidParameterValue(f"Invalid page token {token!r}: bad offset")
    return offset


def validate_max_results(max_results: int | None, maximum: int, *, allow_none: bool = False) -> None:
    """MLflow's check: a positive integer no larger than `maximum` (None only when allowed)."""
    if max_results is None:
        if allow_none:
            return
        raise InvalidParameterValue("Invalid value None for parameter 'max_results': it must be a positive integer")
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InvalidParameterValue(
            f"Invalid value {max_results!r} for parameter 'max_results': it must be a positive integer")
    if max_results > maximum:
        raise InvalidParameterValue(
            f"Invalid value {max_results} for parameter 'max_results': it must be at most {maximum}")


# --- case-sensitive string comparison, compiled per dialect -----------------------------------

class _StrCompare(ColumnElement[bool]):
    """``column <op> value`` on a string column, case-sensitive on every dialect."""

    type = sa.Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a predicate: no "= 1" appended where booleans are integers
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("op", InternalTraversal.dp_string),
        ("value", InternalTraversal.dp_clauseelement),
        ("glob", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement, op: str, value: Any):
        self.column = column
        self.op = op
        if op in ("IN", "NOT IN"):
            self.value = sa.bindparam(None, list(value), expanding=True, type_=column.type)
        else:
            self.value = sa.bindparam(None, value, type_=column.type)
        self.glob = sa.bindparam(None, _like_to_glob(value), type_=column.type) if op == "LIKE" else sa.null()


def _plain(col: ColumnElement, op: str, value: ColumnElement) -> ColumnElement:
    return {
        "=": lambda: col == value,
        "!=": lambda: col != value,
        "LIKE": lambda: col.like(value),
        "IN": lambda: col.in_(value),
        "NOT IN": lambda: col.not_in(value),
    }[op]()


@compiles(_StrCompare)
def _compile_default(element: _StrCompare, compiler, **kw) -> str:
    return compiler.process(_plain(element.column, element.op, element.value), **kw)


@compiles(_StrCompare, "sqlite")
def _compile_sqlite(element: _StrCompare, compiler, **kw) -> str:
    if element.op == "LIKE":
        return compiler.process(element.column.op("GLOB")(element.glob), **kw)
    return _compile_default(element, compiler, **kw)


@compiles(_StrCompare, "mysql")
def _compile_mysql(element: _StrCompare, compiler, **kw) -> str:
    col, op, value = element.column, element.op, element.value
    binary = sa.cast(col, mysql_types.BINARY())
    # The plain comparison first lets MySQL use the column's index; BINARY then decides case.
    if op == "=":
        expr = sa.and_(col == value, binary == value)
    elif op == "!=":
        expr = sa.or_(col != value, binary != value)
    elif op == "LIKE":
        expr = sa.and_(col.like(value), binary.like(value))
    elif op == "IN":
        expr = binary.in_(value)
    else:
        expr = binary.not_in(value)
    return compiler.process(sa.Grouping(expr), **kw)


def _like_to_glob(pattern: Any) -> str | None:
    """A GLOB pattern matching what LIKE `pattern` matches, case-sensitively (no ESCAPE, as MLflow)."""
    if not isinstance(pattern, str):
        return None
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def compare(col: ColumnElement, op: str, value: Any) -> ColumnElement:
    """``col <op> value`` with MLflow's semantics; strings compare case-sensitively except ILIKE."""
    if op == "ILIKE":
        return col.ilike(value)
    if isinstance(col.type, sa.String) and op in ("=", "!=", "LIKE", "IN", "NOT IN"):
        return _StrCompare(col, op, value)
    return {
        "=": lambda: col == value, "!=": lambda: col != value,
        "<": lambda: col < value, "<=": lambda: col <= value,
        ">": lambda: col > value, ">=": lambda: col >= value,
        "LIKE": lambda: col.like(value),
        "IN": lambda: col.in_(list(value)), "NOT IN": lambda: col.not_in(list(value)),
    }[op]()


def _key_is(col: ColumnElement, key: str) -> ColumnElement:
    return compare(col, "=", key)


def _nulls_last(col: ColumnElement, ascending: bool) -> list[ColumnElement]:
    """Missing values after present ones in both directions (MySQL has no NULLS LAST)."""
    return [sa.case((col.is_(None), 1), else_=0), col.asc() if ascending else col.desc()]


def _experiment_id_list(experiment_ids: Iterable[str | int]) -> list[int]:
    ids = []
    for exp_id in experiment_ids or []:
        ids.append(_experiment_id(exp_id))
    return ids


def _experiment_id(value: str | int) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(
            f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.") from None


def _page(stmt: sa.Select, offset: int | None, limit: int | None) -> sa.Select:
    if offset:
        if offset < 0:
            raise InvalidParameterValue(f"Invalid offset {offset}: it must not be negative")
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


# --- runs -------------------------------------------------------------------------------------

def runs_query(experiment_ids: Sequence[str | int], filter_string: str | None = None,
               run_view_type: ViewType | int | str | None = ViewType.ACTIVE_ONLY,
               order_by: Sequence[str] | None = None, offset: int = 0, limit: int | None = None) -> sa.Select:
    """The matching runs' rows (`rows.RUN_COLUMNS`, ``run_uuid`` first), in MLflow's search_runs order.

    The page query returns the whole run row rather than only its id, so that loading the page
    does not read the same rows again by primary key (a third of a 1000-run page's statements)."""
    comparisons = parse_filter(filter_string, RUNS)
    order_keys = parse_order_by_list(order_by, RUNS)
    runs = t.runs
    stages = ViewType.parse(run_view_type).stages()
    where = [runs.c.experiment_id.in_(_experiment_id_list(experiment_ids)), runs.c.lifecycle_stage.in_(stages)]
    where += [_run_condition(c) for c in comparisons]

    source = runs
    order: list[ColumnElement] = []
    for n, key in enumerate(order_keys):
        if key.kind == "attribute":
            order += _nulls_last(runs.c[RUNS.order_attributes[key.key].column], key.ascending)
            continue
        table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[key.kind]
        joined = table.alias(f"order_{n}")
        source = source.outerjoin(joined, sa.and_(joined.c.run_uuid == runs.c.run_uuid,
                                                  _key_is(joined.c.key, key.key)))
        value = joined.c.value
        if key.kind == "metric":
            # numbers, then NaN (stored as 0 with is_nan), then runs without the metric
            order.append(sa.case((joined.c.is_nan == sa.true(), 1), (value.is_(None), 2), else_=0))
        else:
            order.append(sa.case((value.is_(None), 1), else_=0))
        order.append(value.asc() if key.ascending else value.desc())
    if not any(k.kind == "attribute" and RUNS.order_attributes[k.key].column == "start_time" for k in order_keys):
        order.append(runs.c.start_time.desc())
    order.append(runs.c.run_uuid.asc())

    stmt = sa.select(*RUN_COLUMNS).select_from(source).where(*where).order_by(*order)
    return _page(stmt, offset, limit)


def _run_condition(c: Comparison) -> ColumnElement:
    runs = t.runs
    if c.kind == "attribute":
        column = RUNS.attributes[c.key].column
        if column == "name":
            # Like MLflow, a run's name is searched through its mlflow.runName tag: the name
            # column is empty for runs logged before MLflow 1.30.
            return _exists(t.tags, t.tags.c.run_uuid == runs.c.run_uuid, _key_is(t.tags.c.key, RUN_NAME_TAG),
                           compare(t.tags.c.value, c.op, c.value))
        return compare(runs.c[column], c.op, c.value)
    if c.kind == "dataset":
        return _dataset_condition(c)
    table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[c.kind]
    correlate = [table.c.run_uuid == runs.c.run_uuid, _key_is(table.c.key, c.key)]
    if c.op == "IS NULL":
        return ~_exists(table, *correlate)
    if c.op == "IS NOT NULL":
        return _exists(table, *correlate)
    value = float(c.value) if c.kind == "metric" else c.value
    cond = compare(table.c.value, c.op, value)
    if c.kind == "metric":
        # A NaN metric (value 0, is_nan true) compares unequal to everything and matches nothing else.
        cond = sa.or_(cond, table.c.is_nan == sa.true()) if c.op == "!=" else sa.and_(cond, table.c.is_nan == sa.false())
    return _exists(table, *correlate, cond)


def _dataset_condition(c: Comparison) -> ColumnElement:
    d, i, tg = t.datasets, t.inputs, t.input_tags
    joined = d.join(i, i.c.source_id == d.c.dataset_uuid)
    conds = [i.c.destination_id == t.runs.c.run_uuid]
    if c.key == "context":
        joined = joined.join(tg, tg.c.input_uuid == i.c.input_uuid)
        conds += [tg.c.name == DATASET_CONTEXT_TAG, compare(tg.c.value, c.op, c.value)]
    else:
        conds.append(compare(d.c[c.key], c.op, c.value))
    return sa.exists(sa.select(sa.literal(1)).select_from(joined).where(*conds))


def _exists(table: sa.Table, *conds: ColumnElement) -> ColumnElement:
    return sa.exists(sa.select(sa.literal(1)).select_from(table).where(*conds))


# --- experiments ------------------------------------------------------------------------------

def experiments_query(filter_string: str | None = None,
                      view_type: ViewType | int | str | None = ViewType.ACTIVE_ONLY,
                      order_by: Sequence[str] | None = None, offset: int = 0, limit: int | None = None,
                      *, workspace: str | None = None) -> sa.Select:
    """``SELECT experiments.experiment_id`` of the matching experiments, in MLflow's order."""
    exp, tags = t.experiments, t.experiment_tags
    where = [exp.c.lifecycle_stage.in_(ViewType.parse(view_type).stages())]
    if workspace is not None:
        where.append(exp.c.workspace == workspace)
    for c in parse_filter(filter_string, EXPERIMENTS):
        if c.kind == "tag":
            correlate = [tags.c.experiment_id == exp.c.experiment_id, _key_is(tags.c.key, c.key)]
            if c.op == "IS NULL":
                where.append(~_exists(tags, *correlate))
            elif c.op == "IS NOT NULL":
                where.append(_exists(tags, *correlate))
            else:
                where.append(_exists(tags, *correlate, compare(tags.c.value, c.op, c.value)))
        elif c.key == "experiment_id":
            value = tuple(_experiment_id(v) for v in c.value) if c.op in ("IN", "NOT IN") else _experiment_id(c.value)
            where.append(compare(exp.c.experiment_id, c.op, value))
        else:
            where.append(compare(exp.c[EXPERIMENTS.attributes[c.key].column], c.op, c.value))
    keys = parse_order_by_list(order_by or ["creation_time DESC", "experiment_id ASC"], EXPERIMENTS)
    order = [exp.c[k.key].asc() if k.ascending else exp.c[k.key].desc() for k in keys]
    if not any(k.key == "experiment_id" for k in keys):
        order.append(exp.c.experiment_id.desc())
    stmt = sa.select(exp.c.experiment_id).where(*where).order_by(*order)
    return _page(stmt, offset, limit)


# --- registered models and model versions -----------------------------------------------------

def _is_querying_prompts(comparisons: list[Comparison]) -> bool:
    """MLflow: the first filter on the prompt tag decides; without one, prompts are excluded."""
    for c in comparisons:
        if c.kind == "tag" and c.key == IS_PROMPT_TAG:
            return (c.op == "=" and c.value.lower() == "true") or (c.op == "!=" and c.value.lower() == "false")
    return False


def _registry_tag_conditions(comparisons: list[Comparison], tag_table: sa.Table, correlate: list[ColumnElement],
                             prompts_wanted: bool) -> list[ColumnElement]:
    """One EXISTS per tag key; all comparisons on a key hold on that one tag row (as MLflow)."""
    by_key: dict[str, list[Comparison]] = {}
    for c in comparisons:
        if c.kind == "tag" and not (c.key == IS_PROMPT_TAG and not prompts_wanted):
            by_key.setdefault(c.key, []).append(c)
    out = []
    for key, comps in by_key.items():
        conds = [*correlate, _key_is(tag_table.c.key, key)]
        conds += [compare(tag_table.c.value, c.op, c.value) for c in comps]
        out.append(_exists(tag_table, *conds))
    return out


def registered_models_query(filter_string: str | None = None, order_by: Sequence[str] | None = None,
                            offset: int = 0, limit: int | None = None, *,
                            workspace: str = t.DEFAULT_WORKSPACE) -> sa.Select:
    """``SELECT registered_models.name`` of the matching models, in MLflow's order.

    Prompts (models tagged ``mlflow.prompt.is_prompt = 'true'``) are left out unless the filter
    asks for them, as MLflow's store does for the filter its client always appends.
    """
    rm, tags = t.registered_models, t.registered_model_tags
    comparisons = parse_filter(filter_string, REGISTERED_MODELS)
    prompts = _is_querying_prompts(comparisons)
    where = [rm.c.workspace == workspace]
    where += [compare(rm.c.name, c.op, c.value) for c in comparisons if c.kind == "attribute"]
    correlate = [tags.c.workspace == rm.c.workspace, tags.c.name == rm.c.name]
    where += _registry_tag_conditions(comparisons, tags, correlate, prompts)
    if not prompts:
        where.append(~_exists(tags, *correlate, _key_is(tags.c.key, IS_PROMPT_TAG), compare(tags.c.value, "=", "true")))
    order = []
    keys = parse_order_by_list(order_by, REGISTERED_MODELS)
    for k in keys:
        col = rm.c[REGISTERED_MODELS.order_attributes[k.key].column]
        order.append(col.asc() if k.ascending else col.desc())
    if not any(k.key == "name" for k in keys):
        order.append(rm.c.name.asc())
    stmt = sa.select(rm.c.name).where(*where).order_by(*order)
    return _page(stmt, offset, limit)


def model_versions_query(filter_string: str | None = None, order_by: Sequence[str] | None = None,
                         offset: int = 0, limit: int | None = None, *,
                         workspace: str = t.DEFAULT_WORKSPACE) -> sa.Select:
    """``SELECT model_versions.name, model_versions.version`` of the matching versions, in MLflow's order.

    Versions of prompts are left out unless the filter asks for them (MLflow excludes every
    version of a model of which any version carries ``mlflow.prompt.is_prompt = 'true'``).
    """
    mv, tags = t.model_versions, t.model_version_tags
    comparisons = parse_filter(filter_string, MODEL_VERSIONS)
    prompts = _is_querying_prompts(comparisons)
    where = [mv.c.workspace == workspace, mv.c.current_stage != STAGE_DELETED_INTERNAL]
    for c in comparisons:
        if c.kind == "attribute":
            where.append(compare(mv.c[MODEL_VERSIONS.attributes[c.key].column], c.op, c.value))
    correlate = [tags.c.workspace == mv.c.workspace, tags.c.name == mv.c.name, tags.c.version == mv.c.version]
    where += _registry_tag_conditions(comparisons, tags, correlate, prompts)
    if not prompts:
        where.append(~_exists(tags, tags.c.workspace == mv.c.workspace, tags.c.name == mv.c.name,
                              _key_is(tags.c.key, IS_PROMPT_TAG), compare(tags.c.value, "=", "true")))
    keys = parse_order_by_list(order_by or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"],
                               MODEL_VERSIONS)
    order = []
    for k in keys:
        col = mv.c[MODEL_VERSIONS.order_attributes[k.key].column]
        order.append(col.asc() if k.ascending else col.desc())
    columns = {MODEL_VERSIONS.order_attributes[k.key].column for k in keys}
    if "name" not in columns:
        order.append(mv.c.name.asc())
    if "version" not in columns:
        order.append(mv.c.version.desc())
    stmt = sa.select(mv.c.name, mv.c.version).where(*where).order_by(*order)
    return _page(stmt, offset, limit)


# --- logged models ----------------------------------------------------------------------------

def logged_models_query(experiment_ids: Sequence[str | int], filter_string: str | None = None,
                        datasets: Sequence[Mapping[str, Any]] | None = None,
                        order_by: Sequence[Mapping[str, Any] | str] | None = None,
                        offset: int = 0, limit: int | None = None) -> sa.Select:
    """``SELECT logged_models.model_id`` of the matching, non-deleted logged models, in MLflow's order.

    `datasets` is MLflow's list of ``{"dataset_name": ..., "dataset_digest": ...}``: metric filters
    then only count metrics on those datasets, and without a metric filter a model must have some
    metric on one of them. `order_by` holds MLflow's ``{"field_name", "ascending", "dataset_name",
    "dataset_digest"}`` dicts (or ``"metrics.acc DESC"``-style strings).
    """
    lm, metrics = t.logged_models, t.logged_model_metrics
    for d in datasets or []:
        if not d.get("dataset_name"):
            raise InvalidParameterValue("`dataset_name` in the `datasets` clause must be specified.")
    dataset_match = [
        sa.and_(metrics.c.dataset_name == d["dataset_name"],
                *([metrics.c.dataset_digest == d["dataset_digest"]] if d.get("dataset_digest") else []))
        for d in datasets or []
    ]
    comparisons = parse_filter(filter_string, LOGGED_MODELS)
    where = [lm.c.lifecycle_stage != "deleted", lm.c.experiment_id.in_(_experiment_id_list(experiment_ids))]
    for c in comparisons:
        where.append(_logged_model_condition(c, dataset_match))
    if dataset_match and not any(c.kind == "metric" for c in comparisons):
        where.append(_exists(metrics, metrics.c.model_id == lm.c.model_id, sa.or_(*dataset_match)))

    source = lm
    order: list[ColumnElement] = []
    seen: set[str] = set()
    for n, ob in enumerate(order_by or []):
        field, ascending, ds_name, ds_digest = _logged_model_order(ob)
        if field.kind == "attribute":
            column = LOGGED_MODELS.order_attributes[field.key].column
            seen.add(column)
            order += _nulls_last(lm.c[column], ascending)
            continue
        latest = _latest_model_metric(field.key, ds_name, ds_digest).alias(f"order_{n}")
        source = source.outerjoin(latest, latest.c.model_id == lm.c.model_id)
        order += _nulls_last(latest.c.metric_value, ascending)
    if "creation_timestamp_ms" not in seen:
        order.append(lm.c.creation_timestamp_ms.desc())
    if "model_id" not in seen:
        order.append(lm.c.model_id.asc())
    stmt = sa.select(lm.c.model_id).select_from(source).where(*where).order_by(*order)
    return _page(stmt, offset, limit)


def _logged_model_condition(c: Comparison, dataset_match: list[ColumnElement]) -> ColumnElement:
    lm = t.logged_models
    if c.kind == "attribute":
        column = LOGGED_MODELS.attributes[c.key].column
        value = c.value
        if column == "status":
            value = tuple(_status_number(v) for v in value) if c.op in ("IN", "NOT IN") else _status_number(value)
        return compare(lm.c[column], c.op, value)
    if c.kind == "metric":
        m = t.logged_model_metrics
        conds = [m.c.model_id == lm.c.model_id, _key_is(m.c.metric_name, c.key),
                 compare(m.c.metric_value, c.op, float(c.value))]
        if dataset_match:
            conds.append(sa.or_(*dataset_match))
        return _exists(m, *conds)
    table, key_col, value_col = {
        "param": (t.logged_model_params, "param_key", "param_value"),
        "tag": (t.logged_model_tags, "tag_key", "tag_value"),
    }[c.kind]
    return _exists(table, table.c.model_id == lm.c.model_id, _key_is(table.c[key_col], c.key),
                   compare(table.c[value_col], c.op, c.value))


def _status_number(value: str) -> int:
    try:
        return LoggedModelStatus.parse(value).number
    except (KeyError, ValueError):
        valid = ", ".join(s.value for s in LoggedModelStatus)
        raise InvalidParameterValue(f"Invalid logged model status {value!r} (valid: {valid})") from None


def _logged_model_order(ob: Mapping[str, Any] | str) -> tuple[OrderKey, bool, str | None, str | None]:
    if isinstance(ob, str):
        key = parse_order_by(ob, LOGGED_MODELS)
        return key, key.ascending, None, None
    if not isinstance(ob, Mapping):
        raise InvalidParameterValue("`order_by` must be a list of dictionaries.")
    field_name = ob.get("field_name")
    if not field_name or not isinstance(field_name, str):
        raise InvalidParameterValue("`field_name` in the `order_by` clause must be specified.")
    ascending = ob.get("ascending", True)
    if ascending not in (True, False):
        raise InvalidParameterValue(f"Value of `ascending` in the `order_by` clause must be a boolean, "
                                    f"got {ascending!r} for field {field_name}.")
    ds_name, ds_digest = ob.get("dataset_name"), ob.get("dataset_digest")
    if ds_digest and not ds_name:
        raise InvalidParameterValue("`dataset_digest` can only be specified if `dataset_name` is also specified.")
    if "." in field_name:
        entity, key = field_name.split(".", 1)
        if entity != "metrics":
            raise InvalidParameterValue(f"Invalid order by field name: {entity}, only `metrics.<name>` is allowed.")
        return OrderKey("metric", key, ascending), ascending, ds_name, ds_digest
    field_name = field_name.strip()
    if field_name not in LOGGED_MODELS.order_attributes:
        raise InvalidParameterValue(f"Invalid order by field name: {field_name}.")
    return OrderKey("attribute", field_name, ascending), ascending, ds_name, ds_digest


def _latest_model_metric(name: str, ds_name: str | None, ds_digest: str | None) -> sa.Select:
    """Each model's latest value of metric `name` (latest timestamp, then step; then run id)."""
    m = t.logged_model_metrics
    conds = [_key_is(m.c.metric_name, name)]
    if ds_name:
        conds.append(m.c.dataset_name == ds_name)
    if ds_digest:
        conds.append(m.c.dataset_digest == ds_digest)
    ranked = sa.select(
        m.c.model_id, m.c.metric_value,
        sa.func.row_number().over(partition_by=m.c.model_id,
                                  order_by=[m.c.metric_timestamp_ms.desc(), m.c.metric_step.desc(),
                                            m.c.run_id.asc()]).label("row_num"),
    ).where(*conds).subquery()
    return sa.select(ranked.c.model_id, ranked.c.metric_value).where(ranked.c.row_num == 1)
