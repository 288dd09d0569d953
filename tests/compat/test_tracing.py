"""MLflow 3 tracing with the real `mlflow==3.17.2` client against a live `trackops serve`, on SQLite and
PostgreSQL; and traces written by MLflow's own SQL store read by trackops from the same database (and back).

One server per dialect for the module; each test works in its own experiment. Trace export is made
synchronous (MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false) so a trace is stored when the call returns.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import AssessmentSource, SpanType  # noqa: E402

from tests.compat.server import ServerProcess  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL, _check_server, create_server_database, drop_server_database  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def synchronous_export():
    old = os.environ.get("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING")
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    yield
    if old is None:
        os.environ.pop("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", None)
    else:
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = old
    mlflow.tracing.reset()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"tracing-{request.param}")
    if request.param == "sqlite":
        db, drop = f"sqlite:///{work / 'mlflow.db'}", None
    else:
        _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
        db = create_server_database(POSTGRES_ADMIN_URL)
        drop = db
    proc = ServerProcess(["--backend-store-uri", db, "--artifacts-destination", str(work / "mlartifacts")], work)
    proc.db = db
    yield proc
    proc.stop()
    if drop:
        drop_server_database(POSTGRES_ADMIN_URL, drop)


@pytest.fixture
def client(server):
    mlflow.set_tracking_uri(server.url)
    mlflow.tracing.reset()  # the span exporter is bound to the tracking URI it was made with
    mlflow.set_experiment(f"tracing-{uuid.uuid4().hex[:8]}")
    return MlflowClient(server.url)


@mlflow.trace(span_type=SpanType.LLM)
def answer(question: str) -> dict:
    return {"answer": question.upper()}


@mlflow.trace
def pipeline(question: str, tag: str = "") -> dict:
    with mlflow.start_span("retrieve", span_type=SpanType.RETRIEVER) as span:
        span.set_inputs({"q": question})
        span.set_outputs(["doc-1", "doc-2"])
        span.set_attribute("k", 2)
    if tag:
        mlflow.update_current_trace(tags={"team": tag})
    return answer(question)


def _experiment_id() -> str:
    return mlflow.tracking.fluent._get_experiment_id()


def test_traced_function_is_stored_with_its_span_tree(client):
    assert pipeline("hello") == {"answer": "HELLO"}
    trace = client.get_trace(mlflow.get_last_active_trace_id())
    assert trace.info.state.value == "OK"
    assert trace.info.tags["mlflow.traceName"] == "pipeline"
    assert trace.info.tags["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert trace.info.request_preview == '{"question": "hello", "tag": ""}'
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"pipeline", "retrieve", "answer"}
    root = spans["pipeline"]
    assert root.parent_id is None
    assert spans["retrieve"].parent_id == root.span_id and spans["answer"].parent_id == root.span_id
    assert spans["retrieve"].span_type == SpanType.RETRIEVER and spans["answer"].span_type == SpanType.LLM
    assert spans["retrieve"].inputs == {"q": "hello"} and spans["retrieve"].outputs == ["doc-1", "doc-2"]
    assert spans["retrieve"].get_attribute("k") == 2
    assert spans["answer"].outputs == {"answer": "HELLO"}
    assert trace.data.spans[0].name == "pipeline"  # the root span first


def test_search_traces_gives_a_dataframe_a_list_filters_orders_and_pages(client):
    for i in range(3):
        pipeline(f"q{i}", tag="red" if i == 1 else "blue")
    exp = _experiment_id()
    frame = mlflow.search_traces(locations=[exp])
    assert len(frame) == 3 and "trace_id" in frame.columns
    listed = mlflow.search_traces(locations=[exp], return_type="list")
    assert [t.data.spans[0].inputs["question"] for t in listed] == ["q2", "q1", "q0"]  # newest first
    red = mlflow.search_traces(locations=[exp], filter_string="tags.team = 'red'", return_type="list")
    assert [t.info.request_preview for t in red] == ['{"question": "q1", "tag": "red"}']
    by_span = mlflow.search_traces(locations=[exp], filter_string="span.name = 'retrieve' AND tags.team != 'red'",
                                   return_type="list")
    assert len(by_span) == 2
    oldest = client.search_traces(locations=[exp], order_by=["timestamp_ms ASC"], max_results=2)
    assert len(oldest) == 2 and oldest.token
    rest = client.search_traces(locations=[exp], order_by=["timestamp_ms ASC"], max_results=2, page_token=oldest.token)
    assert [t.info.request_preview for t in rest] == ['{"question": "q2", "tag": "blue"}'] and not rest.token


def test_traces_logged_in_a_run_or_linked_to_it_are_found_by_run(client):
    with mlflow.start_run() as run:
        pipeline("inside")
    inside = mlflow.get_last_active_trace_id()
    pipeline("outside")
    outside = mlflow.get_last_active_trace_id()
    exp = _experiment_id()
    found = mlflow.search_traces(locations=[exp], run_id=run.info.run_id, return_type="list")
    assert [t.info.trace_id for t in found] == [inside]
    client.link_traces_to_run([outside], run.info.run_id)
    found = mlflow.search_traces(locations=[exp], run_id=run.info.run_id, return_type="list")
    assert {t.info.trace_id for t in found} == {inside, outside}


def test_trace_tags_are_set_and_deleted(client):
    pipeline("tags")
    trace_id = mlflow.get_last_active_trace_id()
    client.set_trace_tag(trace_id, "reviewed", "yes")
    assert client.get_trace(trace_id).info.tags["reviewed"] == "yes"
    client.delete_trace_tag(trace_id, "reviewed")
    assert "reviewed" not in client.get_trace(trace_id).info.tags


def test_feedback_and_expectations_are_logged_read_updated_and_deleted(client):
    pipeline("judge me")
    trace_id = mlflow.get_last_active_trace_id()
    feedback = mlflow.log_feedback(trace_id=trace_id, name="quality", value=0.75, rationale="close enough",
                                   source=AssessmentSource(source_type="HUMAN", source_id="ana"))
    expectation = mlflow.log_expectation(trace_id=trace_id, name="expected", value={"answer": "JUDGE ME"})
    got = mlflow.get_assessment(trace_id, feedback.assessment_id)
    assert (got.name, got.value, got.rationale, got.source.source_id) == ("quality", 0.75, "close enough", "ana")
    assert mlflow.get_assessment(trace_id, expectation.assessment_id).value == {"answer": "JUDGE ME"}
    exp = _experiment_id()
    found = mlflow.search_traces(locations=[exp], filter_string="feedback.quality = '0.75'", return_type="list")
    assert [t.info.trace_id for t in found] == [trace_id]

    from mlflow.entities import Feedback

    mlflow.update_assessment(trace_id, feedback.assessment_id, Feedback(name="quality", value=1.0))
    assert mlflow.get_assessment(trace_id, feedback.assessment_id).value == 1.0
    names = {a.name for a in client.get_trace(trace_id).info.assessments}
    assert names == {"quality", "expected"}
    mlflow.delete_assessment(trace_id, expectation.assessment_id)
    assert {a.name for a in client.get_trace(trace_id).info.assessments} == {"quality"}


def test_delete_traces_by_ids_and_by_age_and_count(client):
    ids = []
    for i in range(4):
        pipeline(f"d{i}")
        ids.append(mlflow.get_last_active_trace_id())
    exp = _experiment_id()
    assert client.delete_traces(exp, trace_ids=[ids[3]]) == 1
    assert client.delete_traces(exp, max_timestamp_millis=int(time.time() * 1000), max_traces=2) == 2
    left = mlflow.search_traces(locations=[exp], return_type="list")
    assert [t.info.trace_id for t in left] == [ids[2]]  # the two oldest went, then the newest by id
    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        client.get_trace(ids[0])


def test_async_export_as_the_client_does_by_default_stores_every_trace_with_all_its_spans(client, monkeypatch):
    """The client's default export runs the span and TraceInfo requests on worker threads, in either
    order or at once: every trace must still end up complete (no duplicate-key error, no lost spans)."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "true")
    mlflow.tracing.reset()
    try:
        for i in range(12):
            pipeline(f"async {i}")
        mlflow.flush_trace_async_logging()
    finally:
        monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        mlflow.tracing.reset()
    traces = mlflow.search_traces(locations=[_experiment_id()], return_type="list")
    assert len(traces) == 12
    assert all(sorted(s.name for s in t.data.spans) == ["answer", "pipeline", "retrieve"] for t in traces)
    assert all(t.info.state.value == "OK" and t.info.tags["mlflow.traceName"] == "pipeline" for t in traces)


# --- one database, read by both --------------------------------------------------------------

def _view(tracking_uri: str, trace_id: str):
    """What the client sees of a trace through `tracking_uri` (a server, or MLflow's own store on the database)."""
    trace = MlflowClient(tracking_uri).get_trace(trace_id)
    spans = sorted((s.name, s.parent_id is None, s.span_type, repr(s.inputs), repr(s.outputs),
                    s.start_time_ns, s.end_time_ns) for s in trace.data.spans)
    info = trace.info
    return (info.state.value, info.request_time, info.execution_duration, info.request_preview,
            info.response_preview, dict(info.tags), sorted((a.name, repr(a.value)) for a in info.assessments), spans)


def _log_through(tracking_uri: str, experiment: str) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.tracing.reset()
    mlflow.set_experiment(experiment)
    pipeline("shared", tag="x")
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.log_feedback(trace_id=trace_id, name="ok", value=True)
    return trace_id


def test_traces_written_by_mlflows_store_and_by_trackops_read_the_same_through_either(server):
    """MLflow's own SQL store (what `mlflow server` runs, here in process on the server's database)
    writes a trace that trackops serves as MLflow reads it; and MLflow's store reads what trackops wrote."""
    by_mlflow = _log_through(server.db, f"by-mlflow-{uuid.uuid4().hex[:6]}")
    assert _view(server.url, by_mlflow) == _view(server.db, by_mlflow)
    experiment = f"by-trackops-{uuid.uuid4().hex[:6]}"
    by_trackops = _log_through(server.url, experiment)
    assert _view(server.db, by_trackops) == _view(server.url, by_trackops)
    exp = mlflow.get_experiment_by_name(experiment).experiment_id
    for uri in (server.url, server.db):
        found = MlflowClient(uri).search_traces(locations=[exp], filter_string="tags.team = 'x'")
        assert [t.info.trace_id for t in found] == [by_trackops], uri
