"""Benchmark: `trackops db upgrade` against `mlflow db upgrade`, side by side in one run.

Two cases, each on SQLite and PostgreSQL, each command run as a subprocess (wall time, start-up
included, as a user sees it):

  empty      an empty database upgraded to head
  metrics    a database at MLflow 2.12's revision (acf3f17fdcc7) holding N metric rows (default
             1,000,000), copied, then one copy upgraded by each tool

Prints the times and the ratio trackops / MLflow (target: at most 1.0). Not a test.

Usage:
  python bench/db_upgrade.py [--rows 1000000] [--dialects sqlite,postgresql] [--repeat 1]
                             [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

BIN = Path(sys.executable).parent
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
BATCH = 20_000


def run(argv: list[str]) -> float:
    """Run a command to completion; its wall time in seconds (a failure aborts the benchmark)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def trackops_upgrade(url: str, *extra: str) -> float:
    return run([str(BIN / "trackops"), "db", "upgrade", "--yes", "--backend-store-uri", url, *extra])


def mlflow_upgrade(url: str) -> float:
    return run([str(BIN / "mlflow"), "db", "upgrade", url])


class Sqlite:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def fresh(self) -> str:
        return f"sqlite:///{self.folder / (uuid.uuid4().hex[:8] + '.db')}"

    def copy(self, url: str) -> str:
        target = self.fresh()
        shutil.copyfile(sa.make_url(url).database, sa.make_url(target).database)
        return target

    def drop(self, url: str) -> None:
        Path(sa.make_url(url).database).unlink(missing_ok=True)


class Postgres:
    name = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.admin_url = sa.make_url(admin_url)

    def _create(self, template: str | None = None) -> str:
        name = f"trackops_bench_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def fresh(self) -> str:
        return self._create()

    def copy(self, url: str) -> str:
        return self._create(template=sa.make_url(url).database)

    def drop(self, url: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {sa.make_url(url).database} WITH (FORCE)")


def fill_metrics(url: str, rows: int, runs: int = 100, keys: int = 10) -> None:
    """Add one experiment, `runs` runs and `rows` metric rows (keys x steps per run), in batches."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    md = sa.MetaData()
    experiments = sa.Table("experiments", md, autoload_with=engine)
    runs_t = sa.Table("runs", md, autoload_with=engine)
    metrics = sa.Table("metrics", md, autoload_with=engine)
    steps = max(1, rows // (runs * keys))
    with engine.begin() as conn:
        experiment_id = conn.execute(experiments.insert().values(
            name="bench", artifact_location="/tmp/bench", lifecycle_stage="active")).inserted_primary_key[0]
        run_ids = [uuid.uuid4().hex for _ in range(runs)]
        conn.execute(runs_t.insert(), [{
            "run_uuid": r, "name": f"run-{i}", "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
            "user_id": "bench", "status": "FINISHED", "start_time": 0, "end_time": 1, "source_version": "",
            "lifecycle_stage": "active", "artifact_uri": f"/tmp/bench/{r}", "experiment_id": experiment_id,
        } for i, r in enumerate(run_ids)])
    batch: list[dict] = []
    written = 0
    with engine.begin() as conn:
        for run_id in run_ids:
            for k in range(keys):
                for step in range(steps):
                    batch.append({"key": f"m{k}", "value": step * 0.5, "timestamp": 1_700_000_000_000 + step,
                                  "run_uuid": run_id, "step": step, "is_nan": False})
                    if len(batch) == BATCH:
                        conn.execute(metrics.insert(), batch)
                        written += len(batch)
                        batch.clear()
                        if written >= rows:
                            break
                if written >= rows:
                    break
            if written >= rows:
                break
        if batch and written < rows:
            conn.execute(metrics.insert(), batch[: rows - written])
    engine.dispose()


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="metric rows for the 'metrics' case")
    parser.add_argument("--dialects", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best is kept")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TRACKOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="an admin URL on the PostgreSQL server (used to create and drop scratch databases)")
    parser.add_argument("--skip-metrics", action="store_true", help="only the empty-database case")
    args = parser.parse_args()

    results: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="trackops-bench-") as tmp:
        for dialect in args.dialects.split(","):
            backend = Sqlite(Path(tmp)) if dialect == "sqlite" else Postgres(args.postgres_url)
            # empty -> head
            best_t, best_m = float("inf"), float("inf")
            for _ in range(args.repeat):
                a, b = backend.fresh(), backend.fresh()
                try:
                    best_t = min(best_t, trackops_upgrade(a))
                    best_m = min(best_m, mlflow_upgrade(b))
                finally:
                    backend.drop(a)
                    backend.drop(b)
            results.append((dialect, "empty -> head", best_t, best_m))
            print(f"{dialect:<11} empty -> head      trackops {best_t:7.2f}s  mlflow {best_m:7.2f}s  "
                  f"ratio {ratio(best_t, best_m)}", flush=True)
            if args.skip_metrics:
                continue
            # N metric rows at 2.12 -> head
            seed = backend.fresh()
            try:
                trackops_upgrade(seed, "--to", "2.12.2")
                start = time.perf_counter()
                fill_metrics(seed, args.rows)
                print(f"{dialect:<11} seeded {args.rows:,} metric rows at acf3f17fdcc7 in "
                      f"{time.perf_counter() - start:.1f}s", flush=True)
                best_t, best_m = float("inf"), float("inf")
                for _ in range(args.repeat):
                    a, b = backend.copy(seed), backend.copy(seed)
                    try:
                        best_t = min(best_t, trackops_upgrade(a))
                        best_m = min(best_m, mlflow_upgrade(b))
                    finally:
                        backend.drop(a)
                        backend.drop(b)
            finally:
                backend.drop(seed)
            label = f"{args.rows:,} metrics"
            results.append((dialect, label, best_t, best_m))
            print(f"{dialect:<11} {label:<17} trackops {best_t:7.2f}s  mlflow {best_m:7.2f}s  "
                  f"ratio {ratio(best_t, best_m)}", flush=True)

    print("\n| dialect | case | trackops | mlflow | ratio |\n| --- | --- | --- | --- | --- |")
    for dialect, case, t, m in results:
        print(f"| {dialect} | {case} | {t:.2f} s | {m:.2f} s | {ratio(t, m)} |")


if __name__ == "__main__":
    main()
