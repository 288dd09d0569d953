"""The admin console in headless Chromium against a real `trackops serve --auth --backup-repo ...`:
an administrator uses every form (create a user, grant and revoke experiment and registered-model
permissions, revoke a token, run a gc pass, count storage again) and each effect is checked in the
database; a plain user gets 403 and an anonymous visitor 401 with the Basic challenge. Screenshots of
each page go to docs/images/admin-*.png when TRACKOPS_SCREENSHOTS=1."""

from __future__ import annotations

import pytest

from tests.browser import screenshot
from tests.compat.server import ServerProcess
from tests.services.test_gc import Seed
from trackops.auth.users import AuthStore
from trackops.config import Settings

ADMIN_PW = "browser-admin-password"
READER_PW = "browser-reader-password"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """`trackops serve --auth` on relative paths in its own folder (what the screenshots show), with data."""
    folder = tmp_path_factory.mktemp("console")
    proc = ServerProcess(["--auth", "--backend-store-uri", "sqlite:///mlflow.db", "--artifacts-destination",
                          "file:./mlartifacts", "--backup-repo", "./backups", "--backup-max-age", "1d",
                          "--gc-older-than", "7d"], folder,
                         env={"TRACKOPS_ADMIN_USERNAME": "root", "TRACKOPS_ADMIN_PASSWORD": ADMIN_PW})
    db = f"sqlite:///{folder / 'mlflow.db'}"
    seed = Seed(db, str(folder / "mlartifacts"))
    try:
        training = seed.experiment("training")
        seed.runs(training, 3, files=4)
        seed.runs(seed.experiment("tuning"), 5, files=2)
        seed.runs(training, 2, stage="deleted", files=2)  # deleted 40 days ago: the cleaner's plan
        store = AuthStore(seed.engine)
        store.create_user("reader", READER_PW)
        store.create_token("reader", "ci-pipeline")
        from trackops.services.backup import backup

        backup(Settings(backend_store_uri=db, artifacts_destination=str(folder / "mlartifacts")),
               to=str(folder / "backups"))
        yield proc, seed, store, training
    finally:
        seed.close()
        proc.stop()


def context_for(chromium_browser, username: str | None = None, password: str | None = None):
    credentials = {"http_credentials": {"username": username, "password": password}} if username else {}
    return chromium_browser.new_context(viewport={"width": 1280, "height": 900}, **credentials)


def grants(store: AuthStore, username: str) -> list[dict]:
    return [g.to_json() for g in store.list_grants(username)]


def test_admin_uses_every_form_and_each_change_is_in_the_database(chromium_browser, console):
    proc, seed, store, training = console
    context = context_for(chromium_browser, "root", ADMIN_PW)
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{proc.url}/admin")
        assert page.locator("h1").inner_text() == "Server status" and "at head" in page.content()
        screenshot(page, "admin-status")

        # Storage: computed in the background; the page shows it once ready.
        page.goto(f"{proc.url}/admin/storage")
        for _ in range(100):
            if page.locator("#by-experiment").count():
                break
            page.wait_for_timeout(200)
            page.reload()
        assert page.locator("#totals").inner_text().split("\n")[2].split() == ["Runs", "8", "2"]
        page.locator('form[action$="/admin/storage/refresh"] button').click()
        page.wait_for_url(f"{proc.url}/admin/storage")
        screenshot(page, "admin-storage")

        # Backups: the snapshot taken before, verified, with its restore command.
        page.goto(f"{proc.url}/admin/backups")
        for _ in range(100):
            if page.locator("#snapshots").count():
                break
            page.wait_for_timeout(200)
            page.reload()
        row = page.locator("#snapshots tr").nth(1).inner_text()
        assert "yes" in row and "trackops restore" in row and page.locator("#warning").count() == 0
        screenshot(page, "admin-backups")

        # Cleaner: the plan uses --gc-older-than 7d; run a pass through the confirmation.
        page.goto(f"{proc.url}/admin/cleaner")
        assert "deleted more than 7d ago" in page.content()
        page.locator('form[action$="/admin/cleaner/confirm"] button').click()
        page.wait_for_selector("text=Delete permanently")
        screenshot(page, "admin-cleaner-confirm")
        page.locator('form[action$="/admin/cleaner/run"] button').click()
        page.wait_for_selector("h1")
        assert page.locator("h1").inner_text() == "gc pass done"
        assert seed.count("runs") == 8 and seed.count("runs", lifecycle_stage="deleted") == 0
        page.goto(f"{proc.url}/admin/cleaner")
        for _ in range(100):  # the plan is made again in the background after the pass
            if not page.locator("#replanning, #planning").count():
                break
            page.wait_for_timeout(200)
            page.reload()
        assert page.locator("table").first.inner_text().split("\n")[0].split() == ["Runs", "0"]
        assert page.locator("h1").inner_text() == "Cleaner (gc)"
        assert "admin" in page.locator("table").last.inner_text()  # the pass, in the operations log
        screenshot(page, "admin-cleaner")

        # Users: create, grant and revoke (experiment and registered model), revoke a token.
        page.goto(f"{proc.url}/admin/users")
        form = page.locator('form[action$="/admin/users/create"]')
        form.locator('input[name="username"]').fill("dana")
        form.locator('input[name="password"]').fill("dana-password-1")
        form.locator("button").click()
        assert page.locator("#message").inner_text() == "User dana created."
        assert "dana" in {u["username"] for u in store.list_users()}

        def grant(kind: str, resource: str, permission: str) -> str:
            form = page.locator('form[action$="/admin/users/grant"]')
            form.locator('select[name="username"]').select_option("dana")
            form.locator('select[name="kind"]').select_option(kind)
            form.locator('input[name="resource"]').fill(resource)
            form.locator('select[name="permission"]').select_option(permission)
            form.locator("button").click()
            return page.locator("#message").inner_text()

        assert grant("experiment", training, "EDIT") == f"dana now has EDIT on experiment {training}."
        assert grant("registered_model", "churn", "MANAGE") == "dana now has MANAGE on registered model churn."
        assert grants(store, "dana") == [
            {"username": "dana", "kind": "experiment", "resource": training, "permission": "EDIT"},
            {"username": "dana", "kind": "registered_model", "resource": "churn", "permission": "MANAGE"}]
        form = page.locator('form[action$="/admin/users/revoke"]')
        form.locator('select[name="username"]').select_option("dana")
        form.locator('select[name="kind"]').select_option("experiment")
        form.locator('input[name="resource"]').fill(training)
        form.locator("button").click()
        assert page.locator("#message").inner_text() == f"Revoked the permission of dana on experiment {training}."
        assert grants(store, "dana") == [
            {"username": "dana", "kind": "registered_model", "resource": "churn", "permission": "MANAGE"}]
        screenshot(page, "admin-users")
        [token] = store.list_tokens("reader")
        page.locator(f'#tokens form:has(input[value="{token.token_id}"]) button').click()
        assert page.locator("#message").inner_text() == f"Token {token.token_id} revoked."
        assert store.list_tokens("reader") == []
    finally:
        context.close()


def test_plain_user_gets_403_on_every_page(chromium_browser, console):
    proc = console[0]
    context = context_for(chromium_browser, "reader", READER_PW)
    try:
        page = context.new_page()
        for path in ("/admin", "/admin/storage", "/admin/backups", "/admin/cleaner", "/admin/users"):
            response = page.goto(f"{proc.url}{path}")
            assert response.status == 403 and "administrators only" in page.content()
    finally:
        context.close()


def test_anonymous_gets_401_with_the_basic_prompt(chromium_browser, console):
    from playwright.sync_api import Error as PlaywrightError

    proc, seed = console[0], console[1]
    before = seed.count("runs")
    context = context_for(chromium_browser)
    try:
        page = context.new_page()
        for path in ("/admin", "/admin/storage", "/admin/backups", "/admin/api/users"):
            # Headless Chromium has no one to ask for credentials: it ends the navigation with
            # ERR_INVALID_AUTH_CREDENTIALS after the 401; the response itself is what a browser prompts on.
            with page.expect_response(f"{proc.url}{path}") as answer:
                with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                    page.goto(f"{proc.url}{path}")
            response = answer.value
            assert response.status == 401
            assert response.headers["www-authenticate"] == 'Basic realm="trackops"'
    finally:
        context.close()
    assert seed.count("runs") == before
