"""Helpers for the page-by-page UI tests (tests/ui/test_pages_*.py).

- `serve(tmp_path_factory, name, *flags, backend=...)` starts one `trackops serve` (local artifacts)
  for a whole test module on a fresh SQLite file (`"sqlite"`), a fresh PostgreSQL database
  (`"postgresql"`, dropped when the server stops; skips when PostgreSQL is unreachable unless
  CI=true) or any backend-store URI; the module's fixture stops it.
- `UiPage` is a Chromium page in its own context on MLflow's "Model training" side of the UI
  with the assistant panel closed (what a data scientist who trains models sees), which records
  every answer of the server that is >= 400: `ui.failures(expected=...)` lists the unexpected ones.
- `client(base)` is the real `MlflowClient` pointed at the server.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.compat.server import ServerProcess
from tests.conftest import POSTGRES_ADMIN_URL, _check_server, create_server_database, drop_server_database

# The UI remembers these in localStorage; set before the app starts so every test sees the same page.
INIT_SCRIPT = """
localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""

# MLflow's UI asks for the signed-in user; without --auth mlflow server answers 404 there as well.
ALWAYS_EXPECTED = (re.compile(r"/ajax-api/2\.0/mlflow/users/current$"),)


def serve(tmp_path_factory, name: str, *flags: str, env: dict[str, str] | None = None,
          artifacts: str | None = None, backend: str = "sqlite") -> ServerProcess:
    """A `trackops serve` in its own folder on a fresh database: `backend` is "sqlite", "postgresql"
    (a new database, dropped by the returned server's `stop()`) or a backend-store URI."""
    work: Path = tmp_path_factory.mktemp(name)
    drop = None
    if backend == "sqlite":
        uri = f"sqlite:///{work / 'mlflow.db'}"
    elif backend == "postgresql":
        _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
        uri = drop = create_server_database(POSTGRES_ADMIN_URL)
    else:
        uri = backend
    args = ["--backend-store-uri", uri, "--artifacts-destination", artifacts or str(work / "mlartifacts"), *flags]
    try:
        proc = ServerProcess(args, work, env=env)
    except BaseException:
        if drop:
            drop_server_database(POSTGRES_ADMIN_URL, drop)
        raise
    if drop:
        stop = proc.stop

        def stop_and_drop() -> int:
            code = stop()
            drop_server_database(POSTGRES_ADMIN_URL, drop)
            return code

        proc.stop = stop_and_drop
    return proc


def client(base: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=base, registry_uri=base)


class UiPage:
    """One browser context + page on a server, recording failed answers."""

    def __init__(self, browser, base: str, *, http_credentials: dict[str, str] | None = None):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 800},
                                           http_credentials=http_credentials)
        self.context.add_init_script(INIT_SCRIPT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.failed: list[tuple[int, str, str]] = []
        self.page.on("response", self._record)

    def _record(self, response) -> None:
        if response.status >= 400 and response.url.startswith(self.base):
            self.failed.append((response.status, response.request.method, response.url[len(self.base):]))

    def open(self, route: str):
        """Go to a hash route (``/#/experiments/1``) and return the page."""
        self.page.goto(self.base + route)
        return self.page

    def failures(self, *expected: str) -> list[tuple[int, str, str]]:
        """Answers >= 400 so far that match none of the `expected` regular expressions (path + query)."""
        allowed = [re.compile(e) for e in expected] + list(ALWAYS_EXPECTED)
        return [f for f in self.failed if not any(a.search(f[2].split("?")[0]) or a.search(f[2]) for a in allowed)]

    def settle(self, seconds: float = 0.5) -> None:
        """Let the requests a click started finish (the UI fires some after the visible change)."""
        try:
            self.page.wait_for_load_state("networkidle", timeout=2_000)
        except Exception:  # noqa: BLE001 - pages that poll never go idle; the pause below is enough
            pass
        time.sleep(seconds)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ui_factory(chromium_browser):
    """`ui_factory(base, http_credentials=None)` -> UiPage; every page is closed after the test."""
    pages: list[UiPage] = []

    def make(base: str, **kwargs) -> UiPage:
        pages.append(UiPage(chromium_browser, base, **kwargs))
        return pages[-1]

    yield make
    for ui in pages:
        ui.close()
