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
    thread = GcThread(sqlite_seed.settings(), interval="1s", older_than="1d", min_gap=0)
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
                             "--gc-interval", "1h", "--gc-older-than", "30d", "--no-gc-orphans"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert _wait(lambda: sqlite_seed.count("runs") == 0, 60), (tmp_path / "serve.log").read_text()
        assert _wait(lambda: 'trackops_gc_last_pass_deleted{kind="runs"} 2' in _metrics(port), 30)
        assert "trackops_gc_last_success_timestamp_seconds " in _metrics(port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (tmp_path / "serve.log").read_text()
    assert "gc pass: 2 runs" in text and "stopped after 1 pass" in text
    # The options reached the cleaner through the serving process serve replaced itself with.
    assert "older than 30d" in text and "sweeping orphaned folders" not in text


def test_idle_ticks_run_no_pass_until_something_is_deleted(sqlite_seed):
    eid = sqlite_seed.experiment("e")
    thread = GcThread(sqlite_seed.settings(), interval="1h", older_than="1d", tick=0.05, min_gap=0)
    thread.start()
    try:
        assert _wait(lambda: thread.passes == 1 and thread.idle_ticks >= 10)
        assert thread.passes == 1  # ten ticks, nothing changed: no pass
        with hold_lock(sqlite_seed.url):  # as a writer would: the pass waits until the runs are complete
            sqlite_seed.runs(eid, 3, stage="deleted")  # deleted 40 days ago
        # The pass's deletions are visible before it counts itself: wait for both.
        assert _wait(lambda: thread.passes >= 2 and sqlite_seed.count("runs") == 0)
        assert thread.idle_ticks >= 10
    finally:
        thread.stop(timeout=30)


def test_each_executed_pass_is_recorded_with_its_trigger_and_counts(sqlite_seed):
    from trackops.db.engine import create_engine
    from trackops.services import gc_log

    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 2, stage="deleted")
    thread = GcThread(sqlite_seed.settings(), interval="1h", older_than="1d")
    assert thread.run_pass().deleted["runs"] == 2
    engine = create_engine(sqlite_seed.url)
    try:
        [last] = gc_log.recent_passes(engine)
    finally:
        engine.dispose()
    assert last["trigger"] == "background" and last["outcome"] == "ok" and last["deleted"]["runs"] == 2
    assert last["finished_at"] >= last["started_at"] and last["failures"] == 0


def test_change_token_changes_when_a_run_is_soft_deleted(head_db_url):
    import sqlalchemy as sa

    from trackops.db.engine import create_engine
    from trackops.services import gc_log

    engine = create_engine(head_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
                                 "VALUES ('tok', 'x', 'active')"))
        before = _settled_token(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE experiments SET lifecycle_stage = 'deleted' WHERE name = 'tok'"))
        engine.dispose()  # the writer's statistics reach PostgreSQL's collector when its session ends
        assert before is not None
        assert _wait(lambda: gc_log.change_token(engine) != before, 15)
    finally:
        engine.dispose()


def _settled_token(engine):
    from trackops.services import gc_log

    engine.dispose()
    token = gc_log.change_token(engine)
    while _wait(lambda: gc_log.change_token(engine) != token, 1.5):
        token = gc_log.change_token(engine)
    return token


def _metrics(port: int) -> str:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def test_background_pass_sweeps_orphaned_folders_older_than_the_grace_period(sqlite_seed):
    import os
    import uuid
    from pathlib import Path

    from trackops.artifacts import repository_for

    eid = sqlite_seed.experiment("e")
    live = sqlite_seed.runs(eid, 1)[0]
    repo = repository_for(sqlite_seed.destination)
    old, young = uuid.uuid4().hex, uuid.uuid4().hex
    repo.write(f"{eid}/{old}/artifacts/a.txt", b"left behind")
    repo.write(f"{eid}/{young}/artifacts/a.txt", b"upload in flight")
    two_days_ago = time.time() - 2 * 86400
    for path in Path(sqlite_seed.destination).rglob("*"):
        if young not in str(path):
            os.utime(path, (two_days_ago, two_days_ago))
    thread = GcThread(sqlite_seed.settings(), interval="1h", older_than="1d", orphans=True, orphan_age="1d")
    report = thread.run_pass()
    dest = Path(sqlite_seed.destination)
    assert report.deleted["orphans"] == 1 and not (dest / eid / old).exists()
    assert (dest / eid / young / "artifacts" / "a.txt").exists() and (dest / eid / live).exists()
