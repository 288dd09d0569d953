"""MLflow's traces tab in headless Chromium against `trackops serve`, on a trace written with the real
`mlflow` tracing client (`@mlflow.trace` and `mlflow.start_span`): the experiment's traces list shows
the trace, and opening it shows its span tree with the root span and both children; on SQLite and
PostgreSQL (the spans are read back from the backend's spans table).
"""

from __future__ import annotations

import uuid

import pytest

mlflow = pytest.importorskip("mlflow")

from tests.browser import screenshot  # noqa: E402
from tests.ui.pages import serve, ui_factory  # noqa: E402, F401


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def traced(request, tmp_path_factory):
    """A server holding one experiment with one trace: `ask_pipeline` -> `fetch_documents`, `llm_answer`."""
    from mlflow.entities import SpanType

    proc = serve(tmp_path_factory, f"pages-traces-{request.param}", backend=request.param)
    try:
        mlflow.set_tracking_uri(proc.url)
        mlflow.tracing.reset()  # the span exporter is bound to the tracking URI it was made with
        experiment = mlflow.set_experiment(f"traced-{uuid.uuid4().hex[:8]}")

        @mlflow.trace(name="llm_answer", span_type=SpanType.LLM)
        def llm_answer(question: str) -> str:
            return question.upper()

        @mlflow.trace(name="ask_pipeline")
        def ask_pipeline(question: str) -> str:
            with mlflow.start_span("fetch_documents", span_type=SpanType.RETRIEVER) as span:
                span.set_inputs({"q": question})
                span.set_outputs(["doc-a", "doc-b"])
            return llm_answer(question)

        assert ask_pipeline("where is the span tree") == "WHERE IS THE SPAN TREE"
        trace_id = mlflow.get_last_active_trace_id()
        mlflow.flush_trace_async_logging()
        yield proc.url, {"experiment": experiment.experiment_id, "trace": trace_id}, request.param
    finally:
        mlflow.tracing.reset()
        proc.stop()


def test_traces_tab_lists_the_trace_and_shows_its_span_tree(traced, ui_factory):
    base, ids, backend = traced
    ui = ui_factory(base)
    page = ui.open(f"/#/experiments/{ids['experiment']}/traces")
    # The list row carries the trace's request and response previews and its state.
    row = page.get_by_text('{"question": "where is the span tree"}').first
    row.wait_for()
    page.get_by_text('"WHERE IS THE SPAN TREE"').first.wait_for()
    row.click()
    # The trace view shows the span tree: the root span and both children by name.
    for name in ("ask_pipeline", "fetch_documents", "llm_answer"):
        page.get_by_text(name, exact=True).first.wait_for()
    ui.settle()
    if backend == "sqlite":  # one picture of the page
        screenshot(page, "ui-traces")
    # A child span opens with its own inputs and outputs.
    page.get_by_text("fetch_documents", exact=True).first.click()
    page.get_by_text("doc-b").first.wait_for()
    assert ui.failures() == []
