"""PostgreSQL: a large log-batch goes into ``metrics`` with COPY (stores.metrics._copy_metrics), stores exactly
what the INSERT path stores, and a batch holding rows that are stored already still lands, each row once."""

from __future__ import annotations

import math

import pytest

from trackops.db.engine import create_engine
from trackops.entities import Metric
from trackops.stores import metrics as metric_rows
from trackops.stores.tracking import TrackingStore


@pytest.fixture
def store(postgres_head_url):
    engine = create_engine(postgres_head_url)
    yield TrackingStore(engine, default_artifact_root="/tmp/artifacts")
    engine.dispose()


@pytest.fixture
def copies(monkeypatch) -> list[bool]:
    """What each COPY attempt answered (True: written by COPY, False: a stored row made it step aside)."""
    seen: list[bool] = []
    real = metric_rows._copy_metrics

    def recording(conn, rows):
        seen.append(real(conn, rows))
        return seen[-1]

    monkeypatch.setattr(metric_rows, "_copy_metrics", recording)
    return seen


def _stored(store, run_id: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            'SELECT key, value, "timestamp", step, is_nan FROM metrics WHERE run_uuid = %(r)s '
            'ORDER BY key, step, "timestamp"', {"r": run_id})]


def test_a_large_batch_is_copied_with_values_nan_and_infinities_stored_as_mlflow_stores_them(store, copies):
    eid = store.create_experiment("copy")
    run_id = store.create_run(eid, user_id="u", start_time=0, tags=[], run_name="r").info.run_id
    odd = [Metric("edge", math.nan, 1, 0), Metric("edge", math.inf, 1, 1), Metric("edge", -math.inf, 1, 2),
           Metric('a b:c/d-e.f_g', 0.1, 1, 0)]
    batch = [Metric(f"m{i % 10}", i * 0.25, 1_700_000_000_000 + i, i // 10) for i in range(500)] + odd
    store.log_batch(run_id, metrics=batch, params=[], tags=[])
    assert copies == [True]
    stored = _stored(store, run_id)
    assert len(stored) == 504
    assert ("edge", 0.0, 1, 0, True) in stored  # NaN: value 0, is_nan set
    big = 1.7976931348623157e308  # the infinities, clamped to the largest double as MLflow stores them
    assert ("edge", big, 1, 1, False) in stored and ("edge", -big, 1, 2, False) in stored
    assert ('a b:c/d-e.f_g', 0.1, 1, 0, False) in stored
    latest = {m.key: (m.value, m.step) for m in store.get_run(run_id).data.metrics}
    assert latest["m9"] == (499 * 0.25, 49) and latest['a b:c/d-e.f_g'] == (0.1, 0)


def test_a_resent_batch_with_new_rows_lands_each_row_once(store, copies):
    eid = store.create_experiment("again")
    run_id = store.create_run(eid, user_id="u", start_time=0, tags=[], run_name="r").info.run_id
    first = [Metric("m", float(i), 10 + i, i) for i in range(300)]
    store.log_batch(run_id, metrics=first, params=[], tags=[])
    store.log_batch(run_id, metrics=first + [Metric("m", 999.0, 5000, 300)], params=[], tags=[])  # a client's retry
    assert copies == [True, False]  # the second COPY met a stored row and stepped aside, leaving nothing
    stored = _stored(store, run_id)
    assert len(stored) == 301 and len(set(stored)) == 301
    assert {m.key: m.value for m in store.get_run(run_id).data.metrics} == {"m": 999.0}


def test_small_batches_keep_the_one_statement_insert(store, copies):
    eid = store.create_experiment("small")
    run_id = store.create_run(eid, user_id="u", start_time=0, tags=[], run_name="r").info.run_id
    store.log_batch(run_id, metrics=[Metric("m", 1.0, 1, k) for k in range(metric_rows.COPY_MIN_ROWS - 1)],
                    params=[], tags=[])
    assert copies == [] and len(_stored(store, run_id)) == metric_rows.COPY_MIN_ROWS - 1
