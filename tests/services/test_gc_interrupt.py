"""A gc killed (SIGKILL) in the middle leaves no orphaned file and no dangling row; a re-run finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from tests.services.test_gc import NOW, Seed, seed  # noqa: F401 - the fixture
from trackops.db import schema

RUNS = 800
FILES = 4


def _seed_fast(seed: Seed, eid: str, n: int) -> list[str]:
    """Rows with Core, files written straight to the folder (no fsync per file): quick to build."""
    ids = seed.runs(eid, n, stage="deleted", files=0, metrics=2)
    base = Path(seed.destination) / eid
    for r in ids:
        folder = base / r / "artifacts"
        folder.mkdir(parents=True)
        for f in range(FILES):
            (folder / f"f{f}.bin").write_bytes(b"x" * 64)
    return ids


def _dangling(seed: Seed) -> dict[str, int]:
    """Rows whose run is gone (the children gc deletes first)."""
    runs = sa.select(schema.runs.c.run_uuid)
    found = {}
    with seed.engine.connect() as conn:
        for name in ("metrics", "latest_metrics", "params", "tags"):
            t = schema.metadata.tables[name]
            found[name] = conn.execute(sa.select(sa.func.count()).select_from(t)
                                       .where(t.c.run_uuid.not_in(runs))).scalar_one()
    return found


def _orphaned_folders(seed: Seed, eid: str) -> list[str]:
    with seed.engine.connect() as conn:
        live = set(conn.execute(sa.select(schema.runs.c.run_uuid)).scalars())
    base = Path(seed.destination) / eid
    return [p.name for p in base.iterdir() if p.name not in live] if base.exists() else []


def test_gc_killed_midway_leaves_nothing_unfindable_and_a_rerun_finishes(seed):
    eid = seed.experiment("e")
    keep = seed.runs(eid, 3)
    doomed = _seed_fast(seed, eid, RUNS)
    base = Path(seed.destination) / eid
    env = {**os.environ, "TRACKOPS_BACKEND_STORE_URI": seed.url, "TRACKOPS_ARTIFACTS_DESTINATION": seed.destination}
    proc = subprocess.Popen([sys.executable, "-m", "trackops", "gc", "--yes", "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Kill as soon as the first run folders are gone.
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if sum(1 for _ in base.iterdir()) < RUNS + len(keep) - 20:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = proc.returncode == -signal.SIGKILL

    # Whatever the moment of the kill: no folder without its run row, no row without its run.
    assert _orphaned_folders(seed, eid) == []
    assert _dangling(seed) == {"metrics": 0, "latest_metrics": 0, "params": 0, "tags": 0}
    assert killed, "gc finished before it could be killed: raise RUNS"
    assert seed.count("runs", run_uuid=doomed) > 0

    rerun = subprocess.run([sys.executable, "-m", "trackops", "gc", "--yes"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert seed.count("runs", run_uuid=doomed) == 0 and seed.count("runs", run_uuid=keep) == 3
    assert sorted(p.name for p in base.iterdir()) == sorted(keep)
    assert _dangling(seed) == {"metrics": 0, "latest_metrics": 0, "params": 0, "tags": 0}
    assert seed.count("metrics") == 3 * 3
