"""Benchmark: logging and searching traces of 20 spans, `trackops serve` vs `mlflow server`, side by side.

Both servers run at the same time with their default worker settings, each on its own SQLite file
(or with --database postgresql its own PostgreSQL database). Every trace travels as the `mlflow`
3.17.2 client sends it: its 20 spans as one OTLP protobuf ``POST /v1/traces`` (experiment id in the
``x-mlflow-experiment-id`` header), then its TraceInfo as ``POST /api/3.0/mlflow/traces``. The
payloads are built before the clock starts (with random ids, start times 1 ms apart, tags ``team`` =
one of 10 values and the client's metadata), and sent by 4 client threads on reused connections, as a traced application
with async export does. Then, timed:

  log        traces logged per second (OTLP spans + TraceInfo), both servers in turn
  search     paging through all trace infos (traces/search, 500 a page), seconds
  filter     traces/search with ``tags.team = 't3'`` (one page of 100), seconds per call
  spans      traces/batchGet of 50 traces with their spans (what mlflow.search_traces does), seconds per call

Prints each figure for both servers and trackops' advantage (rates: trackops / mlflow; times:
mlflow / trackops; above 1 means trackops is faster) and the load average before and after. Not a test.

Usage:
  python bench/traces.py [--traces 300] [--spans 20] [--rounds 3] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from servers import free_port, start, stop

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
THREADS = 4


def _attr(span, key: str, value: str) -> None:
    kv = span.attributes.add()
    kv.key = key
    kv.value.string_value = value


def build_trace(experiment_id: str, spans: int, i: int) -> tuple[bytes, dict]:
    """(OTLP protobuf body, StartTraceV3 body) of one trace, shaped as the mlflow client's."""
    trace_bytes = random.randbytes(16)
    trace_id = "tr-" + trace_bytes.hex()
    # Trace i starts 1 ms after trace i-1 (all payloads are built at once, before the clock starts),
    # so that traces have distinct start times, as an application's traces do.
    start_ns = time.time_ns() - 3_600_000_000_000 + i * 1_000_000
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    root_id = random.randbytes(8)
    for n in range(spans):
        span = scope.spans.add()
        span.trace_id = trace_bytes
        span.span_id = root_id if n == 0 else random.randbytes(8)
        if n:
            span.parent_span_id = root_id
        span.name = "pipeline" if n == 0 else f"step_{n}"
        span.start_time_unix_nano = start_ns + n * 1000
        span.end_time_unix_nano = start_ns + n * 1000 + 900 if n else start_ns + spans * 1000
        span.status.code = 1
        _attr(span, "mlflow.traceRequestId", json.dumps(trace_id))
        _attr(span, "mlflow.spanType", json.dumps("CHAIN" if n == 0 else "LLM"))
        _attr(span, "mlflow.spanInputs", json.dumps({"question": f"q{i}", "n": n}))
        _attr(span, "mlflow.spanOutputs", json.dumps({"answer": "x" * 64}))
    info = {"trace": {"trace_info": {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        # milliseconds included, as the client sends the trace's start time
        "request_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ns // 10**9))
        + f".{start_ns // 1_000_000 % 1000:03d}Z",
        "execution_duration": "0.010s", "state": "OK",
        "trace_metadata": {"mlflow.trace_schema.version": "3", "mlflow.user": "bench", "mlflow.source.type": "LOCAL",
                           "mlflow.trace.sizeStats": json.dumps({"num_spans": spans})},
        "tags": {"mlflow.traceName": "pipeline", "team": f"t{i % 10}"},
        "request_preview": json.dumps({"question": f"q{i}"}), "response_preview": json.dumps({"answer": "x"}),
    }}}
    return request.SerializeToString(), info


def _post(session, url: str, **kwargs) -> requests.Response:
    for attempt in range(4):
        try:
            r = session.post(url, timeout=120, **kwargs)
            break
        except requests.ConnectionError:
            # A multi-worker server under load may drop a connection while its workers still boot.
            if attempt == 3:
                raise
            time.sleep(1)
    r.raise_for_status()
    return r


def log_all(url: str, experiment_id: str, payloads: list[tuple[bytes, dict]]) -> float:
    """Send every trace with THREADS client threads; returns traces per second."""
    sessions = [requests.Session() for _ in range(THREADS)]

    def send(k: int) -> None:
        s = sessions[k % THREADS]
        for body, info in payloads[k::THREADS]:
            _post(s, url + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf",
                                                             "x-mlflow-experiment-id": experiment_id})
            _post(s, url + "/api/3.0/mlflow/traces", json=info)

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(send, range(THREADS)))
    return len(payloads) / (time.perf_counter() - t0)


def search_all(url: str, experiment_id: str) -> tuple[float, int]:
    s = requests.Session()
    token, found = None, 0
    t0 = time.perf_counter()
    while True:
        body = {"locations": [{"mlflow_experiment": {"experiment_id": experiment_id}, "type": "MLFLOW_EXPERIMENT"}],
                "max_results": 500, **({"page_token": token} if token else {})}
        page = _post(s, url + "/api/3.0/mlflow/traces/search", json=body).json()  # decoded once: the client's
        found += len(page.get("traces", []))                                     # time is no server's
        token = page.get("next_page_token")
        if not token:
            return time.perf_counter() - t0, found


def search_filtered(url: str, experiment_id: str, calls: int = 5) -> float:
    s = requests.Session()
    body = {"locations": [{"mlflow_experiment": {"experiment_id": experiment_id}, "type": "MLFLOW_EXPERIMENT"}],
            "filter": "tags.team = 't3'", "max_results": 100, "order_by": ["timestamp_ms DESC"]}
    t0 = time.perf_counter()
    for _ in range(calls):
        r = _post(s, url + "/api/3.0/mlflow/traces/search", json=body)
        assert r.json().get("traces")
    return (time.perf_counter() - t0) / calls


def batch_get(url: str, trace_ids: list[str], calls: int = 5) -> float:
    s = requests.Session()
    t0 = time.perf_counter()
    for k in range(calls):
        ids = trace_ids[k * 50:(k + 1) * 50] or trace_ids[:50]
        r = s.get(url + "/api/3.0/mlflow/traces/batchGet", params={"trace_ids": ids})
        r.raise_for_status()
        assert len(r.json()["traces"]) == len(ids)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=300)
    ap.add_argument("--spans", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="search rounds per server (best kept)")
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = ap.parse_args()
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    work = Path(tempfile.mkdtemp(prefix="bench-traces-"))
    urls, procs, dbs = {}, {}, []
    load_before = os.getloadavg()
    try:
        for name in ("trackops", "mlflow"):
            if args.database == "sqlite":
                uri = f"sqlite:///{work / name}.db"
            else:
                import sqlalchemy as sa

                db = f"bench_traces_{name}_{uuid.uuid4().hex[:6]}"
                with sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as c:
                    c.exec_driver_sql(f"CREATE DATABASE {db}")
                dbs.append(db)
                uri = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}" if name == "trackops" else \
                    f"postgresql://postgres@127.0.0.1:5432/{db}"
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            common = ["--backend-store-uri", uri, "--artifacts-destination", str(work / f"{name}-art"), "--port", str(port)]
            argv = ([str(BIN / "trackops"), "serve", *common] if name == "trackops"
                    else [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", *common])
            procs[name] = start(argv, work, urls[name])
        results: dict[str, dict[str, float]] = {n: {} for n in urls}
        trace_ids: dict[str, list[str]] = {}
        exps = {}
        for name, url in urls.items():
            exps[name] = _post(requests, url + "/api/2.0/mlflow/experiments/create",
                               json={"name": "bench-traces"}).json()["experiment_id"]
        for name, url in urls.items():  # logging: one pass each (each trace is written once)
            payloads = [build_trace(exps[name], args.spans, i) for i in range(args.traces)]
            trace_ids[name] = [info["trace"]["trace_info"]["trace_id"] for _, info in payloads]
            results[name]["log"] = log_all(url, exps[name], payloads)
            print(f"{name}: logged {args.traces} traces of {args.spans} spans, {results[name]['log']:.1f} traces/s",
                  flush=True)
        for _ in range(args.rounds):  # searches: rounds rotate between the servers, best kept
            for name, url in urls.items():
                elapsed, found = search_all(url, exps[name])
                assert found == args.traces, (name, found)
                best = results[name]
                best["search"] = min(best.get("search", 1e9), elapsed)
                best["filter"] = min(best.get("filter", 1e9), search_filtered(url, exps[name]))
                best["spans"] = min(best.get("spans", 1e9), batch_get(url, trace_ids[name]))
    finally:
        for p in procs.values():
            stop(p)
        if dbs:
            import sqlalchemy as sa

            with sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as c:
                for db in dbs:
                    c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
    t, m = results["trackops"], results["mlflow"]
    print(f"\n{args.traces} traces x {args.spans} spans on {args.database}; load average before "
          f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"{'measure':10} {'trackops':>12} {'mlflow':>12} {'trackops advantage':>20}")
    print(f"{'log':10} {t['log']:>10.1f}/s {m['log']:>10.1f}/s {t['log'] / m['log']:>19.2f}x")
    for key, label in (("search", "search"), ("filter", "filter"), ("spans", "spans")):
        print(f"{label:10} {t[key]:>11.3f}s {m[key]:>11.3f}s {m[key] / t[key]:>19.2f}x")


if __name__ == "__main__":
    main()
