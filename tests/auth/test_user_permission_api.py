"""MLflow 3.17's per-user permission API against a real `trackops serve --auth`: the official
`AuthServiceClient` grants, revokes and reads permissions, a grant decides the user's next request,
and the error cases carry the codes and messages of `mlflow server --app-name basic-auth`.

The servers run with `--default-permission NO_PERMISSIONS`, so a user sees an experiment only while
granted on it."""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid

import pytest

from tests.auth.conftest import live_auth_server, restore_environ
from tests.auth.test_trace_permissions import http

ADMIN = ("root", "admin-password-1")
ALICE = ("alice", "alice-password-1")
BOB = ("bob", "bob-password-1")
V3 = "/api/3.0/mlflow/users/permissions"


class As:
    """MLFLOW_TRACKING_USERNAME / PASSWORD set to `user` for the block (the clients read them per request)."""

    def __init__(self, user: tuple[str, str]):
        self.user = user

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = self.user
        return self

    def __exit__(self, *exc):
        restore_environ(self.saved)


def setup_world(url: str) -> dict:
    """alice and bob (no grants), and an experiment made by the administrator."""
    import mlflow

    with As(ADMIN):
        auth = mlflow.server.get_app_client("basic-auth", tracking_uri=url)
        for name, password in (ALICE, BOB):
            auth.create_user(name, password)
        exp = mlflow.MlflowClient(url).create_experiment(f"shared-{uuid.uuid4().hex[:6]}")
    return {"exp": exp}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    pytest.importorskip("mlflow.server.auth")
    work = tmp_path_factory.mktemp(f"user-perms-{request.param}")
    with live_auth_server(request.param, work, ADMIN, "--default-permission", "NO_PERMISSIONS") as (proc, _db):
        proc.ids = setup_world(proc.url)
        yield proc


def refused(call) -> tuple[int, str]:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as err:
        call()
    return err.value.get_http_status_code(), err.value.error_code


def test_a_read_grant_lets_the_user_read_not_write_and_a_revoke_refuses_again(live):
    import mlflow

    exp = live.ids["exp"]
    auth = mlflow.server.get_app_client("basic-auth", tracking_uri=live.url)
    client = mlflow.MlflowClient(live.url)
    with As(ALICE):
        assert refused(lambda: client.get_experiment(exp)) == (403, "PERMISSION_DENIED")
    with As(ADMIN):
        auth.grant_user_permission(ALICE[0], "experiment", exp, "READ")
        got = auth.get_user_permission(ALICE[0], "experiment", exp)
        assert (got.permission, got.allowed) == ("READ", False)  # allowed is MLflow's can_use: USE and up
    with As(ALICE):  # the very next request sees the grant
        assert client.get_experiment(exp).experiment_id == exp
        assert refused(lambda: client.set_experiment_tag(exp, "k", "v")) == (403, "PERMISSION_DENIED")
        assert refused(lambda: client.create_run(exp)) == (403, "PERMISSION_DENIED")
        mine = auth.get_user_permission(ALICE[0], "experiment", exp)  # a user may ask about themselves
        assert (mine.permission, mine.allowed) == ("READ", False)
    with As(ADMIN):
        auth.revoke_user_permission(ALICE[0], "experiment", exp)
        got = auth.get_user_permission(ALICE[0], "experiment", exp)
        assert (got.permission, got.allowed) == ("NO_PERMISSIONS", False)  # the server's default
    with As(ALICE):
        assert refused(lambda: client.get_experiment(exp)) == (403, "PERMISSION_DENIED")


def test_a_manage_grant_lets_the_user_grant_others_and_edit_is_allowed(live):
    import mlflow

    exp = live.ids["exp"]
    auth = mlflow.server.get_app_client("basic-auth", tracking_uri=live.url)
    with As(BOB):  # bob holds nothing on it: granting needs MANAGE
        assert refused(lambda: auth.grant_user_permission(ALICE[0], "experiment", exp, "EDIT")) == (
            403, "PERMISSION_DENIED")
    with As(ADMIN):
        auth.grant_user_permission(BOB[0], "experiment", exp, "MANAGE")
    with As(BOB):
        auth.grant_user_permission(ALICE[0], "experiment", exp, "EDIT")
        assert refused(lambda: auth.get_user_permission(ALICE[0], "experiment", exp)) == (403, "PERMISSION_DENIED")
    with As(ALICE):
        mlflow.MlflowClient(live.url).set_experiment_tag(exp, "k", "v")
        got = auth.get_user_permission(ALICE[0], "experiment", exp)
        assert (got.permission, got.allowed) == ("EDIT", True)
        unknown = auth.get_user_permission(ALICE[0], "experiment", "987654")
        assert (unknown.permission, unknown.allowed) == ("NO_PERMISSIONS", False)
    with As(ADMIN):
        auth.revoke_user_permission(ALICE[0], "experiment", exp)
        auth.revoke_user_permission(BOB[0], "experiment", exp)


def test_current_user_and_the_listings_answer_in_mlflows_shapes(live):
    exp = live.ids["exp"]
    status, body = http(live.url, "GET", "/api/2.0/mlflow/users/current", BOB)
    assert status == 200
    current = json.loads(body)
    assert current["is_basic_auth"] is True and current["user"]["username"] == "bob"
    assert set(current["user"]) == {"id", "username", "is_admin"} and current["user"]["is_admin"] is False

    status, body = http(live.url, "GET", "/ajax-api/2.0/mlflow/users/list", BOB)
    assert status == 200
    users = {u["username"]: u for u in json.loads(body)["users"]}
    assert set(users) == {"root", "alice", "bob"} and users["root"]["is_admin"] and users["bob"]["roles"] == []

    grant = {"username": "bob", "resource_type": "experiment", "resource_id": exp, "permission": "USE"}
    assert http(live.url, "POST", V3 + "/grant", ADMIN, json.dumps(grant).encode())[0] == 200
    status, body = http(live.url, "GET", "/api/3.0/mlflow/users/current/permissions", BOB)
    assert status == 200
    assert json.loads(body) == {"is_admin": False, "permissions": [
        {"role_id": 0, "role_name": f"__user_{current['user']['id']}__", "workspace": "default",
         "resource_type": "experiment", "resource_pattern": exp, "permission": "READ"}]}  # USE is stored as READ
    assert http(live.url, "GET", V3 + "/list?username=alice", BOB)[0] == 403
    status, body = http(live.url, "GET", V3 + "/list?username=bob", ADMIN)
    assert status == 200 and [p["resource_pattern"] for p in json.loads(body)["permissions"]] == [exp]
    revoke = {"username": "bob", "resource_type": "experiment", "resource_id": exp}
    assert http(live.url, "POST", V3 + "/revoke", ADMIN, json.dumps(revoke).encode())[0] == 200


# --- error answers ------------------------------------------------------------------------------------

_TYPES = ("('assessment', 'experiment', 'gateway_endpoint', 'gateway_model_definition', 'gateway_secret', "
          "'logged_model', 'mcp_server', 'mcp_server_version', 'prompt', 'prompt_version', 'registered_model', "
          "'registered_model_version', 'review_queue', 'run', 'scorer', 'scorer_version', 'trace', 'workspace')")
_MISSING = "Missing value for required parameter '{}'. See the API docs for more information about request parameters."
_NOBODY = (404, "RESOURCE_DOES_NOT_EXIST", "User with username=nobody not found")


def error_probes(exp: str) -> list[tuple[str, str, dict, tuple[int, str, str]]]:
    """(method, endpoint, parameters, answer) for requests of an administrator that MLflow refuses, with
    the answers `mlflow server --app-name basic-auth` (3.17.2) gives them; after a READ grant of alice
    on `exp`. (A comparison with that server costs a minute: its basic auth hashes the password on
    every request.)"""
    def grant(**over):
        return {"username": "alice", "resource_type": "experiment", "resource_id": exp, "permission": "READ", **over}

    def bad(message):
        return (400, "INVALID_PARAMETER_VALUE", message)
    return [
        ("POST", "grant", {k: v for k, v in grant().items() if k != "permission"}, bad(_MISSING.format("permission"))),
        ("POST", "grant", {k: v for k, v in grant().items() if k != "username"}, bad(_MISSING.format("username"))),
        ("POST", "grant", grant(username="nobody"), _NOBODY),
        ("POST", "grant", grant(resource_type="dataset"),
         bad(f"Invalid resource type 'dataset'. Valid resource types are: {_TYPES}")),
        ("POST", "grant", grant(resource_type="workspace"),
         bad("resource_type 'workspace' is not supported by the per-user permission convenience APIs. Use "
             "set_workspace_permission / delete_workspace_permission for workspace-wide grants.")),
        ("POST", "grant", grant(resource_type="run"),
         bad(f"Invalid resource_pattern '{exp}' for resource_type='run'. This resource type supports only "
             "wildcard ('*') grants.")),
        ("POST", "grant", grant(permission="OWNER"),
         bad("Invalid permission 'OWNER'. Valid permissions are: ('READ', 'USE', 'EDIT', 'MANAGE', "
             "'NO_PERMISSIONS', 'DENY')")),
        ("POST", "grant", grant(permission="NO_PERMISSIONS"),
         bad("Invalid permission 'NO_PERMISSIONS' for resource_type='experiment'. Resource-level grants accept "
             "only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE').")),
        ("POST", "grant", grant(permission="EDIT"),
         (400, "RESOURCE_ALREADY_EXISTS",
          f"Permission for user=alice on resource_type=experiment, resource_id={exp} already exists.")),
        ("POST", "revoke", {"username": "alice", "resource_type": "registered_model", "resource_id": "no-such"},
         (404, "RESOURCE_DOES_NOT_EXIST",
          "Permission for user=alice on resource_type=registered_model, resource_id=no-such not found.")),
        ("POST", "revoke", {"username": "nobody", "resource_type": "experiment", "resource_id": exp}, _NOBODY),
        ("GET", "get", {"username": "alice", "resource_type": "experiment"}, bad(_MISSING.format("resource_id"))),
        ("GET", "get", {"username": "nobody", "resource_type": "experiment", "resource_id": exp}, _NOBODY),
        ("GET", "get", {"username": "alice", "resource_type": "nonsense", "resource_id": exp},
         bad(f"Invalid resource type 'nonsense'. Valid resource types are: {_TYPES}")),
        ("GET", "get", {"username": "alice", "resource_type": "prompt", "resource_id": "p"},  # MLflow resolves none
         bad("resource_type 'prompt' is not supported by the per-user permission convenience APIs.")),
    ]


def test_refused_grants_revokes_and_gets_carry_mlflows_codes_and_messages(live):
    status, body = http(live.url, "POST", "/api/2.0/mlflow/experiments/create", ADMIN,
                        json.dumps({"name": f"probe-{uuid.uuid4().hex[:6]}"}).encode())
    assert status == 200, body
    exp = json.loads(body)["experiment_id"]
    first = {"username": "alice", "resource_type": "experiment", "resource_id": exp, "permission": "READ"}
    status, body = http(live.url, "POST", V3 + "/grant", ADMIN, json.dumps(first).encode())
    assert status == 200, body
    for method, endpoint, params, expected in error_probes(exp):
        if method == "GET":
            status, body = http(live.url, "GET", f"{V3}/{endpoint}?{urllib.parse.urlencode(params)}", ADMIN)
        else:
            status, body = http(live.url, "POST", f"{V3}/{endpoint}", ADMIN, json.dumps(params).encode())
        error = json.loads(body)
        assert (status, error["error_code"], error["message"]) == expected, (endpoint, params)


def test_the_client_raises_mlflows_error_codes(live):
    import mlflow

    auth = mlflow.server.get_app_client("basic-auth", tracking_uri=live.url)
    with As(ADMIN):
        assert refused(lambda: auth.grant_user_permission("nobody", "experiment", "0", "READ")) == (
            404, "RESOURCE_DOES_NOT_EXIST")
        assert refused(lambda: auth.revoke_user_permission(ALICE[0], "experiment", "0")) == (
            404, "RESOURCE_DOES_NOT_EXIST")
        auth.grant_user_permission(ALICE[0], "registered_model", "churn", "DENY")  # kept as NO_PERMISSIONS
        assert refused(lambda: auth.grant_user_permission(ALICE[0], "registered_model", "churn", "READ")) == (
            400, "RESOURCE_ALREADY_EXISTS")
        assert auth.get_user_permission(ALICE[0], "registered_model", "churn").permission == "NO_PERMISSIONS"
        assert refused(lambda: auth.grant_user_permission(ALICE[0], "experiment", "*", "READ")) == (
            400, "INVALID_PARAMETER_VALUE")  # trackops has no wildcard grants
        auth.revoke_user_permission(ALICE[0], "registered_model", "churn")


def test_a_prompt_grant_is_its_registered_models_and_is_listed_as_a_prompt(live):
    import mlflow

    name = f"qa-{uuid.uuid4().hex[:6]}"
    made = {"name": name, "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}
    created = http(live.url, "POST", "/api/2.0/mlflow/registered-models/create", ADMIN, json.dumps(made).encode())
    assert created[0] == 200
    auth = mlflow.server.get_app_client("basic-auth", tracking_uri=live.url)
    with As(ADMIN):
        auth.grant_user_permission(BOB[0], "prompt", name, "EDIT")
        # one namespace: trackops keeps a prompt's grants on its registered model
        assert auth.get_user_permission(BOB[0], "registered_model", name).permission == "EDIT"
        assert refused(lambda: auth.grant_user_permission(BOB[0], "registered_model", name, "READ")) == (
            400, "RESOURCE_ALREADY_EXISTS")
    status, body = http(live.url, "GET", V3 + "/list?username=bob", BOB)
    assert status == 200
    assert [(p["resource_type"], p["resource_pattern"], p["permission"]) for p in json.loads(body)["permissions"]
            if p["resource_pattern"] == name] == [("prompt", name, "EDIT")]
    # the grant decides bob's next request on the prompt's model (over HTTP: the client refuses prompts)
    tag = json.dumps({"name": name, "key": "k", "value": "v"}).encode()
    assert http(live.url, "POST", "/api/2.0/mlflow/registered-models/set-tag", BOB, tag)[0] == 200
    with As(ADMIN):
        auth.revoke_user_permission(BOB[0], "prompt", name)
    assert http(live.url, "GET", f"/api/2.0/mlflow/registered-models/get?name={name}", BOB)[0] == 403
