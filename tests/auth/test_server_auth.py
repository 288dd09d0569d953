"""serve --auth in-process on SQLite: 401 on every route without credentials, 403 without permission,
search shows only what a user may read, creators get MANAGE, artifact paths stay in their experiment,
and no password or token reaches a response or a log line."""

from __future__ import annotations

import base64
import logging
import re

import pytest
from starlette.testclient import TestClient

from trackops.auth.users import AuthStore
from trackops.config import Settings
from trackops.db.engine import create_engine
from trackops.server.auth import auth_routes
from trackops.server.factory import build_app, routes
from trackops.services.serve import preflight, serve_config

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"
ADMIN_PW = "admin-password-1"
READER_PW = "reader-password-1"
WRITER_PW = "writer-password-1"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("root", ADMIN_PW)
READER = basic("reader", READER_PW)
WRITER = basic("writer", WRITER_PW)


def make_client(url: str, tmp_path, monkeypatch, default_permission: str = "READ") -> TestClient:
    monkeypatch.setenv("TRACKOPS_ADMIN_USERNAME", "root")
    monkeypatch.setenv("TRACKOPS_ADMIN_PASSWORD", ADMIN_PW)
    settings = Settings(backend_store_uri=url, artifacts_destination=str(tmp_path / "art"))
    security = {"auth": True, "default_permission": default_permission}
    preflight(settings, **security)
    engine = create_engine(url)
    store = AuthStore(engine)
    store.create_user("reader", READER_PW)
    store.create_user("writer", WRITER_PW)
    engine.dispose()
    return TestClient(build_app(serve_config(settings, **security)), raise_server_exceptions=False)


@pytest.fixture
def client(sqlite_auth_url, tmp_path, monkeypatch):
    with make_client(sqlite_auth_url, tmp_path, monkeypatch) as c:
        yield c


@pytest.fixture
def locked(sqlite_auth_url, tmp_path, monkeypatch):
    with make_client(sqlite_auth_url, tmp_path, monkeypatch, "NO_PERMISSIONS") as c:
        yield c


def all_routes():
    return routes() + auth_routes()


def test_every_route_declares_an_access_the_guard_knows():
    from trackops.server.routing import Access, Resource

    resolvable = {Resource.EXPERIMENT, Resource.RUN, Resource.LOGGED_MODEL, Resource.REGISTERED_MODEL,
                  Resource.ARTIFACT_PATH, Resource.SEARCH, Resource.TRACE, Resource.TRACES, Resource.EXPERIMENTS,
                  Resource.EXPERIMENT_HEADER}
    for r in all_routes():
        assert isinstance(r.access, Access) and isinstance(r.resource, Resource), r.path
        if r.access in (Access.READ, Access.EDIT, Access.MANAGE):
            assert r.resource in resolvable, f"{r.method} {r.path} needs {r.access.name} on nothing"
        if r.resource is Resource.SEARCH:
            assert r.access is Access.READ


def test_every_non_public_route_answers_401_without_credentials(client):
    checked = 0
    for r in all_routes():
        if r.access.name == "PUBLIC":
            continue
        path = re.sub(r"\{[a-z_]+(:path)?\}", "1", r.path)
        for version in r.versions:
            response = client.request(r.method, f"/api/{version}{path}", json={} if r.method != "GET" else None)
            assert response.status_code == 401, (r.method, path, response.text)
            assert response.json()["error_code"] == "UNAUTHENTICATED"
            checked += 1
    assert checked > 60
    assert client.get("/api/3.0/mlflow/server-info").status_code == 200
    assert client.get("/health").status_code == 200


def test_wrong_password_unknown_user_and_bad_token_are_401(client):
    for headers in (basic("root", "nope-nope-1"), basic("ghost", ADMIN_PW), {"Authorization": "Bearer tko_x_y"},
                    {"Authorization": "Digest abc"}):
        assert client.get(API + "/experiments/get", params={"experiment_id": "0"}, headers=headers).status_code == 401


def test_a_read_user_cannot_write_delete_or_grant(client):
    exp = client.post(API + "/experiments/create", json={"name": "team"}, headers=ADMIN).json()["experiment_id"]
    run = client.post(API + "/runs/create", json={"experiment_id": exp}, headers=ADMIN).json()["run"]["info"]["run_id"]
    client.post(API + "/registered-models/create", json={"name": "m"}, headers=ADMIN)
    assert client.get(API + "/runs/get", params={"run_id": run}, headers=READER).status_code == 200
    denied = [
        ("POST", API + "/runs/create", {"experiment_id": exp}),
        ("POST", API + "/runs/log-metric", {"run_id": run, "key": "k", "value": 1, "timestamp": 1}),
        ("POST", API + "/runs/delete", {"run_id": run}),
        ("POST", API + "/experiments/delete", {"experiment_id": exp}),
        ("POST", API + "/experiments/permissions/create", {"experiment_id": exp, "username": "reader",
                                                          "permission": "MANAGE"}),
        ("DELETE", API + "/registered-models/delete", {"name": "m"}),
        ("POST", API + "/registered-models/permissions/create", {"name": "m", "username": "reader",
                                                                "permission": "MANAGE"}),
        ("POST", API + "/users/create", {"username": "x", "password": "long-enough-1"}),
    ]
    for method, path, body in denied:
        response = client.request(method, path, json=body, headers=READER)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    put = client.put(f"{ART}/{exp}/{run}/artifacts/a.txt", content=b"x", headers=READER)
    assert put.status_code == 403
    # a MANAGE grant by the admin over MLflow's permission API lets the reader write
    grant = client.post(API + "/experiments/permissions/create", headers=ADMIN,
                        json={"experiment_id": exp, "username": "reader", "permission": "EDIT"})
    assert grant.status_code == 200, grant.text
    assert client.post(API + "/runs/log-metric", headers=READER,
                       json={"run_id": run, "key": "k", "value": 1, "timestamp": 1}).status_code == 200
    assert client.post(API + "/runs/delete", json={"run_id": run}, headers=READER).status_code == 403


def test_search_shows_only_readable_experiments_with_correct_pages(locked):
    made = {}
    for user, headers in (("writer", WRITER), ("reader", READER)):
        for i in range(3):
            name = f"{user}-{i}"
            made[name] = locked.post(API + "/experiments/create", json={"name": name}, headers=headers).json()
    page = locked.post(API + "/experiments/search", json={"max_results": 2, "order_by": ["name"]}, headers=READER)
    body = page.json()
    assert [e["name"] for e in body["experiments"]] == ["reader-0", "reader-1"] and body["next_page_token"]
    rest = locked.post(API + "/experiments/search", headers=READER,
                       json={"max_results": 2, "order_by": ["name"], "page_token": body["next_page_token"]}).json()
    assert [e["name"] for e in rest["experiments"]] == ["reader-2"] and "next_page_token" not in rest
    admin_sees = locked.post(API + "/experiments/search", json={"max_results": 100}, headers=ADMIN).json()
    assert len(admin_sees["experiments"]) == 7  # six + Default
    # creators got MANAGE: the writer may delete their own experiment, not the reader's
    writer_exp, reader_exp = made["writer-0"]["experiment_id"], made["reader-0"]["experiment_id"]
    assert locked.post(API + "/experiments/delete", json={"experiment_id": writer_exp}, headers=WRITER).status_code == 200
    assert locked.post(API + "/experiments/delete", json={"experiment_id": reader_exp}, headers=WRITER).status_code == 403
    assert locked.get(API + "/experiments/get", params={"experiment_id": reader_exp}, headers=WRITER).status_code == 403


def test_artifact_paths_cannot_leave_the_experiment_they_are_checked_against(locked):
    mine = locked.post(API + "/experiments/create", json={"name": "mine"}, headers=WRITER).json()["experiment_id"]
    other = locked.post(API + "/experiments/create", json={"name": "other"}, headers=ADMIN).json()["experiment_id"]
    assert locked.put(f"{ART}/{mine}/r/artifacts/ok.txt", content=b"x", headers=WRITER).status_code == 200
    for path in (f"{mine}/../{other}/r/artifacts/x.txt", f"{mine}/r/../../{other}/x.txt", f"{other}/r/artifacts/x.txt",
                 "x.txt", f"{mine}/%2e%2e/{other}/x.txt"):
        response = locked.put(f"{ART}/{path}", content=b"x", headers=WRITER)
        assert response.status_code in (400, 403, 404), (path, response.status_code)
    assert locked.get(ART, params={"path": ""}, headers=WRITER).status_code == 403
    assert locked.get(ART, params={"path": f"{other}"}, headers=WRITER).status_code == 403
    assert locked.get(ART, params={"path": f"{mine}"}, headers=WRITER).status_code == 200


def test_bearer_tokens_work_and_no_secret_reaches_responses_or_logs(client, sqlite_auth_url, caplog):
    caplog.set_level(logging.DEBUG)
    engine = create_engine(sqlite_auth_url)
    _, token = AuthStore(engine).create_token("reader", "ci")
    engine.dispose()
    texts = []
    for headers in ({"Authorization": f"Bearer {token}"}, READER, basic("reader", "wrong-password-9"),
                    {"Authorization": f"Bearer {token}x"}):
        response = client.get(API + "/experiments/get", params={"experiment_id": "0"}, headers=headers)
        texts.append(response.text)
    assert [t.startswith('{"experiment"') for t in texts] == [True, True, False, False]
    texts.append(client.post(API + "/users/create", json={"username": "n", "password": "new-password-77"},
                             headers=ADMIN).text)
    everything = "\n".join(texts) + caplog.text + repr(client.app.state.ctx.auth) + repr(client.app.state.ctx.auth.guard)
    for secret in (token, token.split("_", 2)[2], READER_PW, ADMIN_PW, "wrong-password-9", "new-password-77"):
        assert secret not in everything


def test_auth_without_an_admin_refuses_to_start_and_the_first_admin_comes_from_the_environment(
        sqlite_auth_url, tmp_path, monkeypatch):
    from trackops.errors import UsageError

    for var in ("TRACKOPS_ADMIN_USERNAME", "TRACKOPS_ADMIN_PASSWORD", "TRACKOPS_ADMIN_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(backend_store_uri=sqlite_auth_url, artifacts_destination=str(tmp_path / "art"))
    with pytest.raises(UsageError) as err:
        preflight(settings, auth=True)
    assert err.value.exit_code == 2 and "trackops users create" in err.value.hint
    with pytest.raises(UsageError, match="unknown permission"):
        preflight(settings, auth=True, default_permission="OWNER")
    secret_file = tmp_path / "admin-password"
    secret_file.write_text("file-password-1\n")
    monkeypatch.setenv("TRACKOPS_ADMIN_USERNAME", "boss")
    monkeypatch.setenv("TRACKOPS_ADMIN_PASSWORD_FILE", str(secret_file))
    preflight(settings, auth=True)
    engine = create_engine(sqlite_auth_url)
    store = AuthStore(engine)
    assert store.authenticate_password("boss", "file-password-1").is_admin
    monkeypatch.setenv("TRACKOPS_ADMIN_USERNAME", "other")
    preflight(settings, auth=True)  # an admin exists: the environment is ignored
    assert [u["username"] for u in store.list_users()] == ["boss"]
    engine.dispose()


def test_a_correct_password_costs_one_hash_per_cache_ttl_and_an_unknown_user_costs_one_too(client, monkeypatch):
    from trackops.auth import passwords

    calls = []
    real = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password", lambda pw, stored: calls.append(1) or real(pw, stored))
    for _ in range(10):
        assert client.get(API + "/experiments/get", params={"experiment_id": "0"}, headers=READER).status_code == 200
    assert len(calls) == 1
    for _ in range(2):
        assert client.get(API + "/experiments/get", params={"experiment_id": "0"},
                          headers=basic("ghost", READER_PW)).status_code == 401
    assert len(calls) == 3  # failures are never cached, and an unknown name is as slow as a wrong password
