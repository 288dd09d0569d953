"""The admin console's storage, backups and users pages in-process on SQLite with --auth: figures
computed in the background and cached, the snapshots of the configured repository, token and
registered-model permission changes through CSRF-protected forms (checked in the database and on a
second worker), and the server's --gc-older-than in the cleaner's plan."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.admin.test_admin_console import planned
from tests.auth.test_server_auth import ADMIN, ADMIN_PW, READER, READER_PW, WRITER_PW
from tests.services.test_gc import DAY_MS, NOW, Seed
from trackops.auth.users import AuthStore
from trackops.config import Settings
from trackops.db.engine import create_engine
from trackops.server.factory import build_app
from trackops.services.serve import CONFIG_ENV, preflight, serve_config

ORIGIN = {"Origin": "http://testserver"}


def console_client(url: str, tmp_path, monkeypatch, **options) -> TestClient:
    """One worker of `trackops serve --auth` with these serve options, as the CLI hands them over."""
    monkeypatch.setenv("TRACKOPS_ADMIN_USERNAME", "root")
    monkeypatch.setenv("TRACKOPS_ADMIN_PASSWORD", ADMIN_PW)
    settings = Settings(backend_store_uri=url, artifacts_destination=str(tmp_path / "art"))
    config = serve_config(settings, auth=True, **options)
    monkeypatch.setenv(CONFIG_ENV, config.to_env())  # what every worker of trackops serve finds
    return TestClient(build_app(config), raise_server_exceptions=False)


@pytest.fixture
def prepared(sqlite_auth_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKOPS_ADMIN_USERNAME", "root")
    monkeypatch.setenv("TRACKOPS_ADMIN_PASSWORD", ADMIN_PW)
    preflight(Settings(backend_store_uri=sqlite_auth_url, artifacts_destination=str(tmp_path / "art")), auth=True)
    engine = create_engine(sqlite_auth_url)
    store = AuthStore(engine)
    store.create_user("reader", READER_PW)
    store.create_user("writer", WRITER_PW)
    yield store
    engine.dispose()


@pytest.fixture
def client(sqlite_auth_url, tmp_path, monkeypatch, prepared):
    with console_client(sqlite_auth_url, tmp_path, monkeypatch) as c:
        yield c


def csrf(client: TestClient, page: str = "/admin/users") -> str:
    response = client.get(page, headers=ADMIN)
    assert response.status_code == 200, response.text
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)


def post(client: TestClient, path: str, fields: dict):
    return client.post(path, data=fields, headers={**ADMIN, **ORIGIN})


def ready(client: TestClient, path: str, seconds: float = 60) -> dict:
    """The JSON twin once its background computation has finished."""
    deadline = time.monotonic() + seconds
    while True:
        data = client.get(path, headers=ADMIN).json()
        if (data["state"] == "ready" and not data["refreshing"]) or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


# --- storage ----------------------------------------------------------------------------------------


def test_storage_counts_runs_by_stage_and_artifact_bytes_by_experiment(client, sqlite_auth_url, tmp_path):
    seed = Seed(sqlite_auth_url, str(tmp_path / "art"))
    try:
        big, small = seed.experiment("big"), seed.experiment("small")
        seed.runs(big, 3, files=4)  # 10+11+12+13 bytes a run
        seed.runs(big, 2, stage="deleted", files=2)
        seed.runs(small, 1, files=1)
    finally:
        seed.close()
    data = ready(client, "/admin/api/storage")
    assert data["error"] is None and data["state"] == "ready"
    usage = data["usage"]
    assert usage["runs"] == {"active": 4, "deleted": 2}
    assert usage["experiments"] == {"active": 3, "deleted": 0}  # with the Default experiment
    by_id = {e["experiment_id"]: e for e in usage["by_experiment"]}
    assert (by_id[big]["runs_active"], by_id[big]["runs_deleted"]) == (3, 2)
    assert (by_id[big]["files"], by_id[big]["bytes"]) == (3 * 4 + 2 * 2, 3 * 46 + 2 * 21)
    assert (by_id[small]["files"], by_id[small]["bytes"]) == (1, 10)
    assert usage["by_experiment"][0]["experiment_id"] == big  # most bytes first
    assert usage["artifacts"] == {"files": 17, "bytes": 3 * 46 + 2 * 21 + 10}
    page = client.get("/admin/storage", headers=ADMIN)
    assert page.status_code == 200 and "Artifact bytes by experiment" in page.text and "big" in page.text


def test_storage_is_computed_once_then_served_from_the_cache_until_refreshed(client, sqlite_auth_url, tmp_path):
    first = ready(client, "/admin/api/storage")
    seed = Seed(sqlite_auth_url, str(tmp_path / "art"))
    try:
        seed.runs(seed.experiment("later"), 2, files=1)
    finally:
        seed.close()
    for _ in range(3):  # page views read the cached figures: no count per view
        again = client.get("/admin/api/storage", headers=ADMIN).json()
        assert again["refreshed_at"] == first["refreshed_at"] and again["usage"]["runs"]["active"] == 0
        assert client.get("/admin/storage", headers=ADMIN).status_code == 200
    refreshed = post(client, "/admin/storage/refresh", {"csrf_token": csrf(client, "/admin/storage")})
    assert refreshed.status_code == 200 and refreshed.url.path == "/admin/storage"  # after its 303
    assert ready(client, "/admin/api/storage")["usage"]["runs"]["active"] == 2


def test_storage_refresh_needs_the_csrf_token(client):
    csrf(client, "/admin/storage")
    assert post(client, "/admin/storage/refresh", {"csrf_token": "forged"}).status_code == 403


# --- backups ----------------------------------------------------------------------------------------


@pytest.fixture
def snapshot(sqlite_auth_url, tmp_path, prepared):
    from trackops.services.backup import backup

    repo = str(tmp_path / "backups")
    report = backup(Settings(backend_store_uri=sqlite_auth_url, artifacts_destination=str(tmp_path / "art")), to=repo)
    return repo, report.snapshot


def test_backups_lists_snapshots_verified_with_restore_command(sqlite_auth_url, tmp_path, monkeypatch, snapshot):
    repo, snapshot_id = snapshot
    with console_client(sqlite_auth_url, tmp_path, monkeypatch, backup_repository=repo,
                        backup_max_age="30d") as client:
        data = ready(client, "/admin/api/backups")
        assert data["error"] is None and data["repository"] == repo
        [snap] = data["snapshots"]
        assert snap["id"] == snapshot_id and snap["verified"] is True and snap["problems"] == []
        assert {"created", "database", "rows", "files", "bytes", "trackops_version"} <= set(snap)  # backup list --json
        assert 0 <= snap["age_seconds"] < 3600
        assert snap["restore_command"].startswith(f"trackops restore {snapshot_id} --repo {repo} "
                                                  "--to-backend-store-uri sqlite:///")
        assert data["stale"] is False and data["warning"] is None and data["newest"] == snapshot_id
        page = client.get("/admin/backups", headers=ADMIN).text
        assert snapshot_id in page and "trackops restore" in page and 'id="warning"' not in page


def test_backups_warn_when_the_newest_is_older_than_the_max_age(sqlite_auth_url, tmp_path, monkeypatch, snapshot):
    repo, snapshot_id = snapshot
    with console_client(sqlite_auth_url, tmp_path, monkeypatch, backup_repository=repo, backup_max_age="0") as client:
        data = ready(client, "/admin/api/backups")
        assert data["stale"] is True and snapshot_id in data["warning"] and "--backup-max-age 0" in data["warning"]
        assert 'id="warning"' in client.get("/admin/backups", headers=ADMIN).text


def test_a_snapshot_with_a_missing_object_is_not_verified(sqlite_auth_url, tmp_path, monkeypatch, snapshot):
    from pathlib import Path

    repo, snapshot_id = snapshot
    victim = next(p for p in sorted((Path(repo) / "objects").rglob("*")) if p.is_file())
    victim.unlink()
    with console_client(sqlite_auth_url, tmp_path, monkeypatch, backup_repository=repo) as client:
        [snap] = ready(client, "/admin/api/backups")["snapshots"]
        assert snap["verified"] is False and "missing" in snap["problems"][0]


def test_backups_without_a_repository_say_how_to_configure_one(client):
    data = ready(client, "/admin/api/backups")
    assert data["snapshots"] == [] and "--backup-repo" in data["warning"]


# --- users: tokens, registered-model permissions, other workers ----------------------------------------


def test_revoking_a_token_through_the_form_deletes_it_and_every_worker_refuses_it(
        client, prepared, sqlite_auth_url, tmp_path, monkeypatch):
    info, token = prepared.create_token("reader", "ci")
    bearer = {"Authorization": f"Bearer {token}"}
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    with console_client(sqlite_auth_url, tmp_path, monkeypatch) as other_worker:
        assert other_worker.get(search, headers=bearer).status_code == 200  # now cached on that worker
        page = client.get("/admin/users", headers=ADMIN).text
        assert f'name="token_id" value="{info.token_id}"' in page
        response = post(client, "/admin/users/tokens/revoke", {"csrf_token": csrf(client), "token_id": info.token_id})
        assert response.status_code == 200 and f"Token {info.token_id} revoked." in response.text
        assert prepared.list_tokens() == []
        revoked_at = time.monotonic()
        assert client.get(search, headers=bearer).status_code == 401
        deadline = revoked_at + 10
        while other_worker.get(search, headers=bearer).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert other_worker.get(search, headers=bearer).status_code == 401
        print(f"the other worker refused the revoked token {time.monotonic() - revoked_at:.2f}s after the revoke")


def test_revoking_an_unknown_token_is_a_one_line_error(client):
    response = post(client, "/admin/users/tokens/revoke", {"csrf_token": csrf(client), "token_id": "nope"})
    assert response.status_code == 400 and "does not exist" in response.text


def test_registered_model_permission_granted_and_revoked_through_the_forms(client, prepared):
    token = csrf(client)
    granted = post(client, "/admin/users/grant", {"csrf_token": token, "username": "reader",
                                                  "kind": "registered_model", "resource": "churn",
                                                  "permission": "EDIT"})
    assert granted.status_code == 200 and "reader now has EDIT on registered model churn." in granted.text
    assert [g.to_json() for g in prepared.list_grants("reader")] == [
        {"username": "reader", "kind": "registered_model", "resource": "churn", "permission": "EDIT"}]
    assert client.get("/admin/api/users", headers=ADMIN).json()["permissions"] == [
        {"username": "reader", "kind": "registered_model", "resource": "churn", "permission": "EDIT"}]
    revoked = post(client, "/admin/users/revoke", {"csrf_token": token, "username": "reader",
                                                   "kind": "registered_model", "resource": "churn"})
    assert revoked.status_code == 200 and "Revoked the permission of reader on registered model churn." in revoked.text
    assert prepared.list_grants("reader") == []


def test_experiment_permission_revoke_reaches_another_worker(client, prepared, sqlite_auth_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKOPS_ADMIN_USERNAME", "root")
    prepared.grant("reader", "experiment", "0", "NO_PERMISSIONS")
    get = "/api/2.0/mlflow/experiments/get?experiment_id=0"
    with console_client(sqlite_auth_url, tmp_path, monkeypatch) as other_worker:
        assert other_worker.get(get, headers=READER).status_code == 403
        response = post(client, "/admin/users/revoke", {"csrf_token": csrf(client), "username": "reader",
                                                        "kind": "experiment", "resource": "0"})
        assert response.status_code == 200 and prepared.list_grants("reader") == []
        deadline = time.monotonic() + 10
        while other_worker.get(get, headers=READER).status_code == 403 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert other_worker.get(get, headers=READER).status_code == 200  # back to the default READ


def test_revoking_what_was_never_granted_changes_nothing_and_says_so(client, prepared):
    response = post(client, "/admin/users/revoke", {"csrf_token": csrf(client), "username": "reader",
                                                    "kind": "experiment", "resource": "0"})
    assert response.status_code == 400 and "has no permission on experiment 0" in response.text


@pytest.mark.parametrize("path,fields", [
    ("/admin/users/tokens/revoke", {"token_id": "x"}),
    ("/admin/users/revoke", {"username": "reader", "kind": "experiment", "resource": "0"}),
    ("/admin/users/grant", {"username": "reader", "kind": "registered_model", "resource": "m", "permission": "EDIT"}),
])
def test_new_forms_refuse_a_missing_csrf_token_and_a_plain_user(client, prepared, path, fields):
    info, _ = prepared.create_token("writer", "keep")
    csrf(client)
    assert post(client, path, fields).status_code == 403
    as_reader = client.post(path, data={**fields, "csrf_token": client.cookies.get("trackops_admin_csrf")},
                            headers={**READER, **ORIGIN})
    assert as_reader.status_code == 403
    assert prepared.list_grants() == [] and [t.token_id for t in prepared.list_tokens()] == [info.token_id]


@pytest.mark.parametrize("path", ["/admin/storage", "/admin/backups", "/admin/api/storage", "/admin/api/backups"])
def test_new_pages_are_for_administrators_only(client, path):
    anonymous = client.get(path)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == 'Basic realm="trackops"'
    assert client.get(path, headers=READER).status_code == 403


# --- cleaner: the server's --gc-older-than ---------------------------------------------------------------


def test_cleaner_plans_with_the_servers_gc_older_than(sqlite_auth_url, tmp_path, monkeypatch, prepared):
    seed = Seed(sqlite_auth_url, str(tmp_path / "art"))
    try:
        eid = seed.experiment("e")
        (recent,) = seed.runs(eid, 1, stage="deleted", deleted=NOW - 10 * DAY_MS)
        seed.runs(eid, 1, stage="deleted", deleted=NOW - 40 * DAY_MS)
        with console_client(sqlite_auth_url, tmp_path, monkeypatch, gc_older_than="7d", gc_interval="1h") as client:
            data = planned(client)
            assert data["older_than"] == "7d" and data["interval"] == "1h"
            assert data["plan"]["plan"]["totals"]["runs"] == 2  # 30 days would take only one
            page = client.get("/admin/cleaner", headers=ADMIN).text
            assert "deleted more than 7d ago" in page and "at least every 1h" in page
            done = post(client, "/admin/cleaner/run", {"csrf_token": csrf(client, "/admin/cleaner")})
            assert done.status_code == 200 and "gc pass done" in done.text
            after = client.get("/admin/cleaner", headers=ADMIN)
            assert after.status_code == 200 and "No gc pass recorded yet." not in after.text
            [recorded] = client.get("/admin/api/cleaner", headers=ADMIN).json()["passes"]
            assert recorded["trigger"] == "admin" and recorded["deleted"]["runs"] == 2
        with seed.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 0
        assert recent
    finally:
        seed.close()
