"""Database engines for the URI forms MLflow users already have, and the errors they raise.

`create_engine(uri)` accepts ``sqlite:///``, ``mysql://``, ``mysql+pymysql://``, ``mariadb://``,
``postgresql://``, ``postgres://``, ``postgresql+psycopg://`` and ``postgresql+psycopg2://`` (the
last only when psycopg2 is installed). SQLite gets WAL and a busy timeout; MySQL gets utf8mb4.
Foreign-key enforcement on SQLite stays off, as MLflow leaves it: existing databases may hold rows
it would reject. `connect_errors()` turns driver errors into one-line `TrackopsError`s with hints.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from trackops.errors import DatabaseError, NotFoundError, TrackopsError, UsageError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How hard a SQLite commit waits for the disk (PRAGMA synchronous): FULL, SQLite's default, flushes the
# write-ahead log at every commit; NORMAL flushes it only at checkpoints, so a commit costs no disk
# wait and a power loss or OS crash (not a crash of the server) may undo the last commits, never
# corrupt the file (docs/serve.md#sqlite-durability).
SQLITE_SYNCHRONOUS_ENV = "TRACKOPS_SQLITE_SYNCHRONOUS"
SQLITE_SYNCHRONOUS_MODES = ("full", "normal")

_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg2",
}

SUPPORTED_SCHEMES_HINT = "use sqlite:///path.db, postgresql://user@host/db or mysql://user@host/db"


def parse_url(uri: str) -> URL:
    """Parse and normalise a database URI; a bad one is a `UsageError`."""
    if not isinstance(uri, str) or "://" not in uri:
        raise UsageError(f"not a database URI: {uri!r}", hint=SUPPORTED_SCHEMES_HINT)
    try:
        url = make_url(uri)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises ArgumentError and ValueError for junk
        raise UsageError(f"malformed database URI: {hide_password(uri)}", hint=SUPPORTED_SCHEMES_HINT) from None
    driver = _DRIVERS.get(url.drivername.lower())
    if driver is None:
        raise UsageError(f"unsupported database scheme {url.drivername!r}", hint=SUPPORTED_SCHEMES_HINT)
    if driver == "postgresql+psycopg2" and importlib.util.find_spec("psycopg2") is None:
        raise UsageError("postgresql+psycopg2:// needs psycopg2, which is not installed",
                         hint="use postgresql:// (psycopg 3 is included) or pip install psycopg2-binary")
    url = url.set(drivername=driver)
    if driver.startswith("mysql") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    if driver == "sqlite" and url.database in (None, ""):
        raise UsageError("sqlite URI has no file path", hint="use sqlite:///relative.db or sqlite:////abs/path.db")
    return url


def dialect_of(uri: str | URL) -> str:
    """'sqlite', 'postgresql' or 'mysql'."""
    url = uri if isinstance(uri, URL) else parse_url(uri)
    return url.get_backend_name()


def hide_password(uri: str | URL) -> str:
    """The URI as text with any password replaced by ***."""
    try:
        url = uri if isinstance(uri, URL) else make_url(uri)
        return url.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never echo a URI we cannot parse: it may hold a password
        text = str(uri)
        if "@" in text and "://" in text:
            scheme, rest = text.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return text


def sqlite_path(url: URL) -> Path | None:
    """The file path of a SQLite URL, or None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db)


def create_engine(uri: str | URL, *, must_exist: bool = False, wal: bool = True, **kwargs) -> Engine:
    """An engine for `uri`. With must_exist, a SQLite file that is not there is a `NotFoundError`.

    wal=False leaves a SQLite file's journal mode as it is (a failed upgrade must not change one byte).
    """
    url = uri if isinstance(uri, URL) else parse_url(uri)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            if must_exist and not path.exists():
                raise NotFoundError(f"SQLite database {path} does not exist",
                                    hint="check the path, or create it with: trackops db init")
            if not path.parent.exists():
                raise NotFoundError(f"folder {path.parent} for SQLite database {path.name} does not exist",
                                    hint="create the folder or fix the path in the URI")
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = sa.create_engine(url, **kwargs)
        if wal:
            sa.event.listen(engine, "connect", functools.partial(_sqlite_on_connect, synchronous=sqlite_synchronous()))
        return engine
    pre_ping = kwargs.pop("pool_pre_ping", None)  # None: ping only connections that sat idle
    if backend == "mysql":
        kwargs.setdefault("pool_recycle", 3600)
    connect_args = kwargs.setdefault("connect_args", {})
    if backend == "postgresql":
        connect_args.setdefault("connect_timeout", 10)
    elif backend == "mysql":
        connect_args.setdefault("connect_timeout", 10)
    engine = sa.create_engine(url, **kwargs, pool_pre_ping=bool(pre_ping))
    if pre_ping is None:
        _ping_when_idle(engine)
    return engine


def reading_engine(engine: Engine) -> Engine:
    """The engine a store reads with (a unit of work that writes nothing): on PostgreSQL at its
    default READ COMMITTED, the same pool with each connection in autocommit mode; else `engine`.

    A read in a transaction costs two more round trips than its statements (BEGIN before the first,
    ROLLBACK when the connection goes back to the pool): for experiments/get on PostgreSQL, 0.42 ms
    against 0.18 ms in autocommit. At READ COMMITTED every statement takes its own snapshot inside a
    transaction too, so a read sees what it saw before. A database whose default is REPEATABLE READ
    or SERIALIZABLE (one snapshot per transaction) keeps its reads in transactions.
    """
    if engine.dialect.name != "postgresql":
        return engine
    with engine.connect() as conn:  # the server's default, read by the dialect on its first connection
        default = conn.default_isolation_level
    if default != "READ COMMITTED":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def event_loop_reader(engine: Engine) -> Engine | None:
    """PostgreSQL through psycopg, at its default READ COMMITTED: a second, small pool on the same
    database whose connections are psycopg's asyncio ones, in autocommit, for the one-row reads the
    server's event loop runs itself (`server/app.py`); None anywhere else, or without greenlet.

    What comes back is an ordinary `Engine` on SQLAlchemy's asyncio psycopg dialect: the stores'
    ordinary code runs on it unchanged, inside `sqlalchemy.util.greenlet_spawn`, where each
    round trip to the database becomes an ``await`` that frees the event loop until the answer
    arrives. So a read that would otherwise go to the thread pool and back (two thread wake-ups,
    about 150 us of a 400 us experiments/get) costs neither, and the loop never blocks on the
    network: a slow or unreachable database delays that request, not the others. It may only be
    used from the event loop's thread, inside `greenlet_spawn`. Its connections are pinged when
    they sat idle, as the main pool's are.
    """
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return None
    if importlib.util.find_spec("greenlet") is None:
        return None
    try:
        if reading_engine(engine) is engine:
            return None  # the server's default isolation keeps reads in transactions
    except sa.exc.DBAPIError:  # unreachable as this worker starts: it serves, its reads go to the pool
        return None
    url = engine.url.set(drivername="postgresql+psycopg_async")
    # The async dialect brings its own pool (AsyncAdaptedQueuePool); sqlalchemy.ext.asyncio's wrapper
    # is not needed, nor the ORM it imports (7 MiB resident). In autocommit there is no transaction
    # to roll back when a connection goes back to the pool.
    reader = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=2,
                              pool_reset_on_return=None, connect_args={"connect_timeout": 10})
    _ping_when_idle(reader)
    return reader


POOL_PING_IDLE_SECONDS = 10


def _ping_when_idle(engine: Engine, idle: float = POOL_PING_IDLE_SECONDS) -> None:
    """Check a pooled connection before use only if it sat idle for `idle` seconds.

    SQLAlchemy's pool_pre_ping sends a ping on every checkout: one more round trip per request,
    for a connection that answered a moment ago. A connection idle long enough for the server, a
    proxy or a failover to have dropped it is pinged (and replaced if dead) as pre_ping would; one
    that broke within the last seconds fails its request once and is then discarded by the pool.
    """
    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:
        record.info["trackops_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        since = record.info.get("trackops_idle_since")
        if since is None or time.monotonic() - since < idle:
            return
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception:  # noqa: BLE001 - any failure means the connection is gone
            raise sa.exc.DisconnectionError() from None


def sqlite_synchronous(env: dict[str, str] | None = None) -> str:
    """The SQLite commit mode asked for in TRACKOPS_SQLITE_SYNCHRONOUS: "full" (default) or "normal"."""
    raw = (env if env is not None else os.environ).get(SQLITE_SYNCHRONOUS_ENV, "").strip().lower() or "full"
    if raw not in SQLITE_SYNCHRONOUS_MODES:
        raise UsageError(f"{SQLITE_SYNCHRONOUS_ENV}={raw!r} is not a SQLite commit mode",
                         hint="use full (every commit on disk) or normal (no disk wait per commit)")
    return raw


def _sqlite_on_connect(dbapi_conn, _record, synchronous: str = "full") -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers (a backup, a search) run beside a writer. A read-only file keeps its mode.
        with contextlib.suppress(Exception):
            cur.execute("PRAGMA journal_mode = WAL")
        if synchronous != "full":  # FULL is SQLite's own default: nothing to set
            cur.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    finally:
        cur.close()


@contextlib.contextmanager
def connect_errors(uri: str | URL) -> Iterator[None]:
    """Translate driver errors raised inside the block into one-line `TrackopsError`s."""
    try:
        yield
    except TrackopsError:
        raise
    except sa.exc.DBAPIError as exc:
        raise translate_error(exc, uri) from None
    except sa.exc.NoSuchModuleError:
        raise UsageError(f"no driver for {hide_password(uri)}", hint=SUPPORTED_SCHEMES_HINT) from None


def translate_error(exc: sa.exc.DBAPIError, uri: str | URL) -> TrackopsError:
    """A one-line error, with hint, for a driver error seen while connecting."""
    url = uri if isinstance(uri, URL) else make_url(uri)
    where = hide_password(url)
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(getattr(exc, "orig", exc)).strip() else ""
    low = text.lower()
    host = f"{url.host or 'localhost'}:{url.port or _default_port(url)}"
    if "password authentication failed" in low or "access denied" in low:
        return DatabaseError(f"the database refused the credentials for {where}",
                             hint="check the user name and password in the URI")
    if ("does not exist" in low and "database" in low) or "unknown database" in low:
        return NotFoundError(f"database {url.database!r} does not exist on {host}",
                             hint=f"create it first (e.g. CREATE DATABASE {url.database})")
    if any(s in low for s in ("connection refused", "can't connect", "could not connect", "timeout",
                              "timed out", "name or service not known", "nodename nor servname",
                              "could not translate host name", "no route to host")):
        return DatabaseError(f"cannot reach the database at {host} ({where})",
                             hint="is the server running, and are host and port right?")
    if "unable to open database file" in low:
        return NotFoundError(f"cannot open SQLite database {url.database}",
                             hint="check that the folder exists and is writable")
    if "file is not a database" in low or "file is encrypted" in low:
        return DatabaseError(f"{url.database} is not a SQLite database", hint="check the path in the URI")
    return DatabaseError(f"database error on {where}: {text or type(exc).__name__}",
                         hint="run with --debug for details")


def _default_port(url: URL) -> int | str:
    return {"postgresql": 5432, "mysql": 3306}.get(url.get_backend_name(), "")


def server_version(conn: sa.Connection) -> str:
    """The database server's version string."""
    backend = conn.dialect.name
    if backend == "sqlite":
        return conn.exec_driver_sql("select sqlite_version()").scalar_one()
    if backend == "postgresql":
        return conn.exec_driver_sql("show server_version").scalar_one()
    return conn.exec_driver_sql("select version()").scalar_one()
