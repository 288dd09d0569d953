"""The HTTP layer alone: parameter reading, error JSON, probes, limits — with a stand-in route table."""

import json

import pytest
from starlette.testclient import TestClient

from trackops.errors import ResourceDoesNotExist
from trackops.server.app import ServerContext, create_app
from trackops.server.protocol import metric_value
from trackops.server.routing import Access, Resource, Route, collect
from trackops.config import Settings


def echo(ctx, params, path):
    return {"run_id": params.first_str("run_id", "run_uuid", required=True),
            "step": params.int64("step", default=0), "ids": params.list("experiment_ids"),
            "value": metric_value(params.raw("value", 0))}


def missing(ctx, params, path):
    raise ResourceDoesNotExist(f"Run with id={path['run_id']} not found")


def crash(ctx, params, path):
    raise RuntimeError("SELECT secret FROM users -- must never reach the client")


ROUTES = [
    Route("POST", "/mlflow/echo", echo, Access.READ),
    Route("GET", "/mlflow/echo", echo, Access.READ),
    Route("GET", "/mlflow/runs/{run_id}", missing, Access.READ, Resource.RUN),
    Route("GET", "/mlflow/crash", crash, Access.READ),
]


@pytest.fixture
def client():
    app = create_app(ServerContext(settings=Settings(), engine=None), ROUTES)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_json_body_with_int64_as_string_and_nan_value(client):
    r = client.post("/api/2.0/mlflow/echo", json={"run_uuid": "abc", "step": "7", "value": "NaN"})
    assert r.status_code == 200
    body = r.json()
    assert body["run_id"] == "abc" and body["step"] == 7 and body["value"] != body["value"]


def test_get_reads_query_with_repeated_keys_and_ajax_prefix(client):
    r = client.get("/ajax-api/2.0/mlflow/echo?run_id=r1&experiment_ids=1&experiment_ids=2&step=3")
    assert r.json() == {"run_id": "r1", "step": 3, "ids": ["1", "2"], "value": 0.0}


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "Malformed JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (json.dumps({"run_id": "r", "value": "abc"}).encode(), "Hint: Value was of type 'str'"),
    (json.dumps({"run_id": "r", "step": "x"}).encode(), "expected an integer"),
    (json.dumps({"step": 1}).encode(), "Missing value for required parameter 'run_id'"),
])
def test_bad_requests_are_400_invalid_parameter_value(client, body, fragment):
    r = client.post("/api/2.0/mlflow/echo", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and fragment in r.json()["message"]


def test_wrong_content_type_is_400(client):
    r = client.post("/api/2.0/mlflow/echo", content=b"run_id=x", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "Content-Type" in r.json()["message"]


def test_store_error_maps_to_mlflow_json_and_status(client):
    r = client.get("/api/2.0/mlflow/runs/r9")
    assert r.status_code == 404
    assert r.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=r9 not found"}


def test_unexpected_error_is_500_without_internals(client):
    r = client.get("/api/2.0/mlflow/crash")
    assert r.status_code == 500 and r.json()["error_code"] == "INTERNAL_ERROR"
    assert "SELECT" not in r.text and "Traceback" not in r.text


def test_unknown_route_and_wrong_method_are_json(client):
    r = client.get("/api/2.0/mlflow/nope")
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    r = client.delete("/api/2.0/mlflow/echo")
    assert r.status_code == 405 and "not allowed" in r.json()["message"]


def test_oversized_body_is_413(client):
    r = client.post("/api/2.0/mlflow/echo", content=b" " * (17 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_probes_and_metrics(client):
    assert client.get("/health").text == "OK"
    assert client.get("/version").json()["mlflow_compatible"] == "3.17.2"
    client.post("/api/2.0/mlflow/echo", json={"run_id": "x"})
    text = client.get("/metrics").text
    assert 'trackops_http_requests_total{method="POST",route="/api/2.0/mlflow/echo",status="200"} 1' in text
    assert "trackops_http_request_duration_seconds_bucket" in text


def test_duplicate_route_registration_is_refused():
    module = type("M", (), {"ROUTES": ROUTES + [Route("GET", "/mlflow/echo", echo, Access.READ)]})
    with pytest.raises(ValueError, match="registered twice"):
        collect(module)
