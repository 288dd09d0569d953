"""Strings are strings on the tracking routes: tag/param values and view types as MLflow 3.17.2 reads them."""

from __future__ import annotations

import pytest

from tests.server.test_protocol_limits import API, assert_400, client, raw_post, root  # noqa: F401 - fixtures


@pytest.mark.parametrize("route, literal", [("/runs/set-tag", "5"), ("/runs/log-parameter", "NaN"),
                                            ("/runs/set-tag", "true"), ("/runs/log-parameter", "-Infinity"),
                                            ("/runs/set-tag", '["a"]')])
def test_a_non_string_tag_or_param_value_is_mlflows_400_and_stores_nothing(client, route, literal):
    run_id = client.post(API + "/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    r = raw_post(client, route, '{"run_id": "%s", "key": "k", "value": %s}' % (run_id, literal))
    assert_400(r, "for parameter 'value' supplied:  Hint: Value was of type")
    data = client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert "k" not in {x["key"] for kind in ("params", "tags") for x in data.get(kind, [])}


def test_a_non_string_value_inside_a_batch_entry_is_stored_empty_as_mlflow_does(client):
    run_id = client.post(API + "/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    body = '{"run_id": "%s", "params": [{"key": "p", "value": NaN}], "tags": [{"key": "t", "value": 5}]}' % run_id
    assert raw_post(client, "/runs/log-batch", body).status_code == 200
    data = client.get(API + "/runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert {"key": "p", "value": ""} in data["params"] and {"key": "t", "value": ""} in data["tags"]


@pytest.mark.parametrize("route, view", [("/experiments/search?view_type=NaN", None),
                                         ("/runs/search", '{"experiment_ids": ["0"], "run_view_type": "x"}'),
                                         ("/experiments/search?view_type=7", None)])
def test_an_unknown_view_type_is_400_not_500(client, route, view):
    r = client.get(API + route) if view is None else raw_post(client, route, view)
    assert_400(r, "expected ACTIVE_ONLY, DELETED_ONLY or ALL")

