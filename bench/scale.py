"""Scale: does `trackops serve` stay flat as the store grows? The same requests on a big store and on 1 % of it.

Two PostgreSQL databases are filled with set-based SQL (no client round trips): the full store
(default 1,000 experiments, 100,000 runs, 10,000,000 metric rows: 100 steps of one metric per run,
plus its latest_metrics row, two params and two tags per run) and a store with 1 % of each count.
One `trackops serve` (default workers) runs on each in turn, and the same requests are timed:

  search one experiment   POST runs/search in one experiment (100 runs at full size), metric filter,
                          ordered by the metric, 100 results
  search 10 experiments   the same over ten experiments, 100 results of 1,000 at full size
  search all, page 2      POST runs/search over every experiment, 100 results, the second page
  get-history             GET metrics/get-history of one run (100 points)
  get-history-bulk-int.   GET metrics/get-history-bulk-interval of 10 runs
  get run                 GET runs/get of a run
  log-batch               POST runs/log-batch of 1000 metrics into a new run

Each figure is the median of --requests calls in milliseconds (after 3 warm-up calls), the ratio is
full over 1 % (1.0 is flat). The server's resident memory (its process tree) is read after start-up
and after the timed requests, on both stores. Not a test.

Usage:
  python bench/scale.py [--experiments 1000] [--runs 100000] [--steps 100] [--requests 30] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from serve import load, tree_rss_mib
from servers import free_port, start, stop

import psycopg

BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("TRACKOPS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
API = "/api/2.0/mlflow"
NOW = int(time.time() * 1000)


def create_store(name: str, experiments: int, runs: int, steps: int) -> str:
    """A fresh database at MLflow's head schema (trackops db upgrade), filled in a few statements."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    import subprocess

    subprocess.run([str(BIN / "trackops"), "db", "upgrade", "--backend-store-uri", url, "--yes"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    per = max(1, runs // experiments)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                                     last_update_time, workspace)
            SELECT e, 'exp-' || e, 'mlflow-artifacts:/' || e, 'active', %(now)s, %(now)s, 'default'
            FROM generate_series(1, %(n)s) AS e""", {"n": experiments, "now": NOW})
        conn.execute("SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), %(n)s)",
                     {"n": experiments})
        conn.execute("""
            INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,
                              start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id)
            SELECT md5('run' || r), 'run-' || r, 'LOCAL', '', '', 'bench', 'FINISHED', %(now)s - r, %(now)s,
                   '', 'active', 'mlflow-artifacts:/' || (1 + (r - 1) / %(per)s) || '/' || md5('run' || r),
                   1 + (r - 1) / %(per)s
            FROM generate_series(1, %(n)s) AS r""", {"n": runs, "per": per, "now": NOW})
        conn.execute("""
            INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
            SELECT 'loss', 1.0 / (1 + s) + (r %% 97) / 1000.0, %(now)s + s, md5('run' || r), s, false
            FROM generate_series(1, %(n)s) AS r CROSS JOIN generate_series(0, %(last)s) AS s""",
                     {"n": runs, "last": steps - 1, "now": NOW})
        conn.execute("""
            INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)
            SELECT 'loss', 1.0 / %(steps)s + (r %% 97) / 1000.0, %(now)s + %(last)s, %(last)s, false,
                   md5('run' || r)
            FROM generate_series(1, %(n)s) AS r""", {"n": runs, "steps": steps, "last": steps - 1, "now": NOW})
        for table, a, b in (("params", "lr", "batch"), ("tags", "team", "mlflow.user")):
            conn.execute(f"""
                INSERT INTO {table} (key, value, run_uuid)
                SELECT k, CASE WHEN k = %(a)s THEN '0.' || (r %% 10) ELSE 'v' || (r %% 7) END, md5('run' || r)
                FROM generate_series(1, %(n)s) AS r CROSS JOIN (VALUES (%(a)s), (%(b)s)) AS keys(k)""",
                         {"n": runs, "a": a, "b": b})
        conn.execute("ANALYZE")
    print(f"{name}: {experiments} experiments, {runs} runs, {runs * steps} metric rows in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return url


def timed(call, n: int) -> float:
    for _ in range(3):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def measure(base: str, experiments: int, runs: int, n: int) -> dict[str, float]:
    s = requests.Session()

    def post(path, body):
        r = s.post(base + API + path, json=body, timeout=300)
        r.raise_for_status()
        return r.json()

    def get(path, params):
        r = s.get(base + API + path, params=params, timeout=300)
        r.raise_for_status()
        return r.json()

    middle = str(experiments // 2 or 1)
    ten = [str(e) for e in range(1, min(experiments, 10) + 1)]
    all_ids = [str(e) for e in range(1, experiments + 1)]
    one_run = post("/runs/search", {"experiment_ids": [middle], "max_results": 10})["runs"]
    run_ids = [r["info"]["run_id"] for r in one_run]
    first = post("/runs/search", {"experiment_ids": all_ids, "max_results": 100})
    token = first.get("next_page_token")
    out = {
        "search one experiment": timed(lambda: post("/runs/search", {
            "experiment_ids": [middle], "filter": "metrics.loss < 0.5", "order_by": ["metrics.loss ASC"],
            "max_results": 100}), n),
        "search 10 experiments": timed(lambda: post("/runs/search", {
            "experiment_ids": ten, "filter": "metrics.loss < 0.5 and params.lr = '0.3'",
            "order_by": ["metrics.loss ASC"], "max_results": 100}), n),
        "search all, page 2": timed(lambda: post("/runs/search", {
            "experiment_ids": all_ids, "max_results": 100, "page_token": token}), n),
        "get-history": timed(lambda: get("/metrics/get-history", {"run_id": run_ids[0], "metric_key": "loss"}), n),
        "get-history-bulk-int.": timed(lambda: get("/metrics/get-history-bulk-interval", {
            "run_ids": run_ids, "metric_key": "loss", "max_results": 100}), n),
        "get run": timed(lambda: get("/runs/get", {"run_id": run_ids[0]}), n),
    }
    batch_run = post("/runs/create", {"experiment_id": middle, "start_time": NOW})["run"]["info"]["run_id"]
    step = iter(range(10**9))

    def log_batch():
        base_step = next(step) * 1000
        post("/runs/log-batch", {"run_id": batch_run, "metrics": [
            {"key": "m", "value": i * 0.5, "timestamp": NOW, "step": base_step + i} for i in range(1000)]})

    out["log-batch (1000)"] = timed(log_batch, n)
    return out


def serve_and_measure(url: str, experiments: int, runs: int, n: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([str(BIN / "trackops"), "serve", "--backend-store-uri", url, "--artifacts-destination",
                  str(work / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                 work, base)
    try:
        time.sleep(3)
        figures = {"RSS after start (MiB)": tree_rss_mib(proc.pid)}
        figures.update(measure(base, experiments, runs, n))
        figures["RSS after requests (MiB)"] = tree_rss_mib(proc.pid)
        return figures
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="leave the two databases behind")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    sizes = {"1 %": (max(1, args.experiments // 100), max(1, args.runs // 100)),
             "full": (args.experiments, args.runs)}
    names = {label: f"bench_scale_{'small' if label == '1 %' else 'full'}_{tag}" for label in sizes}
    results = {}
    try:
        for label, (experiments, runs) in sizes.items():
            url = create_store(names[label], experiments, runs, args.steps)
            load_before = load()
            results[label] = serve_and_measure(url, experiments, runs, args.requests)
            print(f"{label}: load average before {load_before}, after {load()}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                for name in names.values():
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    small, full = sizes["1 %"], sizes["full"]
    print(f"PostgreSQL; 1 %: {small[0]} experiments, {small[1]} runs, {small[1] * args.steps} metric rows; "
          f"full: {full[0]} experiments, {full[1]} runs, {full[1] * args.steps} metric rows; "
          f"load average now {load()}; {os.cpu_count()} CPUs")
    print(f"{'median of %d (ms)' % args.requests:28} {'1 %':>10} {'full':>10} {'full / 1 %':>11}")
    for key in results["full"]:
        a, b = results["1 %"][key], results["full"][key]
        print(f"{key:28} {a:10.2f} {b:10.2f} {b / a:10.2f}x")


if __name__ == "__main__":
    main()
