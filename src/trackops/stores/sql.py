"""Dialect-aware bulk statements shared by the stores: insert-or-skip and insert-or-update.

Each takes a whole batch of rows and costs one statement per batch, whatever its size; conflicts
are on the table's primary key. The statements are written at the driver level, because for a
1000-row batch SQLAlchemy's per-row parameter processing would cost more than the database work:

- PostgreSQL: the rows travel as one array per column, expanded by ``unnest`` (one statement and
  one round trip; psycopg would otherwise run one INSERT per row), each array written as
  PostgreSQL's array literal by `pg_array` (psycopg writes a list element by element in Python);
- SQLite: ``executemany`` of a prepared statement, looped in C by the sqlite3 module;
- MySQL/MariaDB: ``executemany``, which PyMySQL sends as one multi-row INSERT.

Values must already be plain Python values of the column types (str, int, float, bool, None).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import operator
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from trackops.db.engine import reading_engine
from trackops.errors import InvalidParameterValue

T = TypeVar("T")

_PG_ARRAY_TYPES = ((sa.Boolean, "bool"), (sa.BigInteger, "int8"), (sa.Integer, "int4"), (sa.Float, "float8"),
                   (sa.String, "text"), (sa.Text, "text"))


def _pg_array_type(column: sa.Column) -> str:
    for generic, name in _PG_ARRAY_TYPES:
        if isinstance(column.type, generic):
            return name + "[]"
    raise NotImplementedError(f"no array type for {column}")  # pragma: no cover


_BOOL_TEXT = {True: "t", False: "f"}.__getitem__


def pg_array(values: Sequence[Any], kind: str) -> str | list:
    """One column of a batch, for ``CAST(%s AS <kind>[])`` on PostgreSQL: the array literal text
    (``{"a","b"}``, ``{1,2}``, ``{t,f}``) when every value is a plain value of that kind, else the
    values as a list, for psycopg to write.

    psycopg writes a list parameter element by element in Python: for a log-batch of 1000 metrics
    the five arrays cost 7.3 ms of CPU a batch, against 1.4 ms for joining the literal text in C and
    letting PostgreSQL parse it. Text elements are double-quoted with backslash escapes (the literal
    syntax keeps anything else, commas and braces included, as it is); floats are written by
    `repr`, which PostgreSQL reads back to the same double; NULLs, infinities, NaN and mixed types go
    the list way."""
    if not values or None in values:
        return list(values)
    types = set(map(type, values))
    if kind == "text":
        if types != {str}:
            return list(values)
        joined = '","'.join(values)
        if '"' in joined or "\\" in joined:  # rare: escape element by element
            joined = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
        return '{"' + joined + '"}'
    if kind in ("int8", "int4"):
        return "{" + ",".join(map(str, values)) + "}" if types == {int} else list(values)
    if kind == "float8":
        if not types <= {float, int}:
            return list(values)
        body = ",".join(map(repr, values))
        return list(values) if "n" in body else "{" + body + "}"  # inf, nan: only non-finite reprs hold an n
    if kind == "bool":
        return "{" + ",".join(map(_BOOL_TEXT, values)) + "}" if types == {bool} else list(values)
    return list(values)


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


def driver_execute(conn: sa.Connection, sql: str, params: Any, *, many: bool = False) -> int:
    """Run a driver-level statement on the connection's cursor, as `exec_driver_sql` would, without
    SQLAlchemy's execution context and result set-up (a good part of a small write's time); a
    driver error is raised as SQLAlchemy raises it. Returns the cursor's rowcount."""
    cursor = conn.connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor.rowcount
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
    finally:
        cursor.close()


def insert_ignoring_sql(conn: sa.Connection, table: sa.Table, names: Sequence[str]) -> str:
    """The driver-level statement of `insert_ignoring_duplicates` for these columns, for a caller
    that binds its rows itself (tuples in `names` order; PostgreSQL: arrays c0, c1, ...)."""
    return _statement(conn, table, names, _ignore_clause(conn, table))


def _run(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], conflict: str) -> None:
    """INSERT rows (dicts with the same keys) followed by the dialect's `conflict` clause."""
    names = list(rows[0])
    sql = _statement(conn, table, names, conflict)
    if conn.dialect.name == "postgresql":
        kinds = [_pg_array_type(table.c[n])[:-2] for n in names]
        conn.exec_driver_sql(sql, {f"c{i}": pg_array([r[n] for r in rows], kinds[i]) for i, n in enumerate(names)})
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


DEADLOCK_RETRIES = 3
_DEADLOCK_CODES = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure
_MYSQL_DEADLOCK = 1213


def is_deadlock(exc: sa.exc.DBAPIError) -> bool:
    """True when the database chose this transaction as a deadlock (or serialization) victim."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _DEADLOCK_CODES:
        return True
    args = getattr(orig, "args", ())
    return bool(args) and args[0] == _MYSQL_DEADLOCK


def retry_deadlocks(attempt_once: Callable[[], T]) -> T:
    """attempt_once() (one whole transaction), run again a few times if the database picks it as a
    deadlock victim: the failed attempt was rolled back, so a store write is safe to re-run. InnoDB
    deadlocks even on concurrent inserts of different new keys (gap locks), and expects the retry."""
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            return attempt_once()
        except sa.exc.DBAPIError as exc:
            if attempt == DEADLOCK_RETRIES or not is_deadlock(exc):
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


_shared = threading.local()


@contextlib.contextmanager
def shared_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction on `engine` that every store write made on this thread meanwhile joins,
    instead of opening and committing its own (group commit: several requests' writes, one commit).
    It commits when the block ends and rolls back if it raises; a write that joined it is on disk
    only after that commit, so its caller must not answer before."""
    with engine.begin() as conn:
        _shared.conn = conn
        try:
            yield conn
        finally:
            _shared.conn = None


def joined_transaction(engine: sa.Engine) -> sa.Connection | None:
    """The `shared_transaction` open on this thread for `engine`, if any."""
    conn = getattr(_shared, "conn", None)
    return conn if conn is not None and conn.engine is engine else None


class TransactionScopes:
    """A store's two ways into the database: `_write` (one transaction, or the thread's
    `shared_transaction`) and `_read`."""

    engine: sa.Engine

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        try:
            shared = joined_transaction(self.engine)
            if shared is not None:
                yield shared
                return
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DataError:
            # PostgreSQL and MySQL refuse values longer than their column; say so without the SQL.
            raise InvalidParameterValue("A value is longer than the database column that stores it allows.") from None

    def _transact(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, *args) in one `_write` transaction, re-run if it loses a deadlock (inside a
        thread's shared transaction it simply joins it: the group's owner retries)."""
        if joined_transaction(self.engine) is not None:
            with self._write() as conn:
                return fn(conn, *args)

        def once() -> T:
            with self._write() as conn:
                return fn(conn, *args)

        return retry_deadlocks(once)

    _reader: sa.Engine | None = None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with read_connection(self) as conn:
            yield conn


# While the server's event loop runs a read itself (server/app.py), the engine whose reads it takes
# and the reader it takes them with (`db.engine.event_loop_reader`); None everywhere else.
LOOP_READER: contextvars.ContextVar[tuple[sa.Engine, sa.Engine] | None] = contextvars.ContextVar(
    "trackops_loop_reader", default=None)


async def read_on_loop(engine: sa.Engine, reader: sa.Engine, fn: Callable[..., T], *args: Any,
                       fallback: Callable[[], Any]) -> T:
    """fn(*args) on the running event loop, with the stores of `engine` reading through `reader`
    (`db.engine.event_loop_reader`): fn's code runs in a greenlet and each database round trip is
    awaited, so the loop serves other connections meanwhile. A read whose connection turns out to
    be gone (the database restarted, a proxy dropped it) is answered by awaiting `fallback()`
    instead, once; the pool has discarded that connection and opens a new one next time."""
    from sqlalchemy.util import greenlet_spawn

    token = LOOP_READER.set((engine, reader))  # the calling task's context only
    try:
        return await greenlet_spawn(fn, *args)
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    finally:
        LOOP_READER.reset(token)
    return await fallback()


@contextlib.contextmanager
def read_connection(store: Any) -> Iterator[sa.Connection]:
    """A connection for a store's unit of work that only reads: the event loop's reader when the
    loop runs this read for the store's engine, else the store's `reading_engine` (autocommit on
    PostgreSQL at READ COMMITTED), cached on the store as ``_reader``."""
    loop = LOOP_READER.get()
    if loop is not None and loop[0] is store.engine:
        reader = loop[1]
    else:
        reader = store._reader
        if reader is None:
            reader = store._reader = reading_engine(store.engine)
    with reader.connect() as conn:
        yield conn


class DriverQuery:
    """A fixed SELECT on the request path, compiled once per dialect and run on the driver's cursor.

    Executing even a cached statement through SQLAlchemy (cache lookup, execution context, result
    metadata, row processors) costs several times what SQLite takes to answer a primary-key read,
    and experiments/get or a run's row before a log-metric is little else. A statement whose bound
    values and columns need no type processing on the dialect is sent as its compiled text with the
    driver's own parameters, and its rows come back as named tuples (read by attribute, as
    SQLAlchemy rows are); a driver error is raised as SQLAlchemy raises it (the same exception
    classes, a dead connection invalidated). Any other statement simply goes through `execute`.
    """

    def __init__(self, statement: sa.Select):
        self.statement = statement
        self._plans: dict[tuple, Any] = {}

    def _plan(self, dialect) -> Any:
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(dialect)
        return plan

    def _compile(self, dialect) -> Any:
        from sqlalchemy.sql import visitors

        compiled = self.statement.compile(dialect=dialect)
        if any(compiled._bind_processors.values()):
            return False
        for column in self.statement.selected_columns:
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                return False
        try:
            row_type = collections.namedtuple("Row", [c.key for c in self.statement.selected_columns])
        except ValueError:  # a column name a tuple field cannot have
            return False
        # The request's values are bound at run time; a list of constants (an IN) is expanded now.
        free = {b.key: None for b in visitors.iterate(self.statement)
                if isinstance(b, sa.BindParameter) and b.required}
        state = compiled.construct_expanded_state(free)
        order = tuple(state.positiontup) if compiled.positional else None
        return state.statement, dict(state.parameters), order, row_type

    def rows(self, conn: sa.Connection, params: Mapping[str, Any]) -> list:
        plan = self._plan(conn.dialect)
        if plan is False:
            return list(conn.execute(self.statement, params))
        sql, defaults, order, row_type = plan
        values = {**defaults, **params}
        bound = tuple(values[n] for n in order) if order is not None else values
        try:
            cursor = conn.connection.cursor()
        except Exception:  # noqa: BLE001 - let SQLAlchemy report it as it would
            return list(conn.execute(self.statement, params))
        try:
            cursor.execute(sql, bound)
            return list(map(row_type._make, cursor.fetchall()))
        except conn.dialect.loaded_dbapi.Error as exc:
            conn._handle_dbapi_exception(exc, sql, bound, cursor, None)
        finally:
            cursor.close()

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> Any:
        found = self.rows(conn, params)
        return found[0] if found else None
