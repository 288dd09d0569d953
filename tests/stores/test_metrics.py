"""Metrics: stored values, latest-value bookkeeping, paged history and sampled history."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import Metric
from trackops.errors import InvalidParameterValue

MAX = 1.7976931348623157e308


@pytest.fixture
def run_id(store):
    eid = store.create_experiment("exp")
    return store.create_run(eid, user_id="u", start_time=1).info.run_id


def latest(store, run_id):
    return {m.key: m for m in store.get_run(run_id).data.metrics}


def stored_rows(store, table, run_id):
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(table.c.key, table.c.value, table.c.timestamp, table.c.step, table.c.is_nan)
            .where(table.c.run_uuid == run_id).order_by(table.c.key, table.c.timestamp))]


def test_nan_is_stored_as_zero_with_is_nan_and_read_back_as_nan(store, run_id):
    store.log_metric(run_id, Metric("m", math.nan, 5, 0))
    assert stored_rows(store, s.metrics, run_id) == [("m", 0.0, 5, 0, True)]
    assert stored_rows(store, s.latest_metrics, run_id) == [("m", 0.0, 5, 0, True)]
    assert math.isnan(latest(store, run_id)["m"].value)
    history, _ = store.get_metric_history(run_id, "m")
    assert math.isnan(history[0].value)


def test_infinities_are_clamped_to_the_largest_double(store, run_id):
    store.log_batch(run_id, [Metric("pos", math.inf, 1, 0), Metric("neg", -math.inf, 1, 0)])
    assert {r[0]: r[1] for r in stored_rows(store, s.metrics, run_id)} == {"pos": MAX, "neg": -MAX}
    assert {k: m.value for k, m in latest(store, run_id).items()} == {"pos": MAX, "neg": -MAX}


def test_latest_metric_is_highest_step_then_latest_timestamp(store, run_id):
    store.log_batch(run_id, [Metric("m", 1.0, 100, 5), Metric("m", 2.0, 50, 7), Metric("m", 3.0, 200, 6)])
    assert (latest(store, run_id)["m"].value, latest(store, run_id)["m"].step) == (2.0, 7)
    # Out-of-order: a lower step logged later does not replace it.
    store.log_metric(run_id, Metric("m", 9.0, 999, 1))
    assert latest(store, run_id)["m"].value == 2.0
    # Equal step, later timestamp wins.
    store.log_metric(run_id, Metric("m", 4.0, 60, 7))
    assert latest(store, run_id)["m"].value == 4.0
    # Equal step and timestamp: the larger value wins, as MLflow compares (step, timestamp, value).
    store.log_metric(run_id, Metric("m", 3.5, 60, 7))
    assert latest(store, run_id)["m"].value == 4.0
    store.log_metric(run_id, Metric("m", 5.0, 60, 7))
    assert latest(store, run_id)["m"].value == 5.0


def test_nan_can_become_and_stop_being_the_latest(store, run_id):
    store.log_metric(run_id, Metric("m", 1.0, 1, 0))
    store.log_metric(run_id, Metric("m", math.nan, 2, 0))
    assert math.isnan(latest(store, run_id)["m"].value)
    store.log_metric(run_id, Metric("m", 7.0, 3, 0))
    assert latest(store, run_id)["m"].value == 7.0


def test_identical_points_are_stored_once(store, run_id):
    store.log_batch(run_id, [Metric("m", 1.0, 1, 0), Metric("m", 1.0, 1, 0), Metric("m", math.nan, 1, 0),
                             Metric("m", math.nan, 1, 0)])
    store.log_metric(run_id, Metric("m", 1.0, 1, 0))
    assert len(stored_rows(store, s.metrics, run_id)) == 2


def test_metric_history_pages_cover_everything_once_in_mlflow_order(store, run_id):
    points = [Metric("m", float(i % 7), 1000 + (i * 37) % 250, i % 3) for i in range(250)]
    for i in range(0, 250, 100):
        store.log_batch(run_id, points[i:i + 100])
    expected = sorted({(p.timestamp, p.step, p.value) for p in points})
    seen, token, pages = [], None, 0
    while True:
        page, token = store.get_metric_history(run_id, "m", max_results=40, page_token=token)
        pages += 1
        assert len(page) <= 40
        seen.extend((m.timestamp, m.step, m.value) for m in page)
        if token is None:
            break
    assert seen == expected
    assert pages == math.ceil(len(expected) / 40) + (1 if len(expected) % 40 == 0 else 0)


def test_metric_history_accepts_plain_mlflow_offset_tokens(store, run_id):
    import base64
    import json

    store.log_batch(run_id, [Metric("m", float(i), i, i) for i in range(10)])
    token = base64.b64encode(json.dumps({"offset": 4}).encode()).decode()
    page, nxt = store.get_metric_history(run_id, "m", max_results=3, page_token=token)
    assert [m.step for m in page] == [4, 5, 6]
    page, _ = store.get_metric_history(run_id, "m", max_results=3, page_token=nxt)
    assert [m.step for m in page] == [7, 8, 9]


def test_metric_history_of_a_full_last_page_has_no_token(store, run_id):
    store.log_batch(run_id, [Metric("m", float(i), i, i) for i in range(6)])
    page, token = store.get_metric_history(run_id, "m", max_results=6)
    assert len(page) == 6 and token is None


def test_bad_page_token_is_invalid_parameter(store, run_id):
    with pytest.raises(InvalidParameterValue):
        store.get_metric_history(run_id, "m", max_results=5, page_token="%%%not-base64")


def test_history_of_unknown_key_is_empty(store, run_id):
    assert store.get_metric_history(run_id, "nope", max_results=10) == ([], None)


def test_bulk_interval_samples_evenly_and_keeps_first_and_last(store, run_id):
    store.log_batch(run_id, [Metric("m", float(i), i, i) for i in range(100)])
    sampled = store.get_metric_history_bulk_interval([run_id], "m", max_results=10)
    steps = [m.step for m in sampled]
    assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 99 and steps == sorted(steps)
    assert all(m.run_id == run_id for m in sampled)
    window = store.get_metric_history_bulk_interval([run_id], "m", 5, start_step=10, end_step=20)
    assert [m.step for m in window][0] == 10 and window[-1].step == 20
    assert [m.step for m in store.get_metric_history_bulk_interval([run_id], "m", 1)] == [99]
    with pytest.raises(InvalidParameterValue):
        store.get_metric_history_bulk_interval([run_id], "m", 5, start_step=1)


def test_metric_with_model_id_is_also_a_logged_model_metric(store, run_id):
    eid = int(store.get_run(run_id).info.experiment_id)
    with store.engine.begin() as conn:
        conn.execute(s.logged_models.insert().values(
            model_id="m-123", experiment_id=eid, name="model", artifact_location="mlflow-artifacts:/x",
            creation_timestamp_ms=1, last_updated_timestamp_ms=1, status=2, lifecycle_stage="active"))
    store.log_batch(run_id, [Metric("acc", 0.9, 5, 1, model_id="m-123", dataset_name="d", dataset_digest="x")])
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(s.logged_model_metrics)).one()
    assert (row.model_id, row.metric_name, row.metric_value, row.run_id, row.dataset_name) == (
        "m-123", "acc", 0.9, run_id, "d")


def test_metric_for_unknown_logged_model_is_resource_does_not_exist(store, run_id):
    from trackops.errors import ResourceDoesNotExist

    with pytest.raises(ResourceDoesNotExist):
        store.log_metric(run_id, Metric("acc", 0.9, 5, 1, model_id="m-missing"))
    assert stored_rows(store, s.metrics, run_id) == []
