"""The REST endpoints in-process on SQLite: shapes as MLflow 3.17.2 writes them, request forms, errors."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.testclient import TestClient

from trackops.server.factory import build_app
from trackops.services.serve import preflight, serve_config
from trackops.config import Settings

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def settings(sqlite_head_url, tmp_path):
    return Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "mlartifacts"))


@pytest.fixture
def client(settings):
    preflight(settings)
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        yield c


def post(client, path, body):
    return client.post(API + path, json=body)


def new_run(client, experiment_id="0", **extra):
    r = post(client, "/runs/create", {"experiment_id": experiment_id, "start_time": 1000, **extra})
    assert r.status_code == 200, r.text
    return r.json()["run"]["info"]["run_id"]


def test_default_experiment_exists_with_proxied_location_and_workspace(client):
    body = client.get(API + "/experiments/get", params={"experiment_id": "0"}).json()
    assert body == {"experiment": {"experiment_id": "0", "name": "Default", "artifact_location": "mlflow-artifacts:/0",
                                   "lifecycle_stage": "active", "last_update_time": body["experiment"]["last_update_time"],
                                   "creation_time": body["experiment"]["creation_time"], "workspace": "default"}}
    assert isinstance(body["experiment"]["creation_time"], int)


def test_new_run_has_mlflow_shape_with_empty_lists_omitted(client):
    run = post(client, "/runs/create", {"experiment_id": "0", "start_time": "1000", "run_name": "r"}).json()["run"]
    info = run["info"]
    assert info["run_uuid"] == info["run_id"] and info["user_id"] == "" and info["status"] == "RUNNING"
    assert info["start_time"] == 1000 and "end_time" not in info
    assert info["artifact_uri"] == f"mlflow-artifacts:/0/{info['run_id']}/artifacts"
    assert "metrics" not in run["data"] and "params" not in run["data"]
    assert run["data"]["tags"] == [{"key": "mlflow.runName", "value": "r"}]
    assert run["inputs"] == {} and "outputs" not in run  # as MLflow answers runs/create


def test_metrics_accept_strings_nan_and_infinity_and_come_back_as_mlflow_writes_them(client):
    run_id = new_run(client)
    for value, step in (("NaN", "1"), ("Infinity", 2), ("-Infinity", 3), ("1.5", 4)):
        r = post(client, "/runs/log-metric", {"run_uuid": run_id, "key": "m", "value": value, "timestamp": "5",
                                              "step": step})
        assert r.status_code == 200 and r.json() == {}
    history = client.get(API + "/metrics/get-history", params={"run_id": run_id, "run_uuid": run_id,
                                                               "metric_key": "m", "max_results": 25000}).json()
    values = [m["value"] for m in history["metrics"]]
    assert values[0] == "NaN" and values[3] == 1.5
    assert all(isinstance(m["timestamp"], int) and isinstance(m["step"], int) for m in history["metrics"])
    assert "next_page_token" not in history


def test_log_batch_and_bulk_interval_with_repeated_query_keys(client):
    a, b = new_run(client), new_run(client)
    for run_id in (a, b):
        r = post(client, "/runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "1"}],
                                             "tags": [{"key": "t", "value": "v"}],
                                             "metrics": [{"key": "loss", "value": i, "timestamp": i, "step": i}
                                                         for i in range(998)]})
        assert r.status_code == 200, r.text
    r = client.get(f"{API}/metrics/get-history-bulk-interval?run_ids={a}&run_ids={b}&metric_key=loss&max_results=10")
    points = r.json()["metrics"]
    assert {p["run_id"] for p in points} == {a, b}
    assert [p["step"] for p in points if p["run_id"] == a][0] == 0 and [p["step"] for p in points if p["run_id"] == a][-1] == 997
    run = client.get(API + "/runs/get", params={"run_id": a}).json()["run"]
    assert run["data"]["metrics"] == [{"key": "loss", "value": 997.0, "timestamp": 997, "step": 997}]


def test_search_runs_pages_with_mlflow_tokens_and_empty_search_is_empty_object(client):
    for i in range(3):
        run_id = new_run(client)
        post(client, "/runs/log-metric", {"run_id": run_id, "key": "score", "value": i, "timestamp": 1})
    first = post(client, "/runs/search", {"experiment_ids": ["0"], "filter": "metrics.score >= 1",
                                          "order_by": ["metrics.score DESC"], "max_results": 1}).json()
    assert [r["data"]["metrics"][0]["value"] for r in first["runs"]] == [2]
    assert json.loads(base64.b64decode(first["next_page_token"])) == {"offset": 1}
    second = post(client, "/runs/search", {"experiment_ids": ["0"], "filter": "metrics.score >= 1",
                                           "order_by": ["metrics.score DESC"], "max_results": 1,
                                           "page_token": first["next_page_token"]}).json()
    assert [r["data"]["metrics"][0]["value"] for r in second["runs"]] == [1] and "next_page_token" not in second
    assert post(client, "/runs/search", {"experiment_ids": ["0"], "filter": "metrics.score > 9"}).json() == {}


def test_search_experiments_by_get_and_post(client):
    post(client, "/experiments/create", {"name": "exp-a"})
    by_get = client.get(API + "/experiments/search", params={"filter": "name = 'exp-a'", "max_results": 10}).json()
    by_post = post(client, "/experiments/search", {"filter": "name = 'exp-a'", "max_results": 10}).json()
    assert by_get == by_post and [e["name"] for e in by_get["experiments"]] == ["exp-a"]


@pytest.mark.parametrize("path, body, status, code, fragment", [
    ("/runs/get?run_id=" + "0" * 32, None, 404, "RESOURCE_DOES_NOT_EXIST", "not found"),
    ("/runs/log-metric", {"run_id": "x", "key": "m", "value": "abc", "timestamp": 1}, 400, "INVALID_PARAMETER_VALUE",
     "Invalid value \"abc\" for parameter 'value' supplied:  Hint: Value was of type 'str'"),
    ("/runs/log-metric", {"run_id": "x", "key": "m", "value": 1}, 400, "INVALID_PARAMETER_VALUE", "'timestamp'"),
    ("/experiments/create", {}, 400, "INVALID_PARAMETER_VALUE", "'name'"),
    ("/experiments/get?experiment_id=abc", None, 400, "INVALID_PARAMETER_VALUE", ""),
    ("/experiments/get-by-name?experiment_name=nope", None, 404, "RESOURCE_DOES_NOT_EXIST", "nope"),
])
def test_errors_are_mlflow_json_with_mlflow_status(client, path, body, status, code, fragment):
    r = client.get(API + path) if body is None else post(client, path, body)
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code and fragment in r.json()["message"]


def test_duplicate_experiment_is_already_exists_without_sql(client):
    assert post(client, "/experiments/create", {"name": "dup"}).status_code == 200
    r = post(client, "/experiments/create", {"name": "dup"})
    assert r.status_code == 400 and r.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert "INSERT" not in r.text and "SELECT" not in r.text


def test_malformed_json_wrong_type_unknown_route_wrong_method_are_4xx_json(client):
    r = client.post(API + "/runs/create", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "Malformed JSON" in r.json()["message"]
    r = client.post(API + "/runs/create", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "Content-Type" in r.json()["message"]
    assert client.get(API + "/runs/nothing").status_code == 404
    r = client.get(API + "/runs/create")
    assert r.status_code == 405 and r.json()["error_code"] == "BAD_REQUEST"


def test_missing_alias_is_invalid_parameter_value(client):
    post(client, "/registered-models/create", {"name": "m"})
    r = client.get(API + "/registered-models/alias", params={"name": "m", "alias": "nope"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_registry_shapes_versions_as_strings_and_aliases(client):
    run_id = new_run(client)
    post(client, "/registered-models/create", {"name": "m", "tags": [{"key": "k", "value": "v"}]})
    for _ in range(2):
        r = post(client, "/model-versions/create", {"name": "m", "source": f"mlflow-artifacts:/0/{run_id}/artifacts/model",
                                                    "run_id": run_id})
        assert r.status_code == 200, r.text
    version = r.json()["model_version"]
    assert version["version"] == "2" and version["current_stage"] == "None" and version["status"] == "READY"
    assert version["description"] == "" and version["run_link"] == ""
    post(client, "/registered-models/alias", {"name": "m", "alias": "champion", "version": "2"})
    model = client.get(API + "/registered-models/get", params={"name": "m"}).json()["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "2"}]
    by_alias = client.get(API + "/registered-models/alias", params={"name": "m", "alias": "champion"}).json()
    assert by_alias["model_version"]["aliases"] == ["champion"]
    r = post(client, "/model-versions/transition-stage", {"name": "m", "version": "1", "stage": "production",
                                                         "archive_existing_versions": False})
    assert r.json()["model_version"]["current_stage"] == "Production"
    found = client.get(API + "/registered-models/search",
                       params={"filter": "name = 'm' AND tag.`mlflow.prompt.is_prompt` != 'true'"}).json()
    assert [m["name"] for m in found["registered_models"]] == ["m"]
    r = client.get(API + "/model-versions/search", params={"filter": f"run_id = '{run_id}'", "max_results": 10000})
    assert sorted(v["version"] for v in r.json()["model_versions"]) == ["1", "2"]


def test_artifacts_upload_download_list_and_delete(client):
    run_id = new_run(client)
    root = f"0/{run_id}/artifacts"
    assert client.put(f"{ART}/{root}/dir/a.txt", content=b"hello").json() == {}
    assert client.put(f"{ART}/{root}/top.bin", content=b"\x00" * 10).status_code == 200
    r = client.get(f"{ART}/{root}/dir/a.txt")
    assert r.status_code == 200 and r.content == b"hello"
    listed = client.get(ART, params={"path": root}).json()["files"]
    assert listed == [{"path": "dir", "is_dir": True}, {"path": "top.bin", "is_dir": False, "file_size": 10}]
    run_list = client.get(API + "/artifacts/list", params={"run_id": run_id, "path": "dir"}).json()
    assert run_list == {"root_uri": f"mlflow-artifacts:/{root}",
                        "files": [{"path": "dir/a.txt", "is_dir": False, "file_size": 5}]}
    assert client.delete(f"{ART}/{root}/dir").json() == {}
    assert client.get(f"{ART}/{root}/dir/a.txt").status_code == 404
    assert client.get(ART, params={"path": f"{root}/nothing"}).json() == {}


@pytest.mark.parametrize("path", ["0/..%2F..%2Fetc/passwd", "0/a/%2e%2e/%2e%2e/b", "0/a%00b"])
def test_bad_artifact_paths_are_400_invalid_path(client, path):
    r = client.get(f"{ART}/{path}")
    assert r.status_code == 400 and r.json()["message"].startswith("Invalid path")
    r = client.put(f"{ART}/{path}", content=b"x")
    assert r.status_code == 400


def test_multipart_on_a_local_destination_tells_the_client_to_fall_back(client):
    r = client.post("/api/2.0/mlflow-artifacts/mpu/create/0/x", json={"path": "/tmp/big.bin", "num_parts": 2})
    assert r.status_code == 501
    assert r.json()["message"].startswith("Multipart upload is not supported for the current artifact repository")


def test_server_info_probes_and_metrics(client):
    info = client.get("/api/3.0/mlflow/server-info").json()
    assert info["store_type"] == "SqlStore" and info["workspaces_enabled"] is False
    assert client.get("/ready").json() == {"database": "ok", "schema": "ok", "artifacts": "ok", "ok": True}
    new_run(client)
    text = client.get("/metrics").text
    assert 'route="/api/2.0/mlflow/runs/create",status="200"} 1' in text
    assert "trackops_db_pool_connections" in text


def test_no_serve_artifacts_gives_local_locations_and_refuses_proxying(sqlite_head_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "unused"))
    preflight(settings, serve_artifacts=False)
    with TestClient(build_app(serve_config(settings, serve_artifacts=False)), raise_server_exceptions=False) as c:
        eid = c.post(API + "/experiments/create", json={"name": "x"}).json()["experiment_id"]
        location = c.get(API + "/experiments/get", params={"experiment_id": eid}).json()["experiment"]["artifact_location"]
        assert location == f"{(tmp_path / 'mlruns').as_posix()}/{eid}"
        r = c.put(f"{ART}/1/a.txt", content=b"x")
        assert r.status_code == 503 and "--no-serve-artifacts" in r.json()["message"]


def test_responses_never_hold_bare_nan_or_infinity(client):
    run_id = new_run(client)
    post(client, "/runs/log-metric", {"run_id": run_id, "key": "inf", "value": "Infinity", "timestamp": 1})
    post(client, "/runs/log-metric", {"run_id": run_id, "key": "nan", "value": "NaN", "timestamp": 1})
    text = client.get(API + "/runs/get", params={"run_id": run_id}).text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))


def test_ready_names_the_failing_check_when_the_database_is_unreachable(tmp_path):
    from trackops.artifacts import repository_for
    from trackops.db.engine import create_engine
    from trackops.services.serve import readiness

    engine = create_engine("postgresql://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    checks = readiness(engine, repository_for(str(tmp_path / "art")))
    assert checks["ok"] is False and checks["database"].startswith("unreachable")
    assert checks["artifacts"] == "ok"


def test_history_of_an_unknown_run_is_empty_and_bulk_history_tags_each_point_with_its_run(client):
    assert client.get(API + "/metrics/get-history", params={"run_id": "0" * 32, "metric_key": "m"}).json() == {}
    a, b = new_run(client), new_run(client)
    for run_id in (a, b):
        post(client, "/runs/log-batch", {"run_id": run_id, "metrics": [{"key": "m", "value": i, "timestamp": i, "step": i}
                                                                       for i in range(3)]})
    r = client.get(f"/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={a}&run_id={b}&metric_key=m")
    points = r.json()["metrics"]
    assert len(points) == 6 and {p["run_id"] for p in points} == {a, b}
    assert client.get(API + "/metrics/get-history", params={"run_id": a, "metric_key": "m",
                                                            "max_results": 0}).status_code == 400


def test_logged_model_lifecycle_and_its_artifact_listing(client):
    run_id = new_run(client)
    model = post(client, "/logged-models", {"experiment_id": "0", "name": "lm", "source_run_id": run_id,
                                            "params": [{"key": "alpha", "value": "1"}]}).json()["model"]
    info = model["info"]
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["model_type"] == ""
    assert info["artifact_uri"] == f"mlflow-artifacts:/0/models/{info['model_id']}/artifacts"
    mid = info["model_id"]
    client.put(f"{ART}/0/models/{mid}/artifacts/MLmodel", content=b"flavors: {}")
    r = client.patch(f"{API}/logged-models/{mid}", json={"model_id": mid, "status": "LOGGED_MODEL_READY"})
    assert r.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert client.patch(f"{API}/logged-models/{mid}/tags", json={"tags": [{"key": "k", "value": "v"}]}).json() == {}
    listed = client.get(f"{API}/logged-models/{mid}/artifacts/directories").json()
    assert listed["files"] == [{"path": "MLmodel", "is_dir": False, "file_size": 11}]
    found = post(client, "/logged-models/search", {"experiment_ids": ["0"], "filter": "name = 'lm'"}).json()
    assert [m["info"]["model_id"] for m in found["models"]] == [mid]
    assert found["models"][0]["info"]["tags"] == [{"key": "k", "value": "v"}]
    assert client.delete(f"{API}/logged-models/{mid}/tags/k").json() == {}
    assert client.delete(f"{API}/logged-models/{mid}").json() == {}
    assert client.get(f"{API}/logged-models/{mid}").status_code == 404


def test_log_batch_metric_with_a_model_id_and_no_step_is_logged_to_the_model(client):
    run_id = new_run(client)
    mid = post(client, "/logged-models", {"experiment_id": "0", "name": "lm", "source_run_id": run_id}).json()[
        "model"]["info"]["model_id"]
    r = post(client, "/runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "loss", "value": 1, "timestamp": 5, "step": 1},
        {"key": "acc", "value": 0.9, "timestamp": 5, "model_id": mid}]})  # four fields, one of them the model id
    assert r.status_code == 200, r.text
    model = client.get(f"{API}/logged-models/{mid}").json()["model"]
    assert [(m["key"], m["value"], m.get("model_id")) for m in model["data"]["metrics"]] == [("acc", 0.9, mid)]
