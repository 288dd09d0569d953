"""trackops and MLflow's own SqlAlchemyStore take turns on one database and read the same values.

MLflow 3.17.2 is the oracle here (test-only import). Each test writes with one store and reads with
both, comparing normalised runs, experiments and histories field by field.
"""

from __future__ import annotations

import math
import random

import pytest

from tests.stores.conftest import mlflow_store
from trackops import entities as t

mlflow_entities = pytest.importorskip("mlflow.entities")


@pytest.fixture
def stores(store, head_db_url):
    """(trackops store, MLflow store) on the same database."""
    return store, mlflow_store(head_db_url)


def _num(v: float):
    return "nan" if math.isnan(v) else v


def norm_run(run) -> dict:
    info = run.info
    data = run.data
    metrics = getattr(data, "_metric_objs", None)
    if metrics is None:
        metrics = data.metrics
    datasets = []
    for di in run.inputs.dataset_inputs:
        d = di.dataset
        datasets.append((d.name, d.digest, d.source_type, d.source, d.schema, d.profile,
                         sorted((tag.key, tag.value) for tag in di.tags)))
    return {
        "info": (info.run_id, str(info.experiment_id), info.user_id, str(info.status), info.start_time,
                 info.end_time, info.lifecycle_stage, info.artifact_uri, info.run_name),
        "metrics": sorted((m.key, _num(m.value), m.timestamp, m.step) for m in metrics),
        "params": sorted((p.key, p.value) for p in (data.params if isinstance(data.params, list) else
                                                   [t.Param(k, v) for k, v in data.params.items()])),
        "tags": sorted((x.key, x.value) for x in (data.tags if isinstance(data.tags, list) else
                                                 [t.RunTag(k, v) for k, v in data.tags.items()])),
        "datasets": sorted(datasets),
        "outputs": sorted((o.model_id, o.step) for o in (run.outputs.model_outputs if run.outputs else [])),
    }


def norm_experiment(exp) -> tuple:
    return (str(exp.experiment_id), exp.name, exp.artifact_location, exp.lifecycle_stage, dict(exp.tags),
            exp.creation_time, exp.last_update_time)


def norm_history(points) -> list:
    return [(_num(m.value), m.timestamp, m.step) for m in points]


METRICS = [("loss", 0.5, 10, 0), ("loss", 0.25, 20, 1), ("loss", math.nan, 30, 2), ("loss", 0.1, 5, 1),
           ("acc", math.inf, 1, 0), ("acc", -math.inf, 2, 0), ("acc", 0.75, 2, 0), ("lr", 1e-3, 7, 3),
           ("lr", 1e-3, 7, 3)]


def test_what_trackops_writes_mlflow_reads_identically(stores):
    ours, theirs = stores
    eid = ours.create_experiment("from-trackops", tags=[t.ExperimentTag("team", "ml")])
    run = ours.create_run(eid, user_id="alice", start_time=1234, tags=[t.RunTag("src", "x")])
    rid = run.info.run_id
    ours.log_batch(rid, [t.Metric(*m) for m in METRICS], [t.Param("lr", "0.001"), t.Param("depth", "3")],
                   [t.RunTag("stage", "dev")])
    ours.log_inputs(rid, [t.DatasetInput(t.Dataset("train", "d1g", "local", '{"uri": "x"}', '{"s": 1}', None),
                                         [t.InputTag("mlflow.data.context", "training")])])
    ours.log_outputs(rid, [t.LoggedModelOutput("m-0123", 4)])
    ours.update_run_info(rid, t.RunStatus.FINISHED, end_time=5678)

    assert norm_experiment(theirs.get_experiment(eid)) == norm_experiment(ours.get_experiment(eid))
    assert norm_run(theirs.get_run(rid)) == norm_run(ours.get_run(rid))
    for key in ("loss", "acc", "lr"):
        assert norm_history(theirs.get_metric_history(rid, key)) == norm_history(ours.get_metric_history(rid, key)[0])
    found = theirs.search_runs([eid], "", mlflow_entities.ViewType.ALL)
    assert [norm_run(r) for r in found] == [norm_run(ours.get_run(rid))]


def test_what_mlflow_writes_trackops_reads_identically(stores):
    ours, theirs = stores
    M = mlflow_entities
    eid = theirs.create_experiment("from-mlflow", tags=[M.ExperimentTag("team", "ml")])
    run = theirs.create_run(eid, user_id="bob", start_time=99, tags=[M.RunTag("src", "y")], run_name=None)
    rid = run.info.run_id
    theirs.log_batch(rid, [M.Metric(*m) for m in METRICS], [M.Param("lr", "0.001")], [M.RunTag("stage", "prod")])
    theirs.log_inputs(rid, [M.DatasetInput(M.Dataset("eval", "d2g", "local", '{"uri": "y"}', None, '{"n": 2}'),
                                           [M.InputTag("mlflow.data.context", "eval")])])
    theirs.log_outputs(rid, [M.LoggedModelOutput("m-0456", 2)])
    theirs.update_run_info(rid, M.RunStatus.from_string("KILLED"), 777, "renamed-by-mlflow")

    assert norm_experiment(ours.get_experiment(eid)) == norm_experiment(theirs.get_experiment(eid))
    assert norm_run(ours.get_run(rid)) == norm_run(theirs.get_run(rid))
    for key in ("loss", "acc", "lr"):
        assert norm_history(ours.get_metric_history(rid, key)[0]) == norm_history(theirs.get_metric_history(rid, key))
    found, token = ours.search_runs([eid], None, t.ViewType.ALL)
    assert token is None and [norm_run(r) for r in found] == [norm_run(theirs.get_run(rid))]


def test_latest_metrics_agree_with_mlflow_on_a_random_stream(stores):
    ours, theirs = stores
    M = mlflow_entities
    eid = ours.create_experiment("stream")
    ours_run = ours.create_run(eid, start_time=1).info.run_id
    their_run = theirs.create_run(eid, "u", 1, [], None).info.run_id
    rng = random.Random(7)
    values = [0.0, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf]
    for _ in range(12):
        batch = [(rng.choice("abc"), rng.choice(values), rng.randrange(5), rng.randrange(4)) for _ in range(15)]
        ours.log_batch(ours_run, [t.Metric(*m) for m in batch])
        theirs.log_batch(their_run, [M.Metric(*m) for m in batch], [], [])

    def latest(run):
        return sorted((m.key, _num(m.value), m.timestamp, m.step) for m in run.data.metrics) \
            if isinstance(run.data.metrics, list) else \
            sorted((m.key, _num(m.value), m.timestamp, m.step) for m in run.data._metric_objs)

    assert latest(ours.get_run(ours_run)) == latest(theirs.get_run(their_run))


def test_deleted_run_is_seen_as_deleted_by_mlflow_gc_query(stores):
    ours, theirs = stores
    eid = ours.create_experiment("gc")
    rid = ours.create_run(eid, start_time=1).info.run_id
    ours.delete_run(rid)
    assert theirs.get_run(rid).info.lifecycle_stage == "deleted"
    assert rid in theirs._get_deleted_runs(older_than=0)
    ours.restore_run(rid)
    assert rid not in theirs._get_deleted_runs(older_than=0)


def test_deleted_experiment_marks_runs_as_mlflow_does(stores):
    ours, theirs = stores
    eid_ours = ours.create_experiment("ours")
    eid_theirs = ours.create_experiment("theirs")
    r1 = ours.create_run(eid_ours, start_time=1).info.run_id
    r2 = ours.create_run(eid_theirs, start_time=1).info.run_id
    ours.delete_experiment(eid_ours)
    theirs.delete_experiment(eid_theirs)
    for rid in (r1, r2):
        assert ours.get_run(rid).info.lifecycle_stage == theirs.get_run(rid).info.lifecycle_stage == "deleted"
        assert rid in theirs._get_deleted_runs(older_than=0)


def test_errors_carry_mlflow_error_codes(stores):
    ours, theirs = stores
    eid = ours.create_experiment("errors")
    rid = ours.create_run(eid, start_time=1).info.run_id
    ours.log_param(rid, t.Param("p", "1"))
    ours.delete_run(rid)
    from mlflow.exceptions import MlflowException

    cases = [
        (lambda: ours.log_metric(rid, t.Metric("m", 1.0, 1, 0)),
         lambda: theirs.log_metric(rid, mlflow_entities.Metric("m", 1.0, 1, 0))),
        (lambda: ours.get_run("f" * 32), lambda: theirs.get_run("f" * 32)),
        (lambda: ours.create_experiment("errors"), lambda: theirs.create_experiment("errors")),
        (lambda: ours.get_experiment("424242"), lambda: theirs.get_experiment("424242")),
    ]
    for ours_call, their_call in cases:
        with pytest.raises(MlflowException) as theirs_err:
            their_call()
        with pytest.raises(Exception) as ours_err:
            ours_call()
        assert ours_err.value.error_code == theirs_err.value.error_code


def test_default_experiment_is_shared(stores, head_db_url):
    ours, theirs = stores
    # Opening MLflow's store created experiment 0; trackops sees it and does not create another.
    assert ours.ensure_default_experiment() is False
    assert norm_experiment(ours.get_experiment("0")) == norm_experiment(theirs.get_experiment("0"))


def test_mlflow_accepts_the_default_experiment_trackops_created(store, head_db_url):
    assert store.ensure_default_experiment() is True
    theirs = mlflow_store(head_db_url)
    exp = theirs.get_experiment("0")
    assert (exp.name, exp.artifact_location, exp.lifecycle_stage) == ("Default", "mlflow-artifacts:/0", "active")
    run = theirs.create_run("0", "u", 1, [], None)
    assert store.get_run(run.info.run_id).info.experiment_id == "0"
