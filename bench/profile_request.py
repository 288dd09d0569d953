"""Where one request's time goes inside `trackops serve`: sampled with py-spy, grouped by stage.

Starts `trackops serve` on a fresh SQLite file (or --database-uri), attaches `py-spy record` to the
server process, sends `--requests` requests of one workload over one reused connection (as the
`mlflow` client does), then sorts every sample of the server's threads that was doing work into
the stage of the request it was in: HTTP parsing, JSON decoding, validation, entity building, SQL
compilation, the statements, commit, response. By default only the thread holding the GIL is
sampled (the server's Python work; the drivers release the GIL while the database works); with
--wall every busy thread is (the database's own time included, but also threads waiting for the
GIL, which on a loaded machine inflates the HTTP/ASGI share). A stage is recognised by the innermost frame of the
sample that belongs to it (see STAGES). Needs `py-spy` (pip install py-spy). Not a test.

Usage:
  python bench/profile_request.py [--workload log-batch|log-metric|experiments-get|search]
                                  [--requests 300] [--rate 1000] [--database-uri URI] [--wall] [--top N]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from servers import free_port, start, stop

BIN = Path(sys.executable).parent
API = "/api/2.0/mlflow"

# (stage, predicate on one frame "function (file:line)"), tried from the innermost frame outwards;
# the first frame that matches any rule decides. Order matters within one frame only.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("commit", ("commit (", "_commit_impl", "do_commit")),
    ("statements (driver)", ("do_executemany", "do_execute", "exec_driver_sql", "cursor.execute",
                             "executemany (", "_exec_single_context", "_exec_insertmany_context")),
    ("SQL compilation", ("compile (", "_compiler", "compiled_cache", "_compile_w_cache", "process (sqlalchemy",
                         "visit_", "sqlalchemy/sql/")),
    ("connection checkout/begin", ("begin (", "connect (", "_checkout", "pool/", "_connection_for_bind")),
    ("result rows", ("fetchall", "fetchmany", "sqlalchemy/engine/result", "sqlalchemy/engine/cursor")),
    ("validation", ("validation.py", "checked_str", "checked_int64", "check_depth", "metric_value (trackops")),
    ("entity building", ("_metric (", "_checked_metric", "entities.py", "write_metrics", "_raise_latest",
                         "rows.py", "_Point", "stored_value", "write_points", "_points (", "points_of",
                         "load_runs", "load_experiments")),
    ("JSON decoding", ("json/decoder", "from_json_bytes", "orjson", "loads (")),
    ("response (serialise, send)", ("render (", "serialize.py", "json/encoder", "dumps (",
                                    "starlette/responses", "send (")),
    ("HTTP parsing and ASGI", ("httptools", "uvicorn/protocols", "starlette/", "read_body", "request_params",
                               "anyio/", "asyncio/")),
    ("handler and store code", ("trackops/", "handlers/", "protocol.py", "app.py", "routing.py")),
]


def classify(stack: list[str]) -> str:
    for frame in reversed(stack):  # py-spy writes the outermost frame first
        for stage, needles in STAGES:
            if any(n in frame for n in needles):
                return stage
    return "other (handler, store logic, interpreter)"


def workload(name: str, url: str, s: requests.Session):
    """A function sending one request of the workload (set-up done here, not profiled)."""
    def post(path, body):
        r = s.post(url + API + path, json=body, timeout=60)
        r.raise_for_status()
        return r.json()

    run_id = post("/runs/create", {"experiment_id": "0", "start_time": int(time.time() * 1000)})["run"]["info"]["run_id"]
    counter = iter(range(10**9))
    if name == "log-batch":
        def one():
            b, now = next(counter), int(time.time() * 1000)
            post("/runs/log-batch", {"run_id": run_id, "metrics": [
                {"key": f"m{i % 10}", "value": i * 0.1, "timestamp": now, "step": b * 100 + i // 10}
                for i in range(1000)]})
    elif name == "log-metric":
        def one():
            post("/runs/log-metric", {"run_id": run_id, "run_uuid": run_id, "key": "loss", "value": 0.5,
                                      "timestamp": int(time.time() * 1000), "step": next(counter)})
    elif name == "experiments-get":
        def one():
            s.get(url + API + "/experiments/get", params={"experiment_id": "0"}, timeout=60).raise_for_status()
    else:
        for i in range(2000):
            rid = post("/runs/create", {"experiment_id": "0", "start_time": 1})["run"]["info"]["run_id"]
            post("/runs/log-batch", {"run_id": rid, "metrics": [{"key": "score", "value": i, "timestamp": 1}],
                                     "params": [{"key": "p", "value": str(i % 7)}]})

        def one():
            post("/runs/search", {"experiment_ids": ["0"], "filter": "metrics.score >= 1000", "max_results": 1000,
                                  "order_by": ["metrics.score DESC"]})
    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="log-batch",
                        choices=("log-batch", "log-metric", "experiments-get", "search"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--database-uri", default=None)
    parser.add_argument("--wall", action="store_true",
                        help="sample every busy thread (wall time, database waits included) instead of the GIL holder")
    parser.add_argument("--top", type=int, default=0, help="also list the N frames that decided each stage")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    uri = args.database_uri or f"sqlite:///{work / 'mlflow.db'}"
    proc = start([str(BIN / "trackops"), "serve", "--backend-store-uri", uri, "--artifacts-destination",
                  str(work / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port)], work, url)
    raw = work / "profile.txt"
    try:
        s = requests.Session()
        one = workload(args.workload, url, s)
        for _ in range(5):
            one()  # warm-up: caches, connection pool, imports
        recorder = subprocess.Popen([spy, "record", "--pid", str(proc.pid), "--rate", str(args.rate), "--format",
                                     "raw", "--output", str(raw), "--nonblocking",
                                     *(["--threads"] if args.wall else ["--gil"])],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        started = time.perf_counter()
        for _ in range(args.requests):
            one()
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        recorder.send_signal(2)
        recorder.wait(60)
        counts: collections.Counter[str] = collections.Counter()
        leaves: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for line in raw.read_text().splitlines():
            stack_text, _, n = line.rpartition(" ")
            frames = stack_text.split(";")
            if len(frames) < 2 or any(idle in frames[-1] for idle in IDLE):
                continue
            stage = classify(frames[1:])
            counts[stage] += int(n)
            leaves[stage][_deciding_frame(frames[1:], stage)] += int(n)
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    total = sum(counts.values()) or 1
    print(f"{args.workload}: {args.requests} requests in {elapsed:.2f} s ({args.requests / elapsed:.1f} req/s, "
          f"{elapsed / args.requests * 1000:.2f} ms each); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    busy_ms = total / args.rate * 1000 / args.requests  # sampled time per request
    what = "busy-thread" if args.wall else "GIL"
    print(f"{'stage':44} {what + ' samples':>21} {'ms per request':>15}   ({what} time {busy_ms:.2f} ms a request)")
    for stage, n in counts.most_common():
        print(f"{stage:44} {n / total:20.1%} {busy_ms * n / total:15.2f}")
    if args.top:
        for stage, n in counts.most_common():
            print(f"\n{stage}:")
            for frame, k in leaves[stage].most_common(args.top):
                print(f"  {k / total:6.1%}  {frame}")


def _deciding_frame(stack: list[str], stage: str) -> str:
    needles = dict(STAGES).get(stage, ())
    for frame in reversed(stack):
        if any(x in frame for x in needles):
            return frame
    return stack[-1]


# Innermost frames of a thread that waits (py-spy leaves out most idle samples itself).
IDLE = ("select (selectors.py", "wait (threading.py", "get (queue.py", "_worker (concurrent")


if __name__ == "__main__":
    main()
