"""Traces written through the REST API (OTLP spans + v3 TraceInfo + an assessment + a run link, in process)
survive backup and restore (SQLite onto PostgreSQL, where dialect differences would show); deleting their experiment and running gc removes
every trace row."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.archive.helpers import all_rows
from trackops.config import Settings
from trackops.server.factory import build_app
from trackops.services import backup, restore
from trackops.services.gc import gc
from trackops.services.serve import preflight, serve_config

TRACE_TABLES = ("trace_info", "trace_tags", "trace_request_metadata", "spans", "assessments", "entity_associations")


def _otlp(trace_hex: str, now_ns: int) -> dict:
    def span(span_hex, parent, name, offset):
        return {"traceId": trace_hex, "spanId": span_hex, **({"parentSpanId": parent} if parent else {}),
                "name": name, "startTimeUnixNano": str(now_ns + offset), "endTimeUnixNano": str(now_ns + offset + 500),
                "attributes": [{"key": "mlflow.spanInputs", "value": {"stringValue": '{"q": 1}'}},
                               {"key": "mlflow.spanType", "value": {"stringValue": '"CHAIN"'}}],
                "status": {"code": 1}}

    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        span("00000000000000a1", None, "root", 0), span("00000000000000a2", "00000000000000a1", "child", 100)]}]}]}


@pytest.fixture
def written(sqlite_head_url, tmp_path):
    """A SQLite database with one experiment, one run and one fully written trace; (settings, ids)."""
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "mlartifacts"))
    preflight(settings)
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        exp = c.post("/api/2.0/mlflow/experiments/create", json={"name": "traced"}).json()["experiment_id"]
        run = c.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
        trace_hex = "0123456789abcdef0123456789abcdef"
        trace_id = "tr-" + trace_hex
        now_ms = int(time.time() * 1000)
        r = c.post("/v1/traces", content=json.dumps(_otlp(trace_hex, now_ms * 1_000_000)),
                   headers={"Content-Type": "application/json", "x-mlflow-experiment-id": exp})
        assert r.status_code == 200, r.text
        info = {"trace_id": trace_id, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                                         "mlflow_experiment": {"experiment_id": exp}},
                "request_time": "2026-01-02T03:04:05.006Z", "execution_duration": "0.001s", "state": "OK",
                "trace_metadata": {"mlflow.sourceRun": run}, "tags": {"mlflow.traceName": "root", "team": "a"}}
        assert c.post("/api/3.0/mlflow/traces", json={"trace": {"trace_info": info}}).status_code == 200
        r = c.post(f"/api/3.0/mlflow/traces/{trace_id}/assessments", json={"assessment": {
            "assessment_name": "ok", "trace_id": trace_id, "source": {"source_type": "HUMAN", "source_id": "me"},
            "feedback": {"value": True}}})
        assert r.status_code == 200, r.text
        assert c.post("/api/2.0/mlflow/traces/link-to-run", json={"trace_ids": [trace_id], "run_id": run}
                      ).status_code == 200
        got = c.get("/api/3.0/mlflow/traces/get", params={"trace_id": trace_id}).json()["trace"]
        assert [s["name"] for s in got["spans"]] == ["root", "child"]
    return settings, exp, trace_id


def _trace_rows(url: str) -> dict[str, list]:
    rows = all_rows(url)
    return {t: rows.get(t, []) for t in TRACE_TABLES}


def test_a_trace_written_through_the_api_survives_backup_and_restore_onto_postgres(written, postgres_url, tmp_path):
    settings, _exp, trace_id = written
    repo = tmp_path / "repo"
    backup.backup(settings, to=str(repo))
    target_url = postgres_url
    restore.restore(Settings(), snapshot="latest", repository=str(repo), to_backend_store_uri=target_url,
                    to_artifacts_destination=settings.artifacts_destination)
    before, after = _trace_rows(settings.backend_store_uri), _trace_rows(target_url)
    assert all(before[t] for t in TRACE_TABLES)  # every trace table has the trace's rows
    assert after == before

    restored = Settings(backend_store_uri=target_url, artifacts_destination=settings.artifacts_destination)
    with TestClient(build_app(serve_config(restored)), raise_server_exceptions=False) as c:
        got = c.get("/api/3.0/mlflow/traces/get", params={"trace_id": trace_id}).json()["trace"]
    assert [s["name"] for s in got["spans"]] == ["root", "child"]
    assert [a["assessment_name"] for a in got["trace_info"]["assessments"]] == ["ok"]


def test_deleting_the_experiment_and_gc_removes_the_trace_rows(written):
    settings, exp, _trace_id = written
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        assert c.post("/api/2.0/mlflow/experiments/delete", json={"experiment_id": exp}).status_code == 200
    report = gc(settings)
    assert report.ok and report.deleted["experiments"] == 1 and report.deleted["traces"] == 1
    engine = sa.create_engine(settings.backend_store_uri, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        for table in TRACE_TABLES:
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0, table
    engine.dispose()
