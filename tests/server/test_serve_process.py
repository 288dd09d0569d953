"""`trackops serve` as a process and its preflight: fresh machine, behind head, unknown revision,
streamed uploads with bounded memory, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import sqlalchemy as sa

from tests.compat.server import ServerProcess
from trackops.config import Settings
from trackops.db import revisions
from trackops.db.engine import create_engine
from trackops.errors import CheckFailedError
from trackops.services.serve import preflight

OLD_REVISION = "0584bdc529eb"  # MLflow 2.22's head


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _database_at(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            revisions.upgrade(conn, revision)
    finally:
        engine.dispose()


def test_serve_without_arguments_creates_the_database_at_head_with_the_default_experiment(tmp_path):
    server = ServerProcess([], tmp_path)
    try:
        body = _get_json(server.url + "/api/2.0/mlflow/experiments/get?experiment_id=0")
        assert body["experiment"]["name"] == "Default"
        assert body["experiment"]["artifact_location"] == "mlflow-artifacts:/0"
        assert _get_json(server.url + "/ready")["ok"] is True
        assert _get_json(server.url + "/version")["mlflow_compatible"] == "3.17.2"
    finally:
        server.stop()
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlartifacts").is_dir()
    assert "Created the database" in server.output()


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def test_normal_sqlite_commits_keep_what_was_logged_across_a_restart(tmp_path):
    server = ServerProcess(["--sqlite-synchronous", "normal"], tmp_path)
    try:
        api = server.url + "/api/2.0/mlflow"
        run_id = _post_json(api + "/runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
        _post_json(api + "/runs/log-metric", {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 3})
    finally:
        server.stop()
    server = ServerProcess([], tmp_path)  # full again: the file is the same WAL database
    try:
        history = _get_json(server.url + f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss")
        assert [(m["value"], m["step"]) for m in history["metrics"]] == [(0.5, 3)]
    finally:
        server.stop()


def test_a_database_behind_head_is_refused_with_the_upgrade_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _database_at(url, OLD_REVISION)
    result = subprocess.run([sys.executable, "-m", "trackops", "serve", "--backend-store-uri", url, "--port", "0"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 4, result.stderr
    assert OLD_REVISION in result.stderr and f"trackops db upgrade --backend-store-uri {url}" in result.stderr
    engine = create_engine(url)
    with engine.connect() as conn:
        assert revisions.current_revision(conn) == OLD_REVISION  # untouched
    engine.dispose()


def test_upgrade_flag_upgrades_a_database_behind_head_then_serves(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _database_at(url, OLD_REVISION)
    report = preflight(Settings(backend_store_uri=url, artifacts_destination=str(tmp_path / "a")), upgrade=True)
    assert report.upgraded_from == OLD_REVISION and report.revision == revisions.HEAD
    assert report.default_experiment_created


def test_preflight_warns_when_postgresql_runs_without_autovacuum(postgres_url, tmp_path):
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    engine.dispose()
    report = preflight(Settings(backend_store_uri=postgres_url, artifacts_destination=str(tmp_path / "a")))
    warned = [w for w in report.warnings if "autovacuum is off" in w]
    assert len(warned) == (1 if autovacuum == "off" else 0)
    sqlite = preflight(Settings(backend_store_uri=f"sqlite:///{tmp_path / 'w.db'}",
                                artifacts_destination=str(tmp_path / "a")))
    assert sqlite.warnings == ()


def test_an_unknown_revision_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    _database_at(url, "heads")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'fedcba987654'"))
    engine.dispose()
    with pytest.raises(CheckFailedError, match="fedcba987654"):
        preflight(Settings(backend_store_uri=url, artifacts_destination=str(tmp_path / "a")), upgrade=True)


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_large_upload_and_download_stream_with_bounded_server_memory(tmp_path):
    import httpx

    size, chunk = 512 * 1024 * 1024, b"\x5a" * (1024 * 1024)
    server = ServerProcess([], tmp_path)
    try:
        url = server.url + "/api/2.0/mlflow-artifacts/artifacts/0/big/artifacts/big.bin"
        before = _peak_rss_kib(server.proc.pid)

        def body():
            for _ in range(size // len(chunk)):
                yield chunk

        with httpx.Client(timeout=300) as client:
            assert client.put(url, content=body()).status_code == 200
            received = 0
            with client.stream("GET", url) as r:
                for part in r.iter_bytes():
                    received += len(part)
        grown_mib = (_peak_rss_kib(server.proc.pid) - before) / 1024
    finally:
        server.stop()
    assert received == size
    assert (tmp_path / "mlartifacts" / "0" / "big" / "artifacts" / "big.bin").stat().st_size == size
    assert grown_mib < 100, f"server peak memory grew by {grown_mib:.0f} MiB for a {size >> 20} MiB upload"


def test_sigterm_lets_an_in_flight_upload_finish(tmp_path):
    import httpx

    server = ServerProcess([], tmp_path)
    started, result = threading.Event(), {}

    def body():
        yield b"a" * 1024
        started.set()
        for _ in range(10):
            time.sleep(0.1)
            yield b"b" * 1024

    def upload():
        with httpx.Client(timeout=60) as client:
            result["status"] = client.put(server.url + "/api/2.0/mlflow-artifacts/artifacts/0/x/slow.bin",
                                          content=body()).status_code

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(30)
    time.sleep(0.2)
    server.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    code = server.proc.wait(timeout=60)
    assert result.get("status") == 200
    assert code in (0, -signal.SIGTERM)
    assert (tmp_path / "mlartifacts" / "0" / "x" / "slow.bin").stat().st_size == 11 * 1024


def test_several_workers_share_one_port_and_stop_together_on_sigterm(tmp_path):
    server = ServerProcess(["--workers", "2"], tmp_path)
    try:
        workers = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
        ids = set()
        for i in range(6):
            req = urllib.request.Request(server.url + "/api/2.0/mlflow/experiments/create", method="POST",
                                         data=json.dumps({"name": f"w{i}"}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                ids.add(json.loads(r.read())["experiment_id"])
    finally:
        code = server.stop()
    assert len(ids) == 6
    assert code in (0, -signal.SIGTERM), server.output()
    assert len(workers) >= 2  # the supervisor's worker processes (and its resource tracker)
    # The resource tracker leaves once the supervisor's pipe closes, a moment after the supervisor:
    # allow it a bounded grace period, but every child must be gone by then.
    alive = set(workers)
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.1)
    assert not alive, f"processes still running after the server stopped: {sorted(alive)}"


def _running(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except OSError:
        return False


def test_access_log_has_one_line_per_request_without_query_or_credentials(tmp_path):
    server = ServerProcess([], tmp_path)
    try:
        request = urllib.request.Request(server.url + "/api/2.0/mlflow/experiments/get?experiment_id=0&token=s3cr3t",
                                         headers={"Authorization": "Bearer not-logged-token"})
        _get_json_request(request)
    finally:
        server.stop()
    lines = [line for line in server.output().splitlines() if "/api/2.0/mlflow/experiments/get" in line]
    assert len(lines) == 1
    assert '"GET /api/2.0/mlflow/experiments/get" 200 - ' in lines[0] and lines[0].endswith("ms")
    assert "s3cr3t" not in server.output() and "not-logged-token" not in server.output()


def test_no_access_log_turns_the_request_lines_off(tmp_path):
    server = ServerProcess(["--no-access-log"], tmp_path)
    try:
        _get_json(server.url + "/api/2.0/mlflow/experiments/get?experiment_id=0")
    finally:
        server.stop()
    assert "/api/2.0/mlflow/experiments/get" not in server.output()


def _get_json_request(request: urllib.request.Request) -> dict:
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())
