"""The admin console in headless Chromium against a real `trackops serve --auth`: an administrator
creates a user through the form, and the user is in the database. Screenshots of /admin and
/admin/users go to docs/images/admin-*.png when TRACKOPS_SCREENSHOTS=1."""

from __future__ import annotations

import pytest

from tests.compat.server import ServerProcess
from tests.browser import screenshot
from trackops.auth.users import AuthStore
from trackops.db.engine import create_engine

ADMIN_PW = "browser-admin-password"


@pytest.fixture
def server(tmp_path):
    """`trackops serve --auth` on relative paths in its own folder (what the screenshots show)."""
    proc = ServerProcess(["--auth", "--backend-store-uri", "sqlite:///mlflow.db",
                          "--artifacts-destination", "file:./mlartifacts"], tmp_path,
                         env={"TRACKOPS_ADMIN_USERNAME": "root", "TRACKOPS_ADMIN_PASSWORD": ADMIN_PW})
    try:
        yield proc
    finally:
        proc.stop()


def test_admin_creates_a_user_through_the_form_in_chromium(chromium_browser, server):
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800},
                                   http_credentials={"username": "root", "password": ADMIN_PW})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{server.url}/admin")
        assert page.locator("h1").inner_text() == "Server status"
        assert "at head" in page.content()
        screenshot(page, "admin-status")
        page.goto(f"{server.url}/admin/users")
        form = page.locator('form[action$="/admin/users/create"]')
        form.locator('input[name="username"]').fill("dana")
        form.locator('input[name="password"]').fill("dana-password-1")
        form.locator("button").click()
        page.wait_for_selector("#message")
        assert page.locator("#message").inner_text() == "User dana created."
        assert page.locator("#users").get_by_text("dana", exact=True).count() == 1
        screenshot(page, "admin-users")
    finally:
        context.close()
    db = server_db(server)
    engine = create_engine(db)
    try:
        assert "dana" in {u["username"] for u in AuthStore(engine).list_users()}
    finally:
        engine.dispose()


def server_db(server) -> str:
    return f"sqlite:///{server.log.parent / 'mlflow.db'}"
