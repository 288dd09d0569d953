"""The background gc thread of `trackops serve`: passes on an interval, logs them, stops cleanly."""

from __future__ import annotations

import logging
import time

from tests.services.test_gc import Seed, sqlite_seed  # noqa: F401 - the fixture
from trackops.services.gc_background import GcThread
from trackops.services.locking import hold_lock


def _wait(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_background_gc_collects_on_each_pass_and_stops_cleanly(sqlite_seed, caplog):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 2, stage="deleted")
    caplog.set_level(logging.INFO, logger="trackops.gc")
    thread = GcThread(sqlite_seed.settings(), interval="1s", older_than="1d")
    thread.start()
    try:
        assert _wait(lambda: thread.passes >= 1)
        assert sqlite_seed.count("runs") == 0
        sqlite_seed.runs(eid, 1, stage="deleted")  # deleted 40 days ago: the next pass takes it
        assert _wait(lambda: thread.passes >= 2 and sqlite_seed.count("runs") == 0)
    finally:
        thread.stop(timeout=30)
    assert not thread.is_alive()
    passes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gc pass:")]
    assert passes[0].startswith("gc pass: 2 runs") and "stopped after" in caplog.records[-1].getMessage()


def test_background_pass_while_locked_is_skipped_not_fatal(sqlite_seed, caplog):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 1, stage="deleted")
    thread = GcThread(sqlite_seed.settings(), interval="1h")
    with hold_lock(sqlite_seed.url):
        assert thread.run_pass() is None
    assert any("skipped" in r.getMessage() for r in caplog.records)
    assert thread.run_pass().deleted["runs"] == 1


def test_serve_with_gc_interval_collects_in_the_background_and_stops_with_the_server(sqlite_seed, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 2, stage="deleted")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "trackops", "serve", "--backend-store-uri", sqlite_seed.url,
                             "--artifacts-destination", sqlite_seed.destination, "--port", str(port),
                             "--gc-interval", "1h", "--gc-older-than", "30d"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert _wait(lambda: sqlite_seed.count("runs") == 0, 60), (tmp_path / "serve.log").read_text()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (tmp_path / "serve.log").read_text()
    assert "gc pass: 2 runs" in text and "stopped after 1 pass" in text
