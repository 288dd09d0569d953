"""serve --auth on traces: a trace takes the permission of its experiment, as in MLflow's basic-auth app.

READ reads (get, batch-get, search, assessments, the trace artifact); EDIT writes (start, OTLP ingest,
tags, links, assessments); MANAGE deletes. Searches and batch-gets that name a forbidden experiment or
trace are refused whole, as MLflow refuses them. In-process on SQLite for the route table, then the real
`mlflow` client and plain HTTP against `trackops serve --auth` on SQLite and PostgreSQL, and the refusal
compared with `mlflow server --app-name basic-auth`.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.auth.test_server_auth import ADMIN, API, READER, WRITER, make_client
from tests.compat.server import ServerProcess, free_port
from tests.conftest import POSTGRES_ADMIN_URL, _check_server, create_server_database, drop_server_database
from trackops.auth.users import AuthStore
from trackops.db.engine import create_engine

V3 = "/api/3.0/mlflow"


def new_trace(c, exp: str) -> str:
    trace_id = "tr-" + uuid.uuid4().hex
    info = {"trace_id": trace_id, "state": "OK", "request_time": "2026-01-01T00:00:00Z",
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}}
    made = c.post(V3 + "/traces", json={"trace": {"trace_info": info}}, headers=ADMIN)
    assert made.status_code == 200, made.text
    return trace_id


def feedback(trace_id: str) -> dict:
    return {"assessment": {"assessment_name": "ok", "trace_id": trace_id, "feedback": {"value": True},
                           "source": {"source_type": "HUMAN", "source_id": "me"}}}


@pytest.fixture
def world(sqlite_auth_url, tmp_path, monkeypatch):
    """Default READ. `open` (the writer holds EDIT) and `closed` (NO_PERMISSIONS for both users), a trace
    with one assessment in each, and a run in `open`."""
    with make_client(sqlite_auth_url, tmp_path, monkeypatch) as c:
        ids = {}
        for name in ("open", "closed"):
            exp = c.post(API + "/experiments/create", json={"name": name}, headers=ADMIN).json()["experiment_id"]
            trace = new_trace(c, exp)
            made = c.post(f"{V3}/traces/{trace}/assessments", json=feedback(trace), headers=ADMIN)
            assert made.status_code == 200, made.text
            ids[name] = {"exp": exp, "trace": trace, "assessment": made.json()["assessment"]["assessment_id"]}
        ids["run"] = c.post(API + "/runs/create", json={"experiment_id": ids["open"]["exp"]},
                            headers=ADMIN).json()["run"]["info"]["run_id"]
        grants = [(ids["open"]["exp"], "writer", "EDIT"), (ids["closed"]["exp"], "writer", "NO_PERMISSIONS"),
                  (ids["closed"]["exp"], "reader", "NO_PERMISSIONS")]
        for exp, user, permission in grants:
            assert c.post(API + "/experiments/permissions/create", headers=ADMIN,
                          json={"experiment_id": exp, "username": user, "permission": permission}).status_code == 200
        yield c, ids


def reads(ids: dict, name: str) -> list[tuple[str, str, dict]]:
    t, a, exp = ids[name]["trace"], ids[name]["assessment"], ids[name]["exp"]
    search = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]}
    return [
        ("GET", f"{V3}/traces/get?trace_id={t}", None),
        ("GET", f"{V3}/traces/{t}", None),
        ("GET", f"{V3}/traces/batchGet?trace_ids={t}", None),
        ("POST", f"{V3}/traces/batchGetInfos", {"trace_ids": [t]}),
        ("POST", f"{V3}/traces/search", search),
        ("POST", f"{V3}/traces/metrics", {"experiment_ids": [exp], "metric_name": "trace_count",
                                          "aggregations": [{"aggregation_type": "COUNT"}]}),
        ("GET", f"{V3}/traces/{t}/assessments/{a}", None),
        ("GET", f"/api/2.0/mlflow/get-trace-artifact?request_id={t}", None),
    ]


def writes(ids: dict, name: str) -> list[tuple[str, str, dict]]:
    t, a, exp = ids[name]["trace"], ids[name]["assessment"], ids[name]["exp"]
    start = {"trace_id": "tr-" + uuid.uuid4().hex, "request_time": "2026-01-01T00:00:00Z", "state": "OK",
             "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}}
    return [
        ("POST", f"{V3}/traces", {"trace": {"trace_info": start}}),
        ("PATCH", f"{API}/traces/{t}/tags", {"key": "k", "value": "v"}),
        ("PATCH", f"{V3}/traces/{t}/tags", {"key": "k", "value": "v"}),
        ("DELETE", f"{V3}/traces/{t}/tags", {"key": "k"}),
        ("POST", f"{V3}/traces/{t}/assessments", feedback(t)),
        ("PATCH", f"{V3}/traces/{t}/assessments/{a}", {"assessment": {"rationale": "r"},
                                                         "update_mask": "rationale"}),
        ("DELETE", f"{V3}/traces/{t}/assessments/{a}", None),
    ]


def allowed(path: str) -> int:
    """What a permitted read answers: the traces made here over REST have no spans, so no artifact."""
    return 404 if "get-trace-artifact" in path else 200


def status(c, method, path, body, headers) -> int:
    response = c.request(method, path, json=body, headers=headers)
    if response.status_code == 403:
        assert response.json()["error_code"] == "PERMISSION_DENIED", response.text
        assert response.json()["message"].startswith("Permission denied"), response.text
    return response.status_code


def test_a_reader_reads_the_traces_of_an_experiment_it_may_read_and_writes_none(world):
    c, ids = world
    for method, path, body in reads(ids, "open"):
        assert status(c, method, path, body, READER) == allowed(path), (method, path)
    for method, path, body in writes(ids, "open"):
        assert status(c, method, path, body, READER) == 403, (method, path)
    link = {"trace_ids": [ids["open"]["trace"]], "run_id": ids["run"]}
    assert status(c, "POST", API + "/traces/link-to-run", link, READER) == 403
    delete = {"experiment_id": ids["open"]["exp"], "request_ids": [ids["open"]["trace"]]}
    assert status(c, "POST", API + "/traces/delete-traces", delete, READER) == 403


def test_a_forbidden_experiments_traces_are_refused_for_every_read_and_write(world):
    c, ids = world
    for headers in (READER, WRITER):
        for method, path, body in reads(ids, "closed") + writes(ids, "closed"):
            assert status(c, method, path, body, headers) == 403, (method, path)
    for method, path, body in reads(ids, "closed"):
        assert status(c, method, path, body, ADMIN) == allowed(path), (method, path)


def test_an_editor_writes_traces_and_assessments_but_deleting_traces_needs_manage(world):
    c, ids = world
    for method, path, body in writes(ids, "open"):
        assert status(c, method, path, body, WRITER) == 200, (method, path)
    link = {"trace_ids": [ids["open"]["trace"]], "run_id": ids["run"]}
    assert status(c, "POST", API + "/traces/link-to-run", link, WRITER) == 200
    delete = {"experiment_id": ids["open"]["exp"], "request_ids": [ids["open"]["trace"]]}
    assert status(c, "POST", API + "/traces/delete-traces", delete, WRITER) == 403  # MLflow's "delete": MANAGE
    assert c.patch(API + "/experiments/permissions/update", headers=ADMIN, json={
        "experiment_id": ids["open"]["exp"], "username": "writer", "permission": "MANAGE"}).status_code == 200
    deleted = c.post(API + "/traces/delete-traces", json=delete, headers=WRITER)
    assert deleted.status_code == 200 and deleted.json()["traces_deleted"] == 1


def test_a_batch_or_search_naming_one_forbidden_or_unknown_trace_or_experiment_is_refused_whole(world):
    c, ids = world
    mine, theirs = ids["open"]["trace"], ids["closed"]["trace"]
    unknown = "tr-" + uuid.uuid4().hex
    for listed in ([mine, theirs], [theirs, mine], [mine, unknown], []):
        assert status(c, "POST", f"{V3}/traces/batchGetInfos", {"trace_ids": listed}, READER) == 403, listed
    query = f"{V3}/traces/batchGet?trace_ids={mine}&trace_ids={theirs}"
    assert status(c, "GET", query, None, READER) == 403
    assert status(c, "GET", f"{V3}/traces/get?trace_id={unknown}", None, READER) == 403
    assert status(c, "GET", f"{V3}/traces/get?trace_id={unknown}", None, ADMIN) == 404

    def location(exp):
        return {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}
    both = {"locations": [location(ids["open"]["exp"]), location(ids["closed"]["exp"])]}
    assert status(c, "POST", f"{V3}/traces/search", both, READER) == 403
    assert status(c, "POST", f"{V3}/traces/search", {}, READER) == 403  # an unscoped search, as MLflow
    found = c.post(f"{V3}/traces/search", json={"locations": [location(ids["open"]["exp"])]}, headers=READER)
    assert [t["trace_id"] for t in found.json()["traces"]] == [mine]
    # linking a forbidden trace into a run one may edit
    link = {"trace_ids": [mine, theirs], "run_id": ids["run"]}
    assert status(c, "POST", API + "/traces/link-to-run", link, WRITER) == 403


def test_with_default_no_permissions_a_trace_needs_an_explicit_grant(sqlite_auth_url, tmp_path, monkeypatch):
    with make_client(sqlite_auth_url, tmp_path, monkeypatch, "NO_PERMISSIONS") as c:
        exp = c.post(API + "/experiments/create", json={"name": "e"}, headers=ADMIN).json()["experiment_id"]
        trace = new_trace(c, exp)
        assert status(c, "GET", f"{V3}/traces/get?trace_id={trace}", None, READER) == 403
        assert c.post(API + "/experiments/permissions/create", headers=ADMIN,
                      json={"experiment_id": exp, "username": "reader", "permission": "READ"}).status_code == 200
        assert status(c, "GET", f"{V3}/traces/get?trace_id={trace}", None, READER) == 200
        assert status(c, "PATCH", f"{V3}/traces/{trace}/tags", {"key": "k", "value": "v"}, READER) == 403
        # an experiment the writer made itself is its own (MANAGE): it may log traces there
        own = c.post(API + "/experiments/create", json={"name": "w"}, headers=WRITER).json()["experiment_id"]
        for method, path, body in writes({"w": {"exp": own, "trace": new_trace(c, own), "assessment": "x"}}, "w")[:3]:
            assert status(c, method, path, body, WRITER) == 200, (method, path)


def otlp_body() -> bytes:
    span = {"traceId": uuid.uuid4().hex, "spanId": uuid.uuid4().hex[:16], "name": "root",
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def otlp(c, headers: dict, exp: str | None, run: str | None = None) -> int:
    extra = {"Content-Type": "application/json"}
    if exp is not None:
        extra["x-mlflow-experiment-id"] = exp
    if run is not None:
        extra["x-mlflow-run-id"] = run
    return c.post("/v1/traces", content=otlp_body(), headers={**headers, **extra}).status_code


def test_otlp_ingest_needs_edit_on_the_header_experiment_and_on_the_run_it_links_to(world):
    c, ids = world
    opened, closed = ids["open"]["exp"], ids["closed"]["exp"]
    assert otlp(c, READER, opened) == 403
    assert otlp(c, WRITER, closed) == 403
    assert otlp(c, WRITER, opened) == 200
    assert otlp(c, WRITER, None) == 400  # as the handler: the header is required
    assert otlp(c, WRITER, opened, run=ids["run"]) == 200
    closed_run = c.post(API + "/runs/create", json={"experiment_id": closed}, headers=ADMIN).json()["run"]["info"]
    assert otlp(c, WRITER, opened, run=closed_run["run_id"]) == 403
    assert otlp(c, ADMIN, closed) == 200
