"""Idempotent schema operations for migration scripts.

MySQL and MariaDB cannot roll back DDL, so a migration interrupted half-way leaves some of its steps
applied. Every step therefore checks what already exists before acting, and a re-run finishes the job.
In offline mode (``trackops db upgrade --sql``) nothing can be inspected: the database is taken to be
exactly at the previous revision, so creations are emitted and so are drops.

Use these instead of bare ``op.create_table`` / ``op.add_column`` / ``op.create_index`` where a re-run
could otherwise fail with "already exists" or "does not exist".
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op


def offline() -> bool:
    # Asked of the migration context rather than the environment, so that scripts also run under a
    # bare MigrationContext + Operations (as the per-revision tests do).
    return op.get_context().as_sql


def dialect() -> str:
    """'sqlite', 'postgresql' or 'mysql' (MariaDB reports 'mysql')."""
    return op.get_context().dialect.name


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def has_table(table: str) -> bool:
    if offline():
        return False
    return _inspector().has_table(table)


def has_column(table: str, column: str) -> bool:
    if offline():
        return False
    insp = _inspector()
    return insp.has_table(table) and any(c["name"] == column for c in insp.get_columns(table))


def has_index(table: str, name: str) -> bool:
    if offline():
        return False
    insp = _inspector()
    return insp.has_table(table) and any(i["name"] == name for i in insp.get_indexes(table))


def has_constraint(table: str, name: str) -> bool:
    """True when a named unique, foreign-key or check constraint (or primary key) exists."""
    if offline():
        return False
    insp = _inspector()
    if not insp.has_table(table):
        return False
    names = {c.get("name") for c in insp.get_unique_constraints(table)}
    names |= {c.get("name") for c in insp.get_foreign_keys(table)}
    try:
        names |= {c.get("name") for c in insp.get_check_constraints(table)}
    except NotImplementedError:
        pass
    names.add(insp.get_pk_constraint(table).get("name"))
    return name in names


def create_table_if_missing(name: str, *columns_and_constraints, **kw) -> None:
    if not has_table(name):
        op.create_table(name, *columns_and_constraints, **kw)


def create_index_if_missing(name: str, table: str, columns: Iterable, **kw) -> None:
    if not has_index(table, name):
        op.create_index(name, table, list(columns), **kw)


def drop_index_if_present(name: str, table: str) -> None:
    if offline() or has_index(table, name):
        op.drop_index(name, table_name=table)


def drop_table_if_present(name: str) -> None:
    if offline() or has_table(name):
        op.drop_table(name)


def add_column_if_missing(table: str, column: sa.Column) -> None:
    if not has_column(table, column.name):
        op.add_column(table, column)


def primary_key_columns(table: str) -> list[str] | None:
    """The ordered primary-key columns of `table`; None offline, where nothing can be looked at."""
    if offline():
        return None
    return list(_inspector().get_pk_constraint(table).get("constrained_columns") or [])


def check_clauses(table: str) -> list[str]:
    """The SQL text of every check constraint on `table`, duplicates kept; empty offline."""
    if offline():
        return []
    conn = op.get_bind()
    if conn.dialect.name == "mysql":
        # SQLAlchemy's MySQL reflection misses column-level checks; the catalog has them all.
        rows = conn.execute(sa.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :t"), {"t": table}).scalars()
        return [str(r) for r in rows]
    return [str(c.get("sqltext")) for c in _inspector().get_check_constraints(table)]


def count_checks_on(table: str, column: str) -> int:
    """How many check constraints of `table` mention `column` (MySQL can hold identical duplicates)."""
    return sum(1 for text in check_clauses(table) if column.lower() in text.lower().replace("`", ""))


def drop_constraint_if_present(name: str, table: str, type_: str) -> None:
    if offline() or has_constraint(table, name):
        op.drop_constraint(name, table, type_=type_)


def column_length(table: str, column: str) -> int | None:
    """The declared length of a string column, or None (no such column, or no length)."""
    for col in _inspector().get_columns(table):
        if col["name"] == column:
            return getattr(col["type"], "length", None)
    return None


def widen_string(table: str, column: str, old: int, new: int, *, nullable: bool) -> None:
    """VARCHAR(old) → VARCHAR(new), skipped when already done (on SQLite batch mode rebuilds the table)."""
    if not offline() and column_length(table, column) == new:
        return
    with op.batch_alter_table(table) as batch:
        # MySQL's MODIFY restates the whole column, so the existing nullability must be given.
        batch.alter_column(column, existing_type=sa.String(old), type_=sa.String(new),
                           existing_nullable=nullable, existing_server_default=None)
