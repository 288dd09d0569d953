"""gc in the background of `trackops serve`: the same planner and executor, every interval.

`GcThread(settings, interval="1h", older_than="30d")` runs one pass right after `start()` and then one
per interval, logging each pass (what went, what is held, what failed) through the ``trackops.gc``
logger. `stop()` sets an Event and joins: the thread ends between passes at once, or after the
chunk it is deleting. A pass that finds another maintenance command holding the lock (a manual gc,
an upgrade, a backup) is skipped and logged; any other error is logged and the next pass runs on
time: a background task must never take the server down.
"""

from __future__ import annotations

import logging
import signal
import threading

from trackops.config import Settings
from trackops.errors import LockedError, TrackopsError
from trackops.services.gc import GcReport, gc
from trackops.services.gc_plan import parse_age

log = logging.getLogger("trackops.gc")


class GcThread(threading.Thread):
    """A daemon thread that collects garbage every `interval` until `stop()`."""

    def __init__(self, settings: Settings, *, interval: str = "1h", older_than: str | None = "30d",
                 orphans: bool = False):
        super().__init__(name="trackops-gc", daemon=True)
        self.settings, self.older_than, self.orphans = settings, older_than, orphans
        self.interval_s = parse_age(interval) / 1000
        if self.interval_s <= 0:
            raise TrackopsError(f"gc interval {interval!r} must be longer than zero", hint="e.g. --gc-interval 1h")
        if older_than is not None:
            parse_age(older_than)
        if not log.handlers and not logging.getLogger().handlers:
            # Nothing configured logging (uvicorn configures only its own loggers): log passes to stderr.
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s trackops gc: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
        self._stop_event = threading.Event()
        self.passes = 0
        self.last_report: GcReport | None = None

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
        log.info("background gc every %.0fs, older than %s", self.interval_s, self.older_than or "any age")
        while not self._stop_event.is_set():
            self.run_pass()
            self._stop_event.wait(self.interval_s)
        log.info("background gc stopped after %d pass(es)", self.passes)

    def run_pass(self) -> GcReport | None:
        """One plan + execute; logged, never raised."""
        try:
            report = gc(self.settings, older_than=self.older_than, orphans=self.orphans, count_first=False)
        except LockedError as exc:
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
