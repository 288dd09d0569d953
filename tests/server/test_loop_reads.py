"""One-row reads on PostgreSQL run on the event loop through the asyncio reader (db.engine.event_loop_reader):
same answers as the thread pool's, no transaction held, other requests served meanwhile, and a read whose
connection was dropped still answered."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from trackops.config import Settings
from trackops.db.engine import create_engine, event_loop_reader
from trackops.server.factory import build_app
from trackops.services.serve import preflight, serve_config

API = "/api/2.0/mlflow"


def _backends(url: str) -> set[int]:
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            return set(conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalars())
    finally:
        admin.dispose()


def _terminate(url: str, pids: set[int]) -> None:
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    finally:
        admin.dispose()


@pytest.fixture
def pg_app(postgres_url, tmp_path):
    settings = Settings(backend_store_uri=postgres_url, artifacts_destination=str(tmp_path / "mlartifacts"))
    preflight(settings)
    app = build_app(serve_config(settings))
    yield app
    ctx = app.state.ctx
    ctx.engine.dispose()


def test_postgresql_one_row_reads_are_answered_through_the_event_loops_asyncio_pool(pg_app):
    ctx = pg_app.state.ctx
    assert ctx.inline_handlers and ctx.loop_reader is not None and ctx.loop_reader.dialect.is_async
    with TestClient(pg_app, raise_server_exceptions=False) as client:
        eid = client.post(API + "/experiments/create", json={"name": "loop", "tags": [{"key": "k", "value": "v"}]}
                          ).json()["experiment_id"]
        run_id = client.post(API + "/runs/create", json={"experiment_id": eid, "start_time": 5}
                             ).json()["run"]["info"]["run_id"]
        client.post(API + "/runs/log-metric", json={"run_id": run_id, "key": "m", "value": 2.5, "timestamp": 7})
        assert ctx.loop_reader.pool.checkedin() == 0  # nothing has read through it yet
        got = client.get(API + "/experiments/get", params={"experiment_id": eid}).json()["experiment"]
        by_name = client.get(API + "/experiments/get-by-name", params={"experiment_name": "loop"}).json()
        run = client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]
        missing = client.get(API + "/experiments/get", params={"experiment_id": "999"})
    assert ctx.loop_reader.pool.checkedin() == 1  # the reads went through the asyncio pool, one connection
    assert got["name"] == "loop" and got["tags"] == [{"key": "k", "value": "v"}]
    assert by_name["experiment"] == got
    assert run["data"]["metrics"] == [{"key": "m", "value": 2.5, "timestamp": 7, "step": 0}]
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_the_event_loop_reader_reads_in_autocommit_and_only_at_read_committed(postgres_url):
    from psycopg.pq import TransactionStatus
    from sqlalchemy.util import greenlet_spawn

    engine = create_engine(postgres_url)
    reader = event_loop_reader(engine)

    def status() -> TransactionStatus:
        with reader.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
            return conn.connection.dbapi_connection.driver_connection.info.transaction_status

    try:
        assert asyncio.run(greenlet_spawn(status)) == TransactionStatus.IDLE  # no BEGIN, nothing to roll back
    finally:
        engine.dispose()
    repeatable = create_engine(postgres_url, connect_args={"options": "-c default_transaction_isolation=repeatable\\ read"})
    try:
        assert event_loop_reader(repeatable) is None  # its reads keep one snapshot: they stay in transactions
    finally:
        repeatable.dispose()


def test_a_worker_that_cannot_reach_postgresql_as_it_starts_reads_through_the_pool():
    unreachable = create_engine("postgresql://postgres@127.0.0.1:1/test")  # nothing listens on port 1
    try:
        assert event_loop_reader(unreachable) is None  # no error: the worker starts, and answers 503 on /ready
    finally:
        unreachable.dispose()


def test_sqlite_and_mysql_have_no_event_loop_reader(tmp_path):
    assert event_loop_reader(create_engine(f"sqlite:///{tmp_path / 'mlflow.db'}")) is None
    assert event_loop_reader(sa.create_engine("mysql+pymysql://root@127.0.0.1/test")) is None  # never connects


def test_a_loop_read_whose_connection_was_dropped_is_answered_and_the_next_one_reconnects(pg_app, postgres_url):
    with TestClient(pg_app, raise_server_exceptions=False) as client:
        eid = client.post(API + "/experiments/create", json={"name": "drop"}).json()["experiment_id"]
        before = _backends(postgres_url)
        assert client.get(API + "/experiments/get", params={"experiment_id": eid}).status_code == 200
        loop_conn = _backends(postgres_url) - before
        assert len(loop_conn) == 1  # the asyncio pool's one connection
        _terminate(postgres_url, loop_conn)  # as a database restart or a proxy would
        again = client.get(API + "/experiments/get", params={"experiment_id": eid})
        assert again.status_code == 200 and again.json()["experiment"]["name"] == "drop"
        third = client.get(API + "/experiments/get", params={"experiment_id": eid})
        assert third.status_code == 200
    assert pg_app.state.ctx.loop_reader.pool.checkedin() == 1  # a new connection replaced the dropped one


def test_loop_reads_and_pool_requests_interleave_under_concurrent_clients(pg_app):
    with TestClient(pg_app, raise_server_exceptions=False) as client:
        eid = client.post(API + "/experiments/create", json={"name": "busy"}).json()["experiment_id"]
        run_id = client.post(API + "/runs/create", json={"experiment_id": eid}).json()["run"]["info"]["run_id"]

        def work(k: int) -> tuple[int, int]:
            logged = client.post(API + "/runs/log-metric",
                                 json={"run_id": run_id, "key": f"m{k}", "value": k, "timestamp": k}).status_code
            read = client.get(API + "/experiments/get", params={"experiment_id": eid})
            return logged, read.status_code if read.json()["experiment"]["name"] == "busy" else -1

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(work, range(64)))
        metrics = client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]["data"]["metrics"]
    assert answers == [(200, 200)] * 64
    assert sorted(m["key"] for m in metrics) == sorted(f"m{k}" for k in range(64))
