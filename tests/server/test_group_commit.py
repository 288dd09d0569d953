"""SQLite's writer thread: tracking writes queued together are committed together, and one that fails
costs the others nothing."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from trackops.db.engine import create_engine
from trackops.entities import Metric
from trackops.errors import InvalidParameterValue
from trackops.server.app import SqliteWriter
from trackops.stores.tracking import TrackingStore


@pytest.fixture
def store(sqlite_head_url, tmp_path):
    engine = create_engine(sqlite_head_url)
    st = TrackingStore(engine, default_artifact_root=str(tmp_path / "mlartifacts"))
    st.ensure_default_experiment()
    yield st
    engine.dispose()


def _new_run(store: TrackingStore) -> str:
    return store.create_run("0", user_id="u", start_time=1, tags=[], run_name="r").info.run_id


def _queue_behind_a_gate(writer: SqliteWriter, jobs: list) -> list:
    """Hold the writer thread on a first job, queue `jobs` behind it, then let it go: they arrive
    at the writer all waiting, as requests that came in during a commit do."""
    gate, holding = threading.Event(), threading.Event()

    def hold():
        holding.set()
        gate.wait(10)

    first = writer.submit(hold)
    holding.wait(10)
    futures = [writer.submit_grouped(fn, *args) for fn, *args in jobs]
    gate.set()
    first.result(10)
    return futures


def _history(store: TrackingStore, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in store.get_metric_history(run_id, key, max_results=1000)[0])


def test_waiting_tracking_writes_share_one_commit(store):
    run_id = _new_run(store)
    commits = []
    sa.event.listen(store.engine, "commit", lambda conn: commits.append(1))
    writer = SqliteWriter(store.engine, threading.Lock())
    try:
        futures = _queue_behind_a_gate(writer, [(store.log_metric, run_id, Metric("loss", 0.5, 1, step))
                                                for step in range(10)])
        assert [f.result(10) for f in futures] == [None] * 10
    finally:
        writer.shutdown()
    assert len(commits) == 1
    assert _history(store, run_id, "loss") == list(range(10))


def test_a_failing_write_in_a_group_fails_alone_and_the_others_are_kept_once(store):
    run_id, gone = _new_run(store), _new_run(store)
    store.delete_run(gone)
    writer = SqliteWriter(store.engine, threading.Lock())
    try:
        futures = _queue_behind_a_gate(writer, [
            (store.log_metric, run_id, Metric("loss", 0.1, 1, 1)),
            (store.log_metric, gone, Metric("loss", 0.2, 1, 2)),  # a deleted run refuses writes
            (store.log_metric, run_id, Metric("loss", 0.3, 1, 3)),
        ])
        assert futures[0].result(10) is None and futures[2].result(10) is None
        with pytest.raises(InvalidParameterValue):
            futures[1].result(10)
    finally:
        writer.shutdown()
    assert _history(store, run_id, "loss") == [1, 3]
    assert _history(store, gone, "loss") == []


def test_other_writes_run_alone_in_arrival_order(store):
    run_id = _new_run(store)
    order = []
    writer = SqliteWriter(store.engine, threading.Lock())
    try:
        futures = _queue_behind_a_gate(writer, [(store.log_metric, run_id, Metric("loss", 0.5, 1, 1))])
        futures.append(writer.submit(lambda: order.append("alone")))
        futures.append(writer.submit_grouped(lambda: order.append("grouped")))
        [f.result(10) for f in futures]
    finally:
        writer.shutdown()
    assert order == ["alone", "grouped"]
    assert _history(store, run_id, "loss") == [1]
