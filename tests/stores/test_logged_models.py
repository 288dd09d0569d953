"""Logged-model store on SQLite, PostgreSQL and MariaDB: rows as MLflow writes them, lifecycle, search."""

from __future__ import annotations

import base64
import json
import re

import pytest
import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import LoggedModelParameter, LoggedModelStatus, LoggedModelTag, Metric
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist
from trackops.stores.logged_models import LoggedModelStore


@pytest.fixture
def lms(store) -> LoggedModelStore:
    """A logged-model store sharing the tracking store's engine (fixture `store`)."""
    return LoggedModelStore(store.engine)


def _row(lms: LoggedModelStore, model_id: str) -> dict:
    with lms.engine.connect() as conn:
        return dict(conn.execute(sa.select(s.logged_models).where(s.logged_models.c.model_id == model_id))
                    .one()._mapping)


def test_create_logged_model_writes_mlflow_row(store, lms):
    exp = store.create_experiment("e")
    run = store.create_run(exp)
    model = lms.create_logged_model(exp, "clf", run.info.run_id, [LoggedModelTag("t", "1")],
                                    [LoggedModelParameter("alpha", "0.5")], "sklearn")
    assert re.fullmatch(r"m-[0-9a-f]{32}", model.model_id)
    assert (model.experiment_id, model.name, model.status, model.source_run_id, model.model_type, model.tags,
            model.params, model.metrics, model.lifecycle_stage) == (
        exp, "clf", LoggedModelStatus.PENDING, run.info.run_id, "sklearn", {"t": "1"}, {"alpha": "0.5"}, [], "active")
    assert _row(lms, model.model_id) == {
        "model_id": model.model_id, "experiment_id": int(exp), "name": "clf",
        "artifact_location": f"mlflow-artifacts:/{exp}/models/{model.model_id}/artifacts",
        "creation_timestamp_ms": model.creation_timestamp, "last_updated_timestamp_ms": model.creation_timestamp,
        "status": 1, "lifecycle_stage": "active", "model_type": "sklearn", "source_run_id": run.info.run_id,
        "status_message": None}
    assert lms.get_logged_model(model.model_id) == model


def test_create_without_name_generates_one(store, lms):
    model = lms.create_logged_model(store.create_experiment("e"))
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", model.name) and len(model.name) <= 20


@pytest.mark.parametrize("name", ["", "a/b", "a:b", "a.b", "50%", "it's", 'x"y'])
def test_bad_logged_model_names_are_refused(store, lms, name):
    exp = store.create_experiment("e")
    with pytest.raises(InvalidParameterValue, match="Invalid model name"):
        lms.create_logged_model(exp, name)


def test_create_in_missing_or_deleted_experiment_fails(store, lms):
    with pytest.raises(ResourceDoesNotExist):
        lms.create_logged_model("12345")
    exp = store.create_experiment("e")
    store.delete_experiment(exp)
    with pytest.raises(InvalidParameterValue, match="must be in the 'active' state"):
        lms.create_logged_model(exp)


def test_finalize_sets_status_and_update_time(store, lms):
    model = lms.create_logged_model(store.create_experiment("e"))
    ready = lms.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert ready.status == LoggedModelStatus.READY and _row(lms, model.model_id)["status"] == 2
    assert ready.last_updated_timestamp >= model.last_updated_timestamp
    assert lms.finalize_logged_model(model.model_id, "LOGGED_MODEL_UPLOAD_FAILED").status == LoggedModelStatus.FAILED
    with pytest.raises(InvalidParameterValue):
        lms.finalize_logged_model(model.model_id, "DONE")
    with pytest.raises(ResourceDoesNotExist, match="Logged model with ID 'm-missing' not found."):
        lms.finalize_logged_model("m-missing", "READY")


def test_delete_is_soft_and_hides_the_model(store, lms):
    exp = store.create_experiment("e")
    model = lms.create_logged_model(exp)
    lms.delete_logged_model(model.model_id)
    row = _row(lms, model.model_id)
    assert row["lifecycle_stage"] == "deleted" and row["last_updated_timestamp_ms"] >= model.creation_timestamp
    with pytest.raises(ResourceDoesNotExist):
        lms.get_logged_model(model.model_id)
    assert lms.get_logged_model(model.model_id, allow_deleted=True).lifecycle_stage == "deleted"
    assert lms.search_logged_models([exp]) == ([], None)
    with pytest.raises(ResourceDoesNotExist):
        lms.delete_logged_model("m-missing")


def test_tags_set_overwrite_and_delete(store, lms):
    model = lms.create_logged_model(store.create_experiment("e"), tags={"a": "1"})
    lms.set_logged_model_tags(model.model_id, [LoggedModelTag("a", "2"), LoggedModelTag("b", "x"),
                                               LoggedModelTag("b", "y")])
    assert lms.get_logged_model(model.model_id).tags == {"a": "2", "b": "y"}
    lms.delete_logged_model_tag(model.model_id, "a")
    assert lms.get_logged_model(model.model_id).tags == {"b": "y"}
    with pytest.raises(ResourceDoesNotExist, match="No tag with key 'a'"):
        lms.delete_logged_model_tag(model.model_id, "a")
    with pytest.raises(ResourceDoesNotExist):
        lms.set_logged_model_tags("m-missing", {"a": "1"})


def test_params_are_added_and_cannot_change(store, lms):
    model = lms.create_logged_model(store.create_experiment("e"), params={"a": "1"})
    lms.log_logged_model_params(model.model_id, [LoggedModelParameter("b", "2"), LoggedModelParameter("a", "1")])
    assert lms.get_logged_model(model.model_id).params == {"a": "1", "b": "2"}
    with pytest.raises(InvalidParameterValue, match="Changing param values is not allowed"):
        lms.log_logged_model_params(model.model_id, {"a": "9"})
    assert lms.get_logged_model(model.model_id).params == {"a": "1", "b": "2"}
    with pytest.raises(ResourceDoesNotExist):
        lms.log_logged_model_params("m-missing", {"a": "1"})


def test_metrics_logged_with_a_model_id_are_the_models_metrics(store, lms):
    exp = store.create_experiment("e")
    run = store.create_run(exp)
    model = lms.create_logged_model(exp, source_run_id=run.info.run_id)
    store.log_metric(run.info.run_id, Metric("acc", 0.5, 1000, 0, model_id=model.model_id))
    store.log_batch(run.info.run_id, metrics=[
        Metric("acc", 0.7, 2000, 1, model_id=model.model_id, dataset_name="val", dataset_digest="d1"),
        Metric("loss", float("inf"), 2000, 1, model_id=model.model_id),
        Metric("other", 1.0, 2000, 1)])
    got = lms.get_logged_model(model.model_id).metrics
    assert [(m.key, m.value, m.timestamp, m.step, m.run_id, m.dataset_name, m.dataset_digest, m.model_id)
            for m in got] == [
        ("acc", 0.5, 1000, 0, run.info.run_id, None, None, model.model_id),
        ("acc", 0.7, 2000, 1, run.info.run_id, "val", "d1", model.model_id),
        ("loss", 1.7976931348623157e308, 2000, 1, run.info.run_id, None, None, model.model_id)]


def _models(lms, exp, n):
    return [lms.create_logged_model(exp, name=f"m{i}") for i in range(n)]


def test_search_filters_orders_and_pages_with_mlflow_tokens(store, lms):
    exp = store.create_experiment("e")
    run = store.create_run(exp)
    models = _models(lms, exp, 5)
    for i, m in enumerate(models):
        lms.finalize_logged_model(m.model_id, "READY" if i % 2 == 0 else "FAILED")
        lms.log_logged_model_params(m.model_id, {"i": str(i)})
        store.log_metric(run.info.run_id, Metric("acc", i / 10, 1000, 0, model_id=m.model_id))
    order = [{"field_name": "metrics.acc", "ascending": False}]
    page, token = lms.search_logged_models([exp], "status = 'READY'", order_by=order, max_results=2)
    assert [m.name for m in page] == ["m4", "m2"]
    payload = json.loads(base64.b64decode(token))
    assert payload == {"experiment_ids": [exp], "filter_string": "status = 'READY'", "order_by": order, "offset": 2}
    page2, token2 = lms.search_logged_models([exp], "status = 'READY'", order_by=order, max_results=2,
                                             page_token=token)
    assert [m.name for m in page2] == ["m0"] and token2 is None
    assert page[0].params == {"i": "4"} and [m.key for m in page[0].metrics] == ["acc"]
    found, _ = lms.search_logged_models([exp], "params.i = '3' AND metrics.acc > 0.1")
    assert [m.name for m in found] == ["m3"]
    with pytest.raises(InvalidParameterValue, match="Filter string in the page token does not match"):
        lms.search_logged_models([exp], "status = 'FAILED'", order_by=order, max_results=2, page_token=token)
    with pytest.raises(InvalidParameterValue, match="Experiment IDs in the page token"):
        lms.search_logged_models(["0"], "status = 'READY'", order_by=order, max_results=2, page_token=token)


def test_search_with_datasets_keeps_models_with_metrics_on_them(store, lms):
    exp = store.create_experiment("e")
    run = store.create_run(exp)
    a, b = _models(lms, exp, 2)
    store.log_metric(run.info.run_id, Metric("acc", 0.9, 1000, 0, model_id=a.model_id, dataset_name="val",
                                             dataset_digest="d"))
    store.log_metric(run.info.run_id, Metric("acc", 0.8, 1000, 0, model_id=b.model_id, dataset_name="train",
                                             dataset_digest="d"))
    found, _ = lms.search_logged_models([exp], datasets=[{"dataset_name": "val"}])
    assert [m.model_id for m in found] == [a.model_id]
    with pytest.raises(InvalidParameterValue, match="dataset_name"):
        lms.search_logged_models([exp], datasets=[{"dataset_digest": "d"}])


def test_search_default_page_is_newest_first(store, lms):
    exp = store.create_experiment("e")
    models = _models(lms, exp, 3)
    found, token = lms.search_logged_models([exp])
    expected = sorted(models, key=lambda m: (-m.creation_timestamp, m.model_id))
    assert [m.model_id for m in found] == [m.model_id for m in expected] and token is None
