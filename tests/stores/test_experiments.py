"""Experiments: create, read, rename, delete/restore with their runs, tags, and the Default experiment."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.stores.conftest import open_store
from trackops.db import schema as s
from trackops.entities import ExperimentTag, LifecycleStage, RunTag
from trackops.errors import InvalidParameterValue, InvalidState, ResourceAlreadyExists, ResourceDoesNotExist


def test_create_experiment_derives_artifact_location_from_root_and_id(store):
    eid = store.create_experiment("exp", tags=[ExperimentTag("team", "ml")])
    exp = store.get_experiment(eid)
    assert exp.name == "exp"
    assert exp.artifact_location == f"mlflow-artifacts:/{eid}"
    assert exp.lifecycle_stage == "active"
    assert exp.tags == {"team": "ml"}
    assert exp.workspace == "default"
    assert exp.creation_time == exp.last_update_time and exp.creation_time > 0


def test_create_experiment_keeps_an_explicit_location(store):
    eid = store.create_experiment("exp", artifact_location="s3://bucket/place")
    assert store.get_experiment(eid).artifact_location == "s3://bucket/place"


@pytest.mark.parametrize(("root", "expected"), [
    ("mlflow-artifacts:/", "mlflow-artifacts:/{id}"),
    ("file:///srv/art", "file:///srv/art/{id}"),
    ("/srv/art", "/srv/art/{id}"),
    ("s3://bucket/prefix?x=1", "s3://bucket/prefix/{id}?x=1"),
])
def test_default_location_is_computed_as_mlflow_computes_it(sqlite_head_url, root, expected):
    st = open_store(sqlite_head_url, root)
    eid = st.create_experiment("exp")
    assert st.get_experiment(eid).artifact_location == expected.format(id=eid)
    st.engine.dispose()


def test_relative_local_root_becomes_absolute(sqlite_head_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st = open_store(sqlite_head_url, "./mlruns")
    eid = st.create_experiment("exp")
    assert st.get_experiment(eid).artifact_location == f"{tmp_path.as_posix()}/mlruns/{eid}"
    st.engine.dispose()


def test_duplicate_experiment_name_is_resource_already_exists(store):
    store.create_experiment("exp")
    with pytest.raises(ResourceAlreadyExists) as err:
        store.create_experiment("exp")
    assert "exp" in str(err.value) and "INSERT" not in str(err.value)


@pytest.mark.parametrize("name", ["", None])
def test_empty_experiment_name_is_invalid(store, name):
    with pytest.raises(InvalidParameterValue):
        store.create_experiment(name)


def test_get_missing_experiment_is_resource_does_not_exist(store):
    with pytest.raises(ResourceDoesNotExist):
        store.get_experiment("12345")
    with pytest.raises(InvalidParameterValue):
        store.get_experiment("not-a-number")
    assert store.get_experiment_by_name("nope") is None


def test_get_experiment_by_name(store):
    eid = store.create_experiment("by-name")
    assert store.get_experiment_by_name("by-name").experiment_id == eid


def test_rename_experiment(store):
    eid = store.create_experiment("old")
    before = store.get_experiment(eid).last_update_time
    store.rename_experiment(eid, "new")
    exp = store.get_experiment(eid)
    assert exp.name == "new" and exp.last_update_time >= before
    assert store.get_experiment_by_name("old") is None


def test_rename_to_taken_name_is_resource_already_exists(store):
    store.create_experiment("a")
    eid = store.create_experiment("b")
    with pytest.raises(ResourceAlreadyExists):
        store.rename_experiment(eid, "a")


def test_rename_deleted_experiment_is_invalid_state(store):
    eid = store.create_experiment("gone")
    store.delete_experiment(eid)
    with pytest.raises(InvalidState):
        store.rename_experiment(eid, "back")


def _run_rows(store, eid):
    with store.engine.connect() as conn:
        return {r.run_uuid: r for r in conn.execute(
            sa.select(s.runs.c.run_uuid, s.runs.c.lifecycle_stage, s.runs.c.deleted_time)
            .where(s.runs.c.experiment_id == int(eid)))}


def test_delete_experiment_marks_it_and_all_its_runs_deleted(store):
    eid = store.create_experiment("exp")
    run_ids = [store.create_run(eid, user_id="u", start_time=1).info.run_id for _ in range(3)]
    store.delete_experiment(eid)
    assert store.get_experiment(eid).lifecycle_stage == LifecycleStage.DELETED.value
    rows = _run_rows(store, eid)
    assert set(rows) == set(run_ids)
    assert all(r.lifecycle_stage == "deleted" and r.deleted_time is not None for r in rows.values())


def test_delete_deleted_experiment_is_resource_does_not_exist(store):
    eid = store.create_experiment("exp")
    store.delete_experiment(eid)
    with pytest.raises(ResourceDoesNotExist):
        store.delete_experiment(eid)


def test_restore_experiment_restores_its_runs_and_clears_deleted_time(store):
    eid = store.create_experiment("exp")
    run_id = store.create_run(eid, user_id="u", start_time=1).info.run_id
    store.delete_experiment(eid)
    store.restore_experiment(eid)
    assert store.get_experiment(eid).lifecycle_stage == "active"
    row = _run_rows(store, eid)[run_id]
    assert row.lifecycle_stage == "active" and row.deleted_time is None
    with pytest.raises(ResourceDoesNotExist):
        store.restore_experiment(eid)


def test_experiment_tags_set_overwrite_and_delete(store):
    eid = store.create_experiment("exp")
    store.set_experiment_tag(eid, ExperimentTag("k", "v1"))
    store.set_experiment_tag(eid, ExperimentTag("k", "v2"))
    assert store.get_experiment(eid).tags == {"k": "v2"}
    store.delete_experiment_tag(eid, "k")
    assert store.get_experiment(eid).tags == {}
    with pytest.raises(ResourceDoesNotExist):
        store.delete_experiment_tag(eid, "k")


def test_tagging_deleted_experiment_is_refused(store):
    eid = store.create_experiment("exp")
    store.delete_experiment(eid)
    with pytest.raises(InvalidParameterValue):
        store.set_experiment_tag(eid, ExperimentTag("k", "v"))


def test_experiment_tag_value_over_limit_is_refused(store):
    eid = store.create_experiment("exp")
    with pytest.raises(InvalidParameterValue):
        store.set_experiment_tag(eid, ExperimentTag("k", "x" * 20001))


def test_ensure_default_experiment_creates_id_zero_once(store):
    assert store.ensure_default_experiment() is True
    assert store.ensure_default_experiment() is False
    exp = store.get_experiment("0")
    assert (exp.experiment_id, exp.name, exp.artifact_location) == ("0", "Default", "mlflow-artifacts:/0")
    # Inserting 0 did not take over auto-increment: the next experiment gets a fresh positive id.
    assert int(store.create_experiment("next")) > 0


def test_default_experiment_after_others_keeps_id_zero(store):
    first = store.create_experiment("first")
    store.ensure_default_experiment()
    assert store.get_experiment("0").name == "Default"
    assert int(store.create_experiment("second")) == int(first) + 1


def test_default_experiment_accepts_runs(store):
    store.ensure_default_experiment()
    run = store.create_run("0", user_id="u", start_time=1, tags=[RunTag("a", "b")])
    assert run.info.artifact_uri == f"mlflow-artifacts:/0/{run.info.run_id}/artifacts"
