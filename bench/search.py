"""search_runs side by side: trackops vs MLflow's SqlAlchemyStore on the same SQLite file.

10,000 runs with metrics, params and tags; one search with a metric filter and a metric order_by
that returns a page of 1,000 fully loaded runs. Both stores answer the same question on the same
file in the same process; the script checks that they return the same runs in the same order and
prints the median time of each and the ratio.

    python bench/search.py [--runs 10000] [--page 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import sqlalchemy as sa  # noqa: E402

from trackops.db import schema as t  # noqa: E402
from trackops.db.engine import create_engine  # noqa: E402

FILTER = "metrics.acc > 0.5 AND params.optimizer = 'adam'"
ORDER_BY = ["metrics.loss ASC"]


def populate(url: str, n_runs: int) -> str:
    """Experiment 1 with `n_runs` runs (2 metrics with 3 steps each, 5 params, 3 tags), via Core."""
    rng = random.Random(42)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.experiments).values(
            experiment_id=1, name="bench", artifact_location="/tmp/bench/1", lifecycle_stage="active",
            creation_time=0, last_update_time=0, workspace=t.DEFAULT_WORKSPACE))
        runs, latest, history, params, tags = [], [], [], [], []
        for i in range(n_runs):
            run_id = uuid.uuid4().hex
            start = 1_700_000_000_000 + i * 1000
            runs.append(dict(run_uuid=run_id, name=f"run-{i}", source_type="LOCAL", source_name="",
                             entry_point_name="", user_id="bench", status="FINISHED", start_time=start,
                             end_time=start + 500, source_version="", lifecycle_stage="active",
                             artifact_uri=f"/tmp/bench/1/{run_id}/artifacts", experiment_id=1))
            for key in ("acc", "loss"):
                for step in range(3):
                    value = rng.random()
                    history.append(dict(run_uuid=run_id, key=key, value=value, timestamp=start + step, step=step,
                                        is_nan=False))
                latest.append(dict(run_uuid=run_id, key=key, value=value, timestamp=start + 2, step=2, is_nan=False))
            for key, value in (("lr", str(rng.choice([0.1, 0.01, 0.001]))), ("optimizer", rng.choice(["adam", "sgd"])),
                               ("batch", str(rng.choice([32, 64]))), ("layers", str(rng.randint(1, 8))),
                               ("seed", str(i))):
                params.append(dict(run_uuid=run_id, key=key, value=value))
            for key, value in (("mlflow.runName", f"run-{i}"), ("mlflow.user", "bench"), ("team", "search")):
                tags.append(dict(run_uuid=run_id, key=key, value=value))
        conn.execute(sa.insert(t.runs), runs)
        conn.execute(sa.insert(t.latest_metrics), latest)
        conn.execute(sa.insert(t.metrics), history)
        conn.execute(sa.insert(t.params), params)
        conn.execute(sa.insert(t.tags), tags)
    engine.dispose()
    return "1"


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm up: imports, caches, the file in the page cache
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from trackops.stores.tracking import TrackingStore

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        artifacts = str(Path(tmp) / "artifacts")
        mlflow_store = SqlAlchemyStore(url, artifacts)  # builds the head schema with MLflow's migrations
        t0 = time.perf_counter()
        exp_id = populate(url, args.runs)
        print(f"populated {args.runs} runs in {time.perf_counter() - t0:.1f}s ({url.split('/')[-1]})")

        engine = create_engine(url)
        ours_store = TrackingStore(engine, default_artifact_root=artifacts)

        def ours():
            found, _token = ours_store.search_runs([exp_id], FILTER, 1, args.page, ORDER_BY)
            return [r.info.run_id for r in found]

        def theirs():
            page = mlflow_store.search_runs([exp_id], FILTER, 1, max_results=args.page, order_by=ORDER_BY)
            return [r.info.run_id for r in page]

        ours_time, ours_ids = timed(ours, args.repeat)
        theirs_time, theirs_ids = timed(theirs, args.repeat)
        engine.dispose()

    same = ours_ids == theirs_ids
    print(f"filter   {FILTER!r}  order_by {ORDER_BY}  page {args.page}")
    print(f"trackops {ours_time * 1000:8.1f} ms  ({len(ours_ids)} runs)")
    print(f"mlflow   {theirs_time * 1000:8.1f} ms  ({len(theirs_ids)} runs)")
    print(f"ratio    {theirs_time / ours_time:8.1f}x  same runs in same order: {same}")
    if not same:
        raise SystemExit("results differ")


if __name__ == "__main__":
    main()
