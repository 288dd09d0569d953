"""Tracing endpoints (MLflow 3): the trace API the 3.17.2 client and web UI call, and OTLP ingest.

How the client logs a trace: its span exporter posts the spans to ``POST /v1/traces`` (OTLP,
protobuf, experiment id in the ``x-mlflow-experiment-id`` header) once it has read a version of at
least 3.4 from ``GET /version``; its trace exporter posts the TraceInfo to ``POST
/api/3.0/mlflow/traces``. Reads go through ``traces/get`` / ``traces/batchGet`` (spans) and
``traces/search`` (infos). Tags, deletion and links use the 2.0 paths, assessments the 3.0 ones.

Permissions: with ``--auth`` a trace takes the permission of its experiment, as in MLflow's basic-auth
app (docs/auth.md): READ to get, batch-get, search and read assessments; EDIT to start a trace, ingest
OTLP spans, tag, link and write assessments; MANAGE (MLflow's "delete") to delete traces.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from trackops.errors import InvalidParameterValue
from trackops.server import trace_json as tj
from trackops.server.protocol import BadRequest, Params
from trackops.server.routing import Access, Resource, route
from trackops.stores import otlp, trace_search
from trackops.stores.traces import TraceStore

BASE = "/mlflow/traces"
V3 = ("3.0",)
BOTH = ("2.0", "3.0")
MAX_OTLP_BODY = 64 * 1024 * 1024
EXPERIMENT_HEADER = "x-mlflow-experiment-id"
RUN_HEADER = "x-mlflow-run-id"


def store(ctx) -> TraceStore:
    found = getattr(ctx, "_trace_store", None)
    if found is None:
        found = TraceStore(ctx.engine)
        ctx._trace_store = found
    return found


def _ids(p: Params, name: str) -> list[str]:
    out = []
    for item in p.list(name):
        if not isinstance(item, str):
            raise BadRequest(f"Invalid value {item!r} in parameter '{name}': expected strings.")
        out.append(item)
    return out


# --- writes -------------------------------------------------------------------------------------

@route("POST", BASE, Access.EDIT, Resource.EXPERIMENTS, versions=V3)
def start_trace(ctx, p: Params, _path) -> dict:
    trace = p.obj("trace")
    if not trace:
        raise BadRequest("Missing value for required parameter 'trace'.")
    info = store(ctx).start_trace(tj.parse_trace_info(trace.get("trace_info")))
    return {"trace": {"trace_info": tj.trace_info_json(info)}}


@route("PATCH", BASE + "/{trace_id}/tags", Access.EDIT, Resource.TRACE, versions=BOTH)
def set_trace_tag(ctx, p: Params, path: dict) -> dict:
    key = p.str("key", required=True)
    store(ctx).set_trace_tag(path["trace_id"], key, p.str("value") or "")
    return {}


@route("DELETE", BASE + "/{trace_id}/tags", Access.EDIT, Resource.TRACE, versions=BOTH)
def delete_trace_tag(ctx, p: Params, path: dict) -> dict:
    store(ctx).delete_trace_tag(path["trace_id"], p.str("key", required=True))
    return {}


@route("POST", BASE + "/delete-traces", Access.MANAGE, Resource.EXPERIMENT, versions=BOTH)
def delete_traces(ctx, p: Params, _path) -> dict:
    ids = _ids(p, "request_ids")
    max_ts, max_traces = p.int64("max_timestamp_millis"), p.int64("max_traces")
    if not ids and max_ts is None:
        raise InvalidParameterValue("Either `max_timestamp_millis` or `trace_ids` must be specified.")
    if ids and (max_ts is not None or max_traces is not None):
        raise InvalidParameterValue("Only one of `max_timestamp_millis` and `trace_ids` can be specified.")
    deleted = store(ctx).delete_traces(p.str("experiment_id", required=True), max_timestamp_millis=max_ts,
                                       max_traces=max_traces, trace_ids=ids or None)
    return {"traces_deleted": deleted}


@route("POST", BASE + "/link-to-run", Access.EDIT, Resource.RUN, versions=BOTH)
def link_traces_to_run(ctx, p: Params, _path) -> dict:
    store(ctx).link_traces_to_run(_ids(p, "trace_ids"), p.str("run_id", required=True))
    return {}


@route("POST", "/v1/traces", Access.EDIT, Resource.EXPERIMENT_HEADER, raw=True, root=True, versions=())
async def export_traces(ctx, request: Request) -> Response:
    """OTLP/HTTP span ingest (protobuf or JSON, optionally gzip/deflate), as MLflow's ``/v1/traces``."""
    from trackops.server.app import read_body

    experiment_id = request.headers.get(EXPERIMENT_HEADER)
    if not experiment_id:
        raise BadRequest(f"Missing header {EXPERIMENT_HEADER}")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/x-protobuf", "application/json"):
        raise BadRequest(f"Invalid Content-Type: {media or None}. Expected: application/x-protobuf or application/json")
    body = await read_body(request, MAX_OTLP_BODY)
    encoding = request.headers.get("content-encoding", "").lower()
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding not in ("", "identity"):
            raise BadRequest(f"Unsupported Content-Encoding: {encoding}")
        spans = otlp.parse_json(body) if media == "application/json" else otlp.parse_protobuf(body)
    except (OSError, zlib.error, ValueError):
        raise BadRequest("Invalid OpenTelemetry format") from None
    if not spans:
        raise BadRequest("Invalid OpenTelemetry format - no spans found")
    lock = ctx.write_lock if ctx.write_lock is not None else contextlib.nullcontext()

    def write() -> None:
        with lock:
            completed = store(ctx).log_spans(experiment_id, spans)
            run_id = request.headers.get(RUN_HEADER)
            if run_id and completed:
                with contextlib.suppress(Exception):  # as MLflow: a failed link does not fail the export
                    store(ctx).link_traces_to_run(completed, run_id)

    await anyio.to_thread.run_sync(write)
    # An empty ExportTraceServiceResponse is zero bytes of protobuf.
    return Response(b"", media_type="application/x-protobuf")


# --- assessments --------------------------------------------------------------------------------

@route("POST", BASE + "/{trace_id}/assessments", Access.EDIT, Resource.TRACE, versions=V3)
def create_assessment(ctx, p: Params, path: dict) -> dict:
    assessment = tj.parse_assessment(p.raw("assessment"))
    created = store(ctx).create_assessment(path["trace_id"], assessment)
    return {"assessment": tj.assessment_json(created)}


@route("GET", BASE + "/{trace_id}/assessments/{assessment_id}", Access.READ, Resource.TRACE, versions=V3)
def get_assessment(ctx, _p: Params, path: dict) -> dict:
    return {"assessment": tj.assessment_json(store(ctx).get_assessment(path["trace_id"], path["assessment_id"]))}


@route("PATCH", BASE + "/{trace_id}/assessments/{assessment_id}", Access.EDIT, Resource.TRACE, versions=V3)
def update_assessment(ctx, p: Params, path: dict) -> dict:
    mask = p.obj("update_mask") if isinstance(p.raw("update_mask"), dict) else {}
    paths = mask.get("paths") if isinstance(mask.get("paths"), list) else []
    if isinstance(p.raw("update_mask"), str):  # the FieldMask JSON form: "a,b"
        paths = p.raw("update_mask").split(",")
    if not paths:
        raise BadRequest("Missing value for required parameter 'update_mask'.")
    given = tj.parse_assessment(p.raw("assessment"), partial=True)
    changes: dict[str, Any] = {}
    for field in paths:
        if field == "assessment_name":
            changes["assessment_name"] = given.get("assessment_name")
        elif field in ("feedback", "expectation"):
            if given.get("kind") != field:
                raise BadRequest(f"Missing value for '{field}' in the assessment.")
            changes.update(kind=field, value=given.get("value"), error=given.get("error"))
        elif field == "rationale":
            changes["rationale"] = given.get("rationale")
        elif field == "metadata":
            changes["metadata"] = given.get("metadata") or {}
    updated = store(ctx).update_assessment(path["trace_id"], path["assessment_id"], changes)
    return {"assessment": tj.assessment_json(updated)}


@route("DELETE", BASE + "/{trace_id}/assessments/{assessment_id}", Access.EDIT, Resource.TRACE,
       versions=V3)
def delete_assessment(ctx, _p: Params, path: dict) -> dict:
    store(ctx).delete_assessment(path["trace_id"], path["assessment_id"])
    return {}


# --- reads --------------------------------------------------------------------------------------

@route("GET", BASE + "/get", Access.READ, Resource.TRACE, versions=V3)
def get_trace(ctx, p: Params, _path) -> dict:
    trace = store(ctx).get_trace(p.str("trace_id", required=True), allow_partial=p.bool("allow_partial"))
    return {"trace": tj.trace_json(trace)}


def _experiment_ids(p: Params) -> list[str] | None:
    return _ids(p, "experiment_ids") if p.has("experiment_ids") or p.list("experiment_ids") else None


@route("GET", BASE + "/batchGet", Access.READ, Resource.TRACES, versions=V3)
def batch_get_traces(ctx, p: Params, _path) -> dict:
    traces = store(ctx).batch_get_traces(_ids(p, "trace_ids"), _experiment_ids(p))
    return {"traces": [tj.trace_json(t) for t in traces]} if traces else {}


@route("POST", BASE + "/batchGetInfos", Access.READ, Resource.TRACES, versions=V3)
def batch_get_trace_infos(ctx, p: Params, _path) -> dict:
    infos = store(ctx).batch_get_trace_infos(_ids(p, "trace_ids"), _experiment_ids(p))
    return {"trace_infos": [tj.trace_info_json(i) for i in infos]} if infos else {}


@route("POST", BASE + "/search", Access.READ, Resource.EXPERIMENTS, versions=V3)
def search_traces(ctx, p: Params, _path) -> dict:
    experiment_ids = []
    for location in p.list("locations"):
        exp = location.get("mlflow_experiment") if isinstance(location, dict) else None
        if isinstance(exp, dict) and exp.get("experiment_id") is not None:
            experiment_ids.append(str(exp["experiment_id"]))
    order_by = [o for o in p.list("order_by") if isinstance(o, str)]
    infos, token = trace_search.search_traces(
        store(ctx), experiment_ids, filter_string=p.str("filter") or None,
        max_results=p.int64("max_results", default=100), order_by=order_by, page_token=p.str("page_token") or None,
        shape=tj.trace_infos_json)
    out: dict[str, Any] = {}
    if infos:
        out["traces"] = infos
    if token:
        out["next_page_token"] = token
    return out


@route("POST", BASE + "/metrics", Access.READ, Resource.EXPERIMENTS, versions=V3)
def query_trace_metrics(ctx, p: Params, _path) -> dict:
    """Trace counts and latency for the traces page's charts (one data point, no time buckets)."""
    from trackops.stores.trace_metrics import query

    names = []
    for agg in p.list("aggregations"):
        if isinstance(agg, dict) and isinstance(agg.get("aggregation_type"), str):
            names.append((agg["aggregation_type"], agg.get("percentile_value")))
    metric = p.str("metric_name") or "trace_count"
    values = query(store(ctx), _ids(p, "experiment_ids"), metric, names, start_ms=p.int64("start_time_ms"),
                   end_ms=p.int64("end_time_ms"))
    return {"data_points": [{"metric_name": metric, "values": values}]}


@route("GET", BASE + "/{trace_id}", Access.READ, Resource.TRACE, versions=V3)
def get_trace_info(ctx, _p: Params, path: dict) -> dict:
    return {"trace": {"trace_info": tj.trace_info_json(store(ctx).get_trace_info(path["trace_id"]))}}


@route("GET", "/mlflow/get-trace-artifact", Access.READ, Resource.TRACE, raw=True, versions=BOTH)
async def get_trace_artifact(ctx, request: Request) -> Response:
    """The trace's spans as MLflow's ``traces.json`` (``{"spans": [...]}``), which the UI's trace view reads:
    from the spans table, or from the trace's artifact location for traces logged that way."""
    request_id = request.query_params.get("request_id")
    if not request_id:
        raise BadRequest('Request must include the "request_id" query parameter.')
    trace = await anyio.to_thread.run_sync(lambda: store(ctx).get_trace(request_id, allow_partial=True))
    if trace["spans"] or trace["info"]["tags"].get("mlflow.trace.spansLocation") == "TRACKING_STORE":
        body = json.dumps({"spans": trace["spans"]}, ensure_ascii=False).encode("utf-8")
    else:
        body = await anyio.to_thread.run_sync(_artifact_trace_data, ctx, trace["info"])
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Disposition": "attachment; filename=traces.json"})


def _artifact_trace_data(ctx, info: dict[str, Any]) -> bytes:
    from trackops.artifacts import locate
    from trackops.artifacts.paths import join

    location = info["tags"].get("mlflow.artifactLocation")
    if not location:
        return b'{"spans": []}'
    repo, base = locate(location, artifacts_destination=ctx.settings.artifacts_destination)
    reader = repo.open(join(base, "traces.json"))
    try:
        return b"".join(reader)
    finally:
        reader.close()

