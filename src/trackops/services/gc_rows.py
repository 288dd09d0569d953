"""Which rows hang off a run, a logged model, a trace or an experiment, and how gc deletes them.

The order comes from the foreign keys declared in `trackops.db.schema` (children before parents,
deepest first), plus the references MLflow keeps without declaring them:

- ``inputs`` / ``input_tags``: a run's dataset inputs (``destination_type='RUN'``), the model links a
  run logged (``source_type`` ``RUN_INPUT`` / ``RUN_OUTPUT``), a logged model's inputs and outputs
  (``destination_type`` ``MODEL_INPUT`` / ``MODEL_OUTPUT``), and the inputs of an experiment's datasets
  (``source_type='DATASET'``);
- ``entity_associations`` rows naming the run, model, trace or experiment on either side;
- the SQL trace-analytics rollups and their rebuild queue, keyed by ``experiment_id`` with no FK.

``ON DELETE SET NULL`` keys (``issues.source_run_id``, ``endpoints.experiment_id``) are set to NULL,
never followed. Rows in `NEVER_DELETE` tables (gateway guardrails, workspace configuration) are
never deleted: an item whose deletion would need that is held by the planner.

Deletes run in batches of `BATCH_ROWS` rows, one transaction each, so a run with millions of metric
rows never builds one huge transaction and client memory stays flat. Because children go before
parents, an interruption between batches leaves no dangling row: the parent is still there, still
in the deleted stage, and the next gc finishes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from trackops.db import schema

BATCH_ROWS = 50_000
KEYS_PER_STATEMENT = 500

ROOTS = {"runs": "run_uuid", "logged_models": "model_id", "trace_info": "request_id",
         "experiments": "experiment_id"}
# An experiment's runs, logged models and traces are collected as items of their own first (they
# carry artifacts and implicit references); its own walk does not descend into them again.
OWN_ROOTS = frozenset({"runs", "logged_models", "trace_info"})
NEVER_DELETE = frozenset({"guardrails"})

Where = Callable[[Sequence], sa.ColumnElement]


@dataclasses.dataclass(frozen=True)
class Step:
    """One statement family: delete (or set NULL in `null_columns`) the rows of `table` for some keys."""

    table: sa.Table
    where: Where
    action: str = "delete"  # "delete", "null" or "guard" (count only: the rows must not exist)
    null_columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.table.name


def _t(name: str) -> sa.Table:
    return schema.metadata.tables[name]


def _keys_for(root: str, keys: Sequence) -> list:
    return [str(k) for k in keys] if root == "experiments" else list(keys)


def _implicit(root: str) -> list[Step]:
    """Steps for references MLflow does not declare; they run before the FK walk."""
    inputs, input_tags, assoc = _t("inputs"), _t("input_tags"), _t("entity_associations")
    steps: list[Step] = []

    def input_steps(condition: Where) -> list[Step]:
        return [Step(input_tags, lambda k: input_tags.c.input_uuid.in_(
                    sa.select(inputs.c.input_uuid).where(condition(k)))),
                Step(inputs, condition)]

    def assoc_step(kind: str) -> Step:
        return Step(assoc, lambda k: sa.or_(
            sa.and_(assoc.c.source_type == kind, assoc.c.source_id.in_(_keys_for(root, k))),
            sa.and_(assoc.c.destination_type == kind, assoc.c.destination_id.in_(_keys_for(root, k)))))

    if root == "runs":
        steps += input_steps(lambda k: sa.or_(
            sa.and_(inputs.c.destination_type == "RUN", inputs.c.destination_id.in_(k)),
            sa.and_(inputs.c.source_type.in_(("RUN_INPUT", "RUN_OUTPUT")), inputs.c.source_id.in_(k))))
        steps.append(assoc_step("run"))
    elif root == "logged_models":
        steps += input_steps(lambda k: sa.and_(inputs.c.destination_type.in_(("MODEL_INPUT", "MODEL_OUTPUT")),
                                               inputs.c.destination_id.in_(k)))
        steps.append(assoc_step("model"))
    elif root == "trace_info":
        steps.append(assoc_step("trace"))
    elif root == "experiments":
        datasets = _t("datasets")
        steps += input_steps(lambda k: sa.and_(inputs.c.source_type == "DATASET", inputs.c.source_id.in_(
            sa.select(datasets.c.dataset_uuid).where(datasets.c.experiment_id.in_(k)))))
        steps.append(assoc_step("experiment"))
        for name in ("sql_trace_rollup_rebuild_queue", "sql_trace_metric_daily_rollups",
                     "sql_span_cost_daily_rollups", "sql_assessment_daily_rollups"):
            table = _t(name)
            steps.append(Step(table, lambda k, table=table: table.c.experiment_id.in_(k)))
    return steps


def _children(table: sa.Table) -> list[tuple[sa.Table, sa.ForeignKeyConstraint]]:
    found = []
    for child in schema.metadata.sorted_tables:
        for fk in child.foreign_key_constraints:
            if fk.referred_table is table and child is not table:
                found.append((child, fk))
    return sorted(found, key=lambda pair: (pair[0].name, pair[1].column_keys))


def _fk_walk(table: sa.Table, where: Where, *, skip: frozenset[str], seen: tuple[str, ...],
             key: sa.Column | None = None) -> list[Step]:
    """Post-order steps below `table` (rows selected by `where`), then `table` itself.

    `key` is set at the root, whose rows are selected by ``key IN (keys)``: a child pointing at that
    column is then selected by its own column directly, without a subquery.
    """
    steps: list[Step] = []
    for child, fk in _children(table):
        if child.name in skip or child.name in seen:
            continue
        child_cols = [child.c[c] for c in fk.column_keys]
        parent_cols = [e.column for e in fk.elements]

        def child_where(keys, child_cols=child_cols, parent_cols=parent_cols) -> sa.ColumnElement:
            if key is not None and parent_cols == [key]:
                return child_cols[0].in_(keys)
            selected = sa.select(*parent_cols).where(where(keys))
            if len(child_cols) == 1:
                return child_cols[0].in_(selected)
            return sa.tuple_(*child_cols).in_(selected)

        if (fk.ondelete or "").upper() == "SET NULL":
            steps.append(Step(child, child_where, "null", tuple(fk.column_keys)))
        elif child.name in NEVER_DELETE:
            steps.append(Step(child, child_where, "guard"))
        else:
            steps += _fk_walk(child, child_where, skip=skip, seen=seen + (table.name,))
    steps.append(Step(table, where))
    return steps


def steps_for(root: str) -> list[Step]:
    """Every step that deletes a `root` item (runs, logged_models, trace_info, experiments), root row last."""
    table = _t(root)
    key = table.c[ROOTS[root]]
    skip = OWN_ROOTS if root == "experiments" else frozenset()
    return _implicit(root) + _fk_walk(table, lambda k: key.in_(k), skip=skip, seen=(), key=key)


def chunks(items: Sequence, size: int = KEYS_PER_STATEMENT):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def count_rows(conn: sa.Connection, root: str, keys: Sequence) -> dict[str, int]:
    """Rows per table that deleting these `root` items touches (deleted, set NULL or guarded)."""
    totals: dict[str, int] = {}
    for part in chunks(list(keys)):
        for step in steps_for(root):
            n = conn.execute(sa.select(sa.func.count()).select_from(step.table).where(step.where(part))).scalar_one()
            if n:
                label = step.name if step.action == "delete" else f"{step.name} ({step.action})"
                totals[label] = totals.get(label, 0) + int(n)
    return totals


def guarded(conn: sa.Connection, root: str, key) -> list[str]:
    """Tables of `NEVER_DELETE` that deleting this one item would need to touch."""
    return [s.name for s in steps_for(root) if s.action == "guard"
            and conn.execute(sa.select(sa.func.count()).select_from(s.table).where(s.where([key]))).scalar_one()]


def delete_rows(engine: sa.Engine, root: str, keys: Sequence,
                on_batch: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Delete every row of these `root` items in FK order, in batches; rows deleted per table."""
    done: dict[str, int] = {}
    for step in steps_for(root):
        if step.action == "guard":
            continue
        for part in chunks(list(keys)):
            n = _apply(engine, step, part)
            if n:
                label = step.name if step.action == "delete" else f"{step.name} ({step.action})"
                done[label] = done.get(label, 0) + n
                if on_batch is not None:
                    on_batch(label, n)
    return done


def _apply(engine: sa.Engine, step: Step, keys: Sequence) -> int:
    table, where = step.table, step.where(keys)
    if step.action == "null":
        with engine.begin() as conn:
            values = {c: None for c in step.null_columns}
            return conn.execute(table.update().where(where).values(**values)).rowcount or 0
    total = 0
    while True:
        with engine.begin() as conn:
            n = conn.execute(_batched_delete(conn.dialect.name, table, where)).rowcount or 0
        total += n
        if n < BATCH_ROWS:
            return total


def _batched_delete(dialect: str, table: sa.Table, where: sa.ColumnElement) -> sa.Delete:
    """DELETE of at most BATCH_ROWS rows matching `where`, in each dialect's cheapest form."""
    if dialect == "mysql":
        return table.delete().where(where).with_dialect_options(mysql_limit=BATCH_ROWS)
    if dialect == "postgresql":
        # ctid = ANY(ARRAY(...)) is a TID scan; "ctid IN (subquery)" would scan the whole table.
        ids = sa.select(sa.literal_column("ctid")).select_from(table).where(where).limit(BATCH_ROWS)
        return table.delete().where(sa.literal_column("ctid") == sa.func.any(sa.func.array(ids.scalar_subquery())))
    ids = sa.select(sa.literal_column("rowid")).select_from(table).where(where).limit(BATCH_ROWS)
    return table.delete().where(sa.literal_column("rowid").in_(ids))
