"""Runs: create, read, update, delete/restore, tags, params, log-batch limits, inputs and outputs."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist


@pytest.fixture
def eid(store):
    return store.create_experiment("exp")


@pytest.fixture
def run_id(store, eid):
    return store.create_run(eid, user_id="alice", start_time=1000).info.run_id


def test_create_run_writes_mlflow_shaped_row(store, eid):
    run = store.create_run(eid, user_id="alice", start_time=1000, tags=[RunTag("k", "v")])
    info = run.info
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
    assert (info.experiment_id, info.user_id, info.status, info.start_time, info.end_time,
            info.lifecycle_stage) == (eid, "alice", "RUNNING", 1000, None, "active")
    assert info.artifact_uri == f"mlflow-artifacts:/{eid}/{info.run_id}/artifacts"
    assert run.data.tags_dict == {"k": "v", "mlflow.runName": info.run_name}
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(s.runs).where(s.runs.c.run_uuid == info.run_id)).one()
    assert (row.source_type, row.source_name, row.entry_point_name, row.source_version, row.deleted_time,
            row.name) == ("UNKNOWN", "", "", "", None, info.run_name)


def test_create_run_generates_a_name_when_none_given(store, eid):
    name = store.create_run(eid, user_id="u", start_time=1).info.run_name
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", name) and len(name) <= 20


def test_create_run_takes_name_from_argument_or_tag(store, eid):
    assert store.create_run(eid, start_time=1, run_name="given").data.tags_dict["mlflow.runName"] == "given"
    run = store.create_run(eid, start_time=1, tags=[RunTag("mlflow.runName", "tagged")])
    assert run.info.run_name == "tagged"
    with pytest.raises(InvalidParameterValue):
        store.create_run(eid, start_time=1, run_name="a", tags=[RunTag("mlflow.runName", "b")])


def test_create_run_in_missing_or_deleted_experiment_is_refused(store, eid):
    with pytest.raises(ResourceDoesNotExist):
        store.create_run("999999", start_time=1)
    store.delete_experiment(eid)
    with pytest.raises(InvalidParameterValue):
        store.create_run(eid, start_time=1)


def test_get_missing_run_is_resource_does_not_exist(store):
    with pytest.raises(ResourceDoesNotExist):
        store.get_run("0" * 32)


def test_update_run_info_sets_status_end_time_and_name_with_its_tag(store, run_id):
    info = store.update_run_info(run_id, RunStatus.FINISHED, end_time=2000, run_name="renamed")
    assert (info.status, info.end_time, info.run_name) == ("FINISHED", 2000, "renamed")
    run = store.get_run(run_id)
    assert run.data.tags_dict["mlflow.runName"] == "renamed"
    assert store.update_run_info(run_id, "KILLED").status == "KILLED"
    assert store.update_run_info(run_id, 4).status == "FAILED"


def test_setting_run_name_tag_renames_the_run(store, run_id):
    store.set_tag(run_id, RunTag("mlflow.runName", "via-tag"))
    assert store.get_run(run_id).info.run_name == "via-tag"
    store.log_batch(run_id, tags=[RunTag("mlflow.runName", "via-batch")])
    assert store.get_run(run_id).info.run_name == "via-batch"


def test_delete_run_sets_deleted_time_and_restore_clears_it(store, run_id):
    store.delete_run(run_id)
    run = store.get_run(run_id)
    assert run.info.lifecycle_stage == "deleted"
    with store.engine.connect() as conn:
        deleted_time = conn.execute(sa.select(s.runs.c.deleted_time).where(s.runs.c.run_uuid == run_id)).scalar()
    assert deleted_time is not None and deleted_time > 0
    store.restore_run(run_id)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(s.runs).where(s.runs.c.run_uuid == run_id)).one()
    assert (row.lifecycle_stage, row.deleted_time) == ("active", None)


@pytest.mark.parametrize("write", [
    lambda st, r: st.log_metric(r, Metric("m", 1.0, 1, 0)),
    lambda st, r: st.log_param(r, Param("p", "v")),
    lambda st, r: st.set_tag(r, RunTag("t", "v")),
    lambda st, r: st.log_batch(r, metrics=[Metric("m", 1.0, 1, 0)]),
    lambda st, r: st.update_run_info(r, RunStatus.FINISHED, 5),
    lambda st, r: st.log_inputs(r, [DatasetInput(Dataset("d", "x", "local", "{}"))]),
    lambda st, r: st.log_outputs(r, [LoggedModelOutput("m-1", 0)]),
])
def test_writes_to_a_deleted_run_are_refused(store, run_id, write):
    store.delete_run(run_id)
    with pytest.raises(InvalidParameterValue, match="must be in the 'active' state"):
        write(store, run_id)


def test_run_tags_set_overwrite_and_delete(store, run_id):
    store.set_tag(run_id, RunTag("t", "1"))
    store.set_tag(run_id, RunTag("t", "2"))
    assert store.get_run(run_id).data.tags_dict["t"] == "2"
    store.delete_tag(run_id, "t")
    assert "t" not in store.get_run(run_id).data.tags_dict
    with pytest.raises(ResourceDoesNotExist):
        store.delete_tag(run_id, "t")


def test_params_are_immutable_but_relogging_same_value_is_fine(store, run_id):
    store.log_param(run_id, Param("lr", "0.1"))
    store.log_param(run_id, Param("lr", "0.1"))
    with pytest.raises(InvalidParameterValue, match="lr"):
        store.log_param(run_id, Param("lr", "0.2"))
    with pytest.raises(InvalidParameterValue, match="lr"):
        store.log_batch(run_id, params=[Param("other", "x"), Param("lr", "0.3")])
    # The failed batch wrote nothing.
    assert store.get_run(run_id).data.params_dict == {"lr": "0.1"}


def test_duplicate_param_keys_in_one_batch_are_refused(store, run_id):
    with pytest.raises(InvalidParameterValue, match="Duplicate parameter keys"):
        store.log_batch(run_id, params=[Param("a", "1"), Param("a", "1")])


@pytest.mark.parametrize(("metrics", "params", "tags"), [
    (1001, 0, 0), (0, 101, 0), (0, 0, 101), (900, 100, 1),
])
def test_log_batch_limits(store, run_id, metrics, params, tags):
    with pytest.raises(InvalidParameterValue, match="at most"):
        store.log_batch(run_id, [Metric(f"m{i}", 1.0, 1, 0) for i in range(metrics)],
                        [Param(f"p{i}", "v") for i in range(params)], [RunTag(f"t{i}", "v") for i in range(tags)])


def test_log_batch_at_the_limits_is_accepted(store, run_id):
    store.log_batch(run_id, [Metric(f"m{i}", float(i), 1, 0) for i in range(800)],
                    [Param(f"p{i}", "v") for i in range(100)], [RunTag(f"t{i}", "v") for i in range(100)])
    data = store.get_run(run_id).data
    assert (len(data.metrics), len(data.params), len(data.tags)) == (800, 100, 101)


@pytest.mark.parametrize("bad", [
    Metric("../up", 1.0, 1, 0), Metric("bad*char", 1.0, 1, 0), Metric("m", "abc", 1, 0),
    Metric("m", None, 1, 0), Metric("m", True, 1, 0), Metric("m", 1.0, -1, 0), Metric("x" * 251, 1.0, 1, 0),
])
def test_invalid_metrics_are_refused(store, run_id, bad):
    with pytest.raises(InvalidParameterValue):
        store.log_batch(run_id, metrics=[bad])


def test_long_param_and_tag_values_are_truncated_long_keys_refused(store, run_id):
    store.log_batch(run_id, params=[Param("p", "x" * 7000)], tags=[RunTag("t", "y" * 9000)])
    data = store.get_run(run_id).data
    assert len(data.params_dict["p"]) == 6000 and len(data.tags_dict["t"]) == 8000
    with pytest.raises(InvalidParameterValue):
        store.log_param(run_id, Param("k" * 251, "v"))


def test_log_inputs_dedupes_datasets_per_experiment_and_keeps_input_tags(store, eid, run_id):
    ds = Dataset("train", "abc123", "local", '{"uri": "/data"}', schema='{"cols": []}', profile='{"rows": 3}')
    item = DatasetInput(ds, [InputTag("mlflow.data.context", "training")])
    store.log_inputs(run_id, [item, item])
    store.log_inputs(run_id, [item])
    other = store.create_run(eid, start_time=1).info.run_id
    store.log_inputs(other, [DatasetInput(ds, [InputTag("mlflow.data.context", "eval")])])
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(s.datasets)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(s.inputs)).scalar() == 2
    inputs = store.get_run(run_id).inputs.dataset_inputs
    assert inputs == [item]
    assert store.get_run(other).inputs.dataset_inputs[0].tags == [InputTag("mlflow.data.context", "eval")]


def test_log_inputs_records_model_inputs(store, run_id):
    store.log_inputs(run_id, models=[LoggedModelInput("m-abc"), LoggedModelInput("m-abc")])
    assert store.get_run(run_id).inputs.model_inputs == [LoggedModelInput("m-abc")]


def test_log_outputs_records_model_and_step(store, run_id):
    store.log_outputs(run_id, [LoggedModelOutput("m-1", 3), LoggedModelOutput("m-2", 7)])
    store.log_outputs(run_id, [LoggedModelOutput("m-1", 3)])
    outputs = store.get_run(run_id).outputs.model_outputs
    assert sorted(outputs, key=lambda o: o.model_id) == [LoggedModelOutput("m-1", 3), LoggedModelOutput("m-2", 7)]


def test_run_rows_carry_no_workspace_but_experiment_rows_default(store, eid):
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(s.experiments.c.workspace)
                            .where(s.experiments.c.experiment_id == int(eid))).scalar() == "default"


def test_create_run_without_experiment_id_goes_to_default(store):
    store.ensure_default_experiment()
    assert store.create_run(None, start_time=1).info.experiment_id == "0"
