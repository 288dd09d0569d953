"""MLflow's basic-auth REST API for users and permissions, served by `trackops serve --auth`.

The paths and bodies are MLflow's (``/api/2.0/mlflow/users/...``,
``/api/2.0/mlflow/experiments/permissions/...``, ``/api/2.0/mlflow/registered-models/permissions/...``),
so ``mlflow.server.get_app_client("basic-auth", ...)`` works against trackops. Managing users needs an
administrator; managing permissions on an experiment or registered model needs MANAGE on it.
"""

from __future__ import annotations

from trackops.auth.permissions import Permission
from trackops.auth.users import EXPERIMENT, REGISTERED_MODEL, AuthStore
from trackops.errors import NotFoundError, ResourceDoesNotExist
from trackops.server.protocol import Params
from trackops.server.routing import Access, Resource, route


def _store(ctx) -> AuthStore:
    return ctx.auth.guard.store


def _user_json(user) -> dict:
    return {"user": {"id": user.id, "username": user.username, "is_admin": user.is_admin,
                     "experiment_permissions": [], "registered_model_permissions": []}}


def _missing_user(exc: NotFoundError) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(exc.message)


@route("POST", "/mlflow/users/create", Access.ADMIN)
def create_user(ctx, p: Params, _path) -> dict:
    user = _store(ctx).create_user(p.str("username", required=True), p.str("password", required=True))
    return _user_json(user)


@route("GET", "/mlflow/users/get", Access.ADMIN)
def get_user(ctx, p: Params, _path) -> dict:
    try:
        return _user_json(_store(ctx).get_user(p.str("username", required=True)))
    except NotFoundError as exc:
        raise _missing_user(exc) from None


@route("PATCH", "/mlflow/users/update-password", Access.ADMIN)
def update_password(ctx, p: Params, _path) -> dict:
    try:
        _store(ctx).set_password(p.str("username", required=True), p.str("password", required=True))
    except NotFoundError as exc:
        raise _missing_user(exc) from None
    return {}


@route("PATCH", "/mlflow/users/update-admin", Access.ADMIN)
def update_admin(ctx, p: Params, _path) -> dict:
    try:
        _store(ctx).set_admin(p.str("username", required=True), p.bool("is_admin"))
    except NotFoundError as exc:
        raise _missing_user(exc) from None
    return {}


@route("DELETE", "/mlflow/users/delete", Access.ADMIN)
def delete_user(ctx, p: Params, _path) -> dict:
    try:
        _store(ctx).delete_user(p.str("username", required=True))
    except NotFoundError as exc:
        raise _missing_user(exc) from None
    return {}


def _grant(ctx, kind: str, key: str, p: Params) -> dict:
    username = p.str("username", required=True)
    try:
        grant = _store(ctx).grant(username, kind, key, Permission.parse(p.str("permission", required=True)))
    except NotFoundError as exc:
        raise _missing_user(exc) from None
    ctx.auth.guard.forget_permissions()
    field = "experiment_id" if kind == EXPERIMENT else "name"
    return {f"{kind}_permission": {field: grant.resource, "user_id": _store(ctx).get_user(username).id,
                                   "permission": grant.permission}}


def _get(ctx, kind: str, key: str, p: Params) -> dict:
    store = _store(ctx)
    try:
        user = store.get_user(p.str("username", required=True))
    except NotFoundError as exc:
        raise _missing_user(exc) from None
    from trackops.auth.users import resource_key

    with ctx.engine.connect() as conn:
        perm = store.permission(conn, user.id, kind, resource_key(kind, key))
    if perm is None:
        raise ResourceDoesNotExist(f"{kind.replace('_', ' ').capitalize()} permission ({key}, {user.username}) "
                                   "not found")
    field = "experiment_id" if kind == EXPERIMENT else "name"
    return {f"{kind}_permission": {field: key, "user_id": user.id, "permission": perm.name}}


def _revoke(ctx, kind: str, key: str, p: Params) -> dict:
    try:
        _store(ctx).revoke(p.str("username", required=True), kind, key)
    except NotFoundError as exc:
        raise _missing_user(exc) from None
    ctx.auth.guard.forget_permissions()
    return {}


EXP = "/mlflow/experiments/permissions"
RM = "/mlflow/registered-models/permissions"


@route("POST", EXP + "/create", Access.MANAGE, Resource.EXPERIMENT)
def create_experiment_permission(ctx, p: Params, _path) -> dict:
    return _grant(ctx, EXPERIMENT, p.str("experiment_id", required=True), p)


@route("GET", EXP + "/get", Access.MANAGE, Resource.EXPERIMENT)
def get_experiment_permission(ctx, p: Params, _path) -> dict:
    return _get(ctx, EXPERIMENT, p.str("experiment_id", required=True), p)


@route("PATCH", EXP + "/update", Access.MANAGE, Resource.EXPERIMENT)
def update_experiment_permission(ctx, p: Params, _path) -> dict:
    _grant(ctx, EXPERIMENT, p.str("experiment_id", required=True), p)
    return {}


@route("DELETE", EXP + "/delete", Access.MANAGE, Resource.EXPERIMENT)
def delete_experiment_permission(ctx, p: Params, _path) -> dict:
    return _revoke(ctx, EXPERIMENT, p.str("experiment_id", required=True), p)


@route("POST", RM + "/create", Access.MANAGE, Resource.REGISTERED_MODEL)
def create_registered_model_permission(ctx, p: Params, _path) -> dict:
    return _grant(ctx, REGISTERED_MODEL, p.str("name", required=True), p)


@route("GET", RM + "/get", Access.MANAGE, Resource.REGISTERED_MODEL)
def get_registered_model_permission(ctx, p: Params, _path) -> dict:
    return _get(ctx, REGISTERED_MODEL, p.str("name", required=True), p)


@route("PATCH", RM + "/update", Access.MANAGE, Resource.REGISTERED_MODEL)
def update_registered_model_permission(ctx, p: Params, _path) -> dict:
    _grant(ctx, REGISTERED_MODEL, p.str("name", required=True), p)
    return {}


@route("DELETE", RM + "/delete", Access.MANAGE, Resource.REGISTERED_MODEL)
def delete_registered_model_permission(ctx, p: Params, _path) -> dict:
    return _revoke(ctx, REGISTERED_MODEL, p.str("name", required=True), p)
