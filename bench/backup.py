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
  mysql      the same on MySQL/MariaDB; vs `mysqldump` (`mariadb-dump`) and reloading it with `mysql`.

The page cache is warm for every contender (each reads the same data right before). Not a test.

Usage:
  python bench/backup.py [--rows 1000000] [--artifact-mb 300] [--skip postgresql,mysql]
                         [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                         [--mysql-url mysql+pymysql://root@127.0.0.1:3306/test]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
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
    return timed_cpu(argv, **kw)[0]


def timed_cpu(argv: list[str], **kw) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of a command."""
    kw.setdefault("stdout", subprocess.PIPE)
    settle()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stderr=subprocess.PIPE, **kw)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed: {done.stderr[-2000:]!r}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PhaseCpu:
    """A backup progress callback that records this process's CPU seconds in the artifact phase."""

    def __init__(self) -> None:
        self.start = self.seconds = 0.0

    def __call__(self, event) -> None:
        if event.phase == "artifacts" and event.kind == "start":
            self.start = cpu_now()
        elif event.phase == "artifacts" and event.kind == "done":
            self.seconds = cpu_now() - self.start


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
        elif conn.dialect.name == "mysql":
            conn.exec_driver_sql(
                "INSERT INTO metrics (`key`, value, timestamp, run_uuid, step, is_nan) "
                "SELECT concat('loss_', MOD(seq, 10)), seq * 0.25, 1700000000000 + seq, "
                f"concat('run', lpad(MOD(seq, 100), 5, '0')), seq DIV 1000, 0 FROM seq_0_to_{rows - 1}")
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
    # CPU seconds are printed beside the wall times: on a loaded machine wall time is mostly waiting for
    # a core, while the CPU a contender burns is what it costs.
    cps, copies = [], []
    for attempt in range(3):
        cps.append(timed_cpu(["cp", "-r", str(dest), str(work / f"cp-copy{attempt}")]))
        shutil.rmtree(work / f"cp-copy{attempt}")
        settle()
        phase = PhaseCpu()
        t0, c0 = time.perf_counter(), cpu_now()
        first = backup.backup(settings, to=str(work / f"repo-art{attempt}"), progress=phase)
        copies.append((time.perf_counter() - t0, cpu_now() - c0, phase.seconds, first))
        if attempt < 2:
            shutil.rmtree(work / f"repo-art{attempt}")
    cp, cp_cpu = min(w for w, _c in cps), min(c for _w, c in cps)
    first = min(copies, key=lambda four: four[3].artifact_seconds)[3]  # the least disturbed copy
    first_total, first_cpu = min(c[0] for c in copies), min(c[1] for c in copies)
    copy_cpu = min(c[2] for c in copies)
    seconds, cpus = [], []
    for _ in range(3):
        settle()
        t0, c0 = time.perf_counter(), cpu_now()
        second = backup.backup(settings, to=str(work / "repo-art2"))
        seconds.append(time.perf_counter() - t0)
        cpus.append(cpu_now() - c0)
    second_total, second_cpu = min(seconds), min(cpus)
    mb = size / 1024 / 1024
    print(f"\nartifacts: {files} files, {mb:.0f} MiB")
    print(f"  cp -r                  {cp:7.2f} s   {mb / cp:7.1f} MiB/s   CPU {cp_cpu:.2f} s")
    print(f"  trackops backup (copy) {first.artifact_seconds:7.2f} s   {mb / first.artifact_seconds:7.1f} MiB/s"
          f"   ratio {cp / first.artifact_seconds:.2f} x cp (target >= 0.8)   CPU {copy_cpu:.2f} s, "
          f"{cp_cpu / copy_cpu if copy_cpu else 0:.2f} x cp's   [{load()}]")
    print(f"  first backup total     {first_total:7.2f} s   (database, copy, index, manifest, sync)   "
          f"CPU {first_cpu:.2f} s")
    print(f"  second, unchanged      {second_total:7.2f} s   {100 * second_total / first_total:.1f}% of the first "
          f"(target <= 5%), stored {second.files_stored} files   CPU {second_cpu:.3f} s, "
          f"{100 * second_cpu / first_cpu:.1f}% of the first's   [{load()}]")


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def db_case(name: str, source: str, fresh_target, rows: int, work: Path, external) -> None:
    settings = Settings(backend_store_uri=source, artifacts_destination=str(work / "none"))
    settle()
    t0, c0 = time.perf_counter(), cpu_now()
    report = backup.backup(settings, to=str(work / f"repo-{name}"))
    first_total, first_cpu = time.perf_counter() - t0, cpu_now() - c0
    seconds, cpus = [], []
    for _ in range(3):
        settle()
        t0, c0 = time.perf_counter(), cpu_now()
        again = backup.backup(settings, to=str(work / f"repo-{name}"))
        seconds.append(time.perf_counter() - t0)
        cpus.append(cpu_now() - c0)
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
          f"({first_total:.2f} s; target <= 5%; each of 3: {', '.join(f'{x:.2f}' for x in seconds)} s), "
          f"{again.objects_new} new objects; CPU {min(cpus):.3f} s, "
          f"{100 * min(cpus) / first_cpu:.1f}% of the first's   [{load()}]")


@contextlib.contextmanager
def scratch_databases(base_url: str, drop_options: str = ""):
    """A function that creates a fresh database on `base_url`'s server and returns its URL; every
    database it made is dropped when the block ends."""
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    names = []

    def new_db() -> str:
        name = f"trackops_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        names.append(name)
        return sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield new_db
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{drop_options}")
        admin.dispose()


def mysql_case(work: Path, base_url: str, rows: int) -> None:
    with scratch_databases(base_url) as new_db:
        mysql_case_on(work, new_db, rows)


def mysql_case_on(work: Path, new_db, rows: int) -> None:
    def client_args(u: str) -> list[str]:
        url = sa.make_url(u)
        out = [f"-h{url.host or '127.0.0.1'}", f"-P{url.port or 3306}", f"-u{url.username or 'root'}"]
        return out + ([f"-p{url.password}"] if url.password else [])

    src = new_db()
    head_database(src)
    add_runs(src, 100)
    add_metrics(src, rows)
    dumper = shutil.which("mariadb-dump") or "mysqldump"

    def mysql_native() -> tuple[float, float]:
        with open(work / "my.sql", "wb") as out:
            dump_s = timed([dumper, *client_args(src), "--single-transaction", sa.make_url(src).database],
                           stdout=out)
        target = new_db()
        with open(work / "my.sql", "rb") as inp:
            reload_s = timed(["mysql", *client_args(target), sa.make_url(target).database], stdin=inp)
        return dump_s, reload_s

    db_case("mysql", src, new_db, rows, work, mysql_native)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--artifact-mb", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma-separated: artifacts,sqlite,postgresql,mysql")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--mysql-url", default="mysql+pymysql://root@127.0.0.1:3306/test")
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
            with scratch_databases(args.postgres_url, " WITH (FORCE)") as new_db:
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
        if "mysql" not in skip:
            mysql_case(work, args.mysql_url, args.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
