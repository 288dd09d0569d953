"""trackops' upgrades against the real MLflow 3.17.2: its server, its schemas, and databases old releases wrote."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import MYSQL_ADMIN_URL, POSTGRES_ADMIN_URL, create_server_database, drop_server_database
from tests.db.oracle import mlflow_upgrade, revision_of, snapshot_of
from trackops.config import Settings
from trackops.db import revisions
from trackops.db.introspect import diff
from trackops.services import migrate

pytestmark = pytest.mark.compat

from tests.conftest import FIXTURES
ADMIN_URLS = {"postgres_url": POSTGRES_ADMIN_URL, "mysql_url": MYSQL_ADMIN_URL}


def trackops_upgrade(url: str, to: str | None = None) -> migrate.UpgradeReport:
    return migrate.upgrade(Settings(backend_store_uri=url), to=to)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("mlflow server did not answer /health in time")


def test_mlflow_server_serves_a_run_on_a_database_trackops_migrated(tmp_path):
    from mlflow.tracking import MlflowClient

    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trackops_upgrade(url)
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow = Path(sys.executable).parent / "mlflow"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", url, "--artifacts-destination", str(tmp_path / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, proc)
        client = MlflowClient(tracking_uri=base)
        experiment_id = client.create_experiment("interop")
        run = client.create_run(experiment_id, run_name="from-trackops-schema")
        client.log_param(run.info.run_id, "alpha", "0.5")
        client.log_metric(run.info.run_id, "loss", 0.25, step=3)
        client.set_terminated(run.info.run_id)
        back = client.get_run(run.info.run_id)
        assert back.data.params == {"alpha": "0.5"}
        assert back.data.metrics == {"loss": 0.25}
        assert back.info.status == "FINISHED" and back.info.run_name == "from-trackops-schema"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert revision_of(url) == revisions.HEAD


@pytest.fixture(params=["sqlite_url", "postgres_url", "mysql_url"])
def two_databases(request, tmp_path):
    """Two fresh empty databases of one dialect: one for MLflow's reference, one to upgrade."""
    first = request.getfixturevalue(request.param)
    if request.param == "sqlite_url":
        yield first, f"sqlite:///{tmp_path / 'reference.db'}"
        return
    admin = ADMIN_URLS[request.param]
    second = create_server_database(admin)
    try:
        yield first, second
    finally:
        drop_server_database(admin, second)


@pytest.mark.parametrize("stopped_at", ["97727af70f4d", "0584bdc529eb"])
def test_a_database_mlflow_left_behind_upgrades_to_mlflows_head_schema(two_databases, stopped_at):
    url, reference = two_databases
    mlflow_upgrade(url, stopped_at)
    assert revision_of(url) == stopped_at
    report = trackops_upgrade(url)
    assert report.plan.current == stopped_at and revision_of(url) == revisions.HEAD
    mlflow_upgrade(reference, "heads")
    assert diff(snapshot_of(reference), snapshot_of(url)) == []


@pytest.mark.parametrize("version", ["1.30.1", "2.12.2", "2.22.5"])
def test_fixture_databases_upgrade_to_head_and_keep_their_rows(tmp_path, version):
    folder = FIXTURES / f"mlflow-{version}"
    manifest = json.loads((folder / "manifest.json").read_text())
    path, mlflows = tmp_path / "mlflow.db", tmp_path / "by-mlflow.db"
    shutil.copyfile(folder / "mlflow.db", path)
    shutil.copyfile(folder / "mlflow.db", mlflows)
    url, reference = f"sqlite:///{path}", f"sqlite:///{mlflows}"
    assert revision_of(url) == manifest["alembic_revision"]

    trackops_upgrade(url)
    mlflow_upgrade(reference, "heads")

    assert revision_of(url) == revisions.HEAD
    counts, by_mlflow = row_counts(url, manifest["row_counts"]), row_counts(reference, manifest["row_counts"])
    # The same rows as MLflow's own upgrade of the same file, and every row the fixture had, except where
    # MLflow's migrations themselves move data (2.22.5's mlflow.traceName tag becomes a column).
    assert counts == by_mlflow
    moved_by_mlflow = {t for t, n in by_mlflow.items() if n != manifest["row_counts"][t]}
    assert moved_by_mlflow <= {"trace_tags"}
    assert {t: n for t, n in counts.items() if t not in moved_by_mlflow} == \
        {t: n for t, n in manifest["row_counts"].items() if t not in moved_by_mlflow}
    assert row_counts(url, ["experiments WHERE workspace = 'default'"]) == {
        "experiments WHERE workspace = 'default'": manifest["row_counts"]["experiments"]}
    assert diff(snapshot_of(reference), snapshot_of(url)) == []


def row_counts(url: str, tables) -> dict[str, int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
            return counts
    finally:
        engine.dispose()
