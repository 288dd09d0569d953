"""log_batch throughput: trackops' TrackingStore beside MLflow's SqlAlchemyStore, same database, same run.

For each backend a fresh database is created and brought to MLflow's head schema (by opening
MLflow's store on it, as `mlflow server` does). Both stores then log the same batches — 1000 metrics
each (100 keys x 10 steps), N times — into their own run of one experiment, taking turns batch by
batch so that both see the same database growth. Printed: metrics per second for each and the ratio.

    python bench/stores.py --batches 50 --backends sqlite,postgresql

PostgreSQL is reached through TRACKOPS_BENCH_POSTGRES_URL (default: local server, user postgres,
database test); a scratch database is created beside it and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import sqlalchemy as sa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trackops import entities as t  # noqa: E402
from trackops.db.engine import create_engine  # noqa: E402
from trackops.stores.tracking import TrackingStore  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("TRACKOPS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KEYS, STEPS = 100, 10


def batch(n: int) -> list[tuple[str, float, int, int]]:
    """Batch n: 100 keys x 10 steps, values and timestamps distinct from every other batch."""
    return [(f"metric_{k}", (n * 7 + k * 13 + s) % 1000 / 7.0, 1_700_000_000_000 + n * STEPS + s, n * STEPS + s)
            for k in range(KEYS) for s in range(STEPS)]


def run_backend(name: str, url: str, batches: int) -> tuple[float, float]:
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    theirs = SqlAlchemyStore(url, "mlflow-artifacts:/")
    ours = TrackingStore(create_engine(url), default_artifact_root="mlflow-artifacts:/")
    eid = ours.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    our_run = ours.create_run(eid, user_id="bench", start_time=1).info.run_id
    their_run = theirs.create_run(eid, "bench", 1, [], None).info.run_id
    # One warm-up batch each, outside the timing: connection pools, statement caches.
    warm = batch(batches + 1)
    ours.log_batch(our_run, [t.Metric(*m) for m in warm])
    theirs.log_batch(their_run, [MlflowMetric(*m) for m in warm], [], [])

    ours_s = theirs_s = 0.0
    for n in range(batches):
        rows = batch(n)
        ours_metrics = [t.Metric(*m) for m in rows]
        their_metrics = [MlflowMetric(*m) for m in rows]
        start = time.perf_counter()
        ours.log_batch(our_run, ours_metrics)
        ours_s += time.perf_counter() - start
        start = time.perf_counter()
        theirs.log_batch(their_run, their_metrics, [], [])
        theirs_s += time.perf_counter() - start

    # Both runs must hold the same data, or the comparison means nothing.
    mine = sorted((m.key, m.value, m.step) for m in ours.get_run(our_run).data.metrics)
    their_latest = theirs.get_run(their_run).data._metric_objs
    assert mine == sorted((m.key, m.value, m.step) for m in their_latest), "latest metrics differ"
    ours.engine.dispose()
    theirs.engine.dispose()
    total = batches * KEYS * STEPS
    return total / ours_s, total / theirs_s


def _sqlite_url(folder: str) -> str:
    return f"sqlite:///{Path(folder) / 'bench.db'}"


def _postgres_url() -> tuple[str, str]:
    name = f"trackops_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False), name


def _drop_postgres(name: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="batches of 1000 metrics per store")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"log_batch, {args.batches} batches x {KEYS * STEPS} metrics per store")
    print(f"{'backend':<12}{'trackops m/s':>15}{'mlflow m/s':>15}{'ratio':>9}")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                ours, theirs = run_backend(backend, _sqlite_url(folder), args.batches)
        elif backend == "postgresql":
            url, name = _postgres_url()
            try:
                ours, theirs = run_backend(backend, url, args.batches)
            finally:
                _drop_postgres(name)
        else:
            parser.error(f"unknown backend {backend}")
        print(f"{backend:<12}{ours:>15,.0f}{theirs:>15,.0f}{ours / theirs:>8.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
