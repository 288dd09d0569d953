"""The background cleaner on PostgreSQL + S3 (moto over HTTP): a run deleted through the REST API is
purged by the next pass, orphaned folders are swept, a failing delete is retried and reported (and
finished by a later pass), two cleaners on one database never delete the same thing twice, and a pass
over 100,000 deleted runs needs no more memory than one over 10,000 (SQLite, rows made by set-based SQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.conftest import _head_db
from tests.services.test_gc import Seed
from tests.services.test_gc_s3 import keys
from trackops.config import Settings
from trackops.db import schema
from trackops.db.engine import create_engine
from trackops.server.factory import build_app
from trackops.services import gc_log
from trackops.services.gc_background import GcThread, batched_gc
from trackops.services.serve import preflight, serve_config


@pytest.fixture
def pg_url(_head_templates, tmp_path, tmp_path_factory) -> str:
    """An empty head-schema PostgreSQL database."""
    return _head_db("postgresql", _head_templates, tmp_path, tmp_path_factory)


@pytest.fixture
def pg_s3(pg_url, s3):
    seed = Seed(pg_url, s3.uri("mlartifacts"))
    yield seed
    seed.close()


def wait(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def passes(url: str) -> list[dict]:
    engine = create_engine(url)
    try:
        return gc_log.recent_passes(engine, 100)
    finally:
        engine.dispose()


def test_run_deleted_through_the_rest_api_is_purged_and_orphans_swept_by_the_next_pass(pg_s3, s3):
    settings = Settings(backend_store_uri=pg_s3.url, artifacts_destination=pg_s3.destination)
    preflight(settings)
    api = "/api/2.0/mlflow"
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as client:
        eid = client.post(f"{api}/experiments/create", json={"name": "rest"}).json()["experiment_id"]
        run_ids = [client.post(f"{api}/runs/create", json={"experiment_id": eid}).json()["run"]["info"]["run_id"]
                   for _ in range(2)]
        for run_id in run_ids:
            put = client.put(f"/api/2.0/mlflow-artifacts/artifacts/{eid}/{run_id}/artifacts/model/weights.bin",
                             content=b"w" * 100)
            assert put.status_code == 200, put.text
            assert client.post(f"{api}/runs/log-parameter", json={"run_id": run_id, "key": "lr",
                                                                  "value": "0.1"}).status_code == 200
        orphan = uuid.uuid4().hex
        s3.client().put_object(Bucket=s3.bucket, Key=f"mlartifacts/{eid}/{orphan}/artifacts/a.txt", Body=b"x")

        cleaner = GcThread(settings, interval="1h", older_than="0", orphans=True, orphan_age="0",
                           tick=0.05, min_gap=0)
        cleaner.start()
        try:
            assert wait(lambda: cleaner.passes >= 1)
            assert pg_s3.count("runs") == 2  # nothing was deleted yet: the first pass purges nothing
            assert wait(lambda: not any(orphan in k for k in keys(s3)))  # ...but sweeps the orphan
            assert client.post(f"{api}/runs/delete", json={"run_id": run_ids[0]}).status_code == 200
            assert wait(lambda: pg_s3.count("runs", run_uuid=run_ids[0]) == 0)
        finally:
            cleaner.stop(timeout=60)
    left = keys(s3)
    assert not any(run_ids[0] in k for k in left)
    assert f"mlartifacts/{eid}/{run_ids[1]}/artifacts/model/weights.bin" in left
    assert pg_s3.count("params", run_uuid=run_ids[0]) == 0 and pg_s3.count("runs", run_uuid=run_ids[1]) == 1
    recorded = passes(pg_s3.url)
    assert sum(p["deleted"]["runs"] for p in recorded) == 1
    assert sum(p["deleted"]["orphans"] for p in recorded) == 1
    assert all(p["trigger"] == "background" and p["outcome"] == "ok" for p in recorded)


def test_a_failing_delete_is_retried_reported_and_finished_by_a_later_pass(pg_s3, s3):
    eid = pg_s3.experiment("e")
    good = pg_s3.runs(eid, 2, stage="deleted")
    bucket = f"gone-{uuid.uuid4().hex[:10]}"
    bad = uuid.uuid4().hex
    with pg_s3.engine.begin() as conn:
        conn.execute(schema.runs.insert().values(run_uuid=bad, experiment_id=int(eid), lifecycle_stage="deleted",
                                                 deleted_time=1, status="FINISHED",
                                                 artifact_uri=f"s3://{bucket}/exp/{bad}/artifacts"))
        conn.execute(schema.params.insert().values(key="k", value="v", run_uuid=bad))
    settings = pg_s3.settings().replace(default_artifact_root=f"s3://{bucket}/exp")  # a root gc owns

    report = batched_gc(settings, older_than="1d")

    assert report.deleted["runs"] == 2 and [f.id for f in report.failures] == [bad]
    assert "bucket" in report.failures[0].reason and "(after 3 attempts)" in report.failures[0].reason
    assert pg_s3.count("runs", run_uuid=bad) == 1 and pg_s3.count("params", run_uuid=bad) == 1
    assert pg_s3.count("runs", run_uuid=good) == 0
    [last] = passes(pg_s3.url)
    assert last["outcome"] == "partial" and last["failures"] == 1 and bad in last["errors"][0]

    s3.client().create_bucket(Bucket=bucket)  # the cause is fixed: the next pass finishes the job
    s3.client().put_object(Bucket=bucket, Key=f"exp/{bad}/artifacts/x.txt", Body=b"x")
    again = batched_gc(settings, older_than="1d")
    assert again.ok and again.deleted["runs"] == 1 and again.files == 1
    assert pg_s3.count("runs", run_uuid=bad) == 0
    assert passes(pg_s3.url)[0]["outcome"] == "ok"


def test_two_cleaners_on_one_postgresql_never_delete_the_same_run_twice(pg_s3, s3):
    eid = pg_s3.experiment("e")
    doomed = pg_s3.runs(eid, 120, stage="deleted", files=1)
    settings = pg_s3.settings()
    cleaners = [GcThread(settings, interval="1h", older_than="1d", tick=0.02, min_gap=0) for _ in range(2)]
    for cleaner in cleaners:
        cleaner.start()
    try:
        assert wait(lambda: pg_s3.count("runs") == 0 and all(c.passes >= 1 for c in cleaners))
    finally:
        for cleaner in cleaners:
            cleaner.stop(timeout=60)
    recorded = passes(pg_s3.url)
    # Each executed pass counts what it planned and deleted: a run purged by both would count twice.
    assert sum(p["deleted"]["runs"] for p in recorded) == len(doomed)
    assert all(p["outcome"] == "ok" and p["failures"] == 0 for p in recorded)
    assert not any(r in k for r in doomed for k in keys(s3))


MEASURE_PASS = textwrap.dedent("""
    import json, sys
    from trackops.config import Settings
    from trackops.services.gc_background import batched_gc
    report = batched_gc(Settings(backend_store_uri=sys.argv[1], artifacts_destination=sys.argv[2]), older_than="1d")
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"runs": report.deleted["runs"], "rows": report.rows, "peak_kb": peak_kb}))
""")


def _deleted_runs(url: str, n: int) -> None:
    """`n` deleted runs with a param and a tag each, in one experiment, by set-based SQL."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            eid = conn.execute(schema.experiments.insert().values(
                name="many", artifact_location="pending", lifecycle_stage="active")).inserted_primary_key[0]
            conn.execute(sa.text("UPDATE experiments SET artifact_location = 'mlflow-artifacts:/' || experiment_id "
                                 "WHERE experiment_id = :e"), {"e": eid})
            conn.execute(sa.text(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
                "SELECT printf('%032x', i), 'r', 'UNKNOWN', '', '', 'u', 'FINISHED', 0, 0, '', 'deleted', "
                "'mlflow-artifacts:/' || :e || '/' || printf('%032x', i) || '/artifacts', :e, 1000 FROM n"),
                {"last": n - 1, "e": eid})
            conn.execute(sa.text("INSERT INTO params (key, value, run_uuid) SELECT 'lr', '0.1', run_uuid FROM runs"))
            conn.execute(sa.text("INSERT INTO tags (key, value, run_uuid) SELECT 'mlflow.user', 'u', run_uuid FROM runs"))
    finally:
        engine.dispose()


def test_memory_of_a_pass_stays_flat_from_5k_to_50k_deleted_runs(tmp_path, _head_templates, tmp_path_factory):
    import shutil

    template = _head_db("sqlite", _head_templates, tmp_path, tmp_path_factory)
    peaks = {}
    for n in (5_000, 50_000):
        folder = tmp_path / str(n)
        folder.mkdir()
        url = f"sqlite:///{folder / 'mlflow.db'}"
        shutil.copyfile(sa.make_url(template).database, folder / "mlflow.db")
        _deleted_runs(url, n)
        out = subprocess.run([sys.executable, "-c", MEASURE_PASS, url, str(folder / "art")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["runs"] == n and result["rows"]["params"] == n and result["rows"]["tags"] == n
        peaks[n] = result["peak_kb"] / 1024
    # Planned whole, the items alone would take ~28 MB per 10,000 runs: 125 MB more at 50,000.
    assert peaks[50_000] - peaks[5_000] < 40, f"peak RSS {peaks}"
    print(f"peak RSS of a pass: {peaks[5_000]:.0f} MB at 5k, {peaks[50_000]:.0f} MB at 50k deleted runs")
