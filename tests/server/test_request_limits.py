"""Over-large requests get MLflow error JSON, not uvicorn's plain text: 414 URL, 431 headers, 413 body.

The head limits live in uvicorn's protocol (server/limits.py), so they are tested through a real
`trackops serve`; the per-route body caps through the app in-process.
"""

from __future__ import annotations

import json
import socket

import pytest
from starlette.testclient import TestClient

from tests.compat.server import ServerProcess
from trackops.config import Settings
from trackops.server.factory import build_app
from trackops.server.limits import MAX_HEADERS, MAX_URL
from trackops.server.protocol import MAX_JSON_BODY, MAX_SMALL_JSON_BODY
from trackops.services.serve import preflight, serve_config

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(["--no-access-log"], tmp_path_factory.mktemp("limits"))
    yield process
    process.stop()


def exchange(server, head: bytes, body: bytes = b"", *, chunk: int = 256 * 1024) -> tuple[int, dict, bytes]:
    """Send a raw request (in chunks, stopping early when the server closes); (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        data = head + body
        try:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i:i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the client finished sending: the point of the limit
        answer = b""
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            answer += part
            if b"\r\n\r\n" in answer:
                top, _, rest = answer.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in top.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
    top, _, rest = answer.partition(b"\r\n\r\n")
    lines = top.split(b"\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in lines[1:] if b": " in line)
    return int(lines[0].split()[1]), headers, rest


def get(target: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


def assert_json_error(status, headers, body, expected: int, fragment: str):
    assert status == expected, body[:200]
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE" and fragment in error["message"], error


def test_a_megabyte_query_string_is_a_json_414(server):
    status, headers, body = exchange(server, get(b"/api/2.0/mlflow/experiments/search?filter=" + b"a" * 2**20))
    assert_json_error(status, headers, body, 414, "Request URL")


def test_a_url_just_under_the_limit_reaches_the_endpoint(server):
    target = b"/api/2.0/mlflow/experiments/search?max_results=1&x="
    status, headers, body = exchange(server, get(target + b"a" * (MAX_URL - len(target))))
    assert status == 200, body[:200]
    assert "experiments" in json.loads(body)


def test_100_kb_of_headers_is_a_json_431(server):
    many = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
    status, headers, body = exchange(server, get(b"/api/2.0/mlflow/experiments/search", many))
    assert_json_error(status, headers, body, 431, "Request headers")


def test_one_endless_header_is_refused_before_it_ends(server):
    # 32 MiB of one header value: the server answers once its limit is passed and closes the
    # connection, so it never holds the rest (the client's remaining sends fail, and that is fine).
    head = b"GET /api/2.0/mlflow/experiments/search HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    status, headers, body = exchange(server, head + b"v" * (32 * 2**20))
    assert_json_error(status, headers, body, 431, "Request headers")
    assert headers.get("connection") == "close"


def test_headers_a_little_under_the_limit_are_served(server):
    cookie = b"Cookie: " + b"c" * (MAX_HEADERS - 1024) + b"\r\n"
    status, _, body = exchange(server, get(b"/api/2.0/mlflow/experiments/search?max_results=1", cookie))
    assert status == 200, body[:200]


def test_an_over_large_body_through_serve_is_a_json_413(server):
    body = json.dumps({"name": "x" * (2 * MAX_SMALL_JSON_BODY)}).encode()
    head = (b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    status, headers, answer = exchange(server, head, body)
    assert_json_error(status, headers, answer, 413, "Request body is larger than the 1 MiB")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("body-caps")
    settings = Settings(backend_store_uri=f"sqlite:///{tmp / 'mlflow.db'}", artifacts_destination=str(tmp / "art"))
    preflight(settings)
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        yield c


def _post(client, path: str, payload: dict, *, declare_length: bool = True):
    body = json.dumps(payload).encode()
    if declare_length:
        return client.post(API + path, content=body, headers={"content-type": "application/json"})
    # a chunked body (no Content-Length): the cap holds while reading, not only on the header
    return client.post(API + path, content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_ordinary_route_refuses_a_body_over_its_cap_with_413(client, declare_length):
    r = _post(client, "/runs/set-tag", {"run_id": "0" * 32, "key": "k", "value": "v" * MAX_SMALL_JSON_BODY},
              declare_length=declare_length)
    assert r.status_code == 413, r.text
    assert r.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                        "message": "Request body is larger than the 1 MiB this endpoint accepts"}


def test_log_batch_takes_a_body_past_the_ordinary_cap(client):
    exp = _post(client, "/experiments/create", {"name": "big-batch"}).json()["experiment_id"]
    run = _post(client, "/runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    params = [{"key": f"p{i}", "value": "v" * 6000} for i in range(100)]
    tags = [{"key": f"t{i}", "value": "\u00e9" * 8000} for i in range(100)]  # \u-escaped in the JSON: 4.8 MB
    r = _post(client, "/runs/log-batch", {"run_id": run, "params": params, "tags": tags})
    assert r.status_code == 200, r.text[:300]


def test_log_batch_refuses_a_body_over_the_large_cap(client):
    r = _post(client, "/runs/log-batch", {"run_id": "0" * 32, "params": [{"key": "p", "value": "v" * MAX_JSON_BODY}]})
    assert r.status_code == 413
    assert r.json()["message"] == "Request body is larger than the 16 MiB this endpoint accepts"
