"""What a started server has imported. `trackops serve` replaces itself with the serving process
(server/run.py), which holds neither the command line's modules nor the migration machinery even
after it created the database; where serve runs in-process, the migration machinery and cryptography
still stay out of a server whose database is already at head and which uses no secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from trackops.config import Settings
from trackops.services import migrate

# The steps of `trackops serve` up to uvicorn.run, in a fresh interpreter: the CLI's imports, the
# preflight, the shared webhook key, then the app exactly as uvicorn's factory builds it.
SERVE_STEPS = """
import json, os, sys
import trackops.cli.main
from trackops.config import Settings
from trackops.server.factory import app_from_env
from trackops.services.serve import CONFIG_ENV, preflight
from trackops.stores.webhooks import share_process_key

report = preflight(Settings(backend_store_uri=sys.argv[1], artifacts_destination=sys.argv[2]))
os.environ[CONFIG_ENV] = report.config.to_env()
share_process_key(os.environ)
app_from_env()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_server_on_a_database_at_head_has_not_imported_alembic_or_cryptography(sqlite_url, tmp_path):
    migrate.init(Settings(backend_store_uri=sqlite_url))
    done = subprocess.run([sys.executable, "-c", SERVE_STEPS, sqlite_url, str(tmp_path / "artifacts")],
                          capture_output=True, text=True, timeout=60, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "trackops" in loaded and "starlette" in loaded
    assert not loaded & {"alembic", "mako", "pygments", "cryptography"}


# The serving process after `serve` replaced itself: what `python -m trackops.server.run` imports up to
# uvicorn.run, with the config `serve` left in the environment (made by a preflight in another process,
# here the test's, which also created the database).
RUN_STEPS = """
import json, sys
import uvicorn
import trackops.server.run
from trackops.server.factory import app_from_env
from trackops.server.limits import LimitedHTTPProtocol

app_from_env()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_serving_process_imports_no_cli_or_migration_modules_after_creating_the_database(sqlite_url,
                                                                                              tmp_path):
    from trackops.services.serve import CONFIG_ENV, preflight

    report = preflight(Settings(backend_store_uri=sqlite_url, artifacts_destination=str(tmp_path / "artifacts")))
    assert report.created
    env = {**os.environ, CONFIG_ENV: report.config.to_env()}
    done = subprocess.run([sys.executable, "-c", RUN_STEPS], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "trackops" in loaded and "uvicorn" in loaded and "sqlalchemy" in loaded
    assert not loaded & {"typer", "rich", "alembic", "mako", "pygments", "cryptography"}  # (uvicorn imports click)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def test_serve_becomes_the_serving_process_under_the_same_pid_and_keeps_its_output(sqlite_url, tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "trackops", "serve", "--backend-store-uri", sqlite_url,
                                 "--artifacts-destination", str(tmp_path / "artifacts"), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while _health(port) != "OK":
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert argv[1:3] == [b"-m", b"trackops.server.run"]  # the process serving is the one serve started
        with open(f"/proc/{proc.pid}/maps") as f:  # uvloop is installed with trackops on Linux
            assert "/uvloop/" in f.read()  # its event loop is uvloop's
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()  # what serve printed before it replaced itself was flushed, not lost
    assert "Created the database" in text and "Serving sqlite:///" in text and f":{port} " in text


def test_the_serving_module_started_by_hand_refuses_with_a_hint():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKOPS_SERVE")}
    done = subprocess.run([sys.executable, "-m", "trackops.server.run"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["Error: this module is the serving process of trackops serve, not a command",
                                        "Try: trackops serve --help"]


def test_a_zero_gc_interval_is_a_usage_error_before_anything_is_served(sqlite_url, tmp_path):
    done = subprocess.run([sys.executable, "-m", "trackops", "serve", "--backend-store-uri", sqlite_url,
                           "--artifacts-destination", str(tmp_path / "artifacts"), "--port", str(_free_port()),
                           "--gc-interval", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "gc interval '0' must be longer than zero" in done.stderr + done.stdout
    assert not (tmp_path / "mlflow.db").exists()  # refused before the preflight created anything


def test_serve_keeps_serving_in_its_own_process_when_the_interpreter_cannot_be_started_again(monkeypatch,
                                                                                                  tmp_path):
    from trackops.server import run

    broken = tmp_path / "python"
    broken.write_bytes(b"\x00\x01 not an executable format")
    broken.chmod(0o755)
    monkeypatch.setattr(run.sys, "executable", str(broken))
    assert run.exec_available()
    run.replace_process()  # the kernel refuses the file (ENOEXEC): it returns instead of replacing this process
    assert run.EXEC_ENV not in os.environ  # and leaves no mark that would let the serving module start by hand
    monkeypatch.setattr(run.sys, "executable", "")
    assert not run.exec_available()
