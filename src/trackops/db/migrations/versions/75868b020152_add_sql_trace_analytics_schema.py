"""Promote trace, span and assessment analytics into real columns, add the daily rollup tables.

Before this revision, token counts, costs, session ids and trace names lived in tag, metadata and
metric rows (some as JSON text), and span model names in the JSON column
``spans.dimension_attributes``. This revision adds typed columns, fills them from those rows, deletes
the legacy rows, drops ``dimension_attributes``, creates the ``sql_*_daily_rollups`` tables and the
rebuild queue, and indexes the new columns.

Why-notes:
- The backfill parses JSON and applies per-value rules (finite floats, integral token counts within
  BIGINT, truncation to the column width) that no SQL dialect evaluates the same way, so it reads
  keyset-paginated batches and writes them back with one executemany per batch. Where plain SQL
  gives the same answer (total cost summed from spans, deleting legacy rows) it is set-based.
- On MySQL/MariaDB each DDL statement commits. A run interrupted after the legacy rows were deleted
  and ``dimension_attributes`` dropped must not backfill again (it would overwrite the promoted
  values with NULLs), so the backfill and the cleanup run only while that column still exists.
- On SQLite, dropping the column rebuilds ``spans`` (batch mode), and SQLite rejects copying values
  into the stored generated ``duration_ns``: the rebuild drops it and adds it back in front of
  ``content``. The foreign keys are dropped and re-created in the same rebuild, as
  MLflow does, so the rebuilt table is the same.
- ``assessments.is_numeric_value`` is added nullable (with a false default) and made NOT NULL once
  every row has a value.
- ``sql_*_daily_rollups.id`` is INTEGER on SQLite (so it is the rowid), BIGINT identity on
  PostgreSQL and BIGINT AUTO_INCREMENT on MySQL. The MySQL rollup lookup index indexes 64-character
  prefixes of the model columns to stay under the key-length limit; on PostgreSQL the span cost cover
  indexes are partial and carry the cost and model columns with INCLUDE.
- In ``--sql`` mode nothing can be read, so the script has the new columns, tables and indexes but
  neither the backfill nor the deletions that depend on it (running it would lose data); a comment
  says so.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import (
    create_index_if_missing,
    create_table_if_missing,
    dialect,
    has_column,
    offline,
)
from trackops.errors import DatabaseError

revision = "75868b020152"
down_revision = "b7e2c1a4d9f3"
branch_labels = None
depends_on = None

BATCH = 500
TRACE_NAME_LEN = 4096
SESSION_ID_LEN = 250
MODEL_LEN = 500

TRACE_NAME_TAG = "mlflow.traceName"
SESSION_KEY = "mlflow.trace.session"
TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
COST_KEY = "mlflow.trace.cost"
GATEWAY_ENDPOINT_KEY = "mlflow.gateway.endpointId"
MODEL_ATTR = "mlflow.llm.model"
PROVIDER_ATTR = "mlflow.llm.provider"

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens", "cache_creation_input_tokens_above_1hr")
COST_COLUMNS = ("input_cost", "output_cost", "total_cost")
BIGINT_RANGE = (-(2**63), 2**63 - 1)


def _double() -> sa.Float:
    return sa.Float(precision=53)


def _new_columns() -> dict[str, list[sa.Column]]:
    """The promoted columns, per table, in the order they are added."""
    return {
        "trace_info": [
            sa.Column("trace_name", sa.String(TRACE_NAME_LEN), nullable=True),
            sa.Column("session_id", sa.String(SESSION_ID_LEN), nullable=True),
            *(sa.Column(name, sa.BigInteger(), nullable=True) for name in TOKEN_COLUMNS),
            *(sa.Column(name, _double(), nullable=True) for name in COST_COLUMNS),
        ],
        "assessments": [
            sa.Column("experiment_id", sa.Integer(), nullable=True),
            sa.Column("trace_timestamp_ms", sa.BigInteger(), nullable=True),
            sa.Column("aggregate_value", _double(), nullable=True),
            sa.Column("is_numeric_value", sa.Boolean(), nullable=True, server_default=sa.false()),
        ],
        "spans": [
            *(sa.Column(name, _double(), nullable=True) for name in COST_COLUMNS),
            sa.Column("model_name", sa.String(MODEL_LEN), nullable=True),
            sa.Column("model_provider", sa.String(MODEL_LEN), nullable=True),
        ],
    }


def upgrade() -> None:
    # Offline, nothing can be read, so nothing is moved or deleted (see OFFLINE_NOTE).
    legacy_present = not offline() and has_column("spans", "dimension_attributes")
    if legacy_present:
        _check_legacy_data()
    for table, columns in _new_columns().items():
        for column in columns:
            if not has_column(table, column.name):
                op.add_column(table, column)
    if legacy_present:
        _backfill_traces()
        _backfill_spans()
        _backfill_gateway_trace_costs()
        _backfill_assessments()
    elif offline():
        op.execute(OFFLINE_NOTE)
    _make_is_numeric_value_not_null()
    _create_rollup_tables()
    if legacy_present:
        _delete_legacy_rows()
        _drop_dimension_attributes()
    _create_indexes()


OFFLINE_NOTE = (
    "-- 75868b020152 moves data, which needs a live connection, so this script leaves it out.\n"
    "-- Online, the upgrade here fills the new trace_info, spans and assessments columns from\n"
    "-- trace_tags, trace_request_metadata, trace_metrics, span_metrics and spans.dimension_attributes,\n"
    "-- then deletes those rows and drops spans.dimension_attributes. Run trackops db upgrade to do it"
)


# --- value rules ----------------------------------------------------------------------------------

def _json_dict(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _finite_float(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _token_count(value) -> int | None:
    """An integral count that fits a BIGINT, from an int, a float or numeric text; else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    if not BIGINT_RANGE[0] <= number <= BIGINT_RANGE[1]:
        return None
    return int(number)


def _clip(value, length: int) -> str | None:
    return value[:length] if isinstance(value, str) else None


def _dimensions(value, span_key) -> dict:
    """The model dimensions of a span; anything but a dict of the two known string keys is refused."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DatabaseError(f"spans.dimension_attributes of span {span_key!r} is not valid JSON",
                                hint="fix or clear that value, then run the upgrade again") from None
    if value is None:
        return {}
    allowed = (MODEL_ATTR, PROVIDER_ATTR)
    if not isinstance(value, dict) or any(
        key not in allowed or (item is not None and not isinstance(item, str)) for key, item in value.items()
    ):
        raise DatabaseError(f"spans.dimension_attributes of span {span_key!r} holds unsupported content",
                            hint=f"only {MODEL_ATTR!r} and {PROVIDER_ATTR!r} with text values can be migrated")
    return value


def _aggregate(raw) -> tuple[float | None, bool]:
    """(aggregate_value, is_numeric_value) of an assessment's JSON value."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = raw
    if isinstance(value, bool):
        return float(value), False
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None, False
        return (number, True) if math.isfinite(number) else (None, False)
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return (1.0 if value.strip().lower() == "yes" else 0.0), False
    return None, False


# --- checks ---------------------------------------------------------------------------------------

def _check_legacy_data() -> None:
    """Refuse to start when rows would be lost or unreadable: orphans, or odd dimension JSON."""
    conn = op.get_bind()
    for child in ("spans", "assessments"):
        orphan = conn.execute(sa.text(
            f"SELECT c.trace_id FROM {child} c LEFT JOIN trace_info t ON t.request_id = c.trace_id "
            "WHERE t.request_id IS NULL LIMIT 1"
        )).first()
        if orphan is not None:
            raise DatabaseError(f"{child} row refers to trace {orphan[0]!r}, which is not in trace_info",
                                hint="delete the orphaned rows, then run the upgrade again")
    spans = _spans_table(with_dimensions=True)
    for batch in _span_batches(spans, [spans.c.dimension_attributes],
                               spans.c.dimension_attributes.is_not(None)):
        for row in batch:
            _dimensions(row.dimension_attributes, (row.trace_id, row.span_id))


# --- backfill -------------------------------------------------------------------------------------

def _trace_info_table() -> sa.TableClause:
    return sa.table("trace_info", sa.column("request_id"), sa.column("experiment_id"),
                    sa.column("timestamp_ms"), sa.column("trace_name"), sa.column("session_id"),
                    *(sa.column(c) for c in (*TOKEN_COLUMNS, *COST_COLUMNS)))


def _keyed_table(name: str, key_columns: tuple[str, ...]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in key_columns), sa.column("key"), sa.column("value"))


def _spans_table(*, with_dimensions: bool = False) -> sa.TableClause:
    extra = [sa.column("dimension_attributes")] if with_dimensions else []
    return sa.table("spans", sa.column("trace_id"), sa.column("span_id"), *extra,
                    *(sa.column(c) for c in (*COST_COLUMNS, "model_name", "model_provider")))


def _changed(row, values: dict) -> bool:
    return any(row._mapping[column] != value for column, value in values.items())


def _backfill_traces() -> None:
    conn = op.get_bind()
    traces = _trace_info_table()
    tags = _keyed_table("trace_tags", ("request_id",))
    metadata = _keyed_table("trace_request_metadata", ("request_id",))
    metrics = _keyed_table("trace_metrics", ("request_id",))
    targets = ["trace_name", "session_id", *TOKEN_COLUMNS, *COST_COLUMNS]
    update = (traces.update().where(traces.c.request_id == sa.bindparam("_id"))
              .values({c: sa.bindparam(c) for c in targets}))
    last = None
    while True:
        query = sa.select(traces.c.request_id, *(traces.c[c] for c in targets)).order_by(traces.c.request_id)
        if last is not None:
            query = query.where(traces.c.request_id > last)
        batch = conn.execute(query.limit(BATCH)).all()
        if not batch:
            return
        ids = [row.request_id for row in batch]
        names = dict(conn.execute(sa.select(tags.c.request_id, tags.c.value).where(
            tags.c.request_id.in_(ids), tags.c.key == TRACE_NAME_TAG)).all())
        meta: dict[str, dict] = {i: {} for i in ids}
        for request_id, key, value in conn.execute(sa.select(metadata.c.request_id, metadata.c.key,
                                                             metadata.c.value).where(
                metadata.c.request_id.in_(ids), metadata.c.key.in_([SESSION_KEY, TOKEN_USAGE_KEY, COST_KEY]))):
            meta[request_id][key] = value
        # A token metric row wins over the JSON in metadata, even when its value is unusable.
        token_metrics: dict[str, dict] = {i: {} for i in ids}
        for request_id, key, value in conn.execute(sa.select(metrics.c.request_id, metrics.c.key,
                                                             metrics.c.value).where(
                metrics.c.request_id.in_(ids), metrics.c.key.in_(TOKEN_COLUMNS))):
            token_metrics[request_id][key] = _token_count(value)
        updates = []
        for row in batch:
            values = meta[row.request_id]
            usage, cost = _json_dict(values.get(TOKEN_USAGE_KEY)), _json_dict(values.get(COST_KEY))
            found = token_metrics[row.request_id]
            new = {
                "trace_name": _clip(names.get(row.request_id), TRACE_NAME_LEN),
                "session_id": _clip(values.get(SESSION_KEY), SESSION_ID_LEN),
                **{c: found[c] if c in found else _token_count(usage.get(c)) for c in TOKEN_COLUMNS},
                **{c: _finite_float(cost.get(c)) for c in COST_COLUMNS},
            }
            if _changed(row, new):
                updates.append({"_id": row.request_id, **new})
        if updates:
            conn.execute(update, updates)
        last = ids[-1]


def _span_batches(spans: sa.TableClause, columns: list, condition=None):
    """Yield rows of spans in (trace_id, span_id) order, BATCH at a time."""
    conn = op.get_bind()
    last = None
    while True:
        query = sa.select(spans.c.trace_id, spans.c.span_id, *columns).order_by(spans.c.trace_id,
                                                                                 spans.c.span_id)
        if condition is not None:
            query = query.where(condition)
        if last is not None:
            query = query.where(sa.or_(spans.c.trace_id > last[0],
                                       sa.and_(spans.c.trace_id == last[0], spans.c.span_id > last[1])))
        batch = conn.execute(query.limit(BATCH)).all()
        if not batch:
            return
        yield batch
        last = (batch[-1].trace_id, batch[-1].span_id)


def _backfill_spans() -> None:
    conn = op.get_bind()
    spans = _spans_table(with_dimensions=True)
    metrics = _keyed_table("span_metrics", ("trace_id", "span_id"))
    targets = [*COST_COLUMNS, "model_name", "model_provider"]
    update = (spans.update()
              .where(spans.c.trace_id == sa.bindparam("_trace"), spans.c.span_id == sa.bindparam("_span"))
              .values({c: sa.bindparam(c) for c in targets}))
    for batch in _span_batches(spans, [spans.c.dimension_attributes, *(spans.c[c] for c in targets)]):
        costs: dict[tuple, dict] = {}
        for trace_id, span_id, key, value in conn.execute(sa.select(
                metrics.c.trace_id, metrics.c.span_id, metrics.c.key, metrics.c.value).where(
                metrics.c.trace_id.in_(sorted({row.trace_id for row in batch})), metrics.c.key.in_(COST_COLUMNS))):
            costs.setdefault((trace_id, span_id), {})[key] = _finite_float(value)
        updates = []
        for row in batch:
            key = (row.trace_id, row.span_id)
            dims = _dimensions(row.dimension_attributes, key)
            span_costs = costs.get(key, {})
            new = {
                **{c: span_costs.get(c) for c in COST_COLUMNS},
                "model_name": _clip(dims.get(MODEL_ATTR), MODEL_LEN),
                "model_provider": _clip(dims.get(PROVIDER_ATTR), MODEL_LEN),
            }
            if _changed(row, new):
                updates.append({"_trace": row.trace_id, "_span": row.span_id, **new})
        if updates:
            conn.execute(update, updates)


def _backfill_gateway_trace_costs() -> None:
    """Gateway traces without a total cost get the sum of their spans' total costs."""
    traces = sa.table("trace_info", sa.column("request_id"), sa.column("total_cost"))
    spans = sa.table("spans", sa.column("trace_id"), sa.column("total_cost"))
    metadata = _keyed_table("trace_request_metadata", ("request_id",))
    span_total = (sa.select(sa.func.sum(spans.c.total_cost))
                  .where(spans.c.trace_id == traces.c.request_id).scalar_subquery())
    gateway = sa.exists().where(metadata.c.request_id == traces.c.request_id,
                                metadata.c.key == GATEWAY_ENDPOINT_KEY)
    op.execute(traces.update().where(traces.c.total_cost.is_(None), span_total.is_not(None), gateway)
               .values(total_cost=span_total))


def _backfill_assessments() -> None:
    conn = op.get_bind()
    assessments = sa.table("assessments", sa.column("assessment_id"), sa.column("trace_id"),
                           sa.column("value"), sa.column("experiment_id"), sa.column("trace_timestamp_ms"),
                           sa.column("aggregate_value"), sa.column("is_numeric_value"))
    traces = _trace_info_table()
    targets = ["experiment_id", "trace_timestamp_ms", "aggregate_value", "is_numeric_value"]
    update = (assessments.update().where(assessments.c.assessment_id == sa.bindparam("_id"))
              .values({c: sa.bindparam(c) for c in targets}))
    last = None
    while True:
        query = (sa.select(assessments.c.assessment_id, assessments.c.value,
                           traces.c.experiment_id.label("trace_experiment_id"),
                           traces.c.timestamp_ms.label("trace_timestamp"),
                           *(assessments.c[c] for c in targets))
                 .select_from(assessments.join(traces, traces.c.request_id == assessments.c.trace_id))
                 .order_by(assessments.c.assessment_id))
        if last is not None:
            query = query.where(assessments.c.assessment_id > last)
        batch = conn.execute(query.limit(BATCH)).all()
        if not batch:
            break
        updates = []
        for row in batch:
            value, numeric = _aggregate(row.value)
            new = {"experiment_id": row.trace_experiment_id, "trace_timestamp_ms": row.trace_timestamp,
                   "aggregate_value": value, "is_numeric_value": numeric}
            if _changed(row, new):
                updates.append({"_id": row.assessment_id, **new})
        if updates:
            conn.execute(update, updates)
        last = batch[-1].assessment_id
    missing = conn.execute(sa.select(assessments.c.assessment_id).where(sa.or_(
        assessments.c.experiment_id.is_(None), assessments.c.trace_timestamp_ms.is_(None),
        assessments.c.is_numeric_value.is_(None))).limit(1)).scalar()
    if missing is not None:
        raise DatabaseError(f"assessment {missing!r} could not be given its trace's experiment and time",
                            hint="check that its trace exists in trace_info, then run the upgrade again")


# --- schema ---------------------------------------------------------------------------------------

def _make_is_numeric_value_not_null() -> None:
    kwargs = dict(existing_type=sa.Boolean(), nullable=False, existing_server_default=sa.false())
    if dialect() == "sqlite":
        with op.batch_alter_table("assessments") as batch:
            batch.alter_column("is_numeric_value", **kwargs)
    else:
        op.alter_column("assessments", "is_numeric_value", **kwargs)


def _rollup_columns(*dimensions: sa.Column, percentiles: bool = False) -> list[sa.Column]:
    stats = ["sum", "min", "max"] + (["p50", "p90", "p99"] if percentiles else [])
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(always=False),
                  autoincrement=True, nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("rollup_day", sa.Date(), nullable=False),
        sa.Column("metric_name", sa.String(250), nullable=False),
        sa.Column("grouping_set", sa.String(50), nullable=False),
        *dimensions,
        sa.Column("sample_count", sa.BigInteger(), nullable=False),
        *(sa.Column(f"{stat}_value", _double(), nullable=True) for stat in stats),
    ]


def _create_rollup_tables() -> None:
    rollups = {
        "sql_trace_metric_daily_rollups": _rollup_columns(
            sa.Column("trace_status", sa.String(50), nullable=True), percentiles=True),
        "sql_span_cost_daily_rollups": _rollup_columns(
            sa.Column("model_name", sa.String(MODEL_LEN), nullable=True),
            sa.Column("model_provider", sa.String(MODEL_LEN), nullable=True)),
        "sql_assessment_daily_rollups": _rollup_columns(),
    }
    for name, columns in rollups.items():
        create_table_if_missing(name, *columns, sa.PrimaryKeyConstraint("id", name=f"{name}_pk"))
    create_table_if_missing(
        "sql_trace_rollup_rebuild_queue",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("rollup_day", sa.Date(), nullable=False),
        sa.Column("rollup_family", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "rollup_day", "rollup_family",
                                name="sql_trace_rollup_rebuild_queue_pk"),
    )


def _delete_legacy_rows() -> None:
    """The promoted values now live in columns: remove the rows they came from."""
    for table, key_columns, keys in (
        ("trace_tags", ("request_id",), [TRACE_NAME_TAG]),
        ("trace_request_metadata", ("request_id",), [SESSION_KEY, TOKEN_USAGE_KEY, COST_KEY]),
        ("trace_metrics", ("request_id",), list(TOKEN_COLUMNS)),
        ("span_metrics", ("trace_id", "span_id"), list(COST_COLUMNS)),
    ):
        rows = _keyed_table(table, key_columns)
        op.execute(rows.delete().where(rows.c.key.in_(keys)))


def _duration_ns() -> sa.Column:
    return sa.Column("duration_ns", sa.BigInteger(),
                     sa.Computed("end_time_unix_nano - start_time_unix_nano", persisted=True), nullable=True)


def _drop_dimension_attributes() -> None:
    if dialect() != "sqlite":
        op.drop_column("spans", "dimension_attributes")
        return
    with op.batch_alter_table("spans") as batch:
        batch.drop_column("duration_ns")
        batch.drop_column("dimension_attributes")
        batch.drop_constraint("fk_spans_trace_id", type_="foreignkey")
        batch.drop_constraint("fk_spans_experiment_id", type_="foreignkey")
        batch.create_foreign_key("fk_spans_experiment_id", "experiments", ["experiment_id"], ["experiment_id"])
        batch.create_foreign_key("fk_spans_trace_id", "trace_info", ["trace_id"], ["request_id"],
                                 ondelete="CASCADE")
        batch.add_column(_duration_ns(), insert_before="content")


def _create_indexes() -> None:
    create_index_if_missing("index_trace_info_experiment_id_session_id", "trace_info",
                            ["experiment_id", "session_id"])
    create_index_if_missing("idx_trace_rollups_lookup", "sql_trace_metric_daily_rollups",
                            ["experiment_id", "rollup_day", "metric_name", "grouping_set", "trace_status"])
    create_index_if_missing("idx_span_cost_rollups_lookup", "sql_span_cost_daily_rollups",
                            ["experiment_id", "rollup_day", "metric_name", "grouping_set", "model_name",
                             "model_provider"],
                            mysql_length={"model_name": 64, "model_provider": 64})
    create_index_if_missing("idx_assessment_rollups_lookup", "sql_assessment_daily_rollups",
                            ["experiment_id", "rollup_day", "metric_name", "grouping_set"])
    cover = {}
    if dialect() == "postgresql":
        cover = {
            "postgresql_include": [*COST_COLUMNS, "model_name", "model_provider"],
            "postgresql_where": sa.text(" OR ".join(f"{c} IS NOT NULL" for c in COST_COLUMNS)),
        }
    create_index_if_missing("idx_spans_cost_trace_time_cover", "spans", ["trace_id", "start_time_unix_nano"],
                            **cover)
    create_index_if_missing("idx_spans_cost_exp_time_cover", "spans",
                            ["experiment_id", "start_time_unix_nano"], **cover)
    create_index_if_missing("idx_assessments_exp_trace_ts", "assessments", ["experiment_id", "trace_timestamp_ms"])
    create_index_if_missing("idx_assessments_exp_trace_ts_name", "assessments",
                            ["experiment_id", "trace_timestamp_ms", "name"])
    create_index_if_missing("idx_assessments_exp_name_valid", "assessments", ["experiment_id", "name", "valid"])
