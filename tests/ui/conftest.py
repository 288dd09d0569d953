"""Fixtures for the web UI tests: a real `trackops serve` subprocess and a headless Chromium page.

- `start_trackops_server(*args)` starts ``trackops serve`` with a fresh SQLite database and
  artifacts folder in ``tmp_path`` (plus any extra flags) and returns its `ServerProcess`;
  every server it started is stopped after the test.
- `trackops_server` is the common case: a default server, yielding its base URL
  (``http://127.0.0.1:PORT``).
- `browser_page`, `chromium_browser` and `screenshot` come from `tests/browser.py` (one Chromium
  per test process, shared by every browser test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.compat.server import ServerProcess, free_port



class PrefixedServer(ServerProcess):
    """A `ServerProcess` whose probes live under ``--static-prefix`` (as in mlflow server)."""

    def __init__(self, args: list[str], cwd: Path, prefix: str, env: dict[str, str] | None = None,
                 timeout: float = 120):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "trackops", "serve", "--port", str(self.port),
                                          "--static-prefix", prefix, *args],
                                         cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}{prefix}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"trackops serve did not answer {prefix}/health:\n{self.output()}")


@pytest.fixture
def start_trackops_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    servers: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, static_prefix: str | None = None) -> ServerProcess:
        workdir = tmp_path / f"server{len(servers)}"
        workdir.mkdir()
        argv = ["--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination", str(workdir / "mlartifacts"), *args]
        server = (PrefixedServer(argv, workdir, static_prefix, env=env) if static_prefix
                  else ServerProcess(argv, workdir, env=env))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def trackops_server(start_trackops_server) -> str:
    """The base URL of a default `trackops serve` (it shows the installed MLflow UI bundle)."""
    return start_trackops_server().url
