"""Experiment locations and model-version sources: the same bad requests to `mlflow server` 3.17.2 and
`trackops serve` get the same status, error code and message; with --auth a location outside the
artifact root needs an administrator.

One deliberate difference: MLflow stores an ``artifact_location`` with a ``..`` path segment
(``mlflow-artifacts:/../../etc``); trackops refuses it with 400 INVALID_PARAMETER_VALUE.
"""

from __future__ import annotations

import uuid

import pytest
import requests

pytest.importorskip("mlflow")

from tests.compat.server import ServerProcess  # noqa: E402
from tests.compat.test_wire_oracle import mlflow_server  # noqa: E402,F401 - the shared oracle fixture

BAD_LOCATIONS = ["file:///tmp/x#frag", "s3://bucket/x#f", "http://h/x;p", "s3://bucket/x?a=../../b",
                 "s3://bucket/x?a=%2e%2e/b", "runs:/abc/x", "http://evil.example/x", "https://evil.example/x",
                 "ftp://h/x", "mlflow-artifacts://evil:80/x"]
GOOD_LOCATIONS = ["file:///some/other/folder", "s3://bucket/x;p", "s3://bucket/x?region=eu"]
CLIMBING_LOCATIONS = ["mlflow-artifacts:/../../etc", "file:///tmp/x/../y", "s3://bucket/a/%2e%2e/b"]
# (source, with the run's id as run_id); {art} is the run's artifact URI, {run} its id, {other} another run's.
BAD_SOURCES = [("file:///etc", False), ("/etc/passwd", False), ("file:///etc", True), ("/etc/passwd", True),
               ("mlflow-artifacts:/../../etc", False), ("runs:/{run}/../../..", True), ("runs:/{run}/../../..", False),
               ("{art}/../../x", True), ("{art}/model", False), ("mlflow-artifacts:/0/{other}/artifacts/m", True),
               ("runs:/{other}/model", True), ("runs://host/x", True), ("s3://bucket/a/../b", False),
               ("s3://bucket", False), ("mlflow-artifacts:/x/..%2f..%2fetc", True), ("http://h/x", False),
               ("models://host/m-1", False), ("models:/m-123", False)]
GOOD_SOURCES = [("{art}/model", True), ("runs:/{run}/model", True), ("s3://bucket/a/b", False)]
# Versions of a prompt (tag mlflow.prompt.is_prompt=true): only MLflow's placeholders are sources.
BAD_PROMPT_SOURCES = ["s3://bucket/prompt", "/etc/passwd", "runs:/{run}/model"]
GOOD_PROMPT_SOURCES = ["dummy-source", "prompt-template"]
PROMPT_TAGS = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]


@pytest.fixture(scope="module")
def trackops_server(tmp_path_factory):
    server = ServerProcess([], tmp_path_factory.mktemp("trackops-locations"))
    yield server.url
    server.stop()


def _answer(r: requests.Response, replace: dict[str, str]) -> tuple:
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    message = body.get("message", "")
    for real, placeholder in replace.items():
        message = message.replace(real, placeholder)
    return r.status_code, body.get("error_code"), message if r.status_code != 200 else ""


def answers(base: str) -> dict[str, tuple]:
    """label -> (status, error_code, message with ids replaced) for every request above."""
    api, s, tag = base + "/api/2.0/mlflow", requests.Session(), uuid.uuid4().hex[:8]
    eid = s.post(api + "/experiments/create", json={"name": f"base-{tag}"}, timeout=30).json()["experiment_id"]
    run = s.post(api + "/runs/create", json={"experiment_id": eid}, timeout=30).json()["run"]["info"]
    other = s.post(api + "/runs/create", json={"experiment_id": eid}, timeout=30).json()["run"]["info"]["run_id"]
    model = f"m-{tag}"
    s.post(api + "/registered-models/create", json={"name": model}, timeout=30).raise_for_status()
    replace = {run["artifact_uri"]: "{art}", run["run_id"]: "{run}", other: "{other}"}
    out = {}
    for i, location in enumerate(BAD_LOCATIONS + GOOD_LOCATIONS + CLIMBING_LOCATIONS):
        r = s.post(api + "/experiments/create", json={"name": f"e{i}-{tag}", "artifact_location": location},
                   timeout=30)
        out[f"location {location}"] = _answer(r, replace)
    for template, with_run in BAD_SOURCES + GOOD_SOURCES:
        source = template.format(art=run["artifact_uri"], run=run["run_id"], other=other)
        body = {"name": model, "source": source, **({"run_id": run["run_id"]} if with_run else {})}
        r = s.post(api + "/model-versions/create", json=body, timeout=30)
        out[f"source {template} run_id={with_run}"] = _answer(r, replace)
    prompt = f"p-{tag}"
    s.post(api + "/registered-models/create", json={"name": prompt, "tags": PROMPT_TAGS}, timeout=30).raise_for_status()
    for template in BAD_PROMPT_SOURCES + GOOD_PROMPT_SOURCES:
        body = {"name": prompt, "source": template.format(run=run["run_id"]), "tags": PROMPT_TAGS}
        out[f"prompt source {template}"] = _answer(s.post(api + "/model-versions/create", json=body, timeout=30),
                                                   replace)
    return out


@pytest.fixture(scope="module")
def both(mlflow_server, trackops_server):  # noqa: F811
    """(MLflow's answers, trackops' answers) to the same requests."""
    return answers(mlflow_server), answers(trackops_server)


def test_bad_locations_and_sources_get_mlflows_status_code_and_message(both):
    expected, got = both
    for label in expected:
        if any(label == f"location {c}" for c in CLIMBING_LOCATIONS):
            continue
        assert got[label] == expected[label], label
    for location in BAD_LOCATIONS:
        assert expected[f"location {location}"][:2] == (400, "INVALID_PARAMETER_VALUE")
    for template, with_run in BAD_SOURCES:
        assert expected[f"source {template} run_id={with_run}"][:2] == (400, "INVALID_PARAMETER_VALUE")
    for template, with_run in GOOD_SOURCES:
        assert got[f"source {template} run_id={with_run}"][0] == 200
    for template in BAD_PROMPT_SOURCES:
        assert expected[f"prompt source {template}"][:2] == (400, "INVALID_PARAMETER_VALUE")
    for template in GOOD_PROMPT_SOURCES:
        assert got[f"prompt source {template}"][0] == 200


def test_a_location_that_climbs_with_dot_dot_is_refused_where_mlflow_stores_it(both):
    expected, got = both
    for location in CLIMBING_LOCATIONS:
        assert expected[f"location {location}"][0] == 200
        status, code, message = got[f"location {location}"]
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE") and "'..'" in message


def test_with_auth_a_location_outside_the_artifact_root_needs_an_administrator(sqlite_head_url, tmp_path,
                                                                               monkeypatch):
    from tests.auth.conftest import with_own_tables
    from tests.auth.test_server_auth import ADMIN, WRITER, make_client
    from trackops.auth import passwords

    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)
    monkeypatch.setattr(passwords, "_DUMMY", None)
    outside = (tmp_path / "elsewhere").as_uri()
    with make_client(with_own_tables(sqlite_head_url), tmp_path, monkeypatch) as client:
        def create(who, name, location):
            return client.post("/api/2.0/mlflow/experiments/create", headers=who,
                               json={"name": name, "artifact_location": location})

        refused = create(WRITER, "w-out", outside)
        assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
        assert "administrators" in refused.json()["message"] and str(tmp_path) not in refused.json()["message"]
        assert create(WRITER, "w-root", "mlflow-artifacts:/").status_code == 403  # the whole root
        assert create(WRITER, "w-in", "mlflow-artifacts:/team-a").status_code == 200
        assert create(WRITER, "w-in-local", (tmp_path / "art" / "team-b").as_uri()).status_code == 200
        assert create(ADMIN, "a-out", outside).status_code == 200
        assert create(WRITER, "w-bad", "runs:/x/y").status_code == 400  # validation before permission
