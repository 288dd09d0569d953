"""Benchmark: the same client workload against `trackops serve` and its peers, side by side.

The peers are `mlflow server` (the reference) and FastTrackML (`fml server`, the Go
reimplementation of MLflow's tracking API; skipped with a note when `fml` is not installed). All
servers run at the same time on this machine, each on its own database of the same backend type
(a SQLite file, or with --database postgresql its own database on the PostgreSQL server), with
their default worker settings; the timed rounds rotate between them and each measure keeps its
best round, so that load from other processes hits all alike. The workload is plain HTTP as the
`mlflow` client sends it (`requests`), measured both ways a client connects: one reused connection
(a `requests.Session`, what the `mlflow` client does) and a new connection per request
(`http.client`, one connection opened and closed per request, as a client without a pool or a
non-pooling proxy does).

  log-metric        sequential POST runs/log-metric, requests/s (both ways, and through the thin client)
  log-batch         POST runs/log-batch with 1000 metrics each, metrics/s (reused connection)
  experiments/get   sequential GET experiments/get, requests/s (reused connection; and thin client)
  GET /health       sequential GET /health, requests/s (reused connection): the client's own ceiling

"thin client" rows send the same requests over one kept-alive `http.client` connection, which costs
the client about a tenth of the CPU `requests` takes per request (0.05-0.1 ms against 0.7-1.0 ms
here): on a 2-core machine the `requests` rows are bounded by the client before the fastest servers,
the thin-client rows show more of the servers' own difference.
  search            POST runs/search returning 1000 of 2000 runs with a metric filter, seconds per call
  concurrent        8 clients logging metrics at once, aggregate requests/s (reused connections)
  idle RSS          resident memory of the server's whole process tree after start-up, before load

Prints each figure for every server, trackops' ratio to each peer (trackops over the peer for
rates, the peer over trackops for times and memory: above 1 means trackops is better) and the
machine's load average before and after the timed rounds. Not a test.

Usage:
  python bench/serve.py [--requests 200] [--batches 20] [--searches 5] [--runs 2000] [--rounds 3]
                        [--database sqlite|postgresql] [--peers mlflow,fasttrackml] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from servers import free_port, start, stop

BIN = Path(sys.executable).parent
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
API = "/api/2.0/mlflow"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def post(session, url: str, path: str, body: dict) -> dict:
    for attempt in range(20):
        try:
            r = (session or requests).post(url + API + path, json=body, timeout=60)
            break
        except requests.ConnectionError:
            # A multi-worker server on a loaded machine may drop connections while its supervisor
            # restarts workers that answered its health ping late.
            if attempt == 19:
                raise
            time.sleep(2)
    r.raise_for_status()
    return r.json()


def new_run(session, url: str, experiment_id: str = "0") -> str:
    return post(session, url, "/runs/create", {"experiment_id": experiment_id,
                                               "start_time": int(time.time() * 1000)})["run"]["info"]["run_id"]


def post_new_connection(url: str, path: str, body: dict) -> None:
    """POST over a connection opened for this request and closed after it (http.client: a thin client,
    so that the client's own overhead hides less of the servers' difference)."""
    host, port = url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", API + path, body=json.dumps(body), headers={"Content-Type": "application/json",
                                                                          "Connection": "close"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
    finally:
        conn.close()


class ThinClient:
    """One kept-alive HTTP/1.1 connection through http.client, JSON bodies: the least a client can do."""

    def __init__(self, url: str):
        host, port = url.rsplit("/", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        return payload

    def close(self) -> None:
        self.conn.close()


def log_metrics_thin(client: ThinClient, run_id: str, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        client.call("POST", API + "/runs/log-metric", {"run_id": run_id, "run_uuid": run_id, "key": "loss",
                                                         "value": i * 0.5, "timestamp": int(time.time() * 1000),
                                                         "step": i})
    return time.perf_counter() - started


def log_metrics(session, url: str, run_id: str, n: int) -> float:
    """Seconds for n sequential log-metric calls (session None: a new connection each time)."""
    started = time.perf_counter()
    for i in range(n):
        body = {"run_id": run_id, "run_uuid": run_id, "key": "loss", "value": i * 0.5,
                "timestamp": int(time.time() * 1000), "step": i}
        if session is None:
            post_new_connection(url, "/runs/log-metric", body)
        else:
            post(session, url, "/runs/log-metric", body)
    return time.perf_counter() - started


def populate(url: str, runs: int) -> str:
    """An experiment with `runs` runs, metric score = i and a param; returns its id (8 threads, not timed)."""
    eid = post(None, url, "/experiments/create", {"name": f"search-{uuid.uuid4().hex[:8]}"})["experiment_id"]

    def work(part: range) -> None:
        for i in part:
            rid = new_run(None, url, eid)
            post(None, url, "/runs/log-batch", {"run_id": rid, "metrics": [{"key": "score", "value": i, "timestamp": 1}],
                                                "params": [{"key": "p", "value": str(i % 7)}]})

    threads = [threading.Thread(target=work, args=(range(k, runs, 8),)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return eid


def measure(url: str, eid: str, args) -> dict[str, float]:
    """One round of every timed measure against one server."""
    out: dict[str, float] = {}
    s = requests.Session()
    run_id = new_run(s, url)
    log_metrics(s, url, run_id, 5)  # warm-up
    out["log-metric reused (req/s)"] = args.requests / log_metrics(s, url, run_id, args.requests)
    out["log-metric new conn (req/s)"] = args.requests / log_metrics(None, url, run_id, args.requests)
    thin = ThinClient(url)
    try:
        log_metrics_thin(thin, run_id, 5)  # warm-up
        out["log-metric, thin client (req/s)"] = args.requests / log_metrics_thin(thin, run_id, args.requests)
    finally:
        thin.close()

    batch_run = new_run(s, url)
    started = time.perf_counter()
    for b in range(args.batches):
        now = int(time.time() * 1000)
        post(s, url, "/runs/log-batch", {"run_id": batch_run, "metrics": [
            {"key": f"m{i % 10}", "value": i * 0.1, "timestamp": now, "step": b * 100 + i // 10} for i in range(1000)]})
    out["log-batch (metrics/s)"] = args.batches * 1000 / (time.perf_counter() - started)

    started = time.perf_counter()
    for _ in range(args.requests):
        r = s.get(url + API + "/experiments/get", params={"experiment_id": eid}, timeout=60)
        r.raise_for_status()
    out["experiments/get (req/s)"] = args.requests / (time.perf_counter() - started)
    thin = ThinClient(url)
    try:
        path = f"{API}/experiments/get?experiment_id={eid}"
        thin.call("GET", path)
        started = time.perf_counter()
        for _ in range(args.requests):
            thin.call("GET", path)
        out["experiments/get, thin client (req/s)"] = args.requests / (time.perf_counter() - started)
    finally:
        thin.close()

    # The client's own ceiling: the same session against the cheapest answer a server has.
    started = time.perf_counter()
    for _ in range(args.requests):
        s.get(url + "/health", timeout=60).raise_for_status()
    out["GET /health (req/s)"] = args.requests / (time.perf_counter() - started)

    half = args.runs // 2
    body = {"experiment_ids": [eid], "filter": f"metrics.score >= {half}", "max_results": 1000,
            "order_by": ["metrics.score DESC"]}
    found = post(s, url, "/runs/search", body)
    assert len(found["runs"]) == min(1000, half), len(found["runs"])
    started = time.perf_counter()
    for _ in range(args.searches):
        post(s, url, "/runs/search", body)
    out["search 1000 of 2000 (s/call)"] = (time.perf_counter() - started) / args.searches

    per_client = max(1, args.requests // 4)
    runs = [new_run(s, url) for _ in range(8)]
    barrier = threading.Barrier(9)

    def client(rid: str) -> None:
        session = requests.Session()
        log_metrics(session, url, rid, 2)
        barrier.wait()
        log_metrics(session, url, rid, per_client)

    threads = [threading.Thread(target=client, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    out["8 concurrent clients (req/s)"] = 8 * per_client / (time.perf_counter() - started)
    return out


def lower_is_better(key: str) -> bool:
    return "(s/call)" in key or "(MiB)" in key


def load() -> str:
    """The machine's load average (1, 5, 15 min): the figures are only comparable within one run."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def database_uri(kind: str, name: str, work: Path) -> str:
    """A fresh, empty database for one server: a SQLite file in its folder, or a PostgreSQL database."""
    if kind == "sqlite":  # FastTrackML reads sqlite://<path>; SQLAlchemy sqlite:///<path>
        return f"sqlite://{'' if name == 'fasttrackml' else '/'}{work / 'mlflow.db'}"
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS bench_{name}")
        conn.execute(f"CREATE DATABASE bench_{name}")
    # MLflow goes through SQLAlchemy: name the driver that is installed (psycopg 3).
    scheme = {"mlflow": "postgresql+psycopg", "fasttrackml": "postgres"}.get(name, "postgresql")
    return f"{scheme}://postgres@127.0.0.1:5432/bench_{name}"


def analyse(names) -> None:
    """ANALYZE every server's freshly filled database, as autovacuum does on a production server a
    minute after such a load: without statistics PostgreSQL plans joins as if each table held a row
    or two, and the search measure would time that guess instead of the servers."""
    import psycopg

    for name in names:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/bench_{name}", autocommit=True) as conn:
            conn.execute("ANALYZE")


def drop_database(kind: str, name: str) -> None:
    if kind != "postgresql":
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS bench_{name} WITH (FORCE)")


def command(name: str, uri: str, work: Path, port: int, synchronous: str | None = None) -> list[str]:
    if name == "fasttrackml":
        return [str(BIN / "fml"), "server", "--database-uri", uri, "--listen-address", f"127.0.0.1:{port}",
                "--default-artifact-root", str(work / "artifacts")]
    common = ["--backend-store-uri", uri, "--artifacts-destination", str(work / "mlartifacts"),
              "--host", "127.0.0.1", "--port", str(port)]
    if name == "mlflow":
        return [str(BIN / "mlflow"), "server", *common]
    if synchronous and uri.startswith("sqlite"):
        common += ["--sqlite-synchronous", synchronous]
    return [str(BIN / "trackops"), "serve", *common]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--searches", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--peers", default="mlflow,fasttrackml",
                        help="comma-separated peers to run beside trackops (mlflow, fasttrackml)")
    parser.add_argument("--baseline", metavar="SRC", default=None,
                        help="also run trackops from this source folder (e.g. a `git archive` of an older "
                             "commit's src/) as the peer trackops_before, to compare two versions in one run")
    parser.add_argument("--sqlite-synchronous", choices=("full", "normal"), default=None,
                        help="trackops' SQLite commit mode (serve --sqlite-synchronous); the peers keep their own")
    args = parser.parse_args()

    peers = [p for p in args.peers.split(",") if p]
    if "fasttrackml" in peers and not (BIN / "fml").exists():
        print("fml not found (pip install --no-deps fasttrackml): FastTrackML left out", file=sys.stderr)
        peers.remove("fasttrackml")
    if args.baseline:
        peers.append("trackops_before")
    names = (*peers, "trackops")
    procs, urls, works, results = {}, {}, {}, {n: {} for n in names}
    try:
        for name in names:
            work = Path(tempfile.mkdtemp(prefix=f"bench-serve-{name}-"))
            port = free_port()
            urls[name], works[name] = f"http://127.0.0.1:{port}", work
            uri = database_uri(args.database, name, work)
            env = {"PYTHONPATH": str(Path(args.baseline).resolve())} if name == "trackops_before" else None
            procs[name] = start(command(name, uri, work, port, args.sqlite_synchronous), work, urls[name], env=env)
        time.sleep(5)  # let every worker finish starting before measuring idle memory
        for name in names:
            results[name]["idle RSS (MiB)"] = tree_rss_mib(procs[name].pid)
        eids = {name: populate(urls[name], args.runs) for name in names}
        if args.database == "postgresql":
            analyse(names)
        load_before = load()
        # Rounds rotate between the servers (and which goes first), and each measure keeps its
        # best round: load from other processes on the machine hits all alike.
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                print(f"round {r + 1}: {name}", file=sys.stderr, flush=True)
                for key, value in measure(urls[name], eids[name], args).items():
                    best = results[name].get(key)
                    better = best is None or (value < best if lower_is_better(key) else value > best)
                    results[name][key] = value if better else best
        load_after = load()
    finally:
        for name, proc in procs.items():
            stop(proc)
            shutil.rmtree(works[name], ignore_errors=True)
            drop_database(args.database, name)

    print(f"database {args.database}; load average before {load_before}, after {load_after}; "
          f"{os.cpu_count()} CPUs")
    header = f"{'measure (best of %d rounds)' % args.rounds:34}" + "".join(f" {n:>12}" for n in names)
    header += "".join(f" {'vs ' + p:>15}" for p in peers)
    print(header)
    for key in results["trackops"]:
        t = results["trackops"][key]
        digits = 3 if "(s/call)" in key else 2  # a search takes tens of milliseconds
        line = f"{key:34}" + "".join(f" {results[n][key]:12.{digits}f}" for n in names)
        for peer in peers:
            m = results[peer][key]
            ratio = m / t if lower_is_better(key) else t / m
            line += f" {ratio:14.2f}x"
        print(line)
    # A GET cannot be answered faster than the fastest /health any server gave this client: that
    # bounds the experiments/get ratio any server could reach against each peer.
    ceiling = max(results[n]["GET /health (req/s)"] for n in names)
    print(f"client ceiling: {ceiling:.0f} GET/s (the fastest /health); the most any server could reach on "
          "experiments/get: " + ", ".join(f"{ceiling / results[p]['experiments/get (req/s)']:.2f}x vs {p}" for p in peers))


if __name__ == "__main__":
    main()
