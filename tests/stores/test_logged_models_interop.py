"""trackops' logged-model store and MLflow 3.17.2's tracking store take turns on one SQLite database.

Each test writes with one side and reads with both (get and search), comparing normalised logged
models field by field, metrics included. MLflow's store is the oracle (test-only import).
"""

from __future__ import annotations

import pytest

from tests.stores.conftest import mlflow_store, open_store
from trackops import entities as t
from trackops.stores.logged_models import LoggedModelStore

pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")
from mlflow.entities import LoggedModelParameter as MLParam  # noqa: E402
from mlflow.entities import LoggedModelStatus as MLStatus  # noqa: E402
from mlflow.entities import LoggedModelTag as MLTag  # noqa: E402
from mlflow.entities import Metric as MLMetric  # noqa: E402


def norm_logged(m) -> tuple:
    status = m.status.proto_name if isinstance(m.status, t.LoggedModelStatus) else str(m.status)
    status = {"LOGGED_MODEL_PENDING": "PENDING", "LOGGED_MODEL_READY": "READY",
              "LOGGED_MODEL_UPLOAD_FAILED": "FAILED"}.get(status, status)
    metrics = sorted((x.key, x.value, x.timestamp, x.step, x.run_id, x.dataset_name, x.dataset_digest, x.model_id)
                     for x in (m.metrics or []))
    return (m.model_id, str(m.experiment_id), m.name, m.artifact_location, m.creation_timestamp,
            m.last_updated_timestamp, m.model_type, m.source_run_id, status, m.status_message, dict(m.tags or {}),
            dict(m.params or {}), metrics)


@pytest.fixture
def tracking_sides(sqlite_head_url):
    """(trackops tracking store, trackops logged-model store, MLflow tracking store) on one database."""
    tracking = open_store(sqlite_head_url)
    yield tracking, LoggedModelStore(tracking.engine), mlflow_store(sqlite_head_url)
    tracking.engine.dispose()


def _search_both(lms, theirs, exp, **kwargs):
    ours_found, ours_token = lms.search_logged_models([exp], **kwargs)
    page = theirs.search_logged_models([exp], **kwargs)
    return [norm_logged(m) for m in ours_found], ours_token, [norm_logged(m) for m in page], page.token


def test_mlflow_reads_logged_models_trackops_writes(tracking_sides):
    tracking, lms, theirs = tracking_sides
    exp = tracking.create_experiment("e")
    run = tracking.create_run(exp)
    made = [lms.create_logged_model(exp, f"model{i}", run.info.run_id, {"t": str(i)}, {"p": str(i)},
                                    "sklearn" if i else None) for i in range(4)]
    lms.finalize_logged_model(made[0].model_id, t.LoggedModelStatus.READY)
    lms.finalize_logged_model(made[1].model_id, t.LoggedModelStatus.FAILED)
    lms.set_logged_model_tags(made[2].model_id, {"t": "changed", "extra": "x"})
    lms.delete_logged_model_tag(made[3].model_id, "t")
    lms.log_logged_model_params(made[3].model_id, {"q": "1"})
    lms.delete_logged_model(made[3].model_id)
    for i, m in enumerate(made[:3]):
        tracking.log_metric(run.info.run_id, t.Metric("acc", i / 4, 1000 + i, i, model_id=m.model_id,
                                                      dataset_name="val", dataset_digest="abc"))
    for m in made:
        assert norm_logged(theirs.get_logged_model(m.model_id, allow_deleted=True)) == norm_logged(
            lms.get_logged_model(m.model_id, allow_deleted=True))
    order = [{"field_name": "metrics.acc", "ascending": True}]
    ours, ours_token, mlflow_found, mlflow_token = _search_both(lms, theirs, exp, order_by=order, max_results=2)
    assert ours == mlflow_found and ours_token == mlflow_token
    ours2, _, mlflow2, _ = _search_both(lms, theirs, exp, order_by=order, max_results=2, page_token=mlflow_token)
    assert ours2 == mlflow2
    for kwargs in ({"filter_string": "tags.t = 'changed'"}, {"filter_string": "params.p != '0'"},
                   {"datasets": [{"dataset_name": "val", "dataset_digest": "abc"}]}, {}):
        ours, _, mlflow_found, _ = _search_both(lms, theirs, exp, **kwargs)
        assert ours == mlflow_found


def test_trackops_reads_logged_models_mlflow_writes(tracking_sides):
    tracking, lms, theirs = tracking_sides
    exp = theirs.create_experiment("e")
    run = theirs.create_run(exp, user_id="u", start_time=1, tags=[], run_name="r")
    made = [theirs.create_logged_model(exp, f"model{i}", run.info.run_id, [MLTag("t", str(i))],
                                       [MLParam("p", str(i))], "sklearn") for i in range(3)]
    theirs.finalize_logged_model(made[0].model_id, MLStatus.READY)
    theirs.set_logged_model_tags(made[1].model_id, [MLTag("extra", "x")])
    theirs.log_batch(run.info.run_id, metrics=[MLMetric("acc", 0.3, 5, 2, model_id=made[0].model_id)], params=[],
                     tags=[])
    theirs.delete_logged_model(made[2].model_id)
    generated = theirs.create_logged_model(exp)
    for m in [*made, generated]:
        assert norm_logged(lms.get_logged_model(m.model_id, allow_deleted=True)) == norm_logged(
            theirs.get_logged_model(m.model_id, allow_deleted=True))
    ours, _, mlflow_found, _ = _search_both(lms, theirs, exp, filter_string="name LIKE 'model%'")
    assert ours == mlflow_found and len(ours) == 2
