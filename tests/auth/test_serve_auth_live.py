"""A real `trackops serve --auth --workers 2`: the mlflow client with a password or a token, and changes
made by another process (password, grant, user) reaching every worker within one second."""

from __future__ import annotations

import base64
import concurrent.futures
import time
import urllib.error
import urllib.request

import pytest

from tests.compat.server import ServerProcess
from trackops.auth.users import AuthStore
from trackops.db.engine import create_engine

ADMIN_PW = "admin-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("authserve")
    url = f"sqlite:///{root / 'mlflow.db'}"
    env = {"TRACKOPS_ADMIN_USERNAME": "root", "TRACKOPS_ADMIN_PASSWORD": ADMIN_PW,
           "TRACKOPS_BACKEND_STORE_URI": url}
    proc = ServerProcess(["--auth", "--workers", "2"], cwd=root, env=env)
    engine = create_engine(url)
    try:
        yield proc, AuthStore(engine)
    finally:
        engine.dispose()
        proc.stop()
    log = proc.output()
    assert ADMIN_PW not in log and "password-" not in log


def call(base: str, path: str, user: str, password: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(base + path, data=body, method="POST" if body is not None else "GET",
                                     headers={"Authorization": "Basic " + base64.b64encode(
                                         f"{user}:{password}".encode()).decode(),
                                              "Content-Type": "application/json", "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def many(base, path, user, password, body=None, n=16) -> set[int]:
    """n requests on fresh connections from 8 threads, so both workers answer some."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return set(pool.map(lambda _: call(base, path, user, password, body), range(n)))


GET = "/api/2.0/mlflow/experiments/get?experiment_id=0"
TAG = "/api/2.0/mlflow/experiments/set-experiment-tag"


def test_changes_reach_every_worker_within_a_second(server):
    proc, store = server
    store.create_user("bob", "bob-password-1")
    assert many(proc.url, GET, "bob", "bob-password-1") == {200}  # now cached on both workers

    store.set_password("bob", "bob-password-2")
    time.sleep(1.0)
    assert many(proc.url, GET, "bob", "bob-password-1", n=6) == {401}  # below the failed-login limit
    assert many(proc.url, GET, "bob", "bob-password-2") == {200}

    body = b'{"experiment_id": "0", "key": "k", "value": "v"}'
    store.grant("bob", "experiment", "0", "EDIT")
    time.sleep(1.0)
    assert many(proc.url, TAG, "bob", "bob-password-2", body) == {200}
    store.revoke("bob", "experiment", "0")
    time.sleep(1.0)
    assert many(proc.url, TAG, "bob", "bob-password-2", body) == {403}

    store.delete_user("bob")
    time.sleep(1.0)
    assert many(proc.url, GET, "bob", "bob-password-2", n=6) == {401}  # each costs a full hash: unknown user


def test_mlflow_client_authenticates_with_password_and_with_token(server, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    proc, store = server
    store.create_user("carol", "carol-password-1")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "carol")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "carol-password-1")
    client = MlflowClient(tracking_uri=proc.url)
    exp = client.create_experiment("carols")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.0)
    assert [e.name for e in client.search_experiments(filter_string="name = 'carols'")] == ["carols"]

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    _, token = store.create_token("carol", "ci")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    client.delete_experiment(exp)  # carol created it: MANAGE

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token + "x")
    with pytest.raises(MlflowException) as err:
        MlflowClient(tracking_uri=proc.url).get_experiment("0")
    assert "UNAUTHENTICATED" in str(err.value) or "401" in str(err.value)


def test_the_whole_mlflow_client_workflow_runs_as_a_non_admin_user(server, tmp_path, monkeypatch):
    """Experiments, runs, artifacts, logged models and the registry: creators get MANAGE on what they make."""
    import mlflow

    from tests.compat.test_mlflow_client import _workflow

    proc, store = server
    store.create_user("dora", "dora-password-1")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "dora")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "dora-password-1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proc.url)
    mlflow.set_tracking_uri(proc.url)
    _workflow(tmp_path, tag="auth")
    grants = {(g.kind, g.permission) for g in store.list_grants("dora")}
    assert grants == {("experiment", "MANAGE"), ("registered_model", "MANAGE")}


def test_access_log_names_the_user_and_never_the_password(server):
    proc, _store = server
    assert call(proc.url, "/api/2.0/mlflow/experiments/get?experiment_id=0", "root", ADMIN_PW) == 200
    assert call(proc.url, "/api/2.0/mlflow/experiments/get?experiment_id=0", "root", "wrong-password-9") == 401
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and '"GET /api/2.0/mlflow/experiments/get" 401' not in proc.output():
        time.sleep(0.05)
    log = proc.output()
    assert '"GET /api/2.0/mlflow/experiments/get" 200 root ' in log
    assert '"GET /api/2.0/mlflow/experiments/get" 401 - ' in log
    assert "wrong-password-9" not in log
