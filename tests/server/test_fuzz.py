"""Every route, every method, fed malformed values: never a 5xx, never SQL, a traceback or a server path.

The routes come from the route table itself (`trackops.server.factory.routes()`), so a new endpoint is
fuzzed the day it is added. Each example takes a plausible request for one route (real ids of an
experiment, a run, a registered model and a logged model created up front) and replaces one to three
of its fields, or a path parameter, with a value from a class of client mistakes: integers beyond
int64, NaN and infinities, booleans and numbers where strings belong, NUL bytes and lone surrogates,
deeply nested JSON, very long strings, filter strings SQLite cannot plan, garbage page tokens.
Hypothesis is derandomized and bounded, so the run is the same every time and fits in CI.

``TRACKOPS_FUZZ_EXAMPLES=10000`` runs a longer campaign; ``TRACKOPS_FUZZ_REPORT=<file>`` writes the
status histogram and the failures there (and counts instead of failing).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trackops.config import Settings
from trackops.server.factory import build_app, routes
from trackops.services.serve import preflight, serve_config

EXAMPLES = int(os.environ.get("TRACKOPS_FUZZ_EXAMPLES", "600"))
DEEP = "__DEEP__"  # replaced in the JSON text by nesting too deep for a recursive decoder
INT64_MAX = 2**63 - 1

ROUTES = [(r.method, version, r.path, r.raw) for r in routes() for version in r.versions]

# Fields the handlers read, each with a valid-looking value; "{run}" and friends are real ids.
BASELINE = {
    "experiment_id": "{exp}", "experiment_ids": ["{exp}"], "run_id": "{run}", "run_uuid": "{run}",
    "name": "{model}", "experiment_name": "fuzz-exp", "new_name": "fuzz-new", "key": "k", "value": "v",
    "timestamp": 1000, "step": 0, "max_results": 10, "filter": "", "order_by": [], "page_token": "",
    "view_type": "ACTIVE_ONLY", "run_view_type": "ACTIVE_ONLY", "metric_key": "m", "start_step": 0,
    "end_step": 10, "start_time": 1000, "end_time": 2000, "status": "FINISHED", "run_name": "r",
    "user_id": "u", "version": "1", "alias": "champion", "stage": "Staging", "source": "mlflow-artifacts:/x",
    "description": "d", "model_id": "{logged}", "path": "a.txt", "num_parts": 2, "upload_id": "u1",
    "parts": [{"part_number": 1, "etag": "e"}], "tags": [{"key": "t", "value": "v"}],
    "params": [{"key": "p", "value": "1"}], "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}],
    "datasets": [], "models": [], "stages": ["None"], "archive_existing_versions": False,
    "artifact_directory_path": "", "source_run_id": "{run}", "model_type": "t", "run_link": "",
}

HUGE = [INT64_MAX + 1, -(2**63) - 1, 2**64 - 1, 10**30, str(10**30), "-" + str(10**30), "9223372036854775808"]
SCALARS = [float("nan"), float("inf"), float("-inf"), True, False, None, 5, -1, 0, 1.5, 1e308, [], {}, [1, "a"],
           {"a": 1}, DEEP]
TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "\udfff x", "\u202e\u0000", "é" * 300, "x" * 20_000, "../../etc/passwd",
        "%00", "'; DROP TABLE runs; --", "NaN", "Infinity", "true", "null", "１２", "²", "٣", "\n", "a/" * 200]
FILTERS = ["(" * 500, "metric.m > 1" + " AND metric.m > 1" * 1500, "tags.t LIKE '" + "%_" * 30_000 + "'",
           "attribute.name LIKE '" + "%a" * 5000 + "'", "params.p IN (" + ",".join(["'a'"] * 5000) + ")",
           "name = 'x'" + " OR name = 'x'" * 300, "metric.m > 1e999", "metric.m > -1e999", "run_id = '\x00'",
           "metrics.m > 99999999999999999999999999999", "tags.`" + "a" * 10_000 + "` = 'b'", "\x00", "`",
           "attribute.start_time > 9223372036854775808", "creation_timestamp > 99999999999999999999",
           "name ILIKE '%\\'", "params.p = 'a' AND " * 100 + "params.p = 'a'"]
ORDERS = [["metric.m DESC"] * 50, ["x" * 50_000], ["attribute.start_time ASC, " * 200], ["`"], ["\x00"],
          [{"field_name": "metric.m"}], [5, True], "start_time"]
TOKENS = ["x", "====", "eyJvZmZzZXQiOiAtMX0=", "eyJvZmZzZXQiOiAxZTMwMH0=", "eyJvZmZzZXQiOiA5OTk5OTk5OTk5OTk5OTk5OTk5OTl9",
          "eyJvZmZzZXQiOiAiYSJ9", "W10=", "bnVsbA==", "eyJvZmZzZXQiOiBbMV19", "eyJvZmZzZXQiOiB0cnVlfQ==", "\x00"]
PATH_SEGMENTS = ["x" * 300, "a/" + "b" * 5000, "%00", "..", "a/../../b", "é" * 200, "a" * 256 + "/c",
                 "1/" + "n" * 255 + ".txt", "-1", "9223372036854775808", "~", "a//b"]

evil = st.one_of(st.sampled_from(HUGE + SCALARS + TEXT + FILTERS + ORDERS + TOKENS),
                 st.integers(min_value=-(2**70), max_value=2**70),
                 st.text(max_size=30), st.floats(allow_nan=True, allow_infinity=True))


def _render(value, ids: dict[str, str]):
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "}" in value and value.count("{") == 1 else value
    if isinstance(value, list):
        return [_render(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, ids) for k, v in value.items()}
    return value


def _query_text(value) -> str:
    if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
        return json.dumps(value, allow_nan=True)
    # a query string is UTF-8: a lone surrogate cannot be sent, its replacement character can
    return str(value).encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _deep(depth: int = 20_000) -> str:
    return "[" * depth + "]" * depth


class Fuzzer:
    """The real app on a real SQLite database, spoken to over httpx's ASGI transport."""

    def __init__(self, app, artifact_root: str, db_path: str):
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz")
        self.secrets = [artifact_root, db_path]
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: list[str] = []
        self.last_problem: str | None = None
        self.ids: dict[str, str] = {}

    def send(self, method: str, url: str, *, params=None, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        r = self.loop.run_until_complete(self.client.request(method, url, params=params, content=content,
                                                             headers=headers))
        self.statuses[r.status_code] += 1
        problem = leak(r, self.secrets)
        self.last_problem = None
        if problem:
            self.last_problem = f"{method} {url[:120]} -> {r.status_code}: {problem}: {r.text[:300]}"
            self.failures.append(self.last_problem)
        return r

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE \w+ SET|DELETE FROM|sqlite3|psycopg|pymysql|sqlalchemy)\b")


def leak(r: httpx.Response, secrets: list[str]) -> str | None:
    """What is wrong with a response: a 5xx, SQL, a traceback or a server path in it; None when fine."""
    if r.status_code == 501 and "Multipart upload is not supported" in r.text:
        return None  # a well-formed multipart request to a non-S3 destination: the client falls back
    if r.status_code >= 500:
        return "5xx"
    if r.status_code < 400:
        return None
    text = r.text
    if SQL_WORDS.search(text):
        return "SQL in the error"
    if "Traceback" in text or 'File "' in text:
        return "traceback in the error"
    if any(s and s in text for s in secrets):
        return "server path in the error"
    if not r.headers.get("content-type", "").startswith("application/json"):
        return "error is not JSON"
    body = r.json()
    if not isinstance(body, dict) or not body.get("message"):
        return "error has no message"
    return None


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    db = tmp / "fuzz.db"
    settings_ = Settings(backend_store_uri=f"sqlite:///{db}", artifacts_destination=str(tmp / "mlartifacts"))
    preflight(settings_)
    f = Fuzzer(build_app(serve_config(settings_)), str(tmp / "mlartifacts"), str(db))
    api = "/api/2.0/mlflow"
    exp = f.send("POST", api + "/experiments/create", content=b'{"name": "fuzz"}').json()["experiment_id"]
    run = f.send("POST", api + "/runs/create", content=json.dumps({"experiment_id": exp}).encode())
    f.ids = {"exp": exp, "run": run.json()["run"]["info"]["run_id"], "model": "fuzz-model"}
    f.send("POST", api + "/registered-models/create", content=b'{"name": "fuzz-model"}')
    f.send("POST", api + "/model-versions/create",
           content=json.dumps({"name": "fuzz-model", "source": f"mlflow-artifacts:/{exp}/x"}).encode())
    logged = f.send("POST", api + "/logged-models", content=json.dumps({"experiment_id": exp}).encode())
    f.ids["logged"] = logged.json()["model"]["info"]["model_id"]
    f.send("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/a.txt", content=b"hello")
    f.statuses.clear()
    yield f
    report = os.environ.get("TRACKOPS_FUZZ_REPORT")
    if report:
        with open(report, "w") as out:
            json.dump({"requests": sum(f.statuses.values()), "statuses": dict(sorted(f.statuses.items())),
                       "failures": f.failures[:200]}, out, indent=1)
    f.close()


def _url(version: str, path: str, ids: dict[str, str], segment: str | None) -> str:
    def fill(m: re.Match) -> str:
        name = m.group(1)
        if segment is not None:
            return segment
        return {"model_id": ids["logged"], "tag_key": "t"}.get(name, f"{ids['exp']}/a.txt")

    return f"/api/{version}" + re.sub(r"\{(\w+)(?::path)?\}", fill, path)


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_route_answers_5xx_or_leaks_internals_for_malformed_input(fuzzer, data):
    method, version, path, raw = data.draw(st.sampled_from(ROUTES), label="route")
    fields = data.draw(st.lists(st.sampled_from(sorted(BASELINE)), min_size=1, max_size=3, unique=True),
                       label="fields")
    values = [data.draw(evil, label=f) for f in fields]
    segment = data.draw(st.none() | st.sampled_from(PATH_SEGMENTS), label="segment") if "{" in path else None
    body = _render(dict(BASELINE), fuzzer.ids)
    body.update(zip(fields, values))
    url = _url(version, path, fuzzer.ids, segment)
    if method in ("GET", "HEAD") or (raw and method == "DELETE"):
        query = []
        for k, v in body.items():
            for item in (v if isinstance(v, list) else [v]):
                # httpx refuses a query of more than 64 KiB: the long classes are cut to fit
                query.append((k, _deep(2000) if item == DEEP else _query_text(item)[:4000]))
        fuzzer.send(method, url, params=query)
    elif raw:
        fuzzer.send(method, url, content=json.dumps(body, allow_nan=True).encode())
    else:
        text = json.dumps(body, allow_nan=True).replace(json.dumps(DEEP), _deep())
        fuzzer.send(method, url, content=text.encode("utf-8", "surrogatepass"),
                    headers={"content-type": "application/json"})
    if not os.environ.get("TRACKOPS_FUZZ_REPORT"):  # a campaign counts every answer instead of stopping
        assert fuzzer.last_problem is None, fuzzer.last_problem
