"""Dialect-aware bulk statements shared by the stores: insert-or-skip and insert-or-update.

Both take many rows at once and run as one executemany, so a batch costs one round of statements
whatever its size. Conflicts are on the table's primary key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite


def _insert(conn: sa.Connection, table: sa.Table):
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "mysql":
        return mysql.insert(table)
    raise NotImplementedError(f"unsupported dialect {dialect}")  # pragma: no cover


def insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    """INSERT many rows; rows whose primary key already exists are left as they are."""
    if not rows:
        return
    stmt = _insert(conn, table)
    if conn.dialect.name == "mysql":
        # A no-op assignment: unlike INSERT IGNORE it does not also swallow other errors.
        first = table.primary_key.columns[0].name
        stmt = stmt.on_duplicate_key_update({first: stmt.inserted[first]})
    else:
        stmt = stmt.on_conflict_do_nothing()
    conn.execute(stmt, list(rows))


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], update: Sequence[str]) -> None:
    """INSERT many rows; where the primary key exists, overwrite the columns named in `update`."""
    if not rows:
        return
    stmt = _insert(conn, table)
    if conn.dialect.name == "mysql":
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_update(index_elements=[c.name for c in table.primary_key.columns],
                                          set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt, list(rows))
