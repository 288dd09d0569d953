"""search_runs / search_experiments: pages of fully loaded entities over the search query builder."""

from __future__ import annotations

import pytest

from trackops.entities import (
    Dataset,
    DatasetInput,
    ExperimentTag,
    LoggedModelOutput,
    Metric,
    Param,
    RunTag,
    ViewType,
)
from trackops.errors import InvalidParameterValue


def test_search_runs_pages_and_loads_everything(store):
    eid = store.create_experiment("exp")
    run_ids = []
    for i in range(7):
        rid = store.create_run(eid, start_time=1000 + i, run_name=f"r{i}").info.run_id
        store.log_batch(rid, [Metric("acc", i / 10, 1, 0)], [Param("i", str(i))], [RunTag("t", "x")])
        store.log_inputs(rid, [DatasetInput(Dataset("d", "g", "local", "{}"))])
        store.log_outputs(rid, [LoggedModelOutput(f"m-{i}", i)])
        run_ids.append(rid)
    pages, token = [], None
    while True:
        page, token = store.search_runs([eid], max_results=3, page_token=token)
        pages.append(page)
        if token is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    found = [r for p in pages for r in p]
    # Default order: newest start_time first.
    assert [r.info.run_id for r in found] == list(reversed(run_ids))
    for run in found:
        i = int(run.data.params_dict["i"])
        assert run.data.metrics_dict == {"acc": i / 10}
        assert run.inputs.dataset_inputs[0].dataset.name == "d"
        assert run.outputs.model_outputs == [LoggedModelOutput(f"m-{i}", i)]


def test_search_runs_filter_order_and_view_type(store):
    eid = store.create_experiment("exp")
    ids = {}
    for i in range(4):
        rid = store.create_run(eid, start_time=1, run_name=f"r{i}").info.run_id
        store.log_metric(rid, Metric("acc", float(i), 1, 0))
        ids[i] = rid
    store.delete_run(ids[3])
    found, _ = store.search_runs([eid], "metrics.acc >= 1", order_by=["metrics.acc DESC"])
    assert [r.info.run_id for r in found] == [ids[2], ids[1]]
    deleted, _ = store.search_runs([eid], None, ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids[3]]
    everything, _ = store.search_runs([eid], "", "ALL")
    assert len(everything) == 4


def test_search_runs_rejects_bad_max_results(store):
    with pytest.raises(InvalidParameterValue):
        store.search_runs(["0"], max_results=0)
    with pytest.raises(InvalidParameterValue):
        store.search_runs(["0"], max_results=50001)


def test_search_experiments_pages_with_tags(store):
    made = [store.create_experiment(f"e{i}", tags=[ExperimentTag("n", str(i))]) for i in range(5)]
    pages, token = [], None
    while True:
        page, token = store.search_experiments(max_results=2, page_token=token)
        pages.append(page)
        if token is None:
            break
    found = [e for p in pages for e in p]
    assert sorted(e.experiment_id for e in found) == sorted(made)
    assert all(e.tags == {"n": e.name[1:]} for e in found)
    named, _ = store.search_experiments(filter_string="name = 'e3'")
    assert [e.name for e in named] == ["e3"]
    store.delete_experiment(made[0])
    deleted, _ = store.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert [e.experiment_id for e in deleted] == [made[0]]
