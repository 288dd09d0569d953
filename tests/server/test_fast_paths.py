"""The request path's fast forms answer exactly as the general ones: orjson bodies, column-wise log-batch,
handlers run on the event loop."""

from __future__ import annotations

import json
import math
import threading

import pytest
from starlette.testclient import TestClient

from trackops.config import Settings
from trackops.server.app import FastJSONResponse
from trackops.server.factory import build_app
from trackops.server.protocol import Params
from trackops.services.serve import preflight, serve_config

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fast")
    settings = Settings(backend_store_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                        artifacts_destination=str(tmp / "mlartifacts"))
    preflight(settings)
    return build_app(serve_config(settings))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def new_run(client) -> str:
    r = client.post(API + "/runs/create", json={"experiment_id": "0", "start_time": 1})
    assert r.status_code == 200, r.text
    return r.json()["run"]["info"]["run_id"]


@pytest.mark.parametrize("content", [
    {"a": 1, "b": [1.5, -0.0, 1e16, 1e-7, "x\u00e9\u2028\n\x1f\"\\"], "c": {"d": None, "e": True}},
    {"metrics": [{"key": "m", "value": 0.30000000000000004, "timestamp": 1700000000000, "step": 2**62}]},
])
def test_response_body_reads_back_as_the_json_module_writes_it(content):
    body = FastJSONResponse(content).body
    assert json.loads(body) == content
    assert b": " not in body and b", " not in body  # compact, as before


@pytest.mark.parametrize("value, text", [(math.nan, b"NaN"), (math.inf, b"Infinity"), (-math.inf, b"-Infinity")])
def test_a_non_finite_float_left_in_a_response_is_written_as_before_not_as_null(value, text):
    assert FastJSONResponse({"v": [1, {"w": value}]}).body == b'{"v":[1,{"w":' + text + b"}]}"


def test_integers_past_64_bits_in_a_response_are_exact():
    assert FastJSONResponse({"n": 2**70}).body == b'{"n":1180591620717411303424}'


def test_request_bodies_orjson_refuses_are_read_as_the_json_module_reads_them():
    assert math.isnan(Params.from_json_bytes(b'{"value": NaN}').raw("value"))
    assert Params.from_json_bytes(b'{"t": -9223372036854775809}').raw("t") == -9223372036854775809
    assert Params.from_json_bytes(b'{"t": 18446744073709551616}').raw("t") == 18446744073709551616
    assert Params.from_json_bytes('{"k": "\\ud800"}'.encode()).raw("k") == "\ud800"


def test_log_batch_stores_numbers_strings_nan_infinities_and_repeats_as_mlflow(client):
    run_id = new_run(client)
    metrics = [{"key": "m", "value": 1, "timestamp": 5, "step": 0},
               {"key": "m", "value": 2.5, "timestamp": 5, "step": 1},
               {"key": "m", "value": 2.5, "timestamp": 5, "step": 1},  # the same point twice: stored once
               {"key": "n", "value": "NaN", "timestamp": 6, "step": 3},
               {"key": "p", "value": "Infinity", "timestamp": 7},
               {"key": "q", "value": "-1.5", "timestamp": "8", "step": "2"}]
    r = client.post(API + "/runs/log-batch", json={"run_id": run_id, "metrics": metrics,
                                                   "params": [{"key": "a", "value": "1"}]})
    assert r.status_code == 200, r.text
    latest = {m["key"]: m for m in client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]["data"]["metrics"]}
    assert latest == {"m": {"key": "m", "value": 2.5, "timestamp": 5, "step": 1},
                      "n": {"key": "n", "value": "NaN", "timestamp": 6, "step": 3},
                      "p": {"key": "p", "value": 1.7976931348623157e308, "timestamp": 7, "step": 0},
                      "q": {"key": "q", "value": -1.5, "timestamp": 8, "step": 2}}
    history = client.get(API + "/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}).json()["metrics"]
    assert [(h["value"], h["step"]) for h in history] == [(1.0, 0), (2.5, 1)]


def test_log_batch_refuses_what_mlflow_refuses_whichever_path_a_metric_takes(client):
    run_id = new_run(client)
    for bad, fragment in [({"key": "../x", "value": 1.0, "timestamp": 1}, "metrics[1].name"),
                          ({"key": "m", "value": 1.0, "timestamp": -1}, "metrics[1].timestamp"),
                          ({"key": "m", "value": "abc", "timestamp": 1}, "value")]:
        r = client.post(API + "/runs/log-batch", json={"run_id": run_id, "metrics": [
            {"key": "m", "value": 1.0, "timestamp": 1}, bad]})
        assert r.status_code == 400 and fragment in r.json()["message"], r.text
    r = client.post(API + "/runs/log-batch", json={"run_id": run_id, "metrics": [
        {"key": f"k{i}", "value": 1.0, "timestamp": 1} for i in range(1001)]})
    assert r.status_code == 400 and "at most 1000 metrics" in r.json()["message"]
    # all or nothing: nothing of the refused batches was stored
    assert "metrics" not in client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]["data"]


def test_a_read_answers_while_a_write_holds_the_lock_and_the_write_then_lands(app, client):
    run_id = new_run(client)
    lock = app.state.ctx.write_lock
    answers = []
    with lock:  # as a log-batch in a pool thread would
        sender = threading.Thread(target=lambda: answers.append(client.post(API + "/runs/log-metric", json={
            "run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1})))
        sender.start()
        sender.join(0.5)
        assert answers == []  # the write waits for the lock in the pool ...
        r = client.get(API + "/experiments/get", params={"experiment_id": "0"})  # ... the loop still answers
        assert r.status_code == 200 and r.json()["experiment"]["name"] == "Default"
    sender.join(30)
    assert answers[0].status_code == 200
    latest = client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]["data"]["metrics"]
    assert latest == [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]
