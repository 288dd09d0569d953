"""An advisory lock per database, so that two destructive trackops commands never run at once on it.

`hold_lock(engine_or_url, name)` holds the lock `name` for the duration of a ``with`` block, or raises
`LockedError` (exit 11) at once when someone else holds it: it never waits. Commands that must exclude
each other (``db upgrade``, ``gc``, ``backup``, ``restore``) all take `MAINTENANCE_LOCK`.

How each dialect does it:

- PostgreSQL: ``pg_try_advisory_lock(key)`` on a dedicated session; the key is a 64-bit hash of the
  name. Advisory locks are scoped to the current database, and the server drops them when the session
  ends, so a killed process never leaves the lock behind.
- MySQL/MariaDB: ``GET_LOCK(name, 0)`` on a dedicated session. These locks are server-wide, so the
  lock name includes the database name. The server releases them when the session ends.
- SQLite: an exclusive ``flock`` on a sidecar file ``<db>.trackops.lock`` beside the database (the
  kernel releases it when the process dies). The file holds the holder's pid and host for the error
  message, and is left in place: deleting it would let two processes lock two different files.
  An in-memory database cannot be shared, so there is nothing to lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url, sqlite_path
from trackops.errors import DatabaseError, LockedError, NotFoundError

MAINTENANCE_LOCK = "maintenance"
SIDECAR_SUFFIX = ".trackops.lock"

_HINT = ("wait until the other trackops command on this database finishes; if none is running, "
         "the holder is a stuck process: stop it and retry")


@contextlib.contextmanager
def hold_lock(target: Engine | str | URL, name: str = MAINTENANCE_LOCK, *,
              purpose: str | None = None) -> Iterator[None]:
    """Hold the advisory lock `name` on the database for the block; `LockedError` when held elsewhere.

    `purpose` (e.g. ``"db upgrade"``) is recorded where the dialect allows, so that whoever finds the
    lock taken is told what holds it.
    """
    url = target.url if isinstance(target, Engine) else (target if isinstance(target, URL) else parse_url(target))
    dialect = url.get_backend_name()
    if dialect == "sqlite":
        path = sqlite_path(url)
        if path is None:
            yield
            return
        with _flock(path, name, purpose):
            yield
        return
    owned = not isinstance(target, Engine)
    engine = create_engine(url, poolclass=sa.pool.NullPool) if owned else target
    try:
        with connect_errors(url):
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            with connect_errors(url):
                if dialect == "postgresql":
                    _pg_acquire(conn, url, name, purpose)
                else:
                    _mysql_acquire(conn, url, name)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    if dialect == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": pg_key(name)})
                    else:
                        conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _mysql_name(conn, name)})
        finally:
            # Close the session for real rather than return it to a pool: the server then drops
            # anything it still holds, whatever happened above.
            with contextlib.suppress(Exception):
                conn.invalidate()
            conn.close()
    finally:
        if owned:
            engine.dispose()


def pg_key(name: str) -> int:
    """The signed 64-bit advisory-lock key for `name`."""
    digest = hashlib.sha256(f"trackops:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _pg_acquire(conn: sa.Connection, url: URL, name: str, purpose: str | None) -> None:
    if purpose:
        conn.execute(sa.text("SELECT set_config('application_name', :a, false)"),
                     {"a": f"trackops {purpose}"[:63]})
    key = pg_key(name)
    if conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
        return
    holder = conn.execute(sa.text(
        "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = ((:k >> 32) & 4294967295)::bigint::oid "
        "AND l.objid = (:k & 4294967295)::bigint::oid LIMIT 1"), {"k": key}).first()
    who = ""
    if holder is not None:
        pid, app, addr = holder
        who = f" (held by {app or 'a session'}, server pid {pid}{f' from {addr}' if addr else ''})"
    raise LockedError(f"the {name} lock on {hide_password(url)} is taken{who}", hint=_HINT)


def _mysql_name(conn: sa.Connection, name: str) -> str:
    database = conn.execute(sa.text("SELECT DATABASE()")).scalar_one() or ""
    full = f"trackops:{database}:{name}"
    # MySQL caps lock names at 64 characters.
    return full if len(full) <= 64 else "trackops:" + hashlib.sha256(full.encode()).hexdigest()[:55]


def _mysql_acquire(conn: sa.Connection, url: URL, name: str) -> None:
    lock_name = _mysql_name(conn, name)
    got = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": lock_name}).scalar()
    if got == 1:
        return
    holder = conn.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": lock_name}).scalar()
    who = f" (held by connection {holder})" if holder is not None else ""
    raise LockedError(f"the {name} lock on {hide_password(url)} is taken{who}", hint=_HINT)


def sidecar_path(db_path: Path, name: str = MAINTENANCE_LOCK) -> Path:
    """The lock file for a SQLite database: ``<db>.trackops.lock`` (other names get their own file)."""
    suffix = SIDECAR_SUFFIX if name == MAINTENANCE_LOCK else f".trackops-{name}.lock"
    return db_path.with_name(db_path.name + suffix)


@contextlib.contextmanager
def _flock(db_path: Path, name: str, purpose: str | None) -> Iterator[None]:
    path = sidecar_path(db_path, name)
    if not db_path.parent.exists():
        raise NotFoundError(f"folder {db_path.parent} for SQLite database {db_path.name} does not exist",
                            hint="create the folder or fix the path in the URI")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DatabaseError(f"cannot open the lock file {path}: {exc.strerror}",
                            hint="trackops needs write access to the folder that holds the database") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            who = f" (held by {holder})" if holder else ""
            raise LockedError(f"the {name} lock on {db_path} is taken{who}",
                              hint=_HINT + f"; the lock is an flock on {path}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{purpose or 'trackops'} pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
