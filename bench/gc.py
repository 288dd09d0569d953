"""gc side by side: `trackops gc` vs `mlflow gc` on identical copies of the same data.

Three cases, each tool run as its own process on its own copy (same run ids, same rows, same files):

1. SQLite + local files: N deleted runs (deleted 40 days ago) with F artifact files each, plus N/10
   active runs that must survive; both tools get ``--older-than 30d``.
2. PostgreSQL + S3 (a moto server process over HTTP): the same data.
3. Memory: one deleted run with M metric rows (SQLite); peak RSS of each tool.
4. The background cleaner's idle tick (`serve --gc-interval`): the change check it makes between passes,
   on SQLite and PostgreSQL stores of R runs (default 1,000,000; --idle-runs), timed over 200 ticks.
   mlflow has no background cleaner, so this case has no ratio: its target is < 5 ms a tick.

Rows are made with set-based SQL (metrics by INSERT ... SELECT); files are written straight to the
folder or with parallel PUTs. Times are wall clock of the whole command; peak RSS comes from
``os.wait4`` on each child. Each case checks that both tools left the same runs behind.

    python bench/gc.py [--runs 2000] [--files 5] [--metric-rows 1000000] [--idle-runs 1000000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import sqlalchemy as sa  # noqa: E402

from trackops.db import revisions  # noqa: E402
from trackops.db import schema as t  # noqa: E402
from trackops.db.engine import create_engine  # noqa: E402

BIN = Path(sys.executable).parent
DAY_MS = 86_400_000
NOW = int(time.time() * 1000)
POSTGRES_ADMIN = os.environ.get("TRACKOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def run_ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(n)]


def populate(url: str, location: str, deleted: list[str], active: list[str], metric_rows: int = 3) -> None:
    """Head schema, experiment 1 at `location`, the runs, and their rows (set-based)."""
    engine = create_engine(url)
    gone = set(deleted)
    try:
        with engine.begin() as conn:
            revisions.upgrade(conn)
        with engine.begin() as conn:
            conn.execute(sa.insert(t.experiments).values(
                experiment_id=1, name="bench", artifact_location=location, lifecycle_stage="active",
                creation_time=NOW, last_update_time=NOW, workspace=t.DEFAULT_WORKSPACE))
            conn.execute(sa.insert(t.runs), [
                dict(run_uuid=r, name=f"run-{i}", source_type="UNKNOWN", source_name="", entry_point_name="",
                     user_id="bench", status="FINISHED", start_time=NOW - 50 * DAY_MS, end_time=NOW - 50 * DAY_MS,
                     source_version="", lifecycle_stage="deleted" if r in gone else "active",
                     artifact_uri=f"{location}/{r}/artifacts", experiment_id=1,
                     deleted_time=NOW - 40 * DAY_MS if r in gone else None)
                for i, r in enumerate(deleted + active)])
            conn.execute(sa.text(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "SELECT 'loss', n.i * 0.5, :now + n.i, runs.run_uuid, n.i, false FROM runs CROSS JOIN n"),
                {"last": metric_rows - 1, "now": NOW})
            conn.execute(sa.text(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "SELECT 'loss', 1.0, :now, 2, false, run_uuid FROM runs"), {"now": NOW})
            for table, values in (("params", "'lr', '0.1'"), ("tags", "'mlflow.user', 'bench'")):
                conn.execute(sa.text(f"INSERT INTO {table} (key, value, run_uuid) SELECT {values}, run_uuid FROM runs"))
    finally:
        engine.dispose()


def write_local(root: Path, ids: list[str], files: int) -> None:
    for r in ids:
        folder = root / r / "artifacts"
        (folder / "plots").mkdir(parents=True)
        for f in range(files):
            (folder / ("plots/" if f % 2 else "") / f"file-{f}.bin").write_bytes(os.urandom(256))


def write_s3(client, bucket: str, prefix: str, ids: list[str], files: int) -> None:
    keys = [f"{prefix}/{r}/artifacts/{'plots/' if f % 2 else ''}file-{f}.bin" for r in ids for f in range(files)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=os.urandom(256)), keys))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, peak RSS (MiB) and outcome of one child process."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    # Read to the end before wait4, so a chatty child never blocks on a full pipe.
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    done = subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, done


def left_runs(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(t.runs.c.run_uuid)).scalars())
    finally:
        engine.dispose()


def compare(label: str, trackops_url: str, mlflow_url: str, trackops_args: list[str], env: dict[str, str],
            expect_left: set[str]) -> None:
    t_s, t_rss, _ = timed([str(BIN / "trackops"), "gc", "--backend-store-uri", trackops_url, *trackops_args,
                           "--older-than", "30d", "--yes", "--json"], env)
    m_s, m_rss, _ = timed([str(BIN / "mlflow"), "gc", "--backend-store-uri", mlflow_url, "--older-than", "30d"],
                          {**env, "MLFLOW_TRACKING_URI": mlflow_url})
    assert left_runs(trackops_url) == expect_left, "trackops left the wrong runs"
    assert left_runs(mlflow_url) == expect_left, "mlflow left the wrong runs"
    print(f"{label}: trackops {t_s:.2f}s ({t_rss:.0f} MiB peak), mlflow {m_s:.2f}s ({m_rss:.0f} MiB peak), "
          f"trackops is {m_s / t_s:.1f}x faster", flush=True)


def case_sqlite_local(tmp: Path, n: int, files: int) -> None:
    deleted, active = run_ids(n, 1), run_ids(max(1, n // 10), 2)
    urls = {}
    for tool in ("trackops", "mlflow"):
        folder = tmp / tool
        (folder / "arts").mkdir(parents=True)
        urls[tool] = f"sqlite:///{folder / 'mlflow.db'}"
        populate(urls[tool], (folder / "arts").as_uri(), deleted, active)
        write_local(folder / "arts", deleted + active, files)
    compare(f"SQLite + local files, {n} deleted runs x {files} files", urls["trackops"], urls["mlflow"],
            ["--artifacts-destination", str(tmp / "trackops" / "dest")], dict(os.environ), set(active))
    for tool in ("trackops", "mlflow"):
        left = [p.name for p in (tmp / tool / "arts").iterdir()]
        print(f"  {tool}: {len(left)} folders left in the experiment folder (active runs: {len(active)})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def case_postgres_s3(n: int, files: int) -> None:
    import boto3

    port = _free_port()
    moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint}
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    names = {tool: f"trackops_bench_gc_{tool}_{uuid.uuid4().hex[:6]}" for tool in ("trackops", "mlflow")}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS", "MLFLOW_S3"))})
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        deleted, active = run_ids(n, 1), run_ids(max(1, n // 10), 2)
        urls = {}
        with admin.connect() as conn:
            for tool, name in names.items():
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        for tool, name in names.items():
            urls[tool] = sa.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
            populate(urls[tool], f"s3://bench/{tool}/1", deleted, active)
            write_s3(client, "bench", f"{tool}/1", deleted + active, files)
        compare(f"PostgreSQL + S3 (moto), {n} deleted runs x {files} files", urls["trackops"], urls["mlflow"],
                ["--artifacts-destination", "s3://bench/unused"], env, set(active))
        for tool in names:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=f"{tool}/")
            count = sum(len(p.get("Contents", [])) for p in pages)
            print(f"  {tool}: {count} objects left (active runs' files: {len(active) * files})")
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
        moto.terminate()
        moto.wait()


def case_memory(tmp: Path, rows: int) -> None:
    (deleted,) = run_ids(1, 3)
    urls = {}
    for tool in ("trackops", "mlflow"):
        folder = tmp / f"mem-{tool}"
        folder.mkdir()
        urls[tool] = f"sqlite:///{folder / 'mlflow.db'}"
        populate(urls[tool], (folder / "arts").as_uri(), [deleted], [], metric_rows=rows)
    compare(f"one deleted run with {rows:,} metric rows (SQLite)", urls["trackops"], urls["mlflow"],
            ["--artifacts-destination", str(tmp / "dest")], dict(os.environ), set())


def _many_runs(url: str, n: int) -> None:
    """Head schema and `n` runs in one experiment, a tenth of them deleted, made by the database itself."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            revisions.upgrade(conn)
            conn.execute(sa.insert(t.experiments).values(
                experiment_id=1, name="bench", artifact_location="/tmp/unused", lifecycle_stage="active",
                creation_time=NOW, last_update_time=NOW, workspace=t.DEFAULT_WORKSPACE))
            series = ("SELECT generate_series(0, :last) AS i" if conn.dialect.name == "postgresql" else
                      "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) SELECT i FROM n")
            conn.execute(sa.text(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
                f"SELECT 'r' || CAST(s.i AS VARCHAR(16)), 'run', 'UNKNOWN', '', '', 'bench', 'FINISHED', :now, '', "
                "CASE WHEN s.i % 10 = 0 THEN 'deleted' ELSE 'active' END, 'x', 1, "
                f"CASE WHEN s.i % 10 = 0 THEN :now ELSE NULL END FROM ({series}) s"), {"last": n - 1, "now": NOW})
    finally:
        engine.dispose()


def case_idle_tick(tmp: Path, n: int, postgres: bool) -> None:
    from trackops.services import gc_log

    stores = {"SQLite": f"sqlite:///{tmp / 'idle.db'}"}
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = f"trackops_bench_idle_{uuid.uuid4().hex[:6]}"
    if postgres:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        stores["PostgreSQL"] = sa.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    print(f"\nbackground cleaner, idle tick on {n:,} runs (target < 5 ms)")
    try:
        for label, url in stores.items():
            t0 = time.perf_counter()
            _many_runs(url, n)
            made = time.perf_counter() - t0
            engine = create_engine(url, **({} if url.startswith("sqlite") else {"pool_size": 1, "max_overflow": 0}))
            try:
                first = gc_log.change_token(engine)
                t0 = time.perf_counter()
                for _ in range(200):
                    assert gc_log.change_token(engine) is not None
                per_tick = (time.perf_counter() - t0) / 200
                print(f"  {label:<11} {per_tick * 1000:8.3f} ms a tick  (store made in {made:.1f}s; "
                      f"token {'stable' if gc_log.change_token(engine) == first else 'moved'})")
            finally:
                engine.dispose()
    finally:
        if postgres:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--metric-rows", type=int, default=1_000_000)
    parser.add_argument("--idle-runs", type=int, default=1_000_000)
    parser.add_argument("--only-idle", action="store_true", help="Run only the idle-tick case.")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="trackops-bench-gc-"))
    try:
        if not args.only_idle:
            case_sqlite_local(tmp, args.runs, args.files)
            if not args.skip_postgres:
                case_postgres_s3(args.runs, args.files)
            case_memory(tmp, args.metric_rows)
        case_idle_tick(tmp, args.idle_runs, not args.skip_postgres)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
