"""A million metric rows go through backup and restore with flat memory (SQLite, one lean test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

ROWS = 1_000_000

PROGRAM = textwrap.dedent("""
    import json, sys
    from trackops.config import Settings
    from trackops.services import backup, restore
    source, repo, target, dest = sys.argv[1:5]
    b = backup.backup(Settings(backend_store_uri=source, artifacts_destination=dest), to=repo)
    r = restore.restore(Settings(), snapshot="latest", repository=repo, to_backend_store_uri=target,
                        to_artifacts_destination=dest)
    # VmHWM is this program's own peak: ru_maxrss would also count the forking pytest process.
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"rows": b.to_json()["rows"], "restored": sum(t["rows"] for t in r.tables),
                      "peak_kib": peak}))
""")


def test_million_metric_rows_back_up_and_restore_with_bounded_memory(sqlite_head_url, tmp_path):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux's /proc to read the peak memory of the child")
    engine = sa.create_engine(sqlite_head_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO experiments (experiment_id, name, lifecycle_stage, workspace) "
                             "VALUES (1, 'big', 'active', 'default')")
        conn.exec_driver_sql("INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) "
                             "VALUES ('r', 1, 'active', 'FINISHED')")
        conn.exec_driver_sql(
            f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS - 1}) "
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "SELECT 'loss_' || (i % 10), i * 0.25, 1700000000000 + i, 'r', i / 10, 0 FROM n")
        checksum = conn.exec_driver_sql("SELECT sum(value), sum(step), count(*) FROM metrics").one()
    engine.dispose()
    target = tmp_path / "restored.db"
    done = subprocess.run([sys.executable, "-c", PROGRAM, sqlite_head_url, str(tmp_path / "repo"),
                           f"sqlite:///{target}", str(tmp_path / "d")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["restored"] == result["rows"] - 1 >= ROWS  # all rows but alembic_version, written by the build
    engine = sa.create_engine(f"sqlite:///{target}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sum(value), sum(step), count(*) FROM metrics").one() == checksum
    engine.dispose()
    # The interpreter, SQLAlchemy and alembic take ~90 MiB; 1M rows held in memory would take far more.
    assert result["peak_kib"] < 160 * 1024, result
