"""OTLP/HTTP trace export requests (``POST /v1/traces``), read without a protobuf library.

The MLflow 3.17 client sends its spans as an ``ExportTraceServiceRequest`` in protobuf binary
(``application/x-protobuf``); other OpenTelemetry exporters may send the JSON encoding
(``application/json``, ids in hex). Both are decoded here into `OtlpSpan`s. Only the fields MLflow
keeps are read (ids, name, times, attributes, events, links, status, the resource's attributes);
unknown fields are skipped, as protobuf parsers do. A malformed body raises `ValueError`.

Wire format (opentelemetry/proto/trace/v1/trace.proto, field numbers)::

    ExportTraceServiceRequest  1: ResourceSpans*
    ResourceSpans              1: Resource   2: ScopeSpans*
    Resource                   1: KeyValue*
    ScopeSpans                 2: Span*
    Span   1 trace_id  2 span_id  4 parent_span_id  5 name  7 start (fixed64)  8 end (fixed64)
           9 attributes  11 events  13 links  15 status
    Event  1 time (fixed64)  2 name  3 attributes       Link  1 trace_id  2 span_id  4 attributes
    Status 2 message  3 code (0 unset, 1 ok, 2 error)   KeyValue  1 key  2 AnyValue
    AnyValue  1 string  2 bool  3 int64  4 double  5 ArrayValue(1: AnyValue*)  6 KeyValueList(1: KeyValue*)  7 bytes
"""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
from typing import Any

STATUS_NAMES = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
_MAX_DEPTH = 64  # nested AnyValues; deeper is refused rather than recursed into


@dataclasses.dataclass
class OtlpSpan:
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes | None
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int | None
    attributes: dict[str, Any]  # decoded values (str, bool, int, float, list, dict, bytes)
    events: list[dict[str, Any]]  # {"name", "time_unix_nano", "attributes"}
    links: list[dict[str, Any]]  # {"trace_id" (bytes), "span_id" (bytes), "attributes"}
    status_code: int
    status_message: str
    resource: dict[str, Any]


# --- protobuf binary ----------------------------------------------------------------------------

def _fields(buf: bytes):
    """(field number, wire type, value) for each field of one message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            if i + 8 > n:
                raise ValueError("truncated fixed64")
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > n:
                raise ValueError("truncated length-delimited field")
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            if i + 4 > n:
                raise ValueError("truncated fixed32")
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("malformed varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _fixed64(value: bytes) -> int:
    return struct.unpack("<Q", value)[0]


def _any_value(buf: bytes, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError("attribute values nested too deeply")
    result: Any = None
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 2:
            result = _text(value)
        elif field == 2 and wire == 0:
            result = bool(value)
        elif field == 3 and wire == 0:
            result = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 4 and wire == 1:
            result = struct.unpack("<d", value)[0]
        elif field == 5 and wire == 2:
            result = [_any_value(v, depth + 1) for f, w, v in _fields(value) if f == 1 and w == 2]
        elif field == 6 and wire == 2:
            result = _key_values(value, depth + 1)
        elif field == 7 and wire == 2:
            result = bytes(value)
    return result


def _key_value(buf: bytes, depth: int = 0) -> tuple[str, Any]:
    key, value = "", None
    for field, wire, raw in _fields(buf):
        if field == 1 and wire == 2:
            key = _text(raw)
        elif field == 2 and wire == 2:
            value = _any_value(raw, depth)
    return key, value


def _key_values(buf: bytes, depth: int = 0) -> dict[str, Any]:
    return dict(_key_value(v, depth) for f, w, v in _fields(buf) if f == 1 and w == 2)


def _span(buf: bytes, resource: dict[str, Any]) -> OtlpSpan:
    span = OtlpSpan(b"", b"", None, "", 0, None, {}, [], [], 0, "", resource)
    for field, wire, value in _fields(buf):
        if wire == 2 and field == 1:
            span.trace_id = bytes(value)
        elif wire == 2 and field == 2:
            span.span_id = bytes(value)
        elif wire == 2 and field == 4:
            span.parent_span_id = bytes(value) or None
        elif wire == 2 and field == 5:
            span.name = _text(value)
        elif wire == 1 and field == 7:
            span.start_time_unix_nano = _fixed64(value)
        elif wire == 1 and field == 8:
            span.end_time_unix_nano = _fixed64(value) or None
        elif wire == 2 and field == 9:
            key, val = _key_value(value)
            span.attributes[key] = val
        elif wire == 2 and field == 11:
            event: dict[str, Any] = {"name": "", "time_unix_nano": 0, "attributes": {}}
            for f, w, v in _fields(value):
                if f == 1 and w == 1:
                    event["time_unix_nano"] = _fixed64(v)
                elif f == 2 and w == 2:
                    event["name"] = _text(v)
                elif f == 3 and w == 2:
                    k, val = _key_value(v)
                    event["attributes"][k] = val
            span.events.append(event)
        elif wire == 2 and field == 13:
            link: dict[str, Any] = {"trace_id": b"", "span_id": b"", "attributes": {}}
            for f, w, v in _fields(value):
                if f == 1 and w == 2:
                    link["trace_id"] = bytes(v)
                elif f == 2 and w == 2:
                    link["span_id"] = bytes(v)
                elif f == 4 and w == 2:
                    k, val = _key_value(v)
                    link["attributes"][k] = val
            span.links.append(link)
        elif wire == 2 and field == 15:
            for f, w, v in _fields(value):
                if f == 2 and w == 2:
                    span.status_message = _text(v)
                elif f == 3 and w == 0:
                    span.status_code = v
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise ValueError("a span needs a 16-byte trace_id and an 8-byte span_id")
    return span


def parse_protobuf(body: bytes) -> list[OtlpSpan]:
    """Every span of an ``ExportTraceServiceRequest`` in protobuf binary."""
    spans: list[OtlpSpan] = []
    try:
        for field, wire, resource_spans in _fields(body):
            if field != 1 or wire != 2:
                continue
            resource: dict[str, Any] = {}
            scopes = []
            for f, w, v in _fields(resource_spans):
                if f == 1 and w == 2:
                    resource = {k: val for k, val in (_key_value(kv) for ff, ww, kv in _fields(v)
                                                      if ff == 1 and ww == 2)}
                elif f == 2 and w == 2:
                    scopes.append(v)
            for scope in scopes:
                spans.extend(_span(v, resource) for f, w, v in _fields(scope) if f == 2 and w == 2)
    except (UnicodeDecodeError, struct.error, IndexError) as exc:
        raise ValueError(f"malformed protobuf: {exc}") from None
    return spans


# --- OTLP JSON ----------------------------------------------------------------------------------

def _json_any(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH or not isinstance(value, dict):
        raise ValueError("malformed AnyValue")
    for key in ("stringValue", "string_value"):
        if key in value:
            return str(value[key])
    for key in ("boolValue", "bool_value"):
        if key in value:
            return bool(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            return int(value[key])
    for key in ("doubleValue", "double_value"):
        if key in value:
            return float(value[key])
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [_json_any(v, depth + 1) for v in (value[key] or {}).get("values", [])]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return _json_attributes((value[key] or {}).get("values", []), depth + 1)
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return base64.b64decode(value[key])
    return None


def _json_attributes(items: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(items, list):
        raise ValueError("attributes must be a list")
    return {str(kv["key"]): _json_any(kv.get("value") or {}, depth) for kv in items}


def _hex_id(value: Any, size: int) -> bytes:
    raw = bytes.fromhex(value) if isinstance(value, str) else b""
    if len(raw) != size:
        raise ValueError("malformed span id")
    return raw


def _get(obj: dict, camel: str, snake: str, default: Any = None) -> Any:
    return obj.get(camel, obj.get(snake, default))


def parse_json(body: bytes) -> list[OtlpSpan]:
    """Every span of an ``ExportTraceServiceRequest`` in OTLP's JSON encoding (hex ids)."""
    try:
        data = json.loads(body)
        spans = []
        for rs in _get(data, "resourceSpans", "resource_spans", []):
            resource = _json_attributes((rs.get("resource") or {}).get("attributes", []))
            for ss in _get(rs, "scopeSpans", "scope_spans", []):
                for s in ss.get("spans", []):
                    parent = _get(s, "parentSpanId", "parent_span_id")
                    status = s.get("status") or {}
                    code = status.get("code", 0)
                    if isinstance(code, str):
                        code = {v: k for k, v in STATUS_NAMES.items()}.get(code, 0)
                    spans.append(OtlpSpan(
                        trace_id=_hex_id(_get(s, "traceId", "trace_id"), 16),
                        span_id=_hex_id(_get(s, "spanId", "span_id"), 8),
                        parent_span_id=_hex_id(parent, 8) if parent else None,
                        name=str(s.get("name", "")),
                        start_time_unix_nano=int(_get(s, "startTimeUnixNano", "start_time_unix_nano", 0)),
                        end_time_unix_nano=int(_get(s, "endTimeUnixNano", "end_time_unix_nano", 0)) or None,
                        attributes=_json_attributes(s.get("attributes", [])),
                        events=[{"name": str(e.get("name", "")),
                                 "time_unix_nano": int(_get(e, "timeUnixNano", "time_unix_nano", 0)),
                                 "attributes": _json_attributes(e.get("attributes", []))}
                                for e in s.get("events", [])],
                        links=[{"trace_id": _hex_id(_get(lk, "traceId", "trace_id"), 16),
                                "span_id": _hex_id(_get(lk, "spanId", "span_id"), 8),
                                "attributes": _json_attributes(lk.get("attributes", []))}
                               for lk in s.get("links", [])],
                        status_code=int(code), status_message=str(status.get("message", "")),
                        resource=resource))
        return spans
    except (AttributeError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed OTLP JSON: {exc}") from None
