"""Benchmark: `trackops backup` / `restore` against `cp -r`, `sqlite3 .dump` and `pg_dump`, in one run.

Three measurements, all on this machine in this run:

  artifacts  a tree of files (many small, some medium, a few large; --artifact-mb in total) referenced by a
             SQLite database in the server layout (mlflow-artifacts:/1/<run>/artifacts). Time of `cp -r` of
             the tree vs the artifact phase of a first `trackops backup` into a local repository: the
             throughput ratio (target >= 0.8). Then a second, unchanged backup: its time as a fraction of
             the first (target <= 5%).
  sqlite     a head-schema SQLite database with --rows metric rows: backup (database phase) and restore
             into a new file, rows/s; vs `sqlite3 .dump` and reloading that dump with `sqlite3`. Then a
             second backup with no new data: its time as a fraction of the first (target <= 5%).
  postgresql the same on PostgreSQL; vs `pg_dump` (plain SQL, COPY) and reloading it with `psql`.

The page cache is warm for every contender (each reads the same data right before). Not a test.

Usage:
  python bench/backup.py [--rows 1000000] [--artifact-mb 300] [--skip postgresql]
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

from trackops.config import Settings
from trackops.db import revisions
from trackops.db.engine import create_engine
from trackops.services import backup, restore


def settle() -> None:
    """Flush dirty pages so that no contender pays for the previous one's writeback."""
    os.sync()


def timed(argv: list[str], **kw) -> float:
    kw.setdefault("stdout", subprocess.PIPE)
    settle()
    start = time.perf_counter()
    done = subprocess.run(argv, stderr=subprocess.PIPE, **kw)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed: {done.stderr[-2000:]!r}")
    return time.perf_counter() - start


def head_database(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            revisions.upgrade(conn)
    finally:
        engine.dispose()


def add_runs(url: str, runs: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                             "workspace) VALUES (1, 'bench', 'mlflow-artifacts:/1', 'active', 'default')"))
        conn.execute(sa.text("INSERT INTO runs (run_uuid, experiment_id, artifact_uri, lifecycle_stage, status) "
                             "VALUES (:r, 1, :u, 'active', 'FINISHED')"),
                     [{"r": f"run{i:05d}", "u": f"mlflow-artifacts:/1/run{i:05d}/artifacts"} for i in range(runs)])
    engine.dispose()


def add_metrics(url: str, rows: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}) "
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "SELECT 'loss_' || (i % 10), i * 0.25, 1700000000000 + i, printf('run%05d', i % 100), i / 1000, 0 "
                "FROM n")
        else:
            conn.exec_driver_sql(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "SELECT 'loss_' || mod(i, 10), i * 0.25, 1700000000000 + i, 'run' || lpad(mod(i, 100)::text, 5, '0'), "
                f"i / 1000, false FROM generate_series(0, {rows - 1}) AS i")
    engine.dispose()


def make_tree(root: Path, total_mb: int, runs: int) -> tuple[int, int]:
    """Files under root/1/<run>/artifacts: 70% of the count small (4-64 KiB), 25% medium, 5% large."""
    rng = os.urandom
    sizes = []
    budget = total_mb * 1024 * 1024
    i = 0
    while sum(sizes) < budget:
        k = i % 20
        sizes.append(4096 * (1 + i % 16) if k < 14 else (256 * 1024 + i) if k < 19 else 8 * 1024 * 1024)
        i += 1
    block = rng(8 * 1024 * 1024)
    for n, size in enumerate(sizes):
        folder = root / "1" / f"run{n % runs:05d}" / "artifacts" / f"d{n % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        head = n.to_bytes(8, "big")  # every file distinct
        (folder / f"f{n}.bin").write_bytes(head + block[8:size] if size <= len(block) else head + rng(size - 8))
    return len(sizes), sum(sizes)


def artifacts_case(work: Path, total_mb: int) -> None:
    runs = 100
    db = f"sqlite:///{work / 'art.db'}"
    head_database(db)
    add_runs(db, runs)
    dest = work / "mlartifacts"
    files, size = make_tree(dest, total_mb, runs)
    timed(["cp", "-r", str(dest), str(work / "warm")])  # warm the cache for everyone
    shutil.rmtree(work / "warm")
    settings = Settings(backend_store_uri=db, artifacts_destination=str(dest))
    # Best of three for each contender: the machine is shared, and the best run is the least disturbed.
    cps, copies = [], []
    for attempt in range(3):
        cps.append(timed(["cp", "-r", str(dest), str(work / f"cp-copy{attempt}")]))
        shutil.rmtree(work / f"cp-copy{attempt}")
        settle()
        t0 = time.perf_counter()
        first = backup.backup(settings, to=str(work / f"repo-art{attempt}"))
        copies.append((time.perf_counter() - t0, first))
        if attempt < 2:
            shutil.rmtree(work / f"repo-art{attempt}")
    cp = min(cps)
    first_total, first = min(copies, key=lambda pair: pair[1].artifact_seconds)
    seconds = []
    for _ in range(3):
        settle()
        t0 = time.perf_counter()
        second = backup.backup(settings, to=str(work / "repo-art2"))
        seconds.append(time.perf_counter() - t0)
    second_total = min(seconds)
    mb = size / 1024 / 1024
    print(f"\nartifacts: {files} files, {mb:.0f} MiB")
    print(f"  cp -r                  {cp:7.2f} s   {mb / cp:7.1f} MiB/s")
    print(f"  trackops backup (copy) {first.artifact_seconds:7.2f} s   {mb / first.artifact_seconds:7.1f} MiB/s"
          f"   ratio {cp / first.artifact_seconds:.2f} x cp (target >= 0.8)   [{load()}]")
    print(f"  first backup total     {first_total:7.2f} s   (database, copy, index, manifest, sync)")
    print(f"  second, unchanged      {second_total:7.2f} s   {100 * second_total / first_total:.1f}% of the first "
          f"(target <= 5%), stored {second.files_stored} files   [{load()}]")


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def db_case(name: str, source: str, fresh_target, rows: int, work: Path, external) -> None:
    settings = Settings(backend_store_uri=source, artifacts_destination=str(work / "none"))
    settle()
    t0 = time.perf_counter()
    report = backup.backup(settings, to=str(work / f"repo-{name}"))
    first_total = time.perf_counter() - t0
    seconds = []
    for _ in range(3):
        settle()
        t0 = time.perf_counter()
        again = backup.backup(settings, to=str(work / f"repo-{name}"))
        seconds.append(time.perf_counter() - t0)
    target = fresh_target()
    settle()
    t0 = time.perf_counter()
    restore.restore(Settings(), snapshot="latest", repository=str(work / f"repo-{name}"),
                    to_backend_store_uri=target, to_artifacts_destination=str(work / "none"))
    restore_s = time.perf_counter() - t0
    dump_s, reload_s = external()
    print(f"\n{name}: {rows} metric rows")
    print(f"  trackops backup (db)   {report.database_seconds:7.2f} s   {rows / report.database_seconds:10,.0f} rows/s")
    print(f"  trackops restore       {restore_s:7.2f} s   {rows / restore_s:10,.0f} rows/s (schema build included)")
    print(f"  native dump            {dump_s:7.2f} s   {rows / dump_s:10,.0f} rows/s")
    print(f"  native reload          {reload_s:7.2f} s   {rows / reload_s:10,.0f} rows/s")
    print(f"  dump+restore ratio     {(report.database_seconds + restore_s) / (dump_s + reload_s):.2f} x native")
    second = min(seconds)
    print(f"  second backup, no new data {second:7.2f} s   {100 * second / first_total:.1f}% of the first "
          f"({first_total:.2f} s; target <= 5%), {again.objects_new} new objects   [{load()}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--artifact-mb", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma-separated: artifacts,sqlite,postgresql")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="trackops-bench-backup-"))
    try:
        if "artifacts" not in skip:
            artifacts_case(work, args.artifact_mb)
        if "sqlite" not in skip:
            src = f"sqlite:///{work / 'metrics.db'}"
            head_database(src)
            add_runs(src, 100)
            add_metrics(src, args.rows)

            def sqlite_native() -> tuple[float, float]:
                with open(work / "dump.sql", "wb") as out:
                    dump_s = timed(["sqlite3", str(work / "metrics.db"), ".dump"], stdout=out)
                with open(work / "dump.sql", "rb") as inp:
                    reload_s = timed(["sqlite3", str(work / "reload.db")], stdin=inp)
                return dump_s, reload_s

            db_case("sqlite", src, lambda: f"sqlite:///{work / 'restored.db'}", args.rows, work, sqlite_native)
        if "postgresql" not in skip:
            admin = sa.create_engine(args.postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
            names = []

            def new_db() -> str:
                name = f"trackops_bench_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
                names.append(name)
                return sa.make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)

            try:
                src = new_db()
                head_database(src)
                add_runs(src, 100)
                add_metrics(src, args.rows)
                libpq = lambda u: sa.make_url(u).set(drivername="postgresql").render_as_string(hide_password=False)

                def pg_native() -> tuple[float, float]:
                    dump_s = timed(["pg_dump", "--no-owner", "-f", str(work / "pg.sql"), libpq(src)])
                    reload_s = timed(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(work / "pg.sql"),
                                      libpq(new_db())])
                    return dump_s, reload_s

                db_case("postgresql", src, new_db, args.rows, work, pg_native)
            finally:
                with admin.connect() as conn:
                    for name in names:
                        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
