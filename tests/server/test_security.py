"""Host, origin and frame protection (server/security.py) through the real server app, and side by side
with `mlflow server` 3.17.2.

What MLflow 3.17.2 answers (checked with curl against `mlflow server`, and by the oracle test below):
a foreign Host gets 403 text/plain "Invalid Host header - possible DNS rebinding attack detected"
(/health and /version answer any Host); a POST from a foreign Origin gets 403 "Cross-origin request
blocked" whatever its content type, and nothing is created; a preflight from a foreign origin gets 400
"Disallowed CORS origin", from a localhost origin 200 with Access-Control-Allow-Origin echoed and
credentials allowed; every app response carries X-Content-Type-Options: nosniff and X-Frame-Options:
SAMEORIGIN.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.compat.server import MlflowServerProcess, ServerProcess
from trackops.config import Settings
from trackops.db.engine import create_engine
from trackops.errors import UsageError
from trackops.server.factory import serve_app
from trackops.server.security import resolve_flags
from trackops.services.serve import preflight, serve_config

CREATE = "/api/2.0/mlflow/experiments/create"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"
BLOCKED = "Cross-origin request blocked"


@pytest.fixture
def settings(sqlite_head_url, tmp_path):
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "art"))
    preflight(settings)
    return settings


@pytest.fixture
def make_client(settings):
    clients = []

    def make(**flags) -> TestClient:
        config = serve_config(settings, **resolve_flags(env={}, **flags))
        client = TestClient(serve_app(config), base_url="http://127.0.0.1:5000", raise_server_exceptions=False)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def experiment_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.text("SELECT name FROM experiments"))}
    finally:
        engine.dispose()


def test_a_foreign_host_is_refused_with_mlflows_status_and_message(make_client):
    r = make_client().get(SEARCH, headers={"Host": "evil.example"})
    assert r.status_code == 403 and r.text == INVALID_HOST
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("host", ["localhost", "localhost:1234", "127.0.0.1:5000", "[::1]", "[::1]:8080",
                                  "0.0.0.0:5000", "10.1.2.3:5000", "192.168.0.7", "172.20.1.1:80", "fd00::1"])
def test_localhost_and_private_addresses_with_ports_are_allowed_by_default(make_client, host):
    assert make_client().get(SEARCH, headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:5000", "localhost.evil.example", "172.32.0.1", ""])
def test_other_hosts_and_a_missing_host_are_refused_by_default(make_client, host):
    assert make_client().get(SEARCH, headers={"Host": host}).status_code == 403


def test_probes_answer_any_host_as_mlflows_health_and_version_do(make_client):
    client = make_client()
    for probe in ("/health", "/version", "/ready"):
        assert client.get(probe, headers={"Host": "pod-7.internal"}).status_code == 200
    assert client.get("/metrics", headers={"Host": "evil.example"}).status_code == 403


def test_allowed_hosts_list_and_wildcards_replace_the_defaults(make_client):
    client = make_client(allowed_hosts="mlflow.example.com, *.corp.example")
    ok = {h: client.get(SEARCH, headers={"Host": h}).status_code
          for h in ("mlflow.example.com", "MLflow.Example.com", "a.corp.example", "localhost", "10.0.0.1")}
    assert ok == {"mlflow.example.com": 200, "MLflow.Example.com": 200, "a.corp.example": 200,
                  "localhost": 403, "10.0.0.1": 403}


def test_allowed_hosts_star_accepts_every_host(make_client):
    assert make_client(allowed_hosts="*").get(SEARCH, headers={"Host": "anything.example"}).status_code == 200


def test_the_address_given_to_host_is_allowed_by_default(sqlite_head_url, tmp_path):
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "art"),
                        host="203.0.113.5")
    preflight(settings)
    with TestClient(serve_app(serve_config(settings)), base_url="http://203.0.113.5:5000") as client:
        assert client.get(SEARCH).status_code == 200
        assert client.get(SEARCH, headers={"Host": "203.0.113.6:5000"}).status_code == 403


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json"])
def test_a_cross_origin_post_is_refused_whatever_its_content_type_and_creates_nothing(
        make_client, sqlite_head_url, content_type):
    headers = {"Origin": "https://evil.example"}
    if content_type:
        headers["Content-Type"] = content_type
    r = make_client().post(CREATE, content=b'{"name": "planted"}', headers=headers)
    assert r.status_code == 403 and r.text == BLOCKED
    assert "access-control-allow-origin" not in r.headers
    assert "planted" not in experiment_names(sqlite_head_url)


def test_a_cross_origin_get_is_answered_without_cors_headers(make_client):
    r = make_client().get(SEARCH, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("origin, host", [("http://localhost:3000", "127.0.0.1:5000"),
                                          ("http://127.0.0.1:5000", "127.0.0.1:5000"),
                                          ("http://10.1.2.3:5000", "10.1.2.3:5000"),  # same origin
                                          ("https://app.example", "127.0.0.1:5000")])  # allowed
def test_same_origin_localhost_and_allowed_origins_write_with_cors_headers(make_client, sqlite_head_url, origin, host):
    client = make_client(cors_allowed_origins="https://app.example")
    name = f"from {origin}"
    r = client.post(CREATE, json={"name": name}, headers={"Origin": origin, "Host": host})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == origin
    assert r.headers["access-control-allow-credentials"] == "true"
    assert name in experiment_names(sqlite_head_url)


def test_a_wildcard_origin_pattern_and_star_allow_writes(make_client, sqlite_head_url):
    r = make_client(cors_allowed_origins="https://*.corp.example").post(
        CREATE, json={"name": "corp"}, headers={"Origin": "https://ui.corp.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ui.corp.example"
    r = make_client(cors_allowed_origins="*").post(CREATE, json={"name": "any"}, headers={"Origin": "https://x.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    assert {"corp", "any"} <= experiment_names(sqlite_head_url)


def test_preflight_is_answered_for_allowed_origins_and_refused_for_others(make_client):
    client = make_client(cors_allowed_origins="https://app.example")
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}
    ok = client.options(CREATE, headers={"Origin": "https://app.example", **ask})
    assert ok.status_code == 200 and ok.text == "OK"
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert ok.headers["access-control-allow-headers"] == "content-type,authorization"
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert ok.headers["access-control-allow-credentials"] == "true"
    refused = client.options(CREATE, headers={"Origin": "https://evil.example", **ask})
    assert refused.status_code == 400 and refused.text == "Disallowed CORS origin"
    assert "access-control-allow-origin" not in refused.headers


def test_security_headers_with_x_frame_options_default_deny_and_none(make_client):
    default = make_client().get(SEARCH)
    assert default.headers["x-content-type-options"] == "nosniff"
    assert default.headers["x-frame-options"] == "SAMEORIGIN"
    assert make_client(x_frame_options="deny").get("/").headers["x-frame-options"] == "DENY"
    none = make_client(x_frame_options="NONE").get(SEARCH)
    assert "x-frame-options" not in none.headers and none.headers["x-content-type-options"] == "nosniff"


def test_frame_ancestors_let_the_named_portal_embed_the_ui(make_client):
    r = make_client(frame_ancestors="https://portal.example, https://*.corp.example").get("/")
    assert r.headers["content-security-policy"] == "frame-ancestors 'self' https://portal.example https://*.corp.example"
    assert "x-frame-options" not in r.headers


def test_disable_security_middleware_turns_every_protection_off(make_client, sqlite_head_url):
    client = make_client(disable_security_middleware=True, allowed_hosts="only.example")
    assert client.get(SEARCH, headers={"Host": "evil.example"}).status_code == 200
    r = client.post(CREATE, content=b'{"name": "open"}', headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "x-frame-options" not in r.headers and "x-content-type-options" not in r.headers
    assert "open" in experiment_names(sqlite_head_url)
    assert client.app.state.ctx is not None  # the Starlette app is what is served


def test_app_state_stays_reachable_through_the_middleware(make_client):
    assert make_client().app.state.ctx.tracking is not None


def test_mlflow_env_vars_are_honoured_and_trackops_ones_and_flags_win():
    env = {"MLFLOW_SERVER_ALLOWED_HOSTS": "a.example", "MLFLOW_SERVER_X_FRAME_OPTIONS": "deny",
           "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": "https://m.example", "TRACKOPS_CORS_ALLOWED_ORIGINS": "https://t.example",
           "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true"}
    out = resolve_flags(env=env)
    assert out == {"allowed_hosts": "a.example", "cors_allowed_origins": "https://t.example", "x_frame_options": "DENY",
                   "frame_ancestors": None, "disable_security_middleware": True}
    assert resolve_flags(allowed_hosts="b.example", env=env)["allowed_hosts"] == "b.example"
    assert resolve_flags(env={})["x_frame_options"] == "SAMEORIGIN"


@pytest.mark.parametrize("flags, fragment", [
    ({"x_frame_options": "ALLOW-FROM x"}, "SAMEORIGIN, DENY or NONE"),
    ({"frame_ancestors": "https://a.example; script-src *"}, "is not a site"),
    ({"frame_ancestors": "https://a.example", "x_frame_options": "DENY"}, "replaces X-Frame-Options"),
    ({"allowed_hosts": "a.example,b example"}, "space"),
])
def test_bad_flag_values_are_one_line_usage_errors(flags, fragment):
    with pytest.raises(UsageError, match=fragment) as info:
        resolve_flags(env={}, **flags)
    assert "\n" not in info.value.message


def test_bad_flag_value_exits_2_before_touching_the_database(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trackops", "serve", "--x-frame-options", "SOMETIMES"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "SAMEORIGIN, DENY or NONE" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "mlflow.db").exists()


def test_flags_travel_to_the_workers_of_a_real_server(tmp_path):
    server = ServerProcess(["--allowed-hosts", "mlflow.example.com", "--frame-ancestors", "https://portal.example"],
                           tmp_path)
    try:
        assert requests.get(server.url + SEARCH, timeout=10).status_code == 403
        r = requests.get(server.url + SEARCH, headers={"Host": "mlflow.example.com"}, timeout=10)
        assert r.status_code == 200
        assert r.headers["content-security-policy"] == "frame-ancestors 'self' https://portal.example"
    finally:
        server.stop()


# -- the oracle: the same requests to `mlflow server` 3.17.2 and to `trackops serve` -------------------

def oracle_requests(base: str, port: int) -> list[tuple[str, int, str]]:
    evil = {"Origin": "https://evil.example"}
    preflight_ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    calls = [
        ("foreign host", "GET", SEARCH, {"Host": "evil.example"}, None),
        ("foreign host on /health", "GET", "/health", {"Host": "evil.example"}, None),
        ("localhost host with port", "GET", SEARCH, {"Host": "localhost:1234"}, None),
        ("private address host", "GET", SEARCH, {"Host": "10.1.2.3:5000"}, None),
        ("cross-origin POST without content type", "POST", CREATE, evil, b'{"name":"o1"}'),
        ("cross-origin POST json", "POST", CREATE, {**evil, "Content-Type": "application/json"}, b'{"name":"o2"}'),
        ("localhost-origin POST", "POST", CREATE, {"Origin": "http://localhost:3000",
                                                   "Content-Type": "application/json"}, b'{"name":"o3"}'),
        ("preflight foreign", "OPTIONS", CREATE, {**evil, **preflight_ask}, None),
        ("preflight localhost", "OPTIONS", CREATE, {"Origin": "http://localhost:3000", **preflight_ask}, None),
    ]
    out = []
    for label, method, path, headers, body in calls:
        r = requests.request(method, base + path, headers=headers, data=body, timeout=30)
        text = r.text if r.status_code in (400, 403) else ""
        out.append((label, r.status_code, text, r.headers.get("x-frame-options"),
                    r.headers.get("access-control-allow-origin")))
    return out


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    pytest.importorskip("mlflow")
    server = MlflowServerProcess(tmp_path_factory.mktemp("mlflow-security"))
    yield server.url, server.port
    server.stop()


def test_trackops_answers_the_security_requests_as_mlflow_server_does(mlflow_server, tmp_path):
    mlflow_url, mlflow_port = mlflow_server
    theirs = oracle_requests(mlflow_url, mlflow_port)
    server = ServerProcess([], tmp_path)
    try:
        ours = oracle_requests(server.url, server.port)
    finally:
        server.stop()
    assert ours == theirs
