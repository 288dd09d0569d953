"""Traces on the wire: MLflow's protobuf JSON for TraceInfo (v3), Assessment and OTLP spans.

As `mlflow server` 3.17.2 writes them (field names snake_case, enums as names): ``request_time`` is
a protobuf Timestamp (``"2026-12-02T14:29:00.026Z"``), ``execution_duration`` a Duration
(``"0.208s"``), ``trace_location`` ``{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment":
{"experiment_id": "1"}}``; unset fields and empty maps are left out. A span is an OpenTelemetry
span message: ids base64, attributes as ``[{"key", "value": AnyValue}]`` with the stored
JSON-encoded attribute decoded once (objects become ``kvlist_value``, as MLflow sends them).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from typing import Any

from trackops.server.protocol import BadRequest, Params

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")
_DURATION = re.compile(r"(-?)(\d+)(?:\.(\d{1,9}))?s")


# --- Timestamp and Duration ---------------------------------------------------------------------

def timestamp_json(ms: int) -> str:
    """Milliseconds since the epoch as protobuf's JSON Timestamp (0, 3 fraction digits)."""
    seconds, millis = divmod(int(ms), 1000)
    text = _second_text(seconds)
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


@functools.lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # a page of traces logged together shares a handful of seconds: format each once
    return (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def parse_timestamp(value: Any, name: str) -> int:
    """A protobuf Timestamp (RFC 3339 string, or {seconds, nanos}) as milliseconds."""
    if isinstance(value, dict):
        return int(value.get("seconds", 0)) * 1000 + int(value.get("nanos", 0)) // 1_000_000
    m = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise BadRequest(f"Invalid value {value!r} for parameter '{name}': expected an RFC 3339 timestamp.")
    base = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    zone = dt.timezone.utc if m.group(3) == "Z" else dt.datetime.strptime(m.group(3), "%z").tzinfo
    seconds = int((base.replace(tzinfo=zone) - _EPOCH).total_seconds())
    nanos = int((m.group(2) or "0").ljust(9, "0"))
    return seconds * 1000 + nanos // 1_000_000


def duration_json(ms: int) -> str:
    seconds, millis = divmod(abs(int(ms)), 1000)
    sign = "-" if ms < 0 else ""
    return f"{sign}{seconds}.{millis:03d}s" if millis else f"{sign}{seconds}s"


def parse_duration(value: Any, name: str) -> int:
    if isinstance(value, dict):
        return int(value.get("seconds", 0)) * 1000 + int(value.get("nanos", 0)) // 1_000_000
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise BadRequest(f"Invalid value {value!r} for parameter '{name}': expected a duration such as '1.5s'.")
    ms = int(m.group(2)) * 1000 + int((m.group(3) or "0").ljust(9, "0")) // 1_000_000
    return -ms if m.group(1) else ms


# --- TraceInfo ----------------------------------------------------------------------------------

def trace_info_json(info: dict[str, Any]) -> dict[str, Any]:
    return _info_json(info["trace_id"], {"type": "MLFLOW_EXPERIMENT",
                                         "mlflow_experiment": {"experiment_id": info["experiment_id"]}},
                      info["request_time"], info.get("client_request_id"), info.get("execution_duration"),
                      info["state"], info.get("trace_metadata"), info.get("assessments"), info.get("tags"),
                      info.get("request_preview"), info.get("response_preview"))


def trace_infos_json(rows: list[Any], tags: dict[str, dict], metadata: dict[str, dict],
                     assessments: dict[str, list]) -> list[dict[str, Any]]:
    """TraceInfo messages straight from a store's rows (`stores.traces.info_columns`) and their
    `info_children`, in one pass: a page of 500 builds no TraceInfo dict to convert afterwards."""
    locations: dict[Any, dict] = {}  # one (read-only) location object per experiment of the page
    out = []
    for r in rows:
        location = locations.get(r[1])
        if location is None:
            location = locations[r[1]] = {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(r[1])}}
        out.append(_info_json(r[0], location, r[2], r[5], r[3], r[4], metadata[r[0]], assessments.get(r[0]),
                              tags[r[0]], r[6], r[7]))
    return out


def _info_json(trace_id: str, location: dict, request_time: int, client_request_id: str | None,
               duration: int | None, state: str, metadata: dict | None, assessments: list | None,
               tags: dict | None, request_preview: str | None, response_preview: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"trace_id": trace_id, "trace_location": location, "request_time": timestamp_json(request_time)}
    if client_request_id is not None:
        out["client_request_id"] = client_request_id
    if duration is not None:
        out["execution_duration"] = duration_json(duration)
    out["state"] = state
    if metadata:
        out["trace_metadata"] = metadata
    if assessments:
        out["assessments"] = [assessment_json(a) for a in assessments]
    if tags:
        out["tags"] = tags
    if request_preview is not None:
        out["request_preview"] = request_preview
    if response_preview is not None:
        out["response_preview"] = response_preview
    return out


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest(f"Invalid value for parameter '{name}': expected a map of strings.")
    return dict(value)


def parse_trace_info(obj: Any) -> dict[str, Any]:
    """A TraceInfo (v3) from a request, as the store takes it."""
    if not isinstance(obj, dict):
        raise BadRequest("Missing value for required parameter 'trace.trace_info'.")
    p = Params(obj)
    location = obj.get("trace_location") or {}
    experiment = location.get("mlflow_experiment") if isinstance(location, dict) else None
    if not isinstance(experiment, dict) or not experiment.get("experiment_id"):
        raise BadRequest("Missing value for required parameter 'trace_location.mlflow_experiment.experiment_id'.")
    state = p.str("state") or "STATE_UNSPECIFIED"
    if state not in ("STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS"):
        raise BadRequest(f"Invalid value {state!r} for parameter 'state'.")
    duration = obj.get("execution_duration")
    return {
        "trace_id": p.str("trace_id", required=True),
        "experiment_id": str(experiment["experiment_id"]),
        "client_request_id": p.str("client_request_id"),
        "request_preview": p.str("request_preview"),
        "response_preview": p.str("response_preview"),
        "request_time": parse_timestamp(obj.get("request_time", "1970-01-01T00:00:00Z"), "request_time"),
        "execution_duration": None if duration is None else parse_duration(duration, "execution_duration"),
        "state": state,
        "trace_metadata": _string_map(obj.get("trace_metadata"), "trace_metadata"),
        "tags": _string_map(obj.get("tags"), "tags"),
        "assessments": [parse_assessment(a) for a in obj.get("assessments") or []],
    }


# --- Assessment ---------------------------------------------------------------------------------

def assessment_json(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"assessment_id": a["assessment_id"], "assessment_name": a["assessment_name"],
                           "trace_id": a["trace_id"]}
    if a.get("span_id"):
        out["span_id"] = a["span_id"]
    source = {"source_type": a["source"]["source_type"]}
    if a["source"].get("source_id") is not None:
        source["source_id"] = a["source"]["source_id"]
    out["source"] = source
    out["create_time"] = timestamp_json(a["create_time_ms"])
    out["last_update_time"] = timestamp_json(a["last_update_time_ms"])
    value = a.get("value")
    if a["kind"] == "feedback":
        feedback: dict[str, Any] = {"value": value}
        if a.get("error"):
            feedback["error"] = a["error"]
        out["feedback"] = feedback
    elif a["kind"] == "expectation":
        if value is not None and not isinstance(value, (int, float, bool, str)):
            out["expectation"] = {"serialized_value": {"serialization_format": "JSON_FORMAT",
                                                       "value": json.dumps(value)}}
        else:
            out["expectation"] = {"value": value}
    if a.get("rationale") is not None:
        out["rationale"] = a["rationale"]
    if a.get("metadata"):
        out["metadata"] = {k: str(v) for k, v in a["metadata"].items()}
    if a.get("overrides"):
        out["overrides"] = a["overrides"]
    out["valid"] = a.get("valid", True)
    if a.get("run_id"):
        out["run_id"] = a["run_id"]
    return out


def parse_assessment(obj: Any, *, partial: bool = False) -> dict[str, Any]:
    """An Assessment from a request (`partial`: an update, where only some fields are present)."""
    if not isinstance(obj, dict):
        raise BadRequest("Missing value for required parameter 'assessment'.")
    p = Params(obj)
    out: dict[str, Any] = {"assessment_name": p.str("assessment_name", required=not partial),
                           "span_id": p.str("span_id"), "run_id": p.str("run_id"),
                           "rationale": p.str("rationale"), "overrides": p.str("overrides") or None,
                           "metadata": _string_map(obj.get("metadata"), "metadata") or None}
    source = obj.get("source") if isinstance(obj.get("source"), dict) else None
    if source is None and not partial:
        raise BadRequest("Missing value for required parameter 'assessment.source'.")
    if source is not None:
        out["source"] = {"source_type": Params(source).str("source_type") or "SOURCE_TYPE_UNSPECIFIED",
                         "source_id": Params(source).str("source_id")}
    for key, target in (("create_time", "create_time_ms"), ("last_update_time", "last_update_time_ms")):
        if obj.get(key) is not None:
            out[target] = parse_timestamp(obj[key], key)
    if isinstance(obj.get("feedback"), dict):
        out["kind"] = "feedback"
        out["value"] = obj["feedback"].get("value")
        out["error"] = obj["feedback"].get("error") or None
    elif isinstance(obj.get("expectation"), dict):
        out["kind"] = "expectation"
        exp = obj["expectation"]
        if isinstance(exp.get("serialized_value"), dict):
            try:
                out["value"] = json.loads(exp["serialized_value"].get("value", "null"))
            except ValueError:
                raise BadRequest("Invalid expectation: serialized_value is not JSON.") from None
        else:
            out["value"] = exp.get("value")
    elif not partial:
        raise BadRequest("Assessment must have either feedback, expectation, or issue value")
    return out


# --- spans --------------------------------------------------------------------------------------

def any_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, int):
        return {"int_value": value}
    if isinstance(value, float):
        return {"double_value": value}
    if isinstance(value, (list, tuple)):
        return {"array_value": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlist_value": {"values": [{"key": str(k), "value": any_value(v)} for k, v in value.items()]}}
    return {"string_value": str(value)}


def _decoded(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _hex_to_b64(hex_id: str | None, size: int) -> str | None:
    import base64

    if not hex_id:
        return None
    return base64.b64encode(int(hex_id, 16).to_bytes(size, "big")).decode("ascii")


def span_json(content: dict[str, Any]) -> dict[str, Any]:
    """The OTLP span message for a stored span (its ``content``)."""
    out: dict[str, Any] = {"trace_id": content["trace_id"], "span_id": content["span_id"]}
    if content.get("parent_span_id"):
        out["parent_span_id"] = content["parent_span_id"]
    out["name"] = content.get("name") or ""
    out["start_time_unix_nano"] = content.get("start_time_unix_nano") or 0
    if content.get("end_time_unix_nano"):
        out["end_time_unix_nano"] = content["end_time_unix_nano"]
    attributes = [{"key": k, "value": any_value(_decoded(v))} for k, v in (content.get("attributes") or {}).items()]
    if attributes:
        out["attributes"] = attributes
    events = []
    for e in content.get("events") or []:
        event: dict[str, Any] = {"time_unix_nano": e.get("time_unix_nano") or 0, "name": e.get("name") or ""}
        attrs = [{"key": k, "value": any_value(v)} for k, v in (e.get("attributes") or {}).items()]
        if attrs:
            event["attributes"] = attrs
        events.append(event)
    if events:
        out["events"] = events
    links = []
    for lk in content.get("links") or []:
        trace_hex = str(lk.get("trace_id", "")).removeprefix("tr-")
        try:
            link: dict[str, Any] = {"trace_id": _hex_to_b64(trace_hex, 16), "span_id": _hex_to_b64(lk.get("span_id"), 8)}
        except (ValueError, OverflowError):
            continue
        attrs = [{"key": k, "value": any_value(v)} for k, v in (lk.get("attributes") or {}).items()]
        if attrs:
            link["attributes"] = attrs
        links.append(link)
    if links:
        out["links"] = links
    status = content.get("status") or {}
    status_out: dict[str, Any] = {"code": status.get("code") or "STATUS_CODE_UNSET"}
    if status.get("message"):
        status_out["message"] = status["message"]
    out["status"] = status_out
    return out


def trace_json(trace: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"trace_info": trace_info_json(trace["info"])}
    if trace["spans"]:
        out["spans"] = [span_json(c) for c in trace["spans"]]
    return out
