"""MLflow REST 2.0 JSON on the wire: reading requests as the 3.17 client sends them, writing errors.

Requests arrive as a JSON body (POST/PATCH/DELETE) or as query parameters (GET), where a list is a
repeated key. int64 fields may be JSON numbers or strings; metric values may be numbers or the
strings "NaN", "Infinity", "-Infinity" (or any numeric string). Malformed JSON is answered with a 400
that names the problem (MLflow silently treats it as an empty body). Errors are
``{"error_code": ..., "message": ...}`` with MLflow's HTTP status, and never carry SQL or tracebacks.

The typed getters are where a client's mistake stops, before any store sees it: strings are strings
(a number, NaN or a boolean where a string belongs is MLflow's "Hint: Value was of type" 400), text
holds no NUL and no lone surrogate (no database stores them alike), integers fit in int64 (the
column type of every id, timestamp and step), and a body nests at most `MAX_JSON_DEPTH` levels.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from itertools import chain
from typing import Any

import orjson

from trackops.errors import InvalidParameterValue, StoreError

# JSON bodies are read whole before a handler runs, so each route has a cap (a 413 past it). Most
# requests are a few fields; the routes that carry batches get the large cap. Artifact uploads are
# streamed and have none (raw routes never read their body through `request_params`).
MAX_JSON_BODY = 16 * 1024 * 1024  # log-batch at MLflow's limits (1000 metrics, 100 params, 100 tags) is far below
MAX_SMALL_JSON_BODY = 1024 * 1024  # 8000-character tag values and 64 KiB filters, even \u-escaped, fit
LARGE_BODY_ROUTES = frozenset({"/mlflow/runs/log-batch", "/mlflow/runs/log-inputs", "/mlflow/runs/outputs",
                               "/mlflow/runs/log-model", "/mlflow/logged-models", "/mlflow/logged-models/{model_id}/params"})
LARGE_BODY_PREFIXES = ("/mlflow/traces",)  # trace info and spans come in batches too
MAX_JSON_DEPTH = 100  # protobuf's JSON parser (MLflow's) refuses deeper messages too
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_BAD_TEXT = re.compile(r"[\x00\ud800-\udfff]")
# 19 digits in a row: possibly an integer past int64, which only the json module reads exactly.
# Found by mapping every digit to "0" and searching for 19 of them (C speed, ~30x faster on a
# 1000-metric log-batch body than a regular expression, which was a fifth of that request's time).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


# mlflow server ends every message of its request-schema checks with this sentence.
API_DOCS_HINT = " See the API docs for more information about request parameters."


def missing_message(name: str) -> str:
    """MLflow's message for a required request parameter that is absent or empty."""
    return f"Missing value for required parameter '{name}'.{API_DOCS_HINT}"


class BadRequest(InvalidParameterValue):
    """A request that cannot be read: bad JSON, wrong content type, a malformed field."""


def body_limit(path: str) -> int:
    """The JSON body cap of the route at `path` (its template after the API prefix and version)."""
    if path in LARGE_BODY_ROUTES or path.startswith(LARGE_BODY_PREFIXES):
        return MAX_JSON_BODY
    return MAX_SMALL_JSON_BODY


class Params:
    """Typed access to one request's parameters, from a JSON object or from query parameters."""

    def __init__(self, data: Mapping[str, Any], *, from_query: bool = False, multi: Mapping[str, list[str]] | None = None):
        self._data = data
        self._from_query = from_query
        self._multi = multi or {}

    @classmethod
    def from_json_bytes(cls, body: bytes) -> Params:
        if not body.strip():
            return cls({})
        if _has_long_number(body):  # orjson reads an integer outside int64/uint64 as a float
            data = _loads_lenient(body)
        else:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = _loads_lenient(body)
        if not isinstance(data, dict):
            raise BadRequest("Request body must be a JSON object")
        check_depth(data)
        return cls(data)

    @classmethod
    def from_query(cls, items: list[tuple[str, str]]) -> Params:
        multi: dict[str, list[str]] = {}
        for key, value in items:
            multi.setdefault(key, []).append(value)
        return cls({k: v[-1] for k, v in multi.items()}, from_query=True, multi=multi)

    def has(self, name: str) -> bool:
        return self._data.get(name) not in (None, "")

    def raw(self, name: str, default: Any = None) -> Any:
        return self._data.get(name, default)

    def _missing(self, name: str) -> BadRequest:
        return BadRequest(missing_message(name))

    def str(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._data.get(name)
        if value is None or (required and value == ""):
            if required:
                raise self._missing(name)
            return default
        return checked_str(value, name)

    def first_str(self, *names: str, required: bool = False) -> str | None:
        """The first of several aliases that is present (the client sends both run_id and run_uuid)."""
        for name in names:
            if self.has(name):
                return self.str(name)
        if required:
            raise self._missing(names[0])
        return None

    def int64(self, name: str, *, required: bool = False, default: int | None = None) -> int | None:
        value = self._data.get(name)
        if value is None or value == "":
            if required:
                raise self._missing(name)
            return default
        return checked_int64(value, name)

    def bool(self, name: str, *, default: bool = False) -> bool:
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise BadRequest(f"Invalid value {_short(value)} for parameter '{name}': expected true or false.")

    def list(self, name: str) -> list[Any]:
        if self._from_query:
            return list(self._multi.get(name, []))
        value = self._data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise BadRequest(f"Invalid value {_short(value)} for parameter '{name}': expected a list.")
        return value

    def obj(self, name: str) -> Mapping[str, Any]:
        value = self._data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise BadRequest(f"Invalid value {_short(value)} for parameter '{name}': expected an object.")
        return value


def _has_long_number(body: bytes) -> bool:
    return _NINETEEN_DIGITS in body.translate(_DIGITS_TO_ZERO)


def _loads_lenient(body: bytes) -> Any:
    """The json module's reading of a body orjson refused: it also takes what Python clients send
    and MLflow accepts (bare NaN/Infinity, integers past 64 bits, lone surrogate escapes, which
    the typed getters then judge), and its error messages name the problem."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"Malformed JSON in request body: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    except RecursionError:
        raise too_deep() from None


def wrong_type(name: str, value: Any) -> BadRequest:
    """MLflow's message for a field of the wrong type (or out of its range), word for word."""
    return BadRequest(f"Invalid value {_short(value)} for parameter '{name}' supplied:  Hint: Value was of type "
                      f"'{type(value).__name__}'. See the API docs for more information about request parameters.")


def checked_str(value: Any, name: str) -> str:
    """`value` when it is a string a database can store; a 400 for anything else."""
    if not isinstance(value, str):
        raise wrong_type(name, value)
    bad = _BAD_TEXT.search(value)
    if bad:
        what = "a NUL character" if bad.group() == "\x00" else "an unpaired UTF-16 surrogate"
        raise BadRequest(f"Invalid value {_short(value)} for parameter '{name}' supplied: it contains {what}.")
    return value


def entry_str(value: Any, name: str) -> str:
    """A string field of a list entry (a tag's or param's value in log-batch, create-run, ...) as MLflow
    reads it: a string as it is; anything else is left unset by its protobuf parser and stored as ""."""
    return checked_str(value, name) if isinstance(value, str) else ""


def checked_int64(value: Any, name: str) -> int:
    """An int64 sent as a JSON number or a string of ASCII digits; a 400 otherwise or out of range."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()) and len(value.strip()) <= 21:
        number = int(value.strip())
    if number is None:
        raise BadRequest(f"Invalid value {_short(value)} for parameter '{name}': expected an integer.")
    if not INT64_MIN <= number <= INT64_MAX:
        raise wrong_type(name, value)
    return number


def too_deep() -> BadRequest:
    return BadRequest(f"Malformed JSON in request body: nested deeper than {MAX_JSON_DEPTH} levels")


def check_depth(data: Any) -> None:
    """Refuse JSON nested deeper than `MAX_JSON_DEPTH` (walked level by level, without recursion).

    `data` is parsed JSON: its containers are plain dicts and lists. One flat loop per level (the
    values of all the level's containers chained in C), not a generator per container: a log-batch
    of 1000 metric objects is one level of 4000 scalars."""
    level: list[Any] = [data]
    for _ in range(MAX_JSON_DEPTH):
        values = chain.from_iterable(item.values() if type(item) is dict else item for item in level)
        level = [v for v in values if type(v) is dict or type(v) is list]
        if not level:
            return
    raise too_deep()


def metric_value(value: Any, name: str = "value") -> float:
    """A metric value as the client sends it: a number, or a numeric string such as "NaN" or "1.5"."""
    if not isinstance(value, bool) and value is not None:
        try:
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):
                return float(value.strip())
        except (ValueError, OverflowError):  # "abc", or an integer beyond any double
            pass
    try:  # MLflow's wording: the value as compact JSON, then its Python type
        shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        shown = f"<{type(value).__name__}>"
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise BadRequest(f"Invalid value {shown} for parameter '{name}' supplied:  Hint: Value was of type "
                     f"'{type(value).__name__}'.{API_DOCS_HINT}")


def json_number(value: float) -> float | str:
    """A float for a response: NaN and infinities as the strings the client understands."""
    if -math.inf < value < math.inf:  # the common case first: false for NaN and the infinities
        return value
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def error_body(error: StoreError | InvalidParameterValue) -> dict[str, str]:
    return {"error_code": error.error_code, "message": error.message}


def error_json(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}


def _short(value: Any) -> str:
    """The value as MLflow shows it (compact JSON), cut to 60 characters; never fails."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":")) if not isinstance(value, str) else repr(value)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
