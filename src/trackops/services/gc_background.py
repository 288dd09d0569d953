"""gc in the background of `trackops serve`: the same planner and executor, when something changed.

`GcThread(settings, interval="1h", older_than="30d")` runs one pass right after `start()`. Then, every
`tick` seconds (at most 5 s), it asks the database one cheap question (`gc_log.change_token`: a file
stat on SQLite, a catalog counter on PostgreSQL/MySQL) and runs a pass only when the answer changed,
at most one a minute (`min_gap`: the token is coarse, any write on SQLite changes it); `interval` is
the upper bound between passes, since items also become old enough without any write. The token is
read after each pass, so a pass's own deletions do not start another.
Each pass is logged through the ``trackops.gc`` logger and recorded in the operations log
(`gc_log.record_pass`), which ``trackops gc --status`` and ``/metrics`` read. `stop()` sets an Event and joins: the thread ends between passes at once, or after the
chunk it is deleting. A pass that finds another maintenance command holding the lock (a manual gc,
an upgrade, a backup) is skipped and logged; any other error is logged and the next pass runs on
time: a background task must never take the server down.

A pass is `batched_gc`: the same planner and executor as `trackops gc`, under the same lock, but the
deleted runs are taken `BATCH_RUNS` at a time (keyset over the primary key), each batch planned and
executed before the next is read, and then everything else (experiments, logged models, traces,
orphans, runs a batch held) in one plan. Its memory is bounded by the batch, not by how many runs
were deleted; it is recorded as one pass.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from trackops.config import Settings
from trackops.db import schema
from trackops.db.engine import connect_errors, create_engine, parse_url
from trackops.errors import LockedError, TrackopsError
from trackops.services import gc as gc_service
from trackops.services import gc_log
from trackops.services.gc import GcReport
from trackops.services.gc_execute import Executor
from trackops.services.gc_plan import Places, Selection, interval_seconds, now_ms, parse_age
from trackops.services.locking import MAINTENANCE_LOCK, hold_lock

BATCH_RUNS = 5000

log = logging.getLogger("trackops.gc")


class GcThread(threading.Thread):
    """A daemon thread that collects garbage every `interval` until `stop()`."""

    def __init__(self, settings: Settings, *, interval: str = "1h", older_than: str | None = "30d",
                 orphans: bool = False, orphan_age: str | None = None, tick: float | None = None,
                 min_gap: float | None = None):
        super().__init__(name="trackops-gc", daemon=True)
        self.settings, self.older_than, self.orphans, self.orphan_age = settings, older_than, orphans, orphan_age
        self.interval_s = interval_seconds(interval)
        self.tick_s = min(self.interval_s, 5.0) if tick is None else tick
        # A change token is coarse (on SQLite any write changes the file), so a busy server would start a
        # pass at every tick: after a pass, changes start the next one no sooner than this.
        self.min_gap_s = min(self.interval_s, 60.0) if min_gap is None else min_gap
        if older_than is not None:
            parse_age(older_than)
        if not log.handlers and not logging.getLogger().handlers:
            # Nothing configured logging (uvicorn configures only its own loggers): log passes to stderr.
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s trackops gc: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
        if orphan_age is not None:
            parse_age(orphan_age)
        self._stop_event = threading.Event()
        self.passes = 0
        self.idle_ticks = 0
        self.locked_out = False
        self.last_report: GcReport | None = None
        self._engine = None

    def stop(self, timeout: float | None = 30) -> None:
        """Ask the thread to end and wait for it (at most `timeout` seconds)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def stop_on_sigterm(self) -> None:
        """Stop this thread before SIGTERM ends the process (uvicorn re-raises it after its shutdown).

        The previous handler is restored and the signal raised again, so the process still ends the
        way it would have. Only possible from the main thread; elsewhere this does nothing.
        """
        try:
            previous = signal.getsignal(signal.SIGTERM)

            def handler(signum, frame) -> None:
                self.stop()
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
                signal.raise_signal(signum)

            signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread
            pass

    def run(self) -> None:
        log.info("background gc when something is deleted (checked every %.1fs), at least every %.0fs; "
                 "older than %s%s", self.tick_s, self.interval_s, self.older_than or "any age",
                 "; sweeping orphaned folders" if self.orphans else "")
        try:
            self.run_pass()
            token, last = self.change_token(), time.monotonic()  # read after the pass: its own writes don't count
            while not self._stop_event.wait(self.tick_s):
                since = time.monotonic() - last
                if since < self.interval_s:
                    if since < self.min_gap_s:
                        self.idle_ticks += 1
                        continue
                    now = self.change_token()
                    if now is not None and now == token:
                        self.idle_ticks += 1
                        continue
                self.run_pass()
                if not self.locked_out:  # a pass the lock kept out is tried again at the next tick
                    token, last = self.change_token(), time.monotonic()
        finally:
            if self._engine is not None:
                self._engine.dispose()
        log.info("background gc stopped after %d pass(es)", self.passes)

    def change_token(self):
        """The database's change token (`gc_log.change_token`); None when it cannot be read."""
        try:
            if self._engine is None:
                url = parse_url(self.settings.backend_store_uri)
                pool = {} if url.get_backend_name() == "sqlite" else {"pool_size": 1, "max_overflow": 0}
                self._engine = create_engine(url, **pool)
            return gc_log.change_token(self._engine)
        except TrackopsError:
            return None

    def run_pass(self) -> GcReport | None:
        """One plan + execute; logged, never raised."""
        self.locked_out = False
        try:
            report = batched_gc(self.settings, older_than=self.older_than, orphans=self.orphans,
                                orphan_age=self.orphan_age, trigger="background")
        except LockedError as exc:
            self.locked_out = True
            log.warning("gc pass skipped: %s", exc.message)
            return None
        except TrackopsError as exc:
            log.error("gc pass failed: %s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
            return None
        except Exception:  # noqa: BLE001 - a bug must not stop the server; log it with its traceback
            log.exception("gc pass failed unexpectedly")
            return None
        finally:
            self.passes += 1
        self.last_report = report
        d = report.deleted
        log.info("gc pass: %d runs, %d logged models, %d traces, %d experiments, %d orphaned folders deleted; "
                 "%d rows, %d files, %d bytes; %d held, %d failed; %.2fs",
                 d["runs"], d["logged_models"], d["traces"], d["experiments"], d["orphans"],
                 sum(n for t, n in report.rows.items() if "(" not in t), report.files, report.bytes, len(report.plan.held),
                 len(report.failures), report.seconds)
        for failure in report.failures:
            log.warning("gc could not delete %s %s: %s", failure.kind, failure.id, failure.reason)
        return report


def deleted_run_batches(engine: sa.Engine, cutoff: int | None, size: int) -> Iterator[list[str]]:
    """Ids of runs deleted before `cutoff` (any deleted run when None), `size` at a time, by primary key.

    Each batch is read after the previous one was handled, from where it ended: one walk of the
    primary key in all, and rows purged meanwhile are simply not seen again.
    """
    runs = schema.runs
    last = ""
    while True:
        query = sa.select(runs.c.run_uuid).where(runs.c.lifecycle_stage == "deleted", runs.c.run_uuid > last)
        if cutoff is not None:
            query = query.where(runs.c.deleted_time <= cutoff)  # NULL: the final plan holds it, with why
        with engine.connect() as conn:
            ids = list(conn.execute(query.order_by(runs.c.run_uuid).limit(size)).scalars())
        if not ids:
            return
        yield ids
        if len(ids) < size:
            return
        last = ids[-1]


def _add(total: GcReport | None, part: GcReport) -> GcReport:
    """`part` added into `total`; the result's plan is `part`'s (the last one: its held items are the pass's)."""
    if total is None:
        return part
    merged = GcReport(part.plan, executed=total.executed or part.executed, files=total.files + part.files,
                      bytes=total.bytes + part.bytes, failures=total.failures + part.failures)
    merged.deleted = {k: total.deleted.get(k, 0) + part.deleted.get(k, 0) for k in {*total.deleted, *part.deleted}}
    merged.rows = {k: total.rows.get(k, 0) + part.rows.get(k, 0) for k in {*total.rows, *part.rows}}
    return merged


def batched_gc(settings: Settings, *, older_than: str | None = "30d", orphans: bool = False,
               orphan_age: str | None = None, trigger: str = "background", batch: int = BATCH_RUNS,
               now: int | None = None) -> GcReport:
    """One cleaner pass: deleted runs `batch` at a time, then the rest in one plan; recorded as one pass."""
    if older_than is not None:
        parse_age(older_than)
    if orphan_age is not None:
        parse_age(orphan_age)
    url = parse_url(settings.backend_store_uri)
    engine = create_engine(url, must_exist=True)
    started = time.monotonic()
    try:
        with hold_lock(engine, MAINTENANCE_LOCK, purpose="gc"):
            now = now_ms() if now is None else now
            cutoff = None if older_than is None else now - parse_age(older_than)
            places = Places(settings.artifacts_destination, settings.default_artifact_root)
            started_at = now_ms()
            total: GcReport | None = None
            ran = False  # an executor started: a failure from here on is a recorded (failed) pass
            try:
                with connect_errors(url):
                    for ids in deleted_run_batches(engine, cutoff, batch):
                        part = gc_service.plan(settings, engine, Selection(older_than=older_than, run_ids=ids),
                                               now=now, scan_files=False)
                        if part.runs:
                            ran = True
                            total = _add(total, Executor(engine, places).run(part, GcReport(part)))
                    tried = frozenset(f.id for f in (total.failures if total else []) if f.kind == "run")
                    rest = gc_service.plan(settings, engine, Selection(older_than=older_than, skip_runs=tried),
                                           orphans=orphans, orphan_age=orphan_age, now=now, scan_files=False)
                    final = GcReport(rest)
                    if not rest.empty:
                        ran = True
                        Executor(engine, places).run(rest, final)
                    total = _add(total, final)
            except Exception as exc:
                if ran:
                    with contextlib.suppress(Exception):  # the failure itself is what the caller must see
                        gc_log.record_pass(engine, total, trigger=trigger, started_at=started_at,
                                           error=getattr(exc, "message", None) or type(exc).__name__)
                raise
            total.seconds = time.monotonic() - started
            if total.executed:
                gc_log.record_pass(engine, total, trigger=trigger, started_at=started_at)
            return total
    finally:
        engine.dispose()
