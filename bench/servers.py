"""Starting and stopping the servers a benchmark compares: a free port, wait for /health, stop the group."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(argv: list[str], cwd: Path, url: str, *, env: dict[str, str] | None = None,
          timeout: float = 180) -> subprocess.Popen:
    """Start a server in its own process group and return once its /health answers 200."""
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{argv[0]} {' '.join(argv[1:3])} exited with {proc.returncode}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    stop(proc)
    sys.exit(f"{argv[0]} did not start")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (workers included), SIGKILL after 30 s."""
    os.killpg(proc.pid, 15)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
