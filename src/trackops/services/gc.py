"""`trackops gc`: permanently delete soft-deleted runs, experiments and logged models, and sweep orphans.

The use case in one call, `gc(settings, ...)`: check the schema, take the maintenance lock, plan
(`gc_plan.build_plan`, plus `orphans.find_orphans` with ``orphans=True``), let the caller confirm, and
execute the plan once (`gc_execute.Executor`). A dry run plans without the lock and changes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from trackops.config import Settings
from trackops.db import schema
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url
from trackops.errors import CheckFailedError, TrackopsError
from trackops.services import gc_log, orphans as orphan_sweep
from trackops.services.gc_execute import Executor, GcEvent, GcReport, Progress
from trackops.services.gc_plan import GcPlan, Places, Selection, build_plan, now_ms, parse_age
from trackops.services.locking import MAINTENANCE_LOCK, hold_lock

DEFAULT_ORPHAN_AGE = "1d"

__all__ = ["gc", "plan", "GcPlan", "GcReport", "GcEvent", "Progress", "DEFAULT_ORPHAN_AGE"]


def _check_head(conn: sa.Connection, database: str) -> None:
    try:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        revision = None
        conn.rollback()
    if revision != schema.HEAD_REVISION:
        raise CheckFailedError(f"{database} is at schema revision {revision or 'none'}, "
                               f"not at MLflow 3.17.2's head {schema.HEAD_REVISION}",
                               hint="upgrade it first: trackops db upgrade (gc needs the tables of the head schema)")


def plan(settings: Settings, engine: sa.Engine, selection: Selection, *, orphans: bool = False,
         orphan_age: str | None = None, now: int | None = None, scan_files: bool = True) -> GcPlan:
    """Build the plan on `engine` (no lock taken here; the caller holds it when it will execute)."""
    now = now_ms() if now is None else now
    places = Places(settings.artifacts_destination, settings.default_artifact_root)
    database = hide_password(engine.url)
    with connect_errors(engine.url), engine.connect() as conn:
        _check_head(conn, database)
        result = build_plan(conn, places, selection, database=database, now=now, scan_files=scan_files)
        if orphans:
            age = orphan_age or selection.older_than or DEFAULT_ORPHAN_AGE
            result.orphan_cutoff_ms = now - parse_age(age)
            errors: list[str] = []
            result.orphans = orphan_sweep.find_orphans(conn, places, cutoff_s=result.orphan_cutoff_ms / 1000,
                                                       errors=errors)
    return result


def gc(settings: Settings, *, older_than: str | None = None, run_ids: Sequence[str] | None = None,
       experiment_ids: Sequence[str] | None = None, logged_model_ids: Sequence[str] | None = None,
       orphans: bool = False, orphan_age: str | None = None, force_registered: bool = False,
       dry_run: bool = False, confirm: Callable[[GcPlan], bool] | None = None,
       progress: Progress | None = None, now: int | None = None, count_first: bool = True,
       trigger: str = "command") -> GcReport:
    """Permanently delete deleted runs, experiments and logged models (and orphaned artifacts).

    Each executed pass is recorded in the operations log (`gc_log.record_pass`) with its `trigger`.

    `count_first=False` skips listing the items' folders while planning (a dry run always lists
    them): nobody will look at the counts before the deletion, which then fills them in.
    """
    if older_than is not None:
        parse_age(older_than)  # a bad value is a usage error before anything is opened
    if orphan_age is not None:
        parse_age(orphan_age)
    selection = Selection(older_than=older_than, run_ids=run_ids, experiment_ids=experiment_ids,
                          logged_model_ids=logged_model_ids, force_registered=force_registered)
    url = parse_url(settings.backend_store_uri)
    engine = create_engine(url, must_exist=True)
    started = time.monotonic()
    try:
        lock = contextlib.nullcontext() if dry_run else hold_lock(engine, MAINTENANCE_LOCK, purpose="gc")
        with lock:
            the_plan = plan(settings, engine, selection, orphans=orphans, orphan_age=orphan_age, now=now,
                            scan_files=count_first or dry_run)
            report = GcReport(the_plan, dry_run=dry_run)
            if dry_run or the_plan.empty:
                report.seconds = time.monotonic() - started
                return report
            if confirm is not None and not confirm(the_plan):
                raise TrackopsError("gc cancelled; nothing was deleted")
            executor = Executor(engine, Places(settings.artifacts_destination, settings.default_artifact_root), progress)
            started_at = now_ms()
            try:
                with connect_errors(url):
                    executor.run(the_plan, report)
            except Exception as exc:
                with contextlib.suppress(Exception):  # the failure itself is what the caller must see
                    gc_log.record_pass(engine, report, trigger=trigger, started_at=started_at,
                                       error=getattr(exc, "message", None) or type(exc).__name__)
                raise
            report.seconds = time.monotonic() - started
            gc_log.record_pass(engine, report, trigger=trigger, started_at=started_at)
            return report
    finally:
        engine.dispose()
