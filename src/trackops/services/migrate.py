"""Schema migrations as use cases: upgrade, init, current, history and check of the tracking database.

Safety rules, in the order `upgrade` applies them:

1. The advisory lock (`locking.MAINTENANCE_LOCK`) is held for the whole run: a second upgrade, gc or
   backup on the same database fails at once with exit 11.
2. A revision trackops does not know (a newer MLflow wrote it) is refused before anything is touched.
3. trackops never downgrades: a target older than the database is refused.
4. The plan is shown and confirmed (the caller's `confirm`) before an existing non-empty database changes.
5. SQLite and PostgreSQL run the whole upgrade in one transaction: a failure rolls back everything,
   leaving a SQLite file byte-for-byte as it was (its journal mode is left alone for that reason).
   MySQL/MariaDB commit each DDL statement; every step checks what already exists, so re-running a
   failed or interrupted upgrade finishes the job. A failure there is logged in ``trackops_operations``.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from trackops.config import Settings
from trackops.db import own_schema, releases, revisions
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url, sqlite_path
from trackops.errors import (CheckFailedError, DatabaseError, NotFoundError, TrackopsError, UsageError)
from trackops.services.locking import MAINTENANCE_LOCK, hold_lock

BASELINE_TABLES = ("experiments", "runs", "metrics", "params", "tags")
BASELINE = "baseline"
"""Pseudo-revision of the 0.9.1 tables, reported as the first step of an upgrade from empty."""


@dataclasses.dataclass(frozen=True)
class Revision:
    """One revision of the chain: its id, what it does and the first MLflow release that shipped it."""

    revision: str
    purpose: str
    mlflow_version: str | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """Reported to `progress`: ``start`` (total steps known), ``step`` (one applied, with its time), ``done``."""

    kind: str
    index: int
    total: int
    revision: str | None = None
    purpose: str | None = None
    seconds: float | None = None


Progress = Callable[[ProgressEvent], None]


@dataclasses.dataclass
class UpgradePlan:
    """What an upgrade would do; `confirm` sees this before an existing database changes."""

    database: str
    dialect: str
    current: str | None
    target: str
    empty: bool
    steps: list[Revision]
    own_current: str | None
    own_target: str

    @property
    def noop(self) -> bool:
        return not self.steps and self.own_current == self.own_target

    @property
    def needs_confirmation(self) -> bool:
        return not self.empty and bool(self.steps)


@dataclasses.dataclass
class UpgradeReport:
    """The result of `upgrade`; `to_json()` is the documented ``--json`` shape."""

    plan: UpgradePlan
    applied: list[tuple[Revision, float]] = dataclasses.field(default_factory=list)
    own_applied: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    sql: str | None = None
    backup: dict[str, str] | None = None
    """The database-only snapshot taken first: {"snapshot", "repository"}, or None."""

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {"backup": self.backup,
            "database": p.database, "dialect": p.dialect, "from_revision": p.current, "to_revision": p.target,
            "mlflow_version": releases.release_range(p.target), "noop": p.noop, "dry_run": self.sql is not None,
            "steps": [{**r.to_json(), "seconds": round(s, 4)} for r, s in self.applied] if self.sql is None
            else [r.to_json() for r in p.steps],
            "trackops_tables": {"from_revision": p.own_current, "to_revision": p.own_target,
                                "applied": self.own_applied},
            "seconds": round(self.seconds, 4),
            **({"sql": self.sql} if self.sql is not None else {}),
        }


# --- the chain --------------------------------------------------------------------------------------

def available_chain() -> list[Revision]:
    """trackops' revisions from ROOT onwards, in order, as far as they link up."""
    script_dir = revisions.script_directory()
    out: list[Revision] = []
    rev = script_dir.revision_map.get_revision(revisions.ROOT)
    while rev is not None:
        out.append(Revision(rev.revision, _purpose(rev), releases.first_release(rev.revision)))
        nexts = sorted(rev.nextrev)
        rev = script_dir.revision_map.get_revision(nexts[0]) if len(nexts) == 1 else None
    return out


def _id_chain() -> list[Revision]:
    """`available_chain` without the purposes, which only the scripts hold (enough to plan, not to report)."""
    return [Revision(r, "", releases.first_release(r)) for r in revisions.chain_ids()]


def _purpose(script) -> str:
    doc = (getattr(script.module, "__doc__", None) or script.doc or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def _index(chain: list[Revision]) -> dict[str, int]:
    return {r.revision: i for i, r in enumerate(chain)}


def resolve_target(to: str | None, chain: list[Revision]) -> str:
    """The revision id for ``--to`` (an id, an MLflow version, ``head`` or None), checked against the chain."""
    target = releases.resolve_target(to)
    if target not in _index(chain):
        if target == releases.HEAD:  # only while the chain is incomplete in a development tree
            raise NotFoundError(f"trackops' migration chain does not reach head {target}",
                                hint="this trackops build is incomplete; reinstall trackops")
        raise NotFoundError(f"unknown schema revision {target!r}", hint="list the revisions with: trackops db history")
    return target


# --- reading a database -----------------------------------------------------------------------------

@dataclasses.dataclass
class DbState:
    current: str | None
    empty: bool
    own_current: str | None
    tables: list[str]


def read_state(conn: sa.Connection) -> DbState:
    """Where the database on `conn` is: MLflow revision, emptiness, trackops' own revision."""
    rows = revisions.recorded_revisions(conn)
    if len(rows) > 1:
        raise CheckFailedError(f"alembic_version holds {len(rows)} revisions ({', '.join(sorted(rows))}); "
                               "an MLflow database has one", hint="inspect the database; it is not one trackops "
                               "can upgrade safely")
    current = rows[0] if rows else None
    tables = revisions.user_tables(conn)
    return DbState(current=current, empty=not tables, own_current=own_schema.own_current(conn), tables=tables)


def check_known(state: DbState, chain: list[Revision]) -> None:
    """Refuse a database whose revision trackops does not know, or whose tables are not MLflow's."""
    current = state.current
    if current is None:
        if state.tables and not set(BASELINE_TABLES) <= set(state.tables):
            raise CheckFailedError("the database holds tables but no MLflow schema "
                                   f"({', '.join(state.tables[:5])}{', ...' if len(state.tables) > 5 else ''})",
                                   hint="point --backend-store-uri at an MLflow tracking database or an empty one")
        return
    if current in _index(chain):
        return
    if releases.is_newer_than_trackops(current):
        raise CheckFailedError(
            f"the database is at revision {current}, written by MLflow {releases.first_release(current)} or "
            f"newer; this trackops knows revisions up to {releases.NEWEST}",
            hint="upgrade trackops to a release that supports that MLflow version; nothing was changed")
    raise CheckFailedError(f"the database is at revision {current}, which trackops does not know",
                           hint="upgrade trackops (a newer MLflow may have written it); nothing was changed")


def _plan(url: URL, state: DbState, target: str, chain: list[Revision], *, keep_newer: bool = False) -> UpgradePlan:
    """The steps from the database's revision to `target`.

    keep_newer (the default target, ``head``): a database already past it, at a known revision
    (MLflow 3.18.0's), stays where it is instead of being refused as a downgrade.
    """
    check_known(state, chain)
    index = _index(chain)
    if keep_newer and state.current is not None and index[state.current] > index[target]:
        target = state.current
    if state.current is not None and index[state.current] > index[target]:
        raise UsageError(f"the database is at {state.current} (MLflow {releases.release_range(state.current)}), "
                         f"newer than the target {target}; trackops does not downgrade",
                         hint="to go back, restore the backup taken before the upgrade")
    start = 0 if state.current is None else index[state.current] + 1
    steps = chain[start:index[target] + 1]
    if state.current is None and state.empty:
        steps = [Revision(BASELINE, "Create the MLflow 0.9.1 tables", "0.9.1"), *steps]
    return UpgradePlan(database=hide_password(url), dialect=url.get_backend_name(), current=state.current,
                       target=target, empty=state.empty, steps=steps, own_current=state.own_current,
                       own_target=own_schema.own_head())


def _reading_engine(url: URL) -> Engine | None:
    """An engine to read the database, or None for a SQLite file that does not exist (never create it)."""
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is not None and not path.exists():
        if not path.parent.exists():
            create_engine(url)  # raises the NotFoundError about the folder
        return None
    return create_engine(url, poolclass=sa.pool.NullPool, wal=False)


def _read(url: URL) -> DbState:
    engine = _reading_engine(url)
    if engine is None:
        return DbState(current=None, empty=True, own_current=None, tables=[])
    try:
        with connect_errors(url), engine.connect() as conn:
            return read_state(conn)
    finally:
        engine.dispose()


# --- upgrade ----------------------------------------------------------------------------------------

def upgrade(settings: Settings, *, to: str | None = None, sql: bool = False,
            confirm: Callable[[UpgradePlan], bool] | None = None, progress: Progress | None = None,
            backup_first: bool = False, backup_to: str | None = None) -> UpgradeReport:
    """Upgrade the tracking schema to head (or --to), then trackops' own tables.

    backup_first takes a database-only snapshot (into backup_to, the configured repository, or beside a
    SQLite file) after confirmation and before any change, under the same lock.
    """
    url = parse_url(settings.backend_store_uri)
    chain = available_chain()
    target = resolve_target(to, chain)
    keep_newer = to is None or to.strip().lower() in ("head", "heads")
    if sql:
        return _upgrade_sql(url, target, chain, keep_newer=keep_newer)
    with hold_lock(url, MAINTENANCE_LOCK, purpose="db upgrade"):
        plan = _plan(url, _read(url), target, chain, keep_newer=keep_newer)
        if plan.noop:
            return UpgradeReport(plan)
        if plan.needs_confirmation and confirm is not None and not confirm(plan):
            raise TrackopsError("upgrade cancelled; nothing was changed")
        taken = None
        if backup_first and not plan.empty:
            from trackops.services import backup as backup_service

            repository = backup_to or backup_service.default_repository(settings)
            snap = backup_service.backup(settings, to=repository, lock=False, artifacts=False)
            taken = {"snapshot": snap.snapshot, "repository": snap.repository}
        report = _execute(url, plan, progress)
        report.backup = taken
        return report


def _upgrade_sql(url: URL, target: str, chain: list[Revision], *, keep_newer: bool = False) -> UpgradeReport:
    plan = _plan(url, _read(url), target, chain, keep_newer=keep_newer)
    if plan.noop:
        return UpgradeReport(plan, sql="")
    if plan.dialect == "sqlite":
        return UpgradeReport(plan, sql=_rehearse_sqlite(url, plan))
    parts = []
    if plan.steps:
        with _offline_errors():
            parts.append(revisions.upgrade_sql(url, target, start=plan.current))
    if plan.own_current != plan.own_target:
        parts.append(own_schema.own_upgrade_sql(url, start=plan.own_current))
    return UpgradeReport(plan, sql="\n".join(parts))


def _rehearse_sqlite(url: URL, plan: UpgradePlan) -> str:
    """The statements an upgrade runs, recorded by running it on a scratch copy of the file.

    SQLite's ALTER is so limited that most steps rebuild tables from what reflection finds, which
    offline rendering cannot see; a rehearsal on a copy is exact and leaves the database untouched.
    """
    import sqlite3

    path = sqlite_path(url)
    folder = Path(tempfile.mkdtemp(prefix="trackops-sql-"))
    try:
        copy = folder / "rehearsal.db"
        if path is not None and path.exists():
            source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        statements: list[str] = []
        engine = migration_engine(url.set(database=str(copy)))

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _record(_conn, _cursor, statement, parameters, _context, _many) -> None:
            head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
            if head not in ("SELECT", "PRAGMA", "BEGIN", "WITH"):
                statements.append(_inline(statement.strip(), parameters) + ";")

        def step_done(revision: str) -> None:
            statements.append(f"\n-- done: {revision}\n")

        try:
            with engine.connect() as conn, conn.begin():
                _apply(conn, plan, step_done)
        finally:
            engine.dispose()
        return "BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;\n"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _inline(statement: str, parameters: Any) -> str:
    """`statement` with its qmark parameters written in as SQL literals."""
    if not parameters:
        return statement
    values = iter(parameters if isinstance(parameters, (list, tuple)) else [parameters])

    def literal(value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, (int, float)):
            return repr(value)
        return "'" + str(value).replace("'", "''") + "'"

    return "".join(literal(next(values, None)) if ch == "?" else ch for ch in statement)


@contextmanager
def _offline_errors() -> Iterator[None]:
    from alembic.util import CommandError  # here, not at the top: serving never renders or runs migrations

    try:
        yield
    except (CommandError, sa.exc.CompileError) as exc:
        raise TrackopsError(f"cannot render the upgrade as SQL: {_one_line(exc)}",
                            hint="a migration step cannot be rendered offline; report it as a trackops bug") from None


def migration_engine(url: URL) -> Engine:
    """An engine whose transactions really contain DDL.

    Python's sqlite3 module runs DDL outside any transaction unless told otherwise; here it opens none
    itself and SQLAlchemy's ``begin`` issues ``BEGIN IMMEDIATE``, so a failed upgrade rolls back whole.
    """
    engine = create_engine(url, poolclass=sa.pool.NullPool, wal=False)
    if url.get_backend_name() == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def _execute(url: URL, plan: UpgradePlan, progress: Progress | None) -> UpgradeReport:
    from alembic.util import CommandError  # here, not at the top: serving a database at head never migrates

    report = UpgradeReport(plan)
    emit = progress or (lambda _event: None)
    path = sqlite_path(url) if plan.dialect == "sqlite" else None
    created_file = path is not None and not path.exists()
    started_ms, t0 = own_schema.now_ms(), time.perf_counter()
    last = [t0]
    steps = {r.revision: r for r in plan.steps}
    current_step = [plan.steps[0].revision if plan.steps else None]

    def step_done(revision: str) -> None:
        now = time.perf_counter()
        seconds, last[0] = now - last[0], now
        report.applied.append((steps[revision], seconds))
        i = len(report.applied)
        current_step[0] = plan.steps[i].revision if i < len(plan.steps) else None
        emit(ProgressEvent("step", i, len(plan.steps), revision, steps[revision].purpose, seconds))

    emit(ProgressEvent("start", 0, len(plan.steps), current_step[0],
                       plan.steps[0].purpose if plan.steps else None))
    engine = migration_engine(url)
    try:
        with connect_errors(url):
            conn = engine.connect()
        with conn, conn.begin():
            state = read_state(conn)
            if state.current != plan.current:
                raise TrackopsError(f"the database moved to revision {state.current} while this upgrade was "
                                    "being planned; nothing was changed", hint="run the upgrade again")
            report.own_applied = _apply(conn, plan, step_done)
            own_schema.log_operation(conn, "db upgrade", from_revision=plan.current, to_revision=plan.target,
                                     started_at=started_ms, outcome="succeeded")
    except BaseException as exc:
        engine.dispose()
        failed_at = current_step[0]
        if created_file and path is not None:
            for leftover in (path, path.with_name(path.name + "-journal")):
                with suppress(FileNotFoundError):
                    leftover.unlink()
        if plan.dialect == "mysql":
            _log_failure(url, plan, started_ms, failed_at, exc)
        if isinstance(exc, (sa.exc.DBAPIError, CommandError)):
            raise _failure(plan, failed_at, exc) from None
        raise
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - t0
    emit(ProgressEvent("done", len(report.applied), len(plan.steps), plan.target, None, report.seconds))
    return report


def _apply(conn: sa.Connection, plan: UpgradePlan, step_done: Callable[[str], None]) -> list[str]:
    """The upgrade itself, inside the caller's transaction; returns the own-table revisions applied."""
    if plan.steps and plan.steps[0].revision == BASELINE:
        from trackops.db.baseline import create_baseline

        create_baseline(conn)
        step_done(BASELINE)
    if plan.current != plan.target:
        revisions.upgrade(conn, plan.target, on_step=lambda rev, _down: step_done(rev))
    return own_schema.upgrade_own(conn)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _failure(plan: UpgradePlan, failed_at: str | None, exc: BaseException) -> TrackopsError:
    where = f" at revision {failed_at}" if failed_at else ""
    if plan.dialect == "mysql":
        hint = ("MySQL/MariaDB cannot roll back schema changes, so part of that step may be applied: fix the "
                "cause and run trackops db upgrade again, which finishes it")
    else:
        hint = "the upgrade ran in one transaction, which was rolled back: nothing was changed"
    return DatabaseError(f"upgrade failed{where}: {_one_line(exc)}", hint=hint)


def _log_failure(url: URL, plan: UpgradePlan, started_ms: int, failed_at: str | None, exc: BaseException) -> None:
    """Record a failed MySQL upgrade (its DDL stays applied, so the log should say what happened)."""
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table("trackops_operations"):
                return
            own_schema.log_operation(conn, "db upgrade", from_revision=plan.current, to_revision=plan.target,
                                     started_at=started_ms, outcome="failed",
                                     message=f"at {failed_at}: {_one_line(exc)}")
    except Exception:  # noqa: BLE001 - the log is best effort; the original error is what matters
        pass
    finally:
        engine.dispose()


# --- init, current, history -------------------------------------------------------------------------

def init(settings: Settings, *, progress: Progress | None = None) -> UpgradeReport:
    """Create the schema at head on an empty database; a no-op at head; refuse one behind head."""
    url = parse_url(settings.backend_store_uri)
    # Planned on the chain's ids first: a database already at head (every server start) needs no step,
    # so the scripts, and alembic with them, are read only when there is something to create.
    chain = _id_chain()
    target = resolve_target(None, chain)
    with hold_lock(url, MAINTENANCE_LOCK, purpose="db init"):
        state = _read(url)
        plan = _plan(url, state, target, chain, keep_newer=True)
        behind = plan.current != plan.target if plan.current is not None else not plan.empty
        if behind:
            raise CheckFailedError(f"the database is at {plan.current or 'the 0.9.1 baseline'}, behind head {target}",
                                   hint=f"upgrade it with: trackops db upgrade --backend-store-uri {plan.database}")
        if plan.noop:
            return UpgradeReport(plan)
        chain = available_chain()
        return _execute(url, _plan(url, state, resolve_target(None, chain), chain, keep_newer=True), progress)


@dataclasses.dataclass
class CurrentReport:
    """The result of `current`; `to_json()` is the documented ``--json`` shape."""

    database: str
    exists: bool
    revision: str | None
    head: str
    at_head: bool
    """At head or past it (a known later revision, e.g. MLflow 3.18.0's): nothing to upgrade."""
    known: bool
    mlflow_version: str | None
    trackops_revision: str | None
    trackops_head: str
    beyond_head: bool = False
    """At a known revision after head (written by MLflow 3.18.0 or ``db upgrade --to 3.18.0``)."""
    newest: str = releases.NEWEST
    """The newest revision this trackops knows (reached only with ``--to``)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def current(settings: Settings) -> CurrentReport:
    """Show the database's schema revision, whether it is head, and the MLflow releases that match."""
    url = parse_url(settings.backend_store_uri)
    engine = _reading_engine(url)
    state = DbState(None, True, None, [])
    if engine is not None:
        try:
            with connect_errors(url), engine.connect() as conn:
                state = read_state(conn)
        finally:
            engine.dispose()
    chain_ids = revisions.chain_ids()
    return CurrentReport(
        database=hide_password(url), exists=engine is not None, revision=state.current, head=releases.HEAD,
        at_head=revisions.at_or_beyond_default_head(state.current),
        beyond_head=revisions.beyond_default_head(state.current),
        known=state.current is None or state.current in chain_ids,
        mlflow_version=releases.release_range(state.current) if state.current else None,
        trackops_revision=state.own_current, trackops_head=own_schema.own_head())


@dataclasses.dataclass
class HistoryReport:
    """The result of `history`; `to_json()` is the documented ``--json`` shape."""

    revisions: list[Revision]
    current: str | None
    database: str | None
    unreachable: str | None = None
    """Why the database could not be read (the chain is listed all the same), or None."""

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "current": self.current, "head": releases.HEAD,
                "newest": releases.NEWEST,
                "unreachable": self.unreachable,
                "revisions": [{**r.to_json(), "current": r.revision == self.current} for r in self.revisions]}


def history(settings: Settings) -> HistoryReport:
    """List the schema revisions, what each does and the MLflow release that introduced it."""
    chain = available_chain()
    url = parse_url(settings.backend_store_uri)
    try:
        engine = _reading_engine(url)
        if engine is None:
            return HistoryReport(chain, None, None)
        try:
            with connect_errors(url), engine.connect() as conn:
                return HistoryReport(chain, read_state(conn).current, hide_password(url))
        finally:
            engine.dispose()
    except TrackopsError as exc:  # the chain is worth listing even when the database is down
        return HistoryReport(chain, None, hide_password(url), unreachable=exc.message)


def revision_table_markdown() -> str:
    """The revision table of docs/db.md: revision, purpose, MLflow release that introduced it."""
    lines = ["| # | revision | purpose | introduced in MLflow |", "| --- | --- | --- | --- |"]
    for i, r in enumerate(available_chain(), 1):
        purpose = r.purpose.replace("|", "\\|")
        lines.append(f"| {i} | `{r.revision}` | {purpose} | {r.mlflow_version or '—'} |")
    return "\n".join(lines) + "\n"


# --- check ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class CheckReport:
    """The result of `check`; `to_json()` is the documented ``--json`` shape."""

    database: str
    revision: str
    drift: list[str]

    @property
    def clean(self) -> bool:
        return not self.drift

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "revision": self.revision, "clean": self.clean, "drift": self.drift}


def check(settings: Settings) -> CheckReport:
    """Compare the live schema with the schema its revision should have; list any drift."""
    from trackops.db.introspect import diff, snapshot

    url = parse_url(settings.backend_store_uri)
    chain = available_chain()
    engine = _reading_engine(url)
    if engine is None:
        raise NotFoundError(f"SQLite database {sqlite_path(url)} does not exist",
                            hint="create it with: trackops db init")
    try:
        with connect_errors(url), engine.connect() as conn:
            state = read_state(conn)
            check_known(state, chain)
            if state.current is None:
                raise CheckFailedError("the database has no schema revision to check against",
                                       hint="create the schema with: trackops db init")
            actual = snapshot(conn)
    finally:
        engine.dispose()
    with scratch_database(url) as scratch:
        scratch_engine = migration_engine(scratch)
        try:
            with connect_errors(scratch), scratch_engine.connect() as conn:
                with conn.begin():
                    revisions.upgrade(conn, state.current)
                expected = snapshot(conn)
        finally:
            scratch_engine.dispose()
    return CheckReport(hide_password(url), state.current, diff(expected, actual))


@contextmanager
def scratch_database(url: URL) -> Iterator[URL]:
    """An empty database of the same dialect, removed afterwards: a temp file, or ``trackops_check_<hex>``."""
    if url.get_backend_name() == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="trackops-check-"))
        try:
            yield url.set(database=str(folder / "expected.db"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"trackops_check_{secrets.token_hex(6)}"
    admin = create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with connect_errors(url), admin.connect() as conn:
            try:
                if url.get_backend_name() == "mysql":
                    charset, collation = conn.execute(sa.text(
                        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = DATABASE()")).one()
                    conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET {charset} COLLATE {collation}")
                else:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
            except sa.exc.DBAPIError as exc:
                raise DatabaseError(
                    f"cannot create the scratch database {name} to build the expected schema: {_one_line(exc)}",
                    hint="db check needs CREATE DATABASE rights (PostgreSQL: CREATEDB; MySQL: CREATE); run it as a "
                         "user that has them") from None
        try:
            yield url.set(database=name)
        finally:
            with suppress(Exception), admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        admin.dispose()
