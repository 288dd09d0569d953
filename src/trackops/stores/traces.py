"""Traces (MLflow 3 tracing) on MLflow's trace tables, stored as MLflow 3.17.2's SQL store stores them.

A trace reaches the server in two requests, in either order: the client's span exporter posts the
spans over OTLP (`log_spans`), and its trace exporter posts the finished `TraceInfo`
(`start_trace`, named so by MLflow although it is called at the end). What each writes:

- ``trace_info``: one row per trace. `log_spans` creates it when it comes first (timestamp = the
  earliest span start, status from the root span); `start_trace` then overwrites the top-level
  fields and marks the trace finalized (metadata ``mlflow.trace.infoFinalized = true``), after which
  spans no longer move its timestamp or duration. The trace name lives in ``trace_name``, not in
  ``trace_tags``; session id, token usage and cost live in their columns, not in the metadata.
  ``db_payload_generation`` counts span writes.
- ``trace_tags``: the client's tags plus ``mlflow.artifactLocation`` =
  ``<experiment location>/traces/<trace id>/artifacts`` (attachments go there) and, once spans
  are stored, ``mlflow.trace.spansLocation = TRACKING_STORE``.
- ``trace_request_metadata``: the client's metadata (``mlflow.sourceRun`` links a trace to its run).
- ``spans``: one row per span; ``content`` is the span as JSON exactly as MLflow writes it
  (ids base64, attributes as JSON-encoded strings), which is what both servers read back.
- ``assessments``: feedback and expectations, values JSON-encoded.
- ``entity_associations``: (trace → run) links made by `link_traces_to_run`.

Deleting a trace deletes its ``trace_info`` row; the child rows go by ON DELETE CASCADE, which
trackops' schema declares on every dialect (SQLite enforces it with ``PRAGMA foreign_keys``, set by
`db.engine`), and explicitly here too so that nothing depends on it.
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from trackops.db import schema as s
from trackops.errors import InvalidParameterValue, InvalidState, ResourceDoesNotExist
from trackops.stores.otlp import STATUS_NAMES, OtlpSpan
from trackops.stores.rows import chunks, pg_ids_in
from trackops.stores.sql import TransactionScopes, insert_ignoring_duplicates, upsert
from trackops.stores.uris import append_to_uri_path

TRACE_NAME = "mlflow.traceName"
ARTIFACT_LOCATION = "mlflow.artifactLocation"
SPANS_LOCATION = "mlflow.trace.spansLocation"
TRACKING_STORE = "TRACKING_STORE"
SOURCE_RUN = "mlflow.sourceRun"
INFO_FINALIZED = "mlflow.trace.infoFinalized"
TRACE_USER = "mlflow.trace.user"
SESSION = "mlflow.trace.session"
TOKEN_USAGE = "mlflow.trace.tokenUsage"
COST = "mlflow.trace.cost"
SIZE_STATS = "mlflow.trace.sizeStats"
PROMOTED = frozenset({SESSION, TOKEN_USAGE, COST})
TOKEN_COLUMNS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "total_tokens": "total_tokens",
                 "cache_read_input_tokens": "cache_read_input_tokens",
                 "cache_creation_input_tokens": "cache_creation_input_tokens",
                 "cache_creation_input_tokens_above_1hr": "cache_creation_input_tokens_above_1hr"}
COST_COLUMNS = {"input_cost": "input_cost", "output_cost": "output_cost", "total_cost": "total_cost"}
TRACE_TAG_PREFIX = "mlflow.traceTag."
STATES = ("STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS")
PREVIEW_MAX = 1000
MAX_LINKS = 100
BATCH = 500  # ids per IN (...) list: below SQLite's and MSSQL's bound-parameter limits


def now_ms() -> int:
    return int(time.time() * 1000)


def _not_found(trace_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Trace with ID '{trace_id}' not found.")


# --- spans as MLflow stores them ----------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return _b64(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def stored_attribute(value: Any) -> str:
    """An OTLP attribute value as MLflow keeps it: JSON-encoded once (a value that arrived as an
    already-encoded JSON string, as the MLflow client sends objects, is kept as that string)."""
    dumped = json.dumps(_json_safe(value), ensure_ascii=False)
    if isinstance(value, str):
        try:
            if isinstance(json.loads(value), (str, dict, list)):
                return value
        except ValueError:
            pass
    return dumped


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def span_row(span: OtlpSpan, experiment_id: int | None) -> dict[str, Any]:
    """The ``spans`` row for one OTLP span, ``content`` byte for byte as MLflow 3.17.2 writes it."""
    trace_hex = span.trace_id.hex()
    trace_id = "tr-" + trace_hex
    attributes = {k: stored_attribute(v) for k, v in span.attributes.items()}
    attributes["mlflow.traceRequestId"] = json.dumps(trace_id)
    code = STATUS_NAMES.get(span.status_code, "STATUS_CODE_UNSET")
    content = {
        "trace_id": _b64(span.trace_id),
        "span_id": _b64(span.span_id),
        "parent_span_id": _b64(span.parent_span_id) if span.parent_span_id else None,
        "name": span.name,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "events": [{"name": e["name"], "time_unix_nano": e["time_unix_nano"], "attributes": _json_safe(e["attributes"])}
                   for e in span.events],
        # OpenTelemetry keeps a status message only for errors
        "status": {"code": code, "message": span.status_message if span.status_code == 2 else ""},
        "attributes": attributes,
        "links": [{"trace_id": "tr-" + lk["trace_id"].hex(), "span_id": lk["span_id"].hex(),
                   "attributes": _json_safe(lk["attributes"]) or None} for lk in span.links],
    }
    span_type = _loads(attributes.get("mlflow.spanType"))
    cost = _loads(attributes.get("mlflow.llm.cost"))
    cost = cost if isinstance(cost, dict) else {}
    model = _loads(attributes.get("mlflow.llm.model"))
    provider = _loads(attributes.get("mlflow.llm.provider"))
    return {
        "trace_id": trace_id, "experiment_id": experiment_id, "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() if span.parent_span_id else None,
        "name": span.name, "type": span_type if isinstance(span_type, str) else None,
        "status": code.removeprefix("STATUS_CODE_"),
        "start_time_unix_nano": span.start_time_unix_nano, "end_time_unix_nano": span.end_time_unix_nano,
        "content": json.dumps(content, ensure_ascii=False),
        "input_cost": _finite(cost.get("input_cost")), "output_cost": _finite(cost.get("output_cost")),
        "total_cost": _finite(cost.get("total_cost")),
        "model_name": model[:500] if isinstance(model, str) else None,
        "model_provider": provider[:500] if isinstance(provider, str) else None,
    }


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _token_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    value = int(value)
    return value if -(2**63) <= value < 2**63 else None


def preview(value: str | None) -> str | None:
    """The request/response preview MLflow derives from the root span's inputs or outputs."""
    if value is None:
        return None
    content = None
    obj = _loads(value)
    if isinstance(obj, dict) and isinstance(obj.get("messages"), list) and obj["messages"]:
        last = obj["messages"][-1]
        if isinstance(last, dict) and isinstance(last.get("content"), str):
            content = last["content"]
    content = content or value
    return content if len(content) <= PREVIEW_MAX else content[:PREVIEW_MAX - 3] + "..."


def _aggregate(spans: list[dict[str, Any]], attribute: str) -> dict[str, Any]:
    """Token usage or cost over a span tree, counting a span only when no ancestor carries the value
    (autologgers put the cumulative figure on the parent), as MLflow aggregates them."""
    values = {}
    parents = {}
    for row in spans:
        attrs = json.loads(row["content"]).get("attributes", {})
        value = _loads(attrs.get(attribute))
        if isinstance(value, dict):
            values[row["span_id"]] = value
        parents[row["span_id"]] = row["parent_span_id"]
    total: dict[str, float] = defaultdict(float)
    for span_id, value in values.items():
        parent, covered = parents.get(span_id), False
        seen = {span_id}
        while parent is not None and parent not in seen:
            if parent in values:
                covered = True
                break
            seen.add(parent)
            parent = parents.get(parent)
        if not covered:
            for k, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    total[k] += v
    return dict(total)


# --- assessments --------------------------------------------------------------------------------

def aggregate_value(value: Any) -> tuple[float | None, bool]:
    """MLflow's (aggregate_value, is_numeric_value) for an assessment value."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), False
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None, False
        return (number, True) if math.isfinite(number) else (None, False)
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return (1.0 if value.strip().lower() == "yes" else 0.0), False
    return None, False


def assessment_row(a: dict[str, Any], trace_id: str, experiment_id: int, trace_ts: int) -> dict[str, Any]:
    """The ``assessments`` row of an assessment dict (see `assessment_of`)."""
    now = now_ms()
    kind = a["kind"]
    value = a.get("value")
    agg, numeric = aggregate_value(value)
    return {
        "assessment_id": a.get("assessment_id") or "a-" + uuid.uuid4().hex,
        "trace_id": trace_id, "name": a["assessment_name"], "assessment_type": kind,
        "value": json.dumps(value), "error": json.dumps(a["error"]) if a.get("error") else None,
        "created_timestamp": a.get("create_time_ms") or now, "last_updated_timestamp": a.get("last_update_time_ms") or now,
        "source_type": a["source"]["source_type"], "source_id": a["source"].get("source_id"),
        "run_id": a.get("run_id"), "span_id": a.get("span_id"), "rationale": a.get("rationale"),
        "overrides": a.get("overrides"), "valid": True,
        "assessment_metadata": json.dumps(a["metadata"]) if a.get("metadata") else None,
        "experiment_id": experiment_id, "trace_timestamp_ms": trace_ts,
        "aggregate_value": agg, "is_numeric_value": numeric,
    }


def assessment_of(row: Any) -> dict[str, Any]:
    return {
        "assessment_id": row.assessment_id, "assessment_name": row.name, "trace_id": row.trace_id,
        "span_id": row.span_id, "run_id": row.run_id,
        "source": {"source_type": row.source_type, "source_id": row.source_id},
        "create_time_ms": row.created_timestamp, "last_update_time_ms": row.last_updated_timestamp,
        "kind": row.assessment_type, "value": json.loads(row.value),
        "error": json.loads(row.error) if row.error else None, "rationale": row.rationale,
        "metadata": json.loads(row.assessment_metadata) if row.assessment_metadata else None,
        "overrides": row.overrides, "valid": bool(row.valid),
    }


# --- the store ----------------------------------------------------------------------------------

class TraceStore(TransactionScopes):
    """Trace reads and writes; every method is one transaction."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # writes -------------------------------------------------------------------------------------

    def _experiment(self, conn: sa.Connection, experiment_id: Any) -> Any:
        try:
            exp_id = int(experiment_id)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"Invalid experiment ID '{experiment_id}'. "
                                        "Experiment ID must be a valid integer.") from None
        e = s.experiments
        row = conn.execute(sa.select(e.c.experiment_id, e.c.artifact_location, e.c.lifecycle_stage)
                           .where(e.c.experiment_id == exp_id)).first()
        if row is None:
            raise ResourceDoesNotExist(f"No Experiment with id={exp_id} exists")
        return row

    def start_trace(self, info: dict[str, Any]) -> dict[str, Any]:
        """Record a finished trace's `TraceInfo` (creating it, or completing what `log_spans` began)."""
        trace_id = info["trace_id"]
        if not trace_id:
            raise InvalidParameterValue("Missing value for required parameter 'trace_id'.")
        tags = dict(info.get("tags") or {})
        metadata = dict(info.get("trace_metadata") or {})
        trace_name = tags.pop(TRACE_NAME, None)
        columns = _analytics_columns(metadata)
        for key in PROMOTED:
            metadata.pop(key, None)
        metadata[INFO_FINALIZED] = "true"

        def write(conn: sa.Connection) -> dict[str, Any]:
            exp = self._experiment(conn, info["experiment_id"])
            if exp.lifecycle_stage != "active":
                raise InvalidState(f"The experiment {exp.experiment_id} must be in the 'active' state. "
                                   f"Current state is {exp.lifecycle_stage}.")
            ti = s.trace_info
            values = {"experiment_id": exp.experiment_id, "timestamp_ms": info["request_time"],
                      "execution_time_ms": info.get("execution_duration"), "status": info["state"],
                      "client_request_id": info.get("client_request_id"), **columns}
            if trace_name is not None:
                values["trace_name"] = trace_name
            for key in ("request_preview", "response_preview"):
                if info.get(key) is not None:
                    values[key] = info[key]
            # The client's span export may be storing this trace at the same moment (its async export
            # runs both requests on worker threads): insert-or-skip, then overwrite, never a duplicate-key error.
            exists = conn.execute(sa.select(ti.c.request_id).where(ti.c.request_id == trace_id)).first()
            if exists is None:
                insert_ignoring_duplicates(conn, ti, [_trace_row(trace_id, values)])
            # (a span export that raced the insert waits on this row, and then sees these values)
            conn.execute(ti.update().where(ti.c.request_id == trace_id).values(**values))
            if exists is not None:
                conn.execute(s.spans.update().where(s.spans.c.trace_id == trace_id,
                                                    s.spans.c.experiment_id != exp.experiment_id)
                             .values(experiment_id=exp.experiment_id))
                conn.execute(s.assessments.update().where(s.assessments.c.trace_id == trace_id)
                             .values(experiment_id=exp.experiment_id, trace_timestamp_ms=info["request_time"]))
            tags[ARTIFACT_LOCATION] = append_to_uri_path(exp.artifact_location, "traces", trace_id, "artifacts")
            upsert(conn, s.trace_tags, [{"key": k, "value": v, "request_id": trace_id} for k, v in tags.items()],
                   ["value"])
            upsert(conn, s.trace_request_metadata,
                   [{"key": k, "value": v, "request_id": trace_id} for k, v in sorted(metadata.items())], ["value"])
            rows = [assessment_row(a, trace_id, exp.experiment_id, info["request_time"])
                    for a in info.get("assessments") or []]
            if rows:
                upsert(conn, s.assessments, rows, [c for c in rows[0] if c != "assessment_id"])
            return self._infos(conn, [trace_id])[0]

        # InnoDB may pick one of two concurrent exports as a deadlock victim: it is run again.
        return self._transact(write)

    def log_spans(self, experiment_id: Any, spans: Sequence[OtlpSpan]) -> list[str]:
        """Store OTLP spans (creating their traces when `start_trace` has not come yet); returns the
        ids of the traces whose root span arrived."""
        if not spans:
            return []
        by_trace: dict[str, list[OtlpSpan]] = defaultdict(list)
        for span in spans:
            by_trace["tr-" + span.trace_id.hex()].append(span)
        ti = s.trace_info

        def write(conn: sa.Connection) -> list[str]:
            # Lock the traces' rows before their spans, in id order: start_trace takes them in the same
            # order (trace_info, then spans), so concurrent writers of one trace wait instead of deadlocking.
            ids = sorted(by_trace)
            locked = sa.select(ti).where(ti.c.request_id.in_(ids)).order_by(ti.c.request_id).with_for_update()
            rows_now = {r.request_id: r for r in conn.execute(locked).fetchall()}
            missing = [tid for tid in ids if tid not in rows_now]
            if missing:
                exp = self._experiment(conn, experiment_id)
                for trace_id in missing:
                    group = by_trace[trace_id]
                    start = min(sp.start_time_unix_nano for sp in group) // 1_000_000
                    ends = [sp.end_time_unix_nano for sp in group if sp.end_time_unix_nano]
                    insert_ignoring_duplicates(conn, ti, [_trace_row(trace_id, {
                        "experiment_id": exp.experiment_id, "timestamp_ms": start,
                        "execution_time_ms": (max(ends) // 1_000_000 - start) if ends else None,
                        "status": _root_status(group) or "IN_PROGRESS"})])
                upsert(conn, s.trace_tags, [{"key": ARTIFACT_LOCATION, "request_id": tid, "value": append_to_uri_path(
                    exp.artifact_location, "traces", tid, "artifacts")} for tid in missing], ["value"])
                rows_now.update((r.request_id, r) for r in conn.execute(
                    sa.select(ti).where(ti.c.request_id.in_(missing)).order_by(ti.c.request_id).with_for_update()))
            span_rows = [span_row(sp, rows_now[tid].experiment_id) for tid, group in by_trace.items() for sp in group]
            upsert(conn, s.spans, span_rows, [c for c in span_rows[0] if c not in ("trace_id", "span_id")])
            finalized = {r.request_id for r in conn.execute(
                sa.select(s.trace_request_metadata.c.request_id).where(
                    s.trace_request_metadata.c.request_id.in_(list(by_trace)),
                    s.trace_request_metadata.c.key == INFO_FINALIZED))}
            completed = []
            for trace_id, group in sorted(by_trace.items()):
                self._update_from_spans(conn, rows_now[trace_id], group, trace_id in finalized)
                if any(sp.parent_span_id is None for sp in group):
                    completed.append(trace_id)
            return completed

        # Concurrent exports of new traces can deadlock on InnoDB's gap locks: the loser is run again.
        return self._transact(write)

    def _update_from_spans(self, conn: sa.Connection, row: Any, group: list[OtlpSpan], finalized: bool) -> None:
        ti = s.trace_info
        trace_id = row.request_id
        values: dict[str, Any] = {}
        start = min(sp.start_time_unix_nano for sp in group) // 1_000_000
        ends = [sp.end_time_unix_nano for sp in group if sp.end_time_unix_nano]
        if not finalized:
            new_start = min(row.timestamp_ms, start)
            old_end = row.timestamp_ms + row.execution_time_ms if row.execution_time_ms is not None else None
            end = max([e // 1_000_000 for e in ends] + ([old_end] if old_end is not None else []), default=None)
            values["timestamp_ms"] = new_start
            if end is not None:
                values["execution_time_ms"] = end - new_start
            if new_start != row.timestamp_ms:
                conn.execute(s.assessments.update().where(s.assessments.c.trace_id == trace_id)
                             .values(trace_timestamp_ms=new_start))
        root_status = _root_status(group)
        if row.status in ("IN_PROGRESS", "STATE_UNSPECIFIED") and root_status:
            values["status"] = root_status
        tags: dict[str, str] = {SPANS_LOCATION: TRACKING_STORE}
        resource = next((sp.resource for sp in group if sp.resource), {})
        for key, value in resource.items():
            if not key.startswith(("telemetry.sdk.", "mlflow.")):
                tags[key] = value if isinstance(value, str) else json.dumps(_json_safe(value))
        session_id = user_id = None
        for sp in group:  # the decoded OTLP values: no need to parse the stored JSON again
            attrs = sp.attributes
            if session_id is None:
                session_id = attrs.get("session.id") or attrs.get("gen_ai.conversation.id")
            if user_id is None:
                user_id = attrs.get("user.id")
            if sp.parent_span_id is None:
                if row.request_preview is None and attrs.get("mlflow.spanInputs") is not None:
                    values["request_preview"] = preview(stored_attribute(attrs["mlflow.spanInputs"]))
                if row.response_preview is None and attrs.get("mlflow.spanOutputs") is not None:
                    values["response_preview"] = preview(stored_attribute(attrs["mlflow.spanOutputs"]))
                for key, value in attrs.items():
                    if key.startswith(TRACE_TAG_PREFIX):
                        tag_value = str(_loads(stored_attribute(value)))
                        if key[len(TRACE_TAG_PREFIX):] == TRACE_NAME:
                            values["trace_name"] = tag_value
                        else:
                            tags[key[len(TRACE_TAG_PREFIX):]] = tag_value
        if session_id is not None and row.session_id is None:
            values["session_id"] = str(_loads(stored_attribute(session_id)))[:250]
        if user_id is not None:
            user_id = _loads(stored_attribute(user_id))
        # Token usage and cost: recomputed over the trace's whole span tree when this batch carries
        # some (as MLflow does), unless the TraceInfo already gave them.
        has_usage = any("mlflow.chat.tokenUsage" in sp.attributes for sp in group)
        has_cost = any("mlflow.llm.cost" in sp.attributes for sp in group)
        if has_usage or has_cost:
            stored = _trace_span_rows(conn, trace_id)
            if has_usage and (not finalized or all(getattr(row, c) is None for c in TOKEN_COLUMNS.values())):
                usage = _aggregate(stored, "mlflow.chat.tokenUsage")
                for key, column in TOKEN_COLUMNS.items():
                    if _token_count(usage.get(key)) is not None:
                        values[column] = _token_count(usage[key])
            if has_cost and (not finalized or all(getattr(row, c) is None for c in COST_COLUMNS.values())):
                cost = _aggregate(stored, "mlflow.llm.cost")
                for key, column in COST_COLUMNS.items():
                    if _finite(cost.get(key)) is not None:
                        values[column] = _finite(cost[key])
        values["db_payload_generation"] = ti.c.db_payload_generation + 1  # counts span writes, as MLflow
        conn.execute(ti.update().where(ti.c.request_id == trace_id).values(**values))
        if user_id is not None:
            insert_missing(conn, s.trace_request_metadata, {"key": TRACE_USER, "request_id": trace_id,
                                                            "value": str(user_id)})
        upsert(conn, s.trace_tags, [{"key": k, "value": v, "request_id": trace_id} for k, v in tags.items()], ["value"])

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        with self._write() as conn:
            row = self._trace_row(conn, trace_id)
            if key == TRACE_NAME:
                conn.execute(s.trace_info.update().where(s.trace_info.c.request_id == row.request_id)
                             .values(trace_name=value))
                return
            upsert(conn, s.trace_tags, [{"key": key, "value": value, "request_id": trace_id}], ["value"])

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        with self._write() as conn:
            row = self._trace_row(conn, trace_id)
            if key == TRACE_NAME:
                if row.trace_name is None:
                    raise ResourceDoesNotExist(f"No trace tag with key '{key}' for trace with ID '{trace_id}'")
                conn.execute(s.trace_info.update().where(s.trace_info.c.request_id == trace_id).values(trace_name=None))
                return
            tt = s.trace_tags
            deleted = conn.execute(tt.delete().where(tt.c.request_id == trace_id, tt.c.key == key)).rowcount
            if not deleted:
                raise ResourceDoesNotExist(f"No trace tag with key '{key}' for trace with ID '{trace_id}'")

    def delete_traces(self, experiment_id: Any, *, max_timestamp_millis: int | None = None,
                      max_traces: int | None = None, trace_ids: Sequence[str] | None = None) -> int:
        """Delete an experiment's traces: those named, or the oldest up to `max_traces` at or before
        `max_timestamp_millis`; returns how many."""
        try:
            exp_id = int(experiment_id)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"Invalid experiment ID '{experiment_id}'.") from None
        ti = s.trace_info
        where = [ti.c.experiment_id == exp_id]
        if max_timestamp_millis is not None:
            where.append(ti.c.timestamp_ms <= max_timestamp_millis)
        if trace_ids:
            where.append(ti.c.request_id.in_(list(trace_ids)))
        stmt = sa.select(ti.c.request_id).where(*where).order_by(ti.c.timestamp_ms, ti.c.request_id)
        if max_traces is not None:
            stmt = stmt.limit(max_traces)
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(stmt)]
            for batch in chunks(ids, BATCH):
                delete_trace_rows(conn, batch)
            return len(ids)

    def link_traces_to_run(self, trace_ids: Sequence[str], run_id: str) -> None:
        if not trace_ids:
            return
        if len(trace_ids) > MAX_LINKS:
            raise InvalidParameterValue(f"Cannot link more than {MAX_LINKS} traces to a run in a single request. "
                                        f"Provided {len(trace_ids)} traces.")
        ea = s.entity_associations
        with self._write() as conn:
            run = conn.execute(sa.select(s.runs.c.lifecycle_stage).where(s.runs.c.run_uuid == run_id)).first()
            if run is None:
                raise ResourceDoesNotExist(f"Run with id={run_id} not found")
            known = {r[0] for r in conn.execute(sa.select(s.trace_info.c.request_id)
                                                .where(s.trace_info.c.request_id.in_(list(trace_ids))))}
            linked = {r[0] for r in conn.execute(sa.select(ea.c.source_id).where(
                ea.c.source_type == "trace", ea.c.source_id.in_(list(known)), ea.c.destination_type == "run",
                ea.c.destination_id == run_id))}
            rows = [{"association_id": uuid.uuid4().hex, "source_type": "trace", "source_id": tid,
                     "destination_type": "run", "destination_id": run_id, "created_time": now_ms()}
                    for tid in dict.fromkeys(trace_ids) if tid in known and tid not in linked]
            if rows:
                conn.execute(ea.insert(), rows)

    # assessments --------------------------------------------------------------------------------

    def create_assessment(self, trace_id: str, assessment: dict[str, Any]) -> dict[str, Any]:
        a = s.assessments
        with self._write() as conn:
            trace = self._trace_row(conn, trace_id)
            row = assessment_row(assessment, trace_id, trace.experiment_id, trace.timestamp_ms)
            row["assessment_id"] = "a-" + uuid.uuid4().hex
            row["created_timestamp"] = row["last_updated_timestamp"] = assessment.get("create_time_ms") or now_ms()
            if row["overrides"]:
                hit = conn.execute(a.update().where(a.c.trace_id == trace_id, a.c.assessment_id == row["overrides"])
                                   .values(valid=False)).rowcount
                if not hit:
                    raise ResourceDoesNotExist(f"Assessment with ID '{row['overrides']}' not found for trace "
                                               f"'{trace_id}'")
            conn.execute(a.insert().values(**row))
            return self._assessment(conn, trace_id, row["assessment_id"])

    def get_assessment(self, trace_id: str, assessment_id: str) -> dict[str, Any]:
        with self._read() as conn:
            return self._assessment(conn, trace_id, assessment_id)

    def update_assessment(self, trace_id: str, assessment_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `changes` (name, value of the same kind, error, rationale, metadata merged)."""
        a = s.assessments
        with self._write() as conn:
            old = self._assessment(conn, trace_id, assessment_id)
            kind = changes.get("kind")
            if kind is not None and kind != old["kind"]:
                raise InvalidParameterValue(f"Cannot update {kind} value on a "
                                            f"{'Feedback' if old['kind'] == 'feedback' else 'Expectation'} assessment.")
            metadata = old["metadata"]
            if changes.get("metadata"):
                metadata = {**(metadata or {}), **changes["metadata"]}
            value = changes["value"] if "value" in changes else old["value"]
            error = (changes.get("error") if "value" in changes else old["error"]) if old["kind"] == "feedback" else None
            agg, numeric = aggregate_value(value)
            conn.execute(a.update().where(a.c.trace_id == trace_id, a.c.assessment_id == assessment_id).values(
                name=changes.get("assessment_name") or old["assessment_name"], value=json.dumps(value),
                error=json.dumps(error) if error else None, last_updated_timestamp=now_ms(),
                rationale=changes["rationale"] if changes.get("rationale") is not None and old["kind"] == "feedback"
                else old["rationale"],
                assessment_metadata=json.dumps(metadata) if metadata else None,
                aggregate_value=agg, is_numeric_value=numeric))
            return self._assessment(conn, trace_id, assessment_id)

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        """Delete an assessment; one it overrode becomes valid again (as in MLflow)."""
        a = s.assessments
        with self._write() as conn:
            self._trace_row(conn, trace_id)
            row = conn.execute(sa.select(a.c.overrides).where(a.c.trace_id == trace_id,
                                                              a.c.assessment_id == assessment_id)).first()
            if row is None:
                return
            conn.execute(a.delete().where(a.c.trace_id == trace_id, a.c.assessment_id == assessment_id))
            if row.overrides:
                conn.execute(a.update().where(a.c.trace_id == trace_id, a.c.assessment_id == row.overrides)
                             .values(valid=True))

    def _assessment(self, conn: sa.Connection, trace_id: str, assessment_id: str) -> dict[str, Any]:
        a = s.assessments
        row = conn.execute(sa.select(a).where(a.c.trace_id == trace_id, a.c.assessment_id == assessment_id)).first()
        if row is None:
            raise ResourceDoesNotExist(f"Assessment with ID '{assessment_id}' not found for trace '{trace_id}'")
        return assessment_of(row)

    # reads --------------------------------------------------------------------------------------

    def _trace_row(self, conn: sa.Connection, trace_id: str) -> Any:
        row = conn.execute(sa.select(s.trace_info).where(s.trace_info.c.request_id == trace_id)).first()
        if row is None:
            raise _not_found(trace_id)
        return row

    def get_trace_info(self, trace_id: str) -> dict[str, Any]:
        with self._read() as conn:
            infos = self._infos(conn, [trace_id])
        if not infos:
            raise _not_found(trace_id)
        return infos[0]

    def batch_get_trace_infos(self, trace_ids: Sequence[str], experiment_ids: Sequence[str] | None = None
                              ) -> list[dict[str, Any]]:
        with self._read() as conn:
            return self._infos(conn, list(dict.fromkeys(trace_ids)), experiment_ids)

    def get_trace(self, trace_id: str, *, allow_partial: bool = False) -> dict[str, Any]:
        """The trace with its spans (``{"info": ..., "spans": [content dicts]}``).

        Without `allow_partial`, a trace whose spans are not all stored yet (fewer than its
        ``mlflow.trace.sizeStats`` counts) is "not fully exported" (404, as in MLflow, which retries
        for three seconds first; trackops answers at once)."""
        traces = self.batch_get_traces([trace_id])
        if not traces:
            raise ResourceDoesNotExist(f"Trace with ID {trace_id} is not found.")
        trace = traces[0]
        if not allow_partial:
            stats = _loads(trace["info"]["trace_metadata"].get(SIZE_STATS))
            expected = stats.get("num_spans", 0) if isinstance(stats, dict) else 0
            if len(trace["spans"]) < expected or (not trace["spans"] and
                                                  trace["info"]["tags"].get(SPANS_LOCATION) == TRACKING_STORE):
                raise ResourceDoesNotExist(f"Trace with ID {trace_id} is not fully exported yet, "
                                           "please try again later.")
        return trace

    def batch_get_traces(self, trace_ids: Sequence[str], experiment_ids: Sequence[str] | None = None
                         ) -> list[dict[str, Any]]:
        """Traces with their spans, root spans first then by start time (MLflow's order)."""
        with self._read() as conn:
            infos = self._infos(conn, list(dict.fromkeys(trace_ids)), experiment_ids)
            stored = [i["trace_id"] for i in infos if i["tags"].get(SPANS_LOCATION) == TRACKING_STORE]
            spans: dict[str, list] = defaultdict(list)
            sp = s.spans
            for condition in ids_in(conn, sp.c.trace_id, stored):
                for row in conn.execute(sa.select(sp.c.trace_id, sp.c.content, sp.c.parent_span_id,
                                                  sp.c.start_time_unix_nano).where(condition)):
                    if row.content:
                        spans[row.trace_id].append(row)
        out = []
        for info in infos:
            rows = sorted(spans.get(info["trace_id"], []),
                          key=lambda r: (0 if r.parent_span_id is None else 1, r.start_time_unix_nano))
            out.append({"info": info, "spans": [json.loads(r.content) for r in rows]})
        return out

    def _infos(self, conn: sa.Connection, trace_ids: list[str], experiment_ids: Sequence[str] | None = None
               ) -> list[dict[str, Any]]:
        """TraceInfo dicts of the given ids, in that order (missing ones left out)."""
        return build_infos(conn, info_rows(conn, trace_ids, experiment_ids))


def _root_status(group: Iterable[OtlpSpan]) -> str | None:
    for sp in group:
        if sp.parent_span_id is None:
            return "ERROR" if sp.status_code == 2 else "OK"
    return None


def _analytics_columns(metadata: dict[str, str]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    if SESSION in metadata:
        columns["session_id"] = str(metadata[SESSION])[:250]
    usage = _loads(metadata.get(TOKEN_USAGE)) if TOKEN_USAGE in metadata else None
    if isinstance(usage, dict):
        columns.update({col: _token_count(usage[k]) for k, col in TOKEN_COLUMNS.items() if k in usage})
    cost = _loads(metadata.get(COST)) if COST in metadata else None
    if isinstance(cost, dict):
        columns.update({col: _finite(cost[k]) for k, col in COST_COLUMNS.items() if k in cost})
    return columns


def _trace_span_rows(conn: sa.Connection, trace_id: str) -> list[dict[str, Any]]:
    sp = s.spans
    return [dict(r._mapping) for r in conn.execute(sa.select(sp.c.span_id, sp.c.parent_span_id, sp.c.content)
                                                    .where(sp.c.trace_id == trace_id))]


def insert_missing(conn: sa.Connection, table: sa.Table, row: dict[str, Any]) -> None:
    insert_ignoring_duplicates(conn, table, [row])


def _trace_row(trace_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """A full ``trace_info`` row (every column, as the bulk insert wants), `values` over NULLs."""
    row = {c.name: None for c in s.trace_info.columns if c.computed is None}
    row.update(request_id=trace_id, db_payload_generation=0, **values)
    return row


def delete_trace_rows(conn: sa.Connection, trace_ids: list[str]) -> None:
    """Delete traces and every row that hangs off them (children first, so no foreign key waits on
    a cascade the dialect might not run)."""
    if not trace_ids:
        return
    ea = s.entity_associations
    conn.execute(ea.delete().where(ea.c.source_type == "trace", ea.c.source_id.in_(trace_ids)))
    for table, col in ((s.span_metrics, "trace_id"), (s.spans, "trace_id"), (s.assessments, "trace_id"),
                       (s.trace_tags, "request_id"), (s.trace_request_metadata, "request_id"),
                       (s.trace_metrics, "request_id")):
        conn.execute(table.delete().where(table.c[col].in_(trace_ids)))
    rq = s.review_queue_items
    conn.execute(rq.delete().where(rq.c.item_type == "trace", rq.c.item_id.in_(trace_ids)))
    conn.execute(s.trace_info.delete().where(s.trace_info.c.request_id.in_(trace_ids)))


# The TraceInfo columns a read needs (not db_payload_generation), and whether the trace has assessments.
INFO_COLUMNS = ("request_id", "experiment_id", "timestamp_ms", "execution_time_ms", "status", "client_request_id",
                "request_preview", "response_preview", "trace_name", "session_id",
                *TOKEN_COLUMNS.values(), *COST_COLUMNS.values())
_NAME_AT, _SESSION_AT = INFO_COLUMNS.index("trace_name"), INFO_COLUMNS.index("session_id")
_TOKENS_AT = tuple((k, INFO_COLUMNS.index(c)) for k, c in TOKEN_COLUMNS.items())
_COSTS_AT = tuple((k, INFO_COLUMNS.index(c)) for k, c in COST_COLUMNS.items())
_ANALYTICS = slice(min(i for _, i in _TOKENS_AT + _COSTS_AT), max(i for _, i in _TOKENS_AT + _COSTS_AT) + 1)
_NO_ANALYTICS = (None,) * (_ANALYTICS.stop - _ANALYTICS.start)
_FLAG_AT = len(INFO_COLUMNS)


def info_columns() -> list[sa.ColumnElement]:
    """What `build_infos` reads from ``trace_info``: `INFO_COLUMNS`, then a has-assessments flag (an
    indexed EXISTS, so that the page of traces without assessments, the usual one, needs no query for them)."""
    ti, a = s.trace_info, s.assessments
    return [ti.c[n] for n in INFO_COLUMNS] + [sa.exists().where(a.c.trace_id == ti.c.request_id).label("assessed")]


def ids_in(conn: sa.Connection, column: sa.ColumnElement, ids: Sequence[str]) -> list[sa.ColumnElement]:
    """Conditions that select `column` values among `ids`, as few statements as the dialect allows:
    one bound parameter for all of them on SQLite (a JSON array read by ``json_each``) and PostgreSQL
    (`rows.pg_ids_in`), so that a page of 500 traces costs no 500-parameter ``IN`` list to build and
    bind; elsewhere ``IN`` lists of `BATCH` ids (one statement each). No ids, no conditions."""
    if not ids:
        return []
    dialect = conn.dialect.name
    if dialect == "sqlite" and _SQLITE_JSON:
        ids_table = sa.func.json_each(sa.literal(json.dumps(list(ids)), sa.String)).table_valued("value")
        return [column.in_(sa.select(ids_table.c.value))]
    if dialect == "postgresql":
        return [pg_ids_in(column, ids)]
    return [column.in_(batch) for batch in chunks(ids, BATCH)]


def _sqlite_has_json() -> bool:
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 38)  # JSON functions built in from 3.38 on


_SQLITE_JSON = _sqlite_has_json()


def _one_list_param(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql" or (conn.dialect.name == "sqlite" and _SQLITE_JSON)


def _ids_param(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """`column` among the ids of the bound parameter ``ids`` (`_ids_value`), for `_one_list_param` dialects."""
    if dialect == "postgresql":
        return pg_ids_in(column)
    ids_table = sa.func.json_each(sa.bindparam("ids", type_=sa.String)).table_valued("value")
    return column.in_(sa.select(ids_table.c.value))


def _ids_value(conn: sa.Connection, ids: Sequence[str]) -> Any:
    return json.dumps(list(ids))  # a JSON array on SQLite and PostgreSQL alike


def _read_statements(dialect: str) -> dict[str, sa.Select]:
    """The statements of a TraceInfo read, built once per dialect: a page of 500 then costs no
    SQLAlchemy construct and no cache-key walk, only its ``ids`` parameter."""
    found = _STATEMENTS.get(dialect)
    if found is None:
        ti, tt, tm = s.trace_info, s.trace_tags, s.trace_request_metadata
        found = _STATEMENTS[dialect] = {
            "infos": sa.select(*info_columns()).where(_ids_param(ti.c.request_id, dialect)),
            "tags": sa.select(tt.c.request_id, _json_object(tt.c.key, tt.c.value, dialect)).where(
                _ids_param(tt.c.request_id, dialect), tt.c.key != TRACE_NAME).group_by(tt.c.request_id),
            "metadata": sa.select(tm.c.request_id, _json_object(tm.c.key, tm.c.value, dialect)).where(
                _ids_param(tm.c.request_id, dialect), tm.c.key.notin_(sorted(PROMOTED))).group_by(tm.c.request_id),
        }
    return found


_STATEMENTS: dict[str, dict[str, sa.Select]] = {}


def _json_object(key: sa.Column, value: sa.Column, dialect: str) -> sa.ColumnElement:
    """A trace's keys and values as one JSON object (text): a page's 4,000 tag and metadata rows
    then reach Python as 1,000, decoded in C, with no dict built key by key."""
    if dialect == "postgresql":
        return sa.cast(sa.func.json_object_agg(key, value), sa.Text)
    return sa.func.json_group_object(key, value)


def info_rows(conn: sa.Connection, trace_ids: Sequence[str], experiment_ids: Sequence[str] | None = None
              ) -> list[Any]:
    """Rows of `info_columns` for the given ids, in that order (missing ones left out)."""
    if not trace_ids:
        return []
    ti = s.trace_info
    if _one_list_param(conn):
        statements = [(_read_statements(conn.dialect.name)["infos"], {"ids": _ids_value(conn, trace_ids)})]
    else:
        statements = [(sa.select(*info_columns()).where(c), {}) for c in ids_in(conn, ti.c.request_id, trace_ids)]
    rows: dict[str, Any] = {}
    for stmt, params in statements:
        if experiment_ids is not None:
            stmt = stmt.where(ti.c.experiment_id.in_([int(e) for e in experiment_ids if str(e).isdigit()]))
        rows.update((r[0], r) for r in conn.execute(stmt, params).fetchall())
    return [rows[t] for t in trace_ids if t in rows]


def info_children(conn: sa.Connection, rows: list[Any]
                  ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, list]]:
    """(tags, metadata, assessments) by trace id for rows of `info_columns`: the tags with the trace
    name, the metadata with the promoted analytics columns, as MLflow returns them. One statement
    each for the tags and the metadata, and one for the assessments when a row's flag says it has some."""
    tags: dict[str, dict] = {}
    meta: dict[str, dict] = {}
    if not rows:
        return tags, meta, {}
    for r in rows:
        tags[r[0]] = {}
        meta[r[0]] = {}
    ids = list(tags)
    tt, tm, a = s.trace_tags, s.trace_request_metadata, s.assessments
    if _one_list_param(conn):
        statements = _read_statements(conn.dialect.name)
        value = {"ids": _ids_value(conn, ids)}
        for found, name in ((tags, "tags"), (meta, "metadata")):
            for request_id, obj in conn.execute(statements[name], value).fetchall():
                found[request_id] = orjson.loads(obj)
    else:
        # plain loops over fetched tuples: a page of 500 traces has thousands of tag and metadata rows
        for condition in ids_in(conn, tt.c.request_id, ids):
            for request_id, key, value in conn.execute(sa.select(tt.c.request_id, tt.c.key, tt.c.value).where(
                    condition, tt.c.key != TRACE_NAME)).fetchall():
                tags[request_id][key] = value
        for condition in ids_in(conn, tm.c.request_id, ids):
            for request_id, key, value in conn.execute(sa.select(tm.c.request_id, tm.c.key, tm.c.value).where(
                    condition, tm.c.key.notin_(sorted(PROMOTED)))).fetchall():
                meta[request_id][key] = value
    assessments: dict[str, list] = defaultdict(list)
    assessed = [r[0] for r in rows if r[_FLAG_AT]]
    if assessed:
        for condition in ids_in(conn, a.c.trace_id, assessed):
            for r in conn.execute(sa.select(a).where(condition)).fetchall():
                assessments[r.trace_id].append(assessment_of(r))
    for r in rows:
        if r[_NAME_AT] is not None:
            tags[r[0]][TRACE_NAME] = r[_NAME_AT]
        if r[_SESSION_AT] is not None:
            meta[r[0]][SESSION] = r[_SESSION_AT]
        if r[_ANALYTICS] != _NO_ANALYTICS:  # one tuple comparison for the usual trace without them
            m = meta[r[0]]
            usage = {k: _token_count(r[i]) for k, i in _TOKENS_AT if r[i] is not None}
            if usage:
                m[TOKEN_USAGE] = json.dumps(usage)
            cost = {k: r[i] for k, i in _COSTS_AT if r[i] is not None}
            if cost:
                m[COST] = json.dumps(cost)
    return tags, meta, assessments


def info_dicts(rows: list[Any], tags: dict[str, dict], meta: dict[str, dict], assessments: dict[str, list]
               ) -> list[dict[str, Any]]:
    """TraceInfo dicts of rows of `info_columns` and their `info_children`."""
    return [{
        "trace_id": r[0], "experiment_id": str(r[1]), "request_time": r[2], "execution_duration": r[3],
        "state": r[4], "client_request_id": r[5], "request_preview": r[6], "response_preview": r[7],
        "tags": tags[r[0]], "trace_metadata": meta[r[0]], "assessments": assessments.get(r[0], []),
    } for r in rows]


def build_infos(conn: sa.Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """TraceInfo dicts for rows of `info_columns`, with their tags, metadata and assessments (`info_children`)."""
    return info_dicts(rows, *info_children(conn, rows))
