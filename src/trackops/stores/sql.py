"""Dialect-aware bulk statements shared by the stores: insert-or-skip and insert-or-update.

Each takes a whole batch of rows and costs one statement per batch, whatever its size; conflicts
are on the table's primary key. The statements are written at the driver level, because for a
1000-row batch SQLAlchemy's per-row parameter processing would cost more than the database work:

- PostgreSQL: the rows travel as one array per column, expanded by ``unnest`` (one statement and
  one round trip; psycopg would otherwise run one INSERT per row);
- SQLite: ``executemany`` of a prepared statement, looped in C by the sqlite3 module;
- MySQL/MariaDB: ``executemany``, which PyMySQL sends as one multi-row INSERT.

Values must already be plain Python values of the column types (str, int, float, bool, None).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from trackops.errors import InvalidParameterValue

_PG_ARRAY_TYPES = ((sa.Boolean, "bool"), (sa.BigInteger, "int8"), (sa.Integer, "int4"), (sa.Float, "float8"),
                   (sa.String, "text"), (sa.Text, "text"))


def _pg_array_type(column: sa.Column) -> str:
    for generic, name in _PG_ARRAY_TYPES:
        if isinstance(column.type, generic):
            return name + "[]"
    raise NotImplementedError(f"no array type for {column}")  # pragma: no cover


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _pk_names(table: sa.Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _statement(conn: sa.Connection, table: sa.Table, names: Sequence[str], conflict: str) -> str:
    """INSERT INTO table (names) ... `conflict`, at the driver level: PostgreSQL binds one array per
    column (%(c0)s, %(c1)s, ...), the others one row per parameter tuple."""
    q = _quote
    columns = ", ".join(q(conn, n) for n in names)
    head = f"INSERT INTO {q(conn, table.name)} ({columns})"
    dialect = conn.dialect.name
    if dialect == "postgresql":
        arrays = ", ".join(f"CAST(%(c{i})s AS {_pg_array_type(table.c[n])})" for i, n in enumerate(names))
        return f"{head} SELECT * FROM unnest({arrays}) {conflict}"
    marker = "?" if dialect == "sqlite" else "%s"
    return f"{head} VALUES ({', '.join(marker for _ in names)}) {conflict}"


def _ignore_clause(conn: sa.Connection, table: sa.Table) -> str:
    if conn.dialect.name == "mysql":
        # A no-op assignment: unlike INSERT IGNORE it does not also swallow other errors.
        first = _quote(conn, _pk_names(table)[0])
        return f"ON DUPLICATE KEY UPDATE {first} = {first}"
    return "ON CONFLICT DO NOTHING"


def insert_ignoring_sql(conn: sa.Connection, table: sa.Table, names: Sequence[str]) -> str:
    """The driver-level statement of `insert_ignoring_duplicates` for these columns, for a caller
    that binds its rows itself (tuples in `names` order; PostgreSQL: arrays c0, c1, ...)."""
    return _statement(conn, table, names, _ignore_clause(conn, table))


def _run(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], conflict: str) -> None:
    """INSERT rows (dicts with the same keys) followed by the dialect's `conflict` clause."""
    names = list(rows[0])
    sql = _statement(conn, table, names, conflict)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(sql, {f"c{i}": [r[n] for r in rows] for i, n in enumerate(names)})
        return
    # itemgetter builds each row's tuple in C: for a 1000-row batch, a generator per row costs more than the SQL.
    pick = operator.itemgetter(*names) if len(names) > 1 else (lambda r: (r[names[0]],))
    conn.exec_driver_sql(sql, list(map(pick, rows)))


def insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    """INSERT many rows; rows whose primary key already exists are left as they are."""
    if not rows:
        return
    _run(conn, table, rows, _ignore_clause(conn, table))


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], update: Sequence[str]) -> None:
    """INSERT many rows; where the primary key exists, overwrite the columns named in `update`."""
    if not rows:
        return
    q = _quote
    if conn.dialect.name == "mysql":
        sets = ", ".join(f"{q(conn, c)} = VALUES({q(conn, c)})" for c in update)
        _run(conn, table, rows, f"ON DUPLICATE KEY UPDATE {sets}")
    else:
        keys = ", ".join(q(conn, n) for n in _pk_names(table))
        sets = ", ".join(f"{q(conn, c)} = excluded.{q(conn, c)}" for c in update)
        _run(conn, table, rows, f"ON CONFLICT ({keys}) DO UPDATE SET {sets}")


class TransactionScopes:
    """A store's two ways into the database: `_write` (one transaction) and `_read`."""

    engine: sa.Engine

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DataError:
            # PostgreSQL and MySQL refuse values longer than their column; say so without the SQL.
            raise InvalidParameterValue("A value is longer than the database column that stores it allows.") from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            yield conn
