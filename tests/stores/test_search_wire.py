"""A search page built straight as JSON (serialize.WIRE_RUN) is the JSON of the same page's entities."""

from __future__ import annotations

import math

import orjson

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
    ViewType,
)
from trackops.server import serialize as ser


def _varied_runs(store) -> str:
    """Runs that between them hold every part a run's JSON can have, and runs that hold none."""
    eid = store.create_experiment("wire")
    full = store.create_run(eid, user_id="alice", start_time=1000, run_name="full",
                            tags=[RunTag("team", "vision")]).info.run_id
    store.log_batch(full, metrics=[Metric("loss", 0.25, 5, 3), Metric("nan", math.nan, 6, 0),
                                   Metric("up", math.inf, 7, 1), Metric("down", -math.inf, 8, 2),
                                   Metric("big", 2.0 ** 62, 9, 2 ** 40)],
                    params=[Param("lr", "0.1"), Param("empty", "")], tags=[RunTag("note", "ü ☃")])
    store.log_inputs(full, [DatasetInput(Dataset("train", "d1", "local", "/data/train", schema='{"a": 1}',
                                                 profile='{"rows": 3}'), [InputTag("context", "training"),
                                                                          InputTag("split", "a")]),
                            DatasetInput(Dataset("eval", "d2", "s3", "s3://b/eval"))],
                     [LoggedModelInput("m-in-1"), LoggedModelInput("m-in-2")])
    store.log_outputs(full, [LoggedModelOutput("m-out-1", 4), LoggedModelOutput("m-out-2", 0)])
    store.update_run_info(full, RunStatus.FINISHED, end_time=2000, run_name="full")

    store.create_run(eid, start_time=None)  # no user, no start time, nothing logged
    failed = store.create_run(eid, user_id="bob", start_time=3000).info.run_id
    store.update_run_info(failed, RunStatus.FAILED, end_time=3500, run_name=None)
    store.log_batch(failed, metrics=[Metric("loss", 1.5, 1, 0)])
    deleted = store.create_run(eid, user_id="carol", start_time=4000).info.run_id
    store.log_outputs(deleted, [LoggedModelOutput("m-out-3", 1)])
    store.delete_run(deleted)
    return eid


def test_wire_page_is_byte_for_byte_the_entities_json_on_every_dialect(store):
    eid = _varied_runs(store)
    for view, order in ((ViewType.ALL, []), (ViewType.ACTIVE_ONLY, ["metrics.loss DESC"]),
                        (ViewType.DELETED_ONLY, ["attributes.start_time ASC"])):
        entities, token = store.search_runs([eid], run_view_type=view, order_by=order, max_results=10)
        wire, wire_token = store.search_runs([eid], run_view_type=view, order_by=order, max_results=10,
                                             make=ser.WIRE_RUN)
        assert wire_token == token
        expected = ser.page("runs", [ser.run(r) for r in entities], token)
        assert orjson.dumps(ser.page("runs", wire, wire_token)) == orjson.dumps(expected)
    everything = store.search_runs([eid], run_view_type=ViewType.ALL, make=ser.WIRE_RUN)[0]
    full = next(r for r in everything if r["info"].get("run_name") == "full")
    assert {m["key"]: m["value"] for m in full["data"]["metrics"]}["nan"] == "NaN"
    assert [d["dataset"]["name"] for d in full["inputs"]["dataset_inputs"]] == ["train", "eval"] or \
        [d["dataset"]["name"] for d in full["inputs"]["dataset_inputs"]] == ["eval", "train"]
    assert len(full["outputs"]["model_outputs"]) == 2


def test_wire_pages_follow_the_same_page_tokens(store):
    eid = store.create_experiment("pages")
    for i in range(7):
        run_id = store.create_run(eid, user_id="u", start_time=i).info.run_id
        store.log_batch(run_id, metrics=[Metric("m", float(i), i, i)], params=[Param("i", str(i))])
    token, seen = None, []
    while True:
        wire, token_w = store.search_runs([eid], max_results=3, page_token=token, make=ser.WIRE_RUN,
                                          order_by=["metrics.m ASC"])
        entities, token_e = store.search_runs([eid], max_results=3, page_token=token, order_by=["metrics.m ASC"])
        assert wire == [ser.run(r) for r in entities] and token_w == token_e
        seen += [r["data"]["params"][0]["value"] for r in wire]
        token = token_w
        if token is None:
            break
    assert seen == [str(i) for i in range(7)]
