"""The admin console in-process on SQLite with --auth: who may see it, what each page shows, that every
form needs its CSRF token and a same-origin Origin, and that its changes land in the database."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.auth.test_server_auth import ADMIN, ADMIN_PW, READER, basic, make_client
from tests.services.test_gc import Seed
from trackops.auth.users import AuthStore
from trackops.config import Settings
from trackops.db import schema
from trackops.db.engine import create_engine
from trackops.server.factory import build_app
from trackops.services.gc_log import recent_passes
from trackops.services.serve import preflight, serve_config

ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def client(sqlite_auth_url, tmp_path, monkeypatch):
    with make_client(sqlite_auth_url, tmp_path, monkeypatch) as c:
        yield c


@pytest.fixture
def store(sqlite_auth_url):
    engine = create_engine(sqlite_auth_url)
    yield AuthStore(engine)
    engine.dispose()


def csrf(client: TestClient, page: str = "/admin/users") -> str:
    """Open `page` as the admin (the cookie lands in the client) and return the form's token."""
    response = client.get(page, headers=ADMIN)
    assert response.status_code == 200, response.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)
    assert client.cookies.get("trackops_admin_csrf") == token
    return token


def post(client: TestClient, path: str, fields: dict, headers: dict | None = None):
    return client.post(path, data=fields, headers={**ADMIN, **ORIGIN, **(headers or {})})


def usernames(store: AuthStore) -> set[str]:
    return {u["username"] for u in store.list_users()}


@pytest.mark.parametrize("path", ["/admin", "/admin/users", "/admin/cleaner", "/admin/api/status"])
def test_anonymous_gets_401_with_basic_challenge(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="trackops"'


@pytest.mark.parametrize("path", ["/admin", "/admin/users", "/admin/cleaner", "/admin/api/users"])
def test_plain_user_gets_403(client, path):
    response = client.get(path, headers=READER)
    assert response.status_code == 403
    assert "administrators" in response.text


def test_without_auth_the_console_is_an_unknown_path(sqlite_auth_url, tmp_path):
    settings = Settings(backend_store_uri=sqlite_auth_url, artifacts_destination=str(tmp_path / "art"))
    preflight(settings)
    with TestClient(build_app(serve_config(settings)), raise_server_exceptions=False) as c:
        response = c.get("/admin")
        assert response.status_code == 404
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_admin_sees_status_with_schema_revision_and_hidden_password(client):
    response = client.get("/admin", headers=ADMIN)
    assert response.status_code == 200
    assert schema.HEAD_REVISION in response.text and "at head" in response.text
    data = client.get("/admin/api/status", headers=ADMIN).json()
    assert set(data) >= {"trackops", "database", "schema", "artifacts_destination", "uptime_seconds",
                         "requests", "errors", "client_errors"}
    assert data["schema"]["revision"] == data["schema"]["head"] == schema.HEAD_REVISION
    assert data["schema"]["at_head"] is True
    assert data["requests"] >= 1 and data["artifacts_destination"].endswith("art")


def test_creating_a_user_through_the_form_creates_it(client, store):
    token = csrf(client)
    response = post(client, "/admin/users/create", {"csrf_token": token, "username": "carol",
                                                    "password": "carol-password-1"})
    assert response.status_code == 200 and "User carol created." in response.text
    assert "carol" in usernames(store)
    assert client.get("/api/2.0/mlflow/experiments/search?max_results=1",
                      headers=basic("carol", "carol-password-1")).status_code == 200


@pytest.mark.parametrize("token", [None, "", "wrong-token-wrong-token-wrong-token"])
def test_post_without_matching_csrf_token_is_refused_and_changes_nothing(client, store, token):
    csrf(client)
    fields = {"username": "mallory", "password": "mallory-password-1"}
    if token is not None:
        fields["csrf_token"] = token
    response = post(client, "/admin/users/create", fields)
    assert response.status_code == 403 and "CSRF" in response.text
    assert "mallory" not in usernames(store)


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": ""},
                                     {"Origin": "", "Referer": "http://evil.example/admin/users"}])
def test_post_from_another_origin_is_refused_even_with_the_token(client, store, headers):
    token = csrf(client)
    response = post(client, "/admin/users/create", {"csrf_token": token, "username": "mallory",
                                                    "password": "mallory-password-1"}, headers)
    assert response.status_code == 403
    assert "mallory" not in usernames(store)


def test_post_by_a_plain_user_is_refused(client, store):
    token = csrf(client)
    response = client.post("/admin/users/create", data={"csrf_token": token, "username": "mallory",
                                                         "password": "mallory-password-1"}, headers={**READER, **ORIGIN})
    assert response.status_code == 403
    assert "mallory" not in usernames(store)


def test_password_reset_makes_the_new_password_authenticate(client):
    token = csrf(client)
    response = post(client, "/admin/users/password", {"csrf_token": token, "username": "reader",
                                                      "password": "reader-new-password"})
    assert response.status_code == 200 and "Password of reader reset." in response.text
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert client.get(search, headers=basic("reader", "reader-new-password")).status_code == 200
    assert client.get(search, headers=READER).status_code == 401


def test_bad_form_values_answer_a_one_line_error(client, store):
    token = csrf(client)
    short = post(client, "/admin/users/create", {"csrf_token": token, "username": "dave", "password": "x"})
    assert short.status_code == 400 and "too short" in short.text and "Traceback" not in short.text
    bad_id = post(client, "/admin/users/grant", {"csrf_token": token, "username": "reader",
                                                  "experiment_id": "abc", "permission": "EDIT"})
    assert bad_id.status_code == 400 and "must be a number" in bad_id.text
    assert "dave" not in usernames(store)


def test_grant_through_the_form_is_stored(client, store):
    token = csrf(client)
    response = post(client, "/admin/users/grant", {"csrf_token": token, "username": "reader",
                                                   "experiment_id": "0", "permission": "EDIT"})
    assert response.status_code == 200 and "reader now has EDIT on experiment 0." in response.text
    assert [g.to_json() for g in store.list_grants("reader")] == [
        {"username": "reader", "kind": "experiment", "resource": "0", "permission": "EDIT"}]


def test_users_json_lists_tokens_without_secrets(client, store):
    info, secret = store.create_token("reader", "laptop")
    data = client.get("/admin/api/users", headers=ADMIN).json()
    assert set(data) == {"users", "tokens", "permissions"}
    assert {"root", "reader", "writer"} <= {u["username"] for u in data["users"]}
    assert set(data["users"][0]) == {"username", "is_admin", "created_at", "tokens"}
    assert data["tokens"] == [info.to_json()]
    page = client.get("/admin/users", headers=ADMIN).text
    assert info.token_id in page and "laptop" in page
    assert secret not in page and secret.split("_")[-1] not in str(data)


def test_user_names_are_escaped_in_the_page(client, store):
    store.create_user("<script>x</script>", "script-password-1")
    page = client.get("/admin/users", headers=ADMIN).text
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_run_a_pass_now_purges_a_deleted_run_and_logs_trigger_admin(client, sqlite_auth_url, tmp_path):
    seed = Seed(sqlite_auth_url, str(tmp_path / "art"))
    try:
        eid = seed.experiment("exp")
        (run_id,) = seed.runs(eid, 1, stage="deleted")
        page = client.get("/admin/cleaner", headers=ADMIN)
        assert page.status_code == 200 and "No gc pass recorded yet." in page.text
        cleaner = planned(client)
        assert set(cleaner) == {"older_than", "interval", "passes", "plan", "plan_error", "plan_state",
                                "plan_refreshed_at", "plan_refreshing"}
        assert cleaner["older_than"] == "30d" and cleaner["plan"]["plan"]["totals"]["runs"] == 1
        token = csrf(client, "/admin/cleaner")
        confirm = post(client, "/admin/cleaner/confirm", {"csrf_token": token})
        assert confirm.status_code == 200 and "Delete permanently" in confirm.text
        with seed.engine.connect() as conn:  # the confirmation page deletes nothing
            assert conn.execute(sa.select(schema.runs.c.run_uuid)).scalars().all() == [run_id]
        refused = post(client, "/admin/cleaner/run", {"csrf_token": "nope"})
        assert refused.status_code == 403
        done = post(client, "/admin/cleaner/run", {"csrf_token": token})
        assert done.status_code == 200 and "gc pass done" in done.text
        with seed.engine.connect() as conn:
            assert conn.execute(sa.select(schema.runs.c.run_uuid)).scalars().all() == []
        passes = recent_passes(seed.engine)
        assert len(passes) == 1 and passes[0]["trigger"] == "admin" and passes[0]["deleted"]["runs"] == 1
        assert client.get("/admin/api/cleaner", headers=ADMIN).json()["passes"][0]["trigger"] == "admin"
    finally:
        seed.close()


def planned(client: TestClient, seconds: float = 60) -> dict:
    """/admin/api/cleaner once its background dry run is there."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        data = client.get("/admin/api/cleaner", headers=ADMIN).json()
        if (data["plan_state"] == "ready" and not data["plan_refreshing"]) or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def test_admin_password_is_not_in_any_page(client):
    for path in ("/admin", "/admin/users", "/admin/cleaner", "/admin/api/status"):
        assert ADMIN_PW not in client.get(path, headers=ADMIN).text
