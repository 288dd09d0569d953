"""A run with a million metric rows is collected with flat memory (SQLite, rows made with set-based SQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import sqlalchemy as sa

from tests.services.test_gc import Seed, sqlite_seed  # noqa: F401 - the fixture

ROWS = 1_000_000
PEAK_RSS_MB = 200

GC_AND_MEASURE = textwrap.dedent("""
    import json, sys
    from trackops.config import Settings
    from trackops.services.gc import gc
    report = gc(Settings(backend_store_uri=sys.argv[1], artifacts_destination=sys.argv[2]))
    # VmHWM is this program's own peak; ru_maxrss would include the forking test process's pages
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"rows": report.rows, "peak_kb": peak_kb}))
""")


def test_run_with_a_million_metric_rows_is_collected_under_the_memory_bound(sqlite_seed):
    eid = sqlite_seed.experiment("big")
    (run,) = sqlite_seed.runs(eid, 1, stage="deleted", files=1, metrics=0)
    with sqlite_seed.engine.begin() as conn:
        conn.execute(sa.text(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "SELECT 'm' || (i % 10), i * 0.5, 1700000000000 + i, :run, i / 10, 0 FROM n"),
            {"last": ROWS - 1, "run": run})
    assert sqlite_seed.count("metrics", run_uuid=run) == ROWS

    out = subprocess.run([sys.executable, "-c", GC_AND_MEASURE, sqlite_seed.url, sqlite_seed.destination],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["rows"]["metrics"] == ROWS and result["rows"]["runs"] == 1
    assert sqlite_seed.count("metrics") == 0
    assert result["peak_kb"] / 1024 <= PEAK_RSS_MB, f"peak RSS {result['peak_kb'] / 1024:.0f} MB"
