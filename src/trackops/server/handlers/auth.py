"""MLflow's basic-auth REST API for users and permissions, served by `trackops serve --auth`.

The paths and bodies are MLflow's (``/api/2.0/mlflow/users/...``,
``/api/2.0/mlflow/experiments/permissions/...``, ``/api/2.0/mlflow/registered-models/permissions/...``),
so ``mlflow.server.get_app_client("basic-auth", ...)`` works against trackops. Managing users needs an
administrator; managing permissions on an experiment or registered model needs MANAGE on it.

MLflow 3.17's per-user API (``/api/3.0/mlflow/users/permissions/{grant,revoke,get,list}``,
``users/current``, ``users/current/permissions``, ``users/list``) is served on the same tables: its
checks, their order and its messages are MLflow's (``mlflow/server/auth/__init__.py`` validators and
handlers, ``sqlalchemy_store.grant_user_resource_permission``), so a client sees the same errors.
"""

from __future__ import annotations

from trackops.auth import grants
from trackops.auth.guard import PermissionDenied
from trackops.auth.permissions import Permission, can_use
from trackops.auth.users import EXPERIMENT, REGISTERED_MODEL, AuthStore, User
from trackops.errors import InvalidParameterValue, NotFoundError, ResourceAlreadyExists, ResourceDoesNotExist
from trackops.server.auth import current_user
from trackops.server.protocol import Params, missing_message
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


# --- MLflow 3.17's per-user permission API ---------------------------------------------------------

V3 = ("3.0",)


def _param(p: Params, name: str) -> str:
    """A required parameter as MLflow's ``_get_request_param`` reads it: absent is the 400, any value
    (even empty) is taken as its text."""
    value = p.raw(name)
    if value is None:
        raise InvalidParameterValue(missing_message(name))
    return value if isinstance(value, str) else str(value)


def _caller() -> User:
    return current_user.get()


def _mlflow_user(ctx, username: str) -> User:
    try:
        return _store(ctx).get_user(username)
    except NotFoundError:
        raise ResourceDoesNotExist(f"User with username={username} not found") from None


def _stored(ctx, user: User, kind: str, resource_id: str) -> Permission:
    """`user`'s permission on the resource as MLflow's get resolves it: the grant, else the server's
    default (an administrator's flag does not enter). Not the guard's cache: the answer must reflect
    a grant made a moment ago elsewhere."""
    if not grants.holds_no_grant(kind, resource_id):
        held = _store(ctx).held_permission(user.id, kind, int(resource_id) if kind == EXPERIMENT else resource_id)
        if held is not None:
            return held
    return ctx.auth.guard.default


def _require_manage(ctx, p: Params) -> None:
    """MLflow's ``validate_can_manage_resource`` for a caller who is not an administrator."""
    caller = _caller()
    if caller.is_admin:
        return
    resource_type, resource_id = _param(p, "resource_type"), _param(p, "resource_id")
    if resource_id == "*":
        grants.check_type(resource_type)
        raise PermissionDenied(f"Permission denied: only administrators may grant on every {resource_type} "
                               f"(user '{caller.username}').")
    kind = grants.resolved_kind(resource_type)
    if not _stored(ctx, caller, kind, resource_id).allows(Permission.MANAGE):
        raise PermissionDenied(f"Permission denied: user '{caller.username}' needs MANAGE on "
                               f"{resource_type.replace('_', ' ')} {resource_id}.")


@route("POST", "/mlflow/users/permissions/grant", Access.USER, versions=V3)
def grant_user_permission(ctx, p: Params, _path) -> dict:
    _require_manage(ctx, p)
    username, resource_type = _param(p, "username"), _param(p, "resource_type")
    resource_id, permission = _param(p, "resource_id"), _param(p, "permission")
    _mlflow_user(ctx, username)
    kind, perm = grants.grant_target(resource_type, resource_id, permission)
    try:
        _store(ctx).add_grant(username, kind, resource_id, perm)
    except ResourceAlreadyExists:
        raise ResourceAlreadyExists(f"Permission for user={username} on resource_type={resource_type}, "
                                    f"resource_id={resource_id} already exists.") from None
    except NotFoundError as exc:  # the user was deleted meanwhile
        raise _missing_user(exc) from None
    ctx.auth.guard.forget_permissions()  # this worker at once; the epoch tells the others
    return {}


@route("POST", "/mlflow/users/permissions/revoke", Access.USER, versions=V3)
def revoke_user_permission(ctx, p: Params, _path) -> dict:
    _require_manage(ctx, p)
    username, resource_type, resource_id = _param(p, "username"), _param(p, "resource_type"), _param(p, "resource_id")
    _mlflow_user(ctx, username)
    grants.check_type(resource_type)
    not_found = ResourceDoesNotExist(f"Permission for user={username} on resource_type={resource_type}, "
                                     f"resource_id={resource_id} not found.")
    kind = grants.STORED_KIND.get(resource_type)
    # A type or id trackops cannot store holds no grant: "not found", as MLflow answers an absent row.
    if kind is None or grants.holds_no_grant(kind, resource_id):
        raise not_found
    try:
        _store(ctx).revoke(username, kind, resource_id)
    except NotFoundError:
        raise not_found from None
    ctx.auth.guard.forget_permissions()
    return {}


@route("GET", "/mlflow/users/permissions/get", Access.USER, versions=V3)
def get_user_permission(ctx, p: Params, _path) -> dict:
    caller = _caller()
    if not caller.is_admin:  # MLflow's validate_can_get_user_permission: an administrator or oneself
        if _param(p, "resource_type") == "workspace":
            grants.check_type("workspace")
        if _param(p, "username") != caller.username:
            raise PermissionDenied(f"Permission denied: user '{caller.username}' may ask only about "
                                   "their own permissions.")
    username, resource_type, resource_id = _param(p, "username"), _param(p, "resource_type"), _param(p, "resource_id")
    user = _mlflow_user(ctx, username)
    if resource_id == "*":
        grants.check_type(resource_type)
        permission = ctx.auth.guard.default  # no wildcard grants exist: the default decides
    else:
        permission = _stored(ctx, user, grants.resolved_kind(resource_type), resource_id)
    return {"allowed": can_use(permission), "permission": permission.name}


def _permission_rows(ctx, user: User) -> list[dict]:
    """The user's grants as MLflow's ``users/permissions/list`` rows. MLflow keeps a user's direct
    grants in a role of their own, ``__user_<id>__``, in the ``default`` workspace; trackops has no
    role rows (``role_id`` is 0). A registered model tagged as a prompt is listed as a ``prompt``."""
    held = _store(ctx).list_grants(user.username)
    prompts = _store(ctx).prompt_models([g.resource for g in held if g.kind == REGISTERED_MODEL])

    def resource_type(g) -> str:
        if g.kind == EXPERIMENT:
            return "experiment"
        return "prompt" if g.resource in prompts else "registered_model"
    return [{"role_id": 0, "role_name": f"__user_{user.id}__", "workspace": "default",
             "resource_type": resource_type(g), "resource_pattern": g.resource, "permission": g.permission}
            for g in held]


@route("GET", "/mlflow/users/current/permissions", Access.USER, versions=V3)
def list_current_user_permissions(ctx, _p: Params, _path) -> dict:
    user = _mlflow_user(ctx, _caller().username)
    return {"is_admin": user.is_admin, "permissions": _permission_rows(ctx, user)}


@route("GET", "/mlflow/users/permissions/list", Access.USER, versions=V3)
def list_user_permissions(ctx, p: Params, _path) -> dict:
    caller = _caller()
    if not caller.is_admin and _param(p, "username") != caller.username:  # MLflow's validate_can_view_user_roles
        raise PermissionDenied(f"Permission denied: user '{caller.username}' may list only their own permissions.")
    user = _mlflow_user(ctx, _param(p, "username"))
    return {"is_admin": user.is_admin, "permissions": _permission_rows(ctx, user)}


@route("GET", "/mlflow/users/current", Access.USER)
def get_current_user(ctx, _p: Params, _path) -> dict:
    user = _mlflow_user(ctx, _caller().username)  # fresh: the admin flag may have changed
    return {"user": user.to_json(), "is_basic_auth": True}


@route("GET", "/mlflow/users/list", Access.USER)
def list_users(ctx, _p: Params, _path) -> dict:
    # Any user may list the roster, as in MLflow without workspaces (its UI assigns reviewers from
    # it); trackops has no roles, so each user's are empty.
    return {"users": [{**u.to_json(), "roles": []} for u in _store(ctx).users()]}
