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
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.auth.conftest import live_auth_server, restore_environ
from tests.auth.test_server_auth import ADMIN, API, READER, WRITER, make_client
from tests.compat.server import MlflowServerProcess
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


def test_a_batch_of_traces_is_resolved_to_its_experiments_in_one_query_and_then_from_the_cache(world):
    import sqlalchemy as sa

    c, ids = world
    listed = [new_trace(c, ids["open"]["exp"]) for _ in range(5)] + [ids["open"]["trace"]]
    guard = c.app.state.ctx.auth.guard
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)
    sa.event.listen(guard.engine, "before_cursor_execute", seen)
    try:
        for _ in range(2):
            response = c.post(f"{V3}/traces/batchGetInfos", json={"trace_ids": listed}, headers=READER)
            assert response.status_code == 200 and len(response.json()["trace_infos"]) == 6
    finally:
        sa.event.remove(guard.engine, "before_cursor_execute", seen)
    lookup = re.compile(r"SELECT trace_info\.request_id, trace_info\.experiment_id FROM trace_info "
                        r"WHERE trace_info\.request_id IN \(\?(, \?)*\)")
    assert len([s for s in statements if lookup.fullmatch(" ".join(s.split()))]) == 1, statements


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


# --- a real `trackops serve --auth`, the mlflow client and plain HTTP, on SQLite and PostgreSQL ---------

LIVE_ADMIN = ("root", "admin-password-1")
LIVE_READER = ("reader", "reader-password-1")
LIVE_EDITOR = ("editor", "editor-password-1")


class as_user:
    """The mlflow client's credentials (and a fresh span exporter) for the duration of a `with` block."""

    def __init__(self, url: str, user: tuple[str, str]):
        self.url, self.user = url, user

    def __enter__(self):
        import mlflow

        self.saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                                                     "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING")}
        os.environ.update(MLFLOW_TRACKING_USERNAME=self.user[0], MLFLOW_TRACKING_PASSWORD=self.user[1],
                          MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
        mlflow.set_tracking_uri(self.url)
        mlflow.tracing.reset()  # the exporter keeps the credentials it was made with
        return mlflow.MlflowClient(self.url)

    def __exit__(self, *exc):
        import mlflow

        restore_environ(self.saved)
        mlflow.tracing.reset()


def log_trace(url: str, user: tuple[str, str], experiment_id: str) -> str:
    """A trace logged by the mlflow client's fluent API: spans over OTLP, the TraceInfo over REST."""
    import mlflow

    with as_user(url, user):
        mlflow.set_experiment(experiment_id=experiment_id)
        with mlflow.start_span("root") as span:
            span.set_inputs({"q": "hi"})
            span.set_outputs({"a": "HI"})
        return mlflow.get_last_active_trace_id()


def http(url: str, method: str, path: str, user: tuple[str, str], body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, str]:
    auth = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    request = urllib.request.Request(url + path, data=body, method=method, headers={
        "Authorization": "Basic " + auth, "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    """`open` (the editor holds EDIT) and `closed` (NO_PERMISSIONS for reader and editor) with one
    client-logged trace each; default READ."""
    pytest.importorskip("mlflow")
    work = tmp_path_factory.mktemp(f"trace-auth-{request.param}")
    with live_auth_server(request.param, work, LIVE_ADMIN) as (proc, db):
        engine = create_engine(db)
        try:
            store = AuthStore(engine)
            for name, password in (LIVE_READER, LIVE_EDITOR):
                store.create_user(name, password)
            with as_user(proc.url, LIVE_ADMIN) as admin:
                ids = {name: {"exp": admin.create_experiment(f"{name}-{request.param}")} for name in ("open", "closed")}
            for name in ids:
                ids[name]["trace"] = log_trace(proc.url, LIVE_ADMIN, ids[name]["exp"])
            store.grant("editor", "experiment", ids["open"]["exp"], "EDIT")
            for user in ("reader", "editor"):
                store.grant(user, "experiment", ids["closed"]["exp"], "NO_PERMISSIONS")
            proc.ids = ids
            yield proc
        finally:
            engine.dispose()


def refused(err) -> bool:
    return err.value.get_http_status_code() == 403 and err.value.error_code == "PERMISSION_DENIED"


def test_a_reader_sees_a_readable_experiments_traces_and_gets_403_for_a_forbidden_one(live):
    from mlflow.exceptions import MlflowException

    ids = live.ids
    with as_user(live.url, LIVE_READER) as client:
        trace = client.get_trace(ids["open"]["trace"])
        assert [s.name for s in trace.data.spans] == ["root"]
        found = client.search_traces(locations=[ids["open"]["exp"]])
        assert [t.info.trace_id for t in found] == [ids["open"]["trace"]]
        with pytest.raises(MlflowException) as err:
            client.get_trace(ids["closed"]["trace"])
        assert refused(err)
        with pytest.raises(MlflowException) as err:
            client.search_traces(locations=[ids["open"]["exp"], ids["closed"]["exp"]])
        assert refused(err)
    status, body = http(live.url, "GET", f"{V3}/traces/batchGet?trace_ids={ids['closed']['trace']}", LIVE_READER)
    assert status == 403 and json.loads(body)["error_code"] == "PERMISSION_DENIED"
    status, body = http(live.url, "GET", f"/ajax-api/2.0/mlflow/get-trace-artifact?request_id={ids['open']['trace']}",
                        LIVE_READER)
    assert status == 200 and [s["name"] for s in json.loads(body)["spans"]] == ["root"]


def test_a_reader_cannot_tag_delete_or_log_feedback_and_an_editor_can(live):
    import mlflow
    from mlflow.exceptions import MlflowException

    trace, exp = live.ids["open"]["trace"], live.ids["open"]["exp"]
    with as_user(live.url, LIVE_READER) as client:
        for attempt in (lambda: client.set_trace_tag(trace, "k", "v"),
                        lambda: client.delete_trace_tag(trace, "k"),
                        lambda: client.delete_traces(exp, trace_ids=[trace]),
                        lambda: mlflow.log_feedback(trace_id=trace, name="good", value=True)):
            with pytest.raises(MlflowException) as err:
                attempt()
            assert refused(err)
    with as_user(live.url, LIVE_EDITOR) as client:
        client.set_trace_tag(trace, "k", "v")
        mlflow.log_feedback(trace_id=trace, name="good", value=True)
        got = client.get_trace(trace)
        assert got.info.tags["k"] == "v" and [a.name for a in got.info.assessments] == ["good"]
        with pytest.raises(MlflowException) as err:  # deleting traces is MLflow's "delete": MANAGE
            client.delete_traces(exp, trace_ids=[trace])
        assert refused(err)
        own = client.create_experiment(f"editors-{uuid.uuid4().hex[:6]}")  # its creator holds MANAGE
    mine = log_trace(live.url, LIVE_EDITOR, own)
    with as_user(live.url, LIVE_EDITOR) as client:
        assert client.delete_traces(own, trace_ids=[mine]) == 1


def test_otlp_ingest_is_refused_without_edit(live):
    opened, closed = live.ids["open"]["exp"], live.ids["closed"]["exp"]
    for user, exp, expected in ((LIVE_READER, opened, 403), (LIVE_EDITOR, closed, 403), (LIVE_EDITOR, opened, 200)):
        status, body = http(live.url, "POST", "/v1/traces", user, otlp_body(), {"x-mlflow-experiment-id": exp})
        assert status == expected, (user, exp, body)
        if expected == 403:
            assert json.loads(body)["error_code"] == "PERMISSION_DENIED"


# --- the oracle: `mlflow server --app-name basic-auth` ------------------------------------------------

ORACLE_ADMIN = ("admin", "oracle-admin-password-1")


def mlflow_auth_server(work: Path) -> MlflowServerProcess:
    """`mlflow server --app-name basic-auth` on SQLite files in `work`, its admin from the environment."""
    config = work / "basic_auth.ini"
    config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{work / 'basic_auth.db'}\n"
                      f"admin_username = {ORACLE_ADMIN[0]}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return MlflowServerProcess(work, args=("--app-name", "basic-auth"), env={
        "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": ORACLE_ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex})


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """MLflow's basic-auth server with the same world as `live`: `open` (default READ) and `closed`
    (NO_PERMISSIONS for the reader), one client-logged trace each."""
    pytest.importorskip("mlflow.server.auth")
    server = mlflow_auth_server(tmp_path_factory.mktemp("mlflow-basic-auth"))
    try:
        status, body = http(server.url, "POST", API + "/users/create", ORACLE_ADMIN,
                            json.dumps({"username": LIVE_READER[0], "password": LIVE_READER[1]}).encode())
        assert status == 200, body
        with as_user(server.url, ORACLE_ADMIN) as admin:
            ids = {name: {"exp": admin.create_experiment(name)} for name in ("open", "closed")}
        for name in ids:
            ids[name]["trace"] = log_trace(server.url, ORACLE_ADMIN, ids[name]["exp"])
        grant = {"username": LIVE_READER[0], "resource_type": "experiment", "resource_id": ids["closed"]["exp"],
                 "permission": "DENY"}  # MLflow 3.17: resource grants take DENY, not NO_PERMISSIONS
        status, body = http(server.url, "POST", V3 + "/users/permissions/grant", ORACLE_ADMIN, json.dumps(grant).encode())
        assert status == 200, body
        server.ids = ids
        yield server
    finally:
        server.stop()


def probes(ids: dict) -> list[tuple[str, str, bytes | None, dict]]:
    """Requests a reader makes: a search of `open` (allowed), and reads of `closed` and writes (refused).
    (A `traces/get` of a readable trace is left out: mlflow server answers it with a 500 for the traces
    its client logs to it, whose spans it keeps as an artifact.)"""
    opened, closed = ids["open"], ids["closed"]

    def search(*exps):
        return json.dumps({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": e}}
                                         for e in exps]}).encode()
    tag = json.dumps({"key": "k", "value": "v"}).encode()
    return [
        ("POST", f"{V3}/traces/search", search(opened["exp"]), {}),
        ("GET", f"{V3}/traces/get?trace_id={closed['trace']}", None, {}),
        ("GET", f"{V3}/traces/{closed['trace']}", None, {}),
        ("GET", f"{V3}/traces/batchGet?trace_ids={opened['trace']}&trace_ids={closed['trace']}", None, {}),
        ("POST", f"{V3}/traces/search", search(opened["exp"], closed["exp"]), {}),
        ("GET", f"{API}/get-trace-artifact?request_id={closed['trace']}", None, {}),
        ("PATCH", f"{V3}/traces/{opened['trace']}/tags", tag, {}),
        ("POST", f"{API}/traces/delete-traces", json.dumps({"experiment_id": opened["exp"],
                                                             "request_ids": [opened["trace"]]}).encode(), {}),
        ("POST", f"{V3}/traces/{opened['trace']}/assessments", json.dumps(feedback(opened["trace"])).encode(), {}),
        ("POST", "/v1/traces", otlp_body(), {"x-mlflow-experiment-id": opened["exp"]}),
    ]


def test_a_readers_trace_answers_have_mlflow_basic_auths_statuses(live, oracle):
    from mlflow.exceptions import MlflowException

    ours = [http(live.url, m, p, LIVE_READER, b, h)[0] for m, p, b, h in probes(live.ids)]
    theirs = [http(oracle.url, m, p, LIVE_READER, b, h)[0] for m, p, b, h in probes(oracle.ids)]
    assert ours == theirs == [200] + [403] * 9
    codes = []
    for server in (live, oracle):
        with as_user(server.url, LIVE_READER) as client, pytest.raises(MlflowException) as err:
            client.get_trace(server.ids["closed"]["trace"])
        codes.append((err.value.get_http_status_code(), err.value.error_code))
    assert codes[0] == codes[1] == (403, "PERMISSION_DENIED")
