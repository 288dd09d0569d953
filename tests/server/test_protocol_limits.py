"""One regression test per class of client mistake that used to answer 5xx or was silently accepted."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from trackops.config import Settings
from trackops.server.factory import build_app
from trackops.services.serve import preflight, serve_config

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "mlartifacts"


@pytest.fixture
def client(sqlite_head_url, root):
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(root))
    preflight(settings)
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        yield c


def raw_post(client, path: str, text: str):
    return client.post(API + path, content=text.encode(), headers={"content-type": "application/json"})


def assert_400(r, fragment: str = ""):
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and fragment in body["message"]


@pytest.mark.parametrize("literal, shown, kind", [("NaN", "NaN", "float"), ("5", "5", "int"),
                                                  ("true", "true", "bool"), ("Infinity", "Infinity", "float")])
@pytest.mark.parametrize("route, listing, key", [
    ("/experiments/create", "/experiments/search?max_results=100", "experiments"),
    ("/registered-models/create", "/registered-models/search", "registered_models")])
def test_a_non_string_name_is_mlflows_400_and_creates_nothing(client, literal, shown, kind, route, listing, key):
    before = client.get(API + listing).json().get(key, [])
    r = raw_post(client, route, '{"name": %s}' % literal)
    assert_400(r, f"Invalid value {shown} for parameter 'name' supplied:  Hint: Value was of type '{kind}'.")
    assert client.get(API + listing).json().get(key, []) == before


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "18446744073709551615",
                                   '"' + "9" * 30 + '"'])
@pytest.mark.parametrize("field", ["max_results", "start_time"])
def test_integers_beyond_int64_are_400(client, field, value):
    route = "/experiments/search" if field == "max_results" else "/runs/create"
    assert_400(raw_post(client, route, '{"experiment_id": "0", "%s": %s}' % (field, value)), field)


def test_a_metric_timestamp_beyond_int64_is_400(client):
    run = client.post(API + "/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    body = '{"run_id": "%s", "key": "m", "value": 1, "timestamp": 9223372036854775808}' % run
    assert_400(raw_post(client, "/runs/log-metric", body), "timestamp")


def test_deeply_nested_json_is_400(client):
    assert_400(raw_post(client, "/runs/search", '{"filter": ' + "[" * 50_000 + "]" * 50_000 + "}"),
               "nested deeper than")
    assert_400(raw_post(client, "/runs/search", '{"order_by": ' + "[" * 150 + "]" * 150 + "}"), "nested deeper than")


@pytest.mark.parametrize("name", ["a\\u0000b", "\\ud800"])
def test_nul_bytes_and_lone_surrogates_in_names_are_400(client, name):
    assert_400(raw_post(client, "/experiments/create", '{"name": "%s"}' % name), "parameter 'name'")


def test_garbage_page_token_is_400(client):
    assert_400(client.get(API + "/experiments/search", params={"page_token": "not-a-token"}), "page token")


def test_a_boolean_where_a_string_belongs_is_400(client):
    assert_400(raw_post(client, "/experiments/search", '{"filter": true}'), "parameter 'filter'")


def test_a_long_artifact_name_is_400_not_enametoolong(client):
    for method in ("PUT", "GET", "DELETE"):
        r = client.request(method, f"{ART}/artifacts/1/{'n' * 300}.txt", content=b"x")
        assert_400(r, "longer than 255 bytes")


def test_a_missing_artifact_is_404_naming_what_was_asked_not_the_root(client, root):
    r = client.get(f"{ART}/artifacts/1/nope.txt")
    assert r.status_code == 404
    assert "1/nope.txt" in r.json()["message"] and str(root) not in r.text and "file://" not in r.text


def test_multipart_routes_check_their_parameters_before_answering_unsupported(client):
    assert_400(client.post(f"{ART}/mpu/create/1", json={"path": "a.txt", "num_parts": 0}), "num_parts")
    assert_400(client.post(f"{ART}/mpu/create/1", json={"path": 5}), "parameter 'path'")
    assert_400(client.post(f"{ART}/mpu/complete/1", json={"path": "a.txt", "upload_id": "u", "parts": [5]}), "parts")
    assert_400(client.post(f"{ART}/mpu/abort/1", json={"path": "a.txt"}), "upload_id")
    r = client.post(f"{ART}/mpu/create/1", json={"path": "a.txt", "num_parts": 2})
    assert r.status_code == 501 and "Multipart upload is not supported" in r.json()["message"]


def test_nan_and_strings_still_work_where_mlflow_takes_them(client):
    run = client.post(API + "/runs/create", json={"experiment_id": "0", "start_time": "1000"})
    assert run.status_code == 200
    run_id = run.json()["run"]["info"]["run_id"]
    body = json.dumps({"run_id": run_id, "key": "m", "value": "NaN", "timestamp": "5", "step": "1"})
    assert raw_post(client, "/runs/log-metric", body).status_code == 200


@pytest.mark.parametrize("experiment_id", ["9223372036854775808", "-9223372036854775809", "1" * 30])
def test_an_experiment_id_beyond_int64_is_404_not_500(client, experiment_id):
    r = client.get(API + "/experiments/get", params={"experiment_id": experiment_id})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text


def test_a_page_token_with_an_offset_beyond_int64_is_400(client):
    token = "eyJvZmZzZXQiOiA5OTk5OTk5OTk5OTk5OTk5OTk5OTl9"  # {"offset": 9999999999999999999999}
    assert_400(client.get(API + "/experiments/search", params={"page_token": token}), "page token")


@pytest.mark.parametrize("route", [API + "/model-versions/get", API + "/model-versions/get-download-uri",
                                   "/model-versions/get-artifact"])
def test_a_model_version_beyond_int64_is_400_not_500(client, route):
    client.post(API + "/registered-models/create", json={"name": "big-version"})
    r = client.get(route, params={"name": "big-version", "version": "9223372036854775808", "path": "a"})
    assert_400(r, "must be a 64-bit integer")
