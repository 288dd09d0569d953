"""The same raw REST calls against `mlflow server` 3.17.2 and `trackops serve`: same response shapes.

Shapes are compared, not values that differ by nature (ids, timestamps, generated names): the same
keys at every level, the same JSON types, the same list lengths, and the same values for enums,
versions and error codes. Error responses are compared by HTTP status and error code.
"""

from __future__ import annotations

import pytest
import requests

pytest.importorskip("mlflow")

from tests.compat.server import MlflowServerProcess, ServerProcess  # noqa: E402

KEEP_VALUES = {"status", "lifecycle_stage", "current_stage", "version", "error_code", "is_dir", "name", "key",
               "value", "stage", "alias", "aliases", "file_size", "path", "step", "model_type", "description",
               "user_id", "workspace", "store_type"}


GENERATED_TAGS = {"mlflow.runName"}  # random names like "upbeat-snipe-497"


def shape(value, key: str | None = None):
    if isinstance(value, dict):
        if value.get("key") in GENERATED_TAGS:
            value = {**value, "value": "<generated>"}
        return {k: shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [shape(v, key) for v in value]
        return sorted(items, key=repr)
    if key in KEEP_VALUES:
        return value
    return type(value).__name__


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServerProcess(tmp_path_factory.mktemp("mlflow-oracle"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def trackops_server(tmp_path_factory):
    server = ServerProcess([], tmp_path_factory.mktemp("trackops-oracle"))
    yield server.url
    server.stop()


def conversation(base: str) -> list[tuple[str, int, object]]:
    """A fixed sequence of calls; returns (label, status, body) for each."""
    s = requests.Session()
    api, out = base + "/api/2.0/mlflow", []

    def call(label, method, path, *, json=None, params=None, data=None, root=None):
        r = s.request(method, (root or api) + path, json=json, params=params, data=data, timeout=30)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content
        out.append((label, r.status_code, body))
        return body

    eid = call("create experiment", "POST", "/experiments/create",
               json={"name": "oracle", "tags": [{"key": "a", "value": "b"}]})["experiment_id"]
    call("get experiment", "GET", "/experiments/get", params={"experiment_id": eid})
    call("get by name", "GET", "/experiments/get-by-name", params={"experiment_name": "Default"})
    call("search experiments", "POST", "/experiments/search", json={"max_results": 1})
    run = call("create run", "POST", "/runs/create", json={"experiment_id": eid, "start_time": 1000,
                                                          "tags": [{"key": "t", "value": "v"}]})
    rid = run["run"]["info"]["run_id"]
    call("log metric nan", "POST", "/runs/log-metric", json={"run_id": rid, "run_uuid": rid, "key": "m",
                                                             "value": "NaN", "timestamp": 5, "step": 1})
    call("log metric inf", "POST", "/runs/log-metric", json={"run_id": rid, "key": "inf", "value": "Infinity",
                                                             "timestamp": 5})
    call("log batch", "POST", "/runs/log-batch", json={"run_id": rid, "metrics": [
        {"key": "m2", "value": i, "timestamp": 5, "step": i} for i in range(20)], "params": [{"key": "p", "value": "1"}]})
    call("log param", "POST", "/runs/log-parameter", json={"run_id": rid, "key": "q", "value": "2"})
    call("set tag", "POST", "/runs/set-tag", json={"run_id": rid, "key": "k", "value": "v"})
    call("get run", "GET", "/runs/get", params={"run_id": rid})
    call("history", "GET", "/metrics/get-history", params={"run_id": rid, "run_uuid": rid, "metric_key": "m2",
                                                           "max_results": 25000})
    call("bulk interval", "GET", "/metrics/get-history-bulk-interval",
         params={"run_ids": [rid], "metric_key": "m2", "max_results": 5})
    call("update run", "POST", "/runs/update", json={"run_id": rid, "status": "FINISHED", "end_time": 2000})
    call("search runs", "POST", "/runs/search", json={"experiment_ids": [eid], "filter": "metrics.m2 >= 0"})
    call("search runs empty", "POST", "/runs/search", json={"experiment_ids": [eid], "filter": "metrics.m2 > 99"})
    art = base + "/api/2.0/mlflow-artifacts/artifacts"
    call("upload", "PUT", f"/{eid}/{rid}/artifacts/dir/a.txt", data=b"hello", root=art)
    call("list proxied", "GET", "", params={"path": f"{eid}/{rid}/artifacts"}, root=art)
    call("list run artifacts", "GET", "/artifacts/list", params={"run_id": rid, "path": "dir"})
    model = call("create logged model", "POST", "/logged-models", json={"experiment_id": eid, "name": "lm",
                                                                          "source_run_id": rid})
    mid = model["model"]["info"]["model_id"]
    call("finalize logged model", "PATCH", f"/logged-models/{mid}", json={"model_id": mid,
                                                                          "status": "LOGGED_MODEL_READY"})
    call("log a model metric", "POST", "/runs/log-batch", json={"run_id": rid, "metrics": [
        {"key": "acc", "value": 0.9, "timestamp": 5, "step": 1, "model_id": mid}]})
    call("get logged model", "GET", f"/logged-models/{mid}")
    call("search logged models", "POST", "/logged-models/search", json={"experiment_ids": [eid]})
    call("create registered model", "POST", "/registered-models/create", json={"name": "rm"})
    call("create version 1", "POST", "/model-versions/create", json={"name": "rm", "source": f"models:/{mid}",
                                                                     "run_id": rid, "model_id": mid})
    call("create version 2", "POST", "/model-versions/create", json={"name": "rm", "source": f"models:/{mid}",
                                                                     "run_id": rid, "model_id": mid})
    call("set alias", "POST", "/registered-models/alias", json={"name": "rm", "alias": "champion", "version": "2"})
    call("get registered model", "GET", "/registered-models/get", params={"name": "rm"})
    call("get by alias", "GET", "/registered-models/alias", params={"name": "rm", "alias": "champion"})
    call("transition", "POST", "/model-versions/transition-stage",
         json={"name": "rm", "version": "1", "stage": "Staging", "archive_existing_versions": False})
    call("search registered models", "GET", "/registered-models/search",
         params={"filter": "name = 'rm' AND tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": 100})
    call("search versions", "GET", "/model-versions/search", params={"filter": "name = 'rm'", "max_results": 10000})
    call("missing run", "GET", "/runs/get", params={"run_id": "0" * 32})
    call("duplicate experiment", "POST", "/experiments/create", json={"name": "oracle"})
    call("bad metric value", "POST", "/runs/log-metric", json={"run_id": rid, "key": "m", "value": "abc",
                                                               "timestamp": 1})
    call("missing alias", "GET", "/registered-models/alias", params={"name": "rm", "alias": "nope"})
    call("dotdot path", "GET", "/0/a/%2E%2E/%2E%2E/etc/passwd", root=art)
    return out


def test_trackops_answers_the_same_calls_with_mlflows_shapes(mlflow_server, trackops_server):
    theirs, ours = conversation(mlflow_server), conversation(trackops_server)
    mismatches = []
    for (label, status_m, body_m), (_, status_t, body_t) in zip(theirs, ours):
        if status_m != status_t:
            mismatches.append(f"{label}: status {status_m} (mlflow) != {status_t} (trackops)")
        elif status_m >= 400:
            if isinstance(body_m, dict) and body_m.get("error_code") != body_t.get("error_code"):
                mismatches.append(f"{label}: {body_m.get('error_code')} != {body_t.get('error_code')}")
        elif isinstance(body_m, dict) and shape(body_m) != shape(body_t):
            mismatches.append(f"{label}:\n  mlflow   {shape(body_m)}\n  trackops {shape(body_t)}")
    assert not mismatches, "\n".join(mismatches)


NAN, INF = float("nan"), float("inf")


def string_cases(base: str) -> list[tuple[str, int, object]]:
    """A number, a boolean, NaN or Infinity where MLflow requires a string: (label, status, body) per call."""
    s = requests.Session()
    api, out = base + "/api/2.0/mlflow", []

    def call(label, method, path, body):
        text = None if body is None else __import__("json").dumps(body, allow_nan=True)  # bare NaN/Infinity
        r = s.request(method, api + path, data=text, headers={"Content-Type": "application/json"}, timeout=30)
        parsed = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content
        out.append((label, r.status_code, parsed))
        return parsed

    eid = call("setup experiment", "POST", "/experiments/create", {"name": "strings"})["experiment_id"]
    rid = call("setup run", "POST", "/runs/create", {"experiment_id": eid})["run"]["info"]["run_id"]
    call("setup registered model", "POST", "/registered-models/create", {"name": "srm"})
    mid = call("setup logged model", "POST", "/logged-models", {"experiment_id": eid})["model"]["info"]["model_id"]
    call("setup version", "POST", "/model-versions/create", {"name": "srm", "source": f"models:/{mid}",
                                                             "model_id": mid})
    for label, value in (("5", 5), ("NaN", NAN), ("Infinity", INF), ("-Infinity", -INF), ("true", True),
                         ("1.5", 1.5), ("list", ["a"]), ("object", {"a": "b"})):
        call(f"set-tag value {label}", "POST", "/runs/set-tag", {"run_id": rid, "key": "k", "value": value})
        call(f"log-parameter value {label}", "POST", "/runs/log-parameter",
             {"run_id": rid, "key": f"p{label}", "value": value})
        call(f"set-tag key {label}", "POST", "/runs/set-tag", {"run_id": rid, "key": value, "value": "v"})
        call(f"experiment tag value {label}", "POST", "/experiments/set-experiment-tag",
             {"experiment_id": eid, "key": "k", "value": value})
        call(f"registered-model description {label}", "POST", "/registered-models/create",
             {"name": f"d{label}", "description": value})
        call(f"registered-model tag value {label}", "POST", "/registered-models/set-tag",
             {"name": "srm", "key": "k", "value": value})
        call(f"model-version tag value {label}", "POST", "/model-versions/set-tag",
             {"name": "srm", "version": "1", "key": "k", "value": value})
        call(f"logged-model tag value {label}", "PATCH", f"/logged-models/{mid}/tags",
             {"model_id": mid, "tags": [{"key": "k", "value": value}]})
    for label, value in (("5", 5), ("NaN", NAN), ("true", True), ("list", ["a"]), ("object", {"a": "b"})):
        call(f"log-batch param value {label}", "POST", "/runs/log-batch",
             {"run_id": rid, "params": [{"key": f"b{label}", "value": value}]})
        call(f"log-batch tag value {label}", "POST", "/runs/log-batch",
             {"run_id": rid, "tags": [{"key": "bt", "value": value}]})
        call(f"create-run tag value {label}", "POST", "/runs/create",
             {"experiment_id": eid, "tags": [{"key": "t", "value": value}]})
        call(f"create-run run_name {label}", "POST", "/runs/create", {"experiment_id": eid, "run_name": value})
        call(f"create experiment tag value {label}", "POST", "/experiments/create",
             {"name": f"e{label}", "tags": [{"key": "t", "value": value}]})
        call(f"rename experiment {label}", "POST", "/experiments/update", {"experiment_id": eid, "new_name": value})
        call(f"update registered model description {label}", "PATCH", "/registered-models/update",
             {"name": "srm", "description": value})
        call(f"update version description {label}", "PATCH", "/model-versions/update",
             {"name": "srm", "version": "1", "description": value})
        call(f"create version source {label}", "POST", "/model-versions/create", {"name": "srm", "source": value})
        call(f"create version description {label}", "POST", "/model-versions/create",
             {"name": "srm", "source": f"models:/{mid}", "model_id": mid, "description": value})
        call(f"registered model tag key {label}", "POST", "/registered-models/set-tag",
             {"name": "srm", "key": value, "value": "v"})
        call(f"logged model name {label}", "POST", "/logged-models", {"experiment_id": eid, "name": value})
        call(f"logged model param value {label}", "POST", f"/logged-models/{mid}/params",
             {"model_id": mid, "params": [{"key": f"lp{label}", "value": value}]})
        call(f"search runs filter {label}", "POST", "/runs/search", {"experiment_ids": [eid], "filter": value})
        call(f"search experiments filter {label}", "POST", "/experiments/search", {"filter": value})
    # what was stored for the values MLflow took: read back with their values compared
    run = call("read back run", "GET", f"/runs/get?run_id={rid}", None)
    out[-1] = (out[-1][0], out[-1][1], sorted((x["key"], x["value"]) for kind in ("params", "tags")
                                              for x in run["run"]["data"].get(kind, []) if "." not in x["key"]))
    model = call("read back logged model", "GET", f"/logged-models/{mid}", None)
    data = model["model"].get("data", {})
    out[-1] = (out[-1][0], out[-1][1], sorted((x["key"], x["value"]) for x in data.get("params", [])))
    return out


def test_trackops_refuses_non_strings_where_mlflow_requires_strings(mlflow_server, trackops_server):
    theirs, ours = string_cases(mlflow_server), string_cases(trackops_server)
    mismatches = []
    for (label, status_m, body_m), (_, status_t, body_t) in zip(theirs, ours):
        code_m = body_m.get("error_code") if isinstance(body_m, dict) else None
        code_t = body_t.get("error_code") if isinstance(body_t, dict) else None
        hint = isinstance(body_m, dict) and "Hint: Value was of type" in body_m.get("message", "")
        if ((status_m, code_m) != (status_t, code_t) or (label.startswith("read back") and body_m != body_t)
                or (hint and body_m["message"] != body_t.get("message"))):  # word for word, as clients match it
            mismatches.append(f"{label}: mlflow {status_m} {code_m} != trackops {status_t} {code_t}"
                              f"\n  mlflow   {str(body_m)[:300]}\n  trackops {str(body_t)[:300]}")
    assert not mismatches, "\n".join(mismatches)


DOWNLOADS = ("a.txt", "b.json", "c.js", "d.html", "e.yaml", "MLmodel", "f.png", "g.bin", "h.ipynb", "i.csv",
             "j.svg", "k.xml", "l.py", "noext")


def _download_types(base: str) -> dict[str, tuple[int, str | None, str | None]]:
    """(status, Content-Type, X-Content-Type-Options) of a proxied download of each file in DOWNLOADS."""
    art = base + "/api/2.0/mlflow-artifacts/artifacts/0/types"
    found = {}
    for name in DOWNLOADS:
        requests.put(f"{art}/{name}", data=b"<b>x</b>", timeout=30).raise_for_status()
        r = requests.get(f"{art}/{name}", timeout=30)
        found[name] = (r.status_code, r.headers.get("content-type"), r.headers.get("x-content-type-options"))
    return found


def test_proxied_downloads_get_mlflows_content_types(mlflow_server, trackops_server):
    # MLflow serves text formats (JSON, JavaScript, YAML, notebooks, ...) as text/plain, so that a
    # browser opening an artifact link never runs or renders it as the type it claims
    assert _download_types(trackops_server) == _download_types(mlflow_server)
