"""serve --auth with requests that name several resources: every run, experiment and logged model a
request names is checked, so a permitted id beside a forbidden one never unlocks the forbidden one,
and nothing from a denied experiment can be linked into a user's own runs, models or versions."""

from __future__ import annotations

import pytest

from tests.auth.test_server_auth import ADMIN, API, READER, make_client

AJAX = "/ajax-api/2.0/mlflow"


@pytest.fixture
def world(sqlite_auth_url, tmp_path, monkeypatch):
    """Default NO_PERMISSIONS; the admin owns S (secret) and B (shared, READ for the reader); the reader
    owns M and registered model 'mine'."""
    with make_client(sqlite_auth_url, tmp_path, monkeypatch, "NO_PERMISSIONS") as c:
        ids = {}
        for name in ("S", "B"):
            exp = c.post(API + "/experiments/create", json={"name": name}, headers=ADMIN).json()["experiment_id"]
            run = c.post(API + "/runs/create", json={"experiment_id": exp}, headers=ADMIN).json()["run"]["info"]
            c.post(API + "/runs/log-metric", headers=ADMIN,
                   json={"run_id": run["run_id"], "key": "loss", "value": 1.0, "timestamp": 1, "step": 0})
            model = c.post(API + "/logged-models", headers=ADMIN,
                           json={"experiment_id": exp, "name": "lm", "source_run_id": run["run_id"]}).json()
            ids[name] = {"exp": exp, "run": run["run_id"], "uri": run["artifact_uri"],
                         "model": model["model"]["info"]["model_id"]}
        c.post(API + "/registered-models/create", json={"name": "secret-model"}, headers=ADMIN)
        made = c.post(API + "/model-versions/create", headers=ADMIN,
                      json={"name": "secret-model", "source": ids["S"]["uri"] + "/m", "run_id": ids["S"]["run"]})
        assert made.status_code == 200, made.text
        grant = c.post(API + "/experiments/permissions/create", headers=ADMIN,
                       json={"experiment_id": ids["B"]["exp"], "username": "reader", "permission": "READ"})
        assert grant.status_code == 200
        exp = c.post(API + "/experiments/create", json={"name": "M"}, headers=READER).json()["experiment_id"]
        run = c.post(API + "/runs/create", json={"experiment_id": exp}, headers=READER).json()["run"]["info"]
        model = c.post(API + "/logged-models", headers=READER, json={"experiment_id": exp, "name": "mine"}).json()
        ids["M"] = {"exp": exp, "run": run["run_id"], "uri": run["artifact_uri"],
                    "model": model["model"]["info"]["model_id"]}
        assert c.post(API + "/registered-models/create", json={"name": "mine"}, headers=READER).status_code == 200
        yield c, ids


def denied(response) -> bool:
    return response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("prefix", [API, AJAX])
def test_bulk_metric_history_with_one_forbidden_run_is_refused(world, prefix):
    c, ids = world
    s, b = ids["S"]["run"], ids["B"]["run"]
    bulk = prefix + "/metrics/get-history-bulk"
    interval = prefix + "/metrics/get-history-bulk-interval"
    for query in ([("run_id", s), ("run_id", b)], [("run_id", b), ("run_id", s)], [("run_id", b), ("run_ids", s)],
                  [("run_id", b), ("run_uuid", s)]):
        response = c.get(bulk, params=query + [("metric_key", "loss")], headers=READER)
        assert denied(response), (query, response.text)
    for query in ([("run_ids", s), ("run_ids", b)], [("run_ids", b), ("run_id", s)]):
        response = c.get(interval, params=query + [("metric_key", "loss")], headers=READER)
        assert denied(response), (query, response.text)
    allowed = c.get(bulk, params=[("run_id", b), ("metric_key", "loss")], headers=READER)
    assert allowed.status_code == 200 and {m["run_id"] for m in allowed.json()["metrics"]} == {b}
    allowed = c.get(interval, params=[("run_ids", b), ("metric_key", "loss")], headers=READER)
    assert allowed.status_code == 200 and {m["run_id"] for m in allowed.json()["metrics"]} == {b}


def test_an_unknown_run_beside_a_forbidden_one_does_not_open_the_forbidden_one(world):
    c, ids = world
    for route, name in (("get-history-bulk", "run_id"), ("get-history-bulk-interval", "run_ids")):
        for pair in (["0" * 32, ids["S"]["run"]], [ids["S"]["run"], "0" * 32]):
            response = c.get(f"{AJAX}/metrics/{route}", headers=READER,
                             params=[(name, pair[0]), (name, pair[1]), ("metric_key", "loss")])
            assert response.status_code in (403, 404), response.text
            assert "metrics" not in response.text


def test_a_repeated_run_id_on_a_single_run_route_is_checked_in_full(world):
    c, ids = world
    response = c.get(API + "/runs/get", headers=READER, params=[("run_id", ids["S"]["run"]), ("run_id", ids["B"]["run"])])
    assert denied(response)
    response = c.get(API + "/metrics/get-history", headers=READER,
                     params=[("run_uuid", ids["S"]["run"]), ("run_id", ids["B"]["run"]), ("metric_key", "loss")])
    assert denied(response)


def test_searches_with_forbidden_experiment_ids_return_only_permitted_data(world):
    c, ids = world
    both = [ids["S"]["exp"], ids["B"]["exp"]]
    runs = c.post(API + "/runs/search", json={"experiment_ids": both}, headers=READER).json()
    assert [r["info"]["run_id"] for r in runs["runs"]] == [ids["B"]["run"]]
    models = c.post(API + "/logged-models/search", json={"experiment_ids": both}, headers=READER).json()
    assert [m["info"]["model_id"] for m in models["models"]] == [ids["B"]["model"]]
    versions = c.get(API + "/model-versions/search", headers=READER,
                     params={"filter": f"run_id = '{ids['S']['run']}'"})
    assert versions.status_code == 200 and versions.json() == {}
    admin = c.get(API + "/model-versions/search", headers=ADMIN, params={"filter": f"run_id = '{ids['S']['run']}'"})
    assert len(admin.json()["model_versions"]) == 1


def test_objects_of_a_denied_experiment_cannot_be_linked_into_ones_own(world):
    c, ids = world
    s, m = ids["S"], ids["M"]
    attempts = [
        ("/model-versions/create", {"name": "mine", "source": s["uri"] + "/model", "run_id": s["run"]}),
        ("/model-versions/create", {"name": "mine", "source": s["uri"] + "/model"}),
        ("/model-versions/create", {"name": "mine", "source": f"runs:/{s['run']}/model"}),
        ("/model-versions/create", {"name": "mine", "source": f"models:/{s['model']}"}),
        ("/model-versions/create", {"name": "mine", "source": m["uri"] + "/model", "model_id": s["model"]}),
        ("/model-versions/create", {"name": "mine", "source": "models:/secret-model/1"}),
        ("/model-versions/create", {"name": "mine", "source": m["uri"] + "/model", "run_id": "0" * 32}),
        ("/logged-models", {"experiment_id": m["exp"], "name": "x", "source_run_id": s["run"]}),
        ("/logged-models", {"experiment_id": m["exp"], "name": "x", "source_run_id": "0" * 32}),
        ("/runs/outputs", {"run_id": m["run"], "models": [{"model_id": s["model"], "step": 0}]}),
        ("/runs/log-inputs", {"run_id": m["run"], "models": [{"model_id": s["model"]}]}),
        ("/runs/log-inputs", {"run_id": m["run"], "models": [{"model_id": m["model"]}, {"model_id": s["model"]}]}),
        ("/runs/log-metric", {"run_id": m["run"], "key": "k", "value": 1, "timestamp": 1, "model_id": s["model"]}),
        ("/runs/log-batch", {"run_id": m["run"], "metrics": [{"key": "k", "value": 1, "timestamp": 1,
                                                              "model_id": s["model"]}]}),
    ]
    for path, body in attempts:
        response = c.post(API + path, json=body, headers=READER)
        assert denied(response), (path, body, response.text)
    missing = c.get(API + "/model-versions/get-download-uri", params={"name": "mine", "version": "1"}, headers=READER)
    assert missing.status_code == 404
    # the same requests with the reader's own objects work
    own = [
        ("/model-versions/create", {"name": "mine", "source": f"models:/{m['model']}", "model_id": m["model"]}),
        ("/model-versions/create", {"name": "mine", "source": m["uri"] + "/model", "run_id": m["run"]}),
        ("/logged-models", {"experiment_id": m["exp"], "name": "y", "source_run_id": m["run"]}),
        ("/runs/outputs", {"run_id": m["run"], "models": [{"model_id": m["model"], "step": 0}]}),
        ("/runs/log-inputs", {"run_id": m["run"], "models": [{"model_id": m["model"]}]}),
    ]
    for path, body in own:
        response = c.post(API + path, json=body, headers=READER)
        assert response.status_code == 200, (path, response.text)
    uri = c.get(API + "/model-versions/get-download-uri", params={"name": "mine", "version": "1"}, headers=READER)
    assert uri.status_code == 200 and f"/{m['exp']}/" in uri.json()["artifact_uri"]
