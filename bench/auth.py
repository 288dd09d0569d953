"""Benchmark: authenticated requests on `trackops serve --auth` vs without auth vs MLflow's basic-auth.

All on this machine, in this run, on copies of one SQLite database holding the same experiment and
run (with params, metrics and tags):

  trackops           `trackops serve` without auth
  trackops --auth    `trackops serve --auth`, a non-admin user with HTTP Basic, and with a Bearer token
  mlflow basic-auth  `mlflow server --app-name basic-auth` (its defaults: no credential cache), as a
                     non-admin user and as the admin; optionally (--mlflow-cache) with its 60 s cache

The workload is sequential `GET runs/get` on one reused connection (what the `mlflow` client does),
after a warm-up. The two trackops servers run at the same time and are measured in alternating
rounds, so a busy machine slows both alike; the figure is the median round. Prints requests/s and
the ratios the issue asks for: trackops --auth over trackops (target >= 0.8) and over MLflow's
basic-auth (target >= 20). Not a test.

MLflow's basic-auth app needs `mlflow[auth]` (Flask-WTF) in the environment.

Usage:
  python bench/auth.py [--requests 400] [--rounds 5] [--mlflow-requests 40] [--mlflow-cache]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from servers import free_port, start, stop
import sqlalchemy as sa

BIN = Path(sys.executable).parent
API = "/api/2.0/mlflow"
ADMIN_PW = "bench-admin-password-1"
USER_PW = "bench-user-password-1"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def rate(session: requests.Session, url: str, run_id: str, n: int, headers: dict[str, str]) -> float:
    """Requests/s of n sequential GET runs/get on `session`."""
    started = time.perf_counter()
    for _ in range(n):
        r = session.get(url + API + "/runs/get", params={"run_id": run_id}, headers=headers, timeout=60)
        if r.status_code != 200:
            sys.exit(f"GET runs/get answered {r.status_code}: {r.text[:200]}")
    return n / (time.perf_counter() - started)


def seed(url: str, headers: dict[str, str]) -> str:
    s = requests.Session()
    eid = s.post(url + API + "/experiments/create", json={"name": "bench"}, headers=headers).json()["experiment_id"]
    run = s.post(url + API + "/runs/create", json={"experiment_id": eid, "start_time": 1}, headers=headers).json()
    run_id = run["run"]["info"]["run_id"]
    now = int(time.time() * 1000)
    r = s.post(url + API + "/runs/log-batch", headers=headers, json={
        "run_id": run_id, "metrics": [{"key": f"m{i}", "value": i, "timestamp": now, "step": 0} for i in range(20)],
        "params": [{"key": f"p{i}", "value": str(i)} for i in range(20)],
        "tags": [{"key": f"t{i}", "value": "x"} for i in range(10)]})
    r.raise_for_status()
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per round per trackops contender")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mlflow-requests", type=int, default=40)
    parser.add_argument("--mlflow-cache", action="store_true", help="also measure MLflow with its 60 s cache on")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    db = work / "mlflow.db"
    url_db = f"sqlite:///{db}"
    results: dict[str, float] = {}
    procs: list[subprocess.Popen] = []
    try:
        # --- trackops: one database, served with and without auth at the same time -------------
        auth_port, plain_port = free_port(), free_port()
        auth_url, plain_url = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{plain_port}"
        env = {"TRACKOPS_ADMIN_USERNAME": "admin", "TRACKOPS_ADMIN_PASSWORD": ADMIN_PW}
        trackops = str(BIN / "trackops")
        procs.append(start([trackops, "serve", "--auth", "--backend-store-uri", url_db, "--port", str(auth_port)],
                           work, auth_url, env=env))
        admin = basic("admin", ADMIN_PW)
        run_id = seed(auth_url, admin)
        requests.post(auth_url + API + "/users/create", headers=admin,
                      json={"username": "user", "password": USER_PW}).raise_for_status()
        token = subprocess.run([trackops, "users", "tokens", "create", "user", "--name", "bench",
                                "--backend-store-uri", url_db], capture_output=True, text=True, check=True).stdout.strip()
        procs.append(start([trackops, "serve", "--backend-store-uri", url_db, "--port", str(plain_port)],
                           work, plain_url))

        contenders = {"trackops": (plain_url, {}), "trackops --auth (basic)": (auth_url, basic("user", USER_PW)),
                      "trackops --auth (token)": (auth_url, {"Authorization": f"Bearer {token}"})}
        sessions = {name: requests.Session() for name in contenders}
        for name, (url, headers) in contenders.items():
            rate(sessions[name], url, run_id, 30, headers)  # warm-up: connections, caches
        rounds: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, (url, headers) in contenders.items():
                rounds[name].append(rate(sessions[name], url, run_id, args.requests, headers))
        for name, values in rounds.items():
            results[name] = statistics.median(values)
        for p in procs:
            stop(p)
        procs.clear()
        copy = sa.create_engine(f"sqlite:///{work / 'mlflow-copy.db'}")  # the same data for MLflow
        with sa.create_engine(url_db).raw_connection() as src, copy.raw_connection() as dst:
            src.driver_connection.backup(dst.driver_connection)  # consistent, WAL included

        # --- MLflow basic-auth on a copy of the same database -----------------------------------
        for cached in ([False, True] if args.mlflow_cache else [False]):
            ini = work / f"basic_auth_{int(cached)}.ini"
            ini.write_text("[mlflow]\ndefault_permission = READ\n"
                           f"database_uri = sqlite:///{work / f'basic_auth_{int(cached)}.db'}\n"
                           "admin_username = admin\ngrant_default_workspace_access = true\n"
                           "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           + ("auth_cache_ttl_seconds = 60\n" if cached else ""))
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            procs.append(start([str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri",
                                f"sqlite:///{work / 'mlflow-copy.db'}", "--port", str(port)], work, url,
                               env={"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PW,
                                    "MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-secret"}))
            requests.post(url + API + "/users/create", headers=admin,
                          json={"username": "user", "password": USER_PW}).raise_for_status()
            suffix = " (60 s cache)" if cached else ""
            for who, headers in (("user", basic("user", USER_PW)), ("admin", admin)):
                s = requests.Session()
                rate(s, url, run_id, 5, headers)
                results[f"mlflow basic-auth {who}{suffix}"] = rate(s, url, run_id, args.mlflow_requests, headers)
            stop(procs.pop())
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(k) for k in results)
    print(f"sequential GET runs/get on a reused connection ({os.cpu_count()} CPUs)")
    for name, value in results.items():
        print(f"  {name:<{width}}  {value:9.1f} req/s")
    plain, basic_rate = results["trackops"], results["trackops --auth (basic)"]
    mlflow_user = results["mlflow basic-auth user"]
    print(f"trackops --auth (basic) / trackops:            {basic_rate / plain:6.2f}  (target >= 0.8)")
    print(f"trackops --auth (token) / trackops:            {results['trackops --auth (token)'] / plain:6.2f}")
    print(f"trackops --auth (basic) / mlflow basic-auth:   {basic_rate / mlflow_user:6.1f}  (target >= 20)")
    print(f"trackops --auth (basic) / mlflow (admin):      {basic_rate / results['mlflow basic-auth admin']:6.1f}")


if __name__ == "__main__":
    main()
