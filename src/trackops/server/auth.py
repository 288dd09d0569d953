"""`trackops serve --auth`: the hook the endpoint wrapper calls, and the permission-aware stores.

`install(ctx, ...)` puts an `AuthLayer` on the server context and wraps its stores:

- ``await ctx.auth.authenticate(request, route)`` runs before the body is read: PUBLIC routes pass,
  anything else needs valid credentials (401 otherwise);
- ``await ctx.auth.authorize(user, route, params, path_params)`` checks the route's declared
  ``access`` on its ``resource`` (403 otherwise), deciding on the event loop when the caches can and
  in a worker thread when the database must be asked; OTLP ingest names its experiment (and the run
  it links to) in headers, which `authenticate` keeps for `authorize`;
- search methods of the wrapped stores add `sqlfilter.restrict` for the request's user to their one
  query; creating an experiment or registered model grants MANAGE to its creator; renaming or
  deleting a registered model moves or drops its grants.

The user travels to the handler's thread in a context variable (Starlette copies the context into
its thread pool).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from trackops.auth.guard import Guard, NeedsDatabase
from trackops.auth.permissions import Permission
from trackops.auth.sqlfilter import restrict
from trackops.auth.users import EXPERIMENT, REGISTERED_MODEL, User

log = logging.getLogger("trackops.auth")

current_user: contextvars.ContextVar[User | None] = contextvars.ContextVar("trackops_user", default=None)
# The request's headers, for a route whose resource a header names (OTLP ingest); set by `authenticate`.
_headers: contextvars.ContextVar[Any] = contextvars.ContextVar("trackops_headers", default=None)
EXPERIMENT_HEADER = "x-mlflow-experiment-id"
RUN_HEADER = "x-mlflow-run-id"


class AuthLayer:
    """What the endpoint wrapper calls; one per worker."""

    def __init__(self, guard: Guard):
        self.guard = guard

    def __repr__(self) -> str:
        return f"AuthLayer({self.guard!r})"

    async def authenticate(self, request: Any, route: Any) -> User | None:
        current_user.set(None)
        if route.access.name == "PUBLIC":
            return None
        if route.resource.name == "EXPERIMENT_HEADER":
            _headers.set(request.headers)
        guard = self.guard
        if guard.watch.due():
            await run_in_threadpool(guard.check_epoch)
        header = request.headers.get("authorization")
        user = guard.cached_user(header)
        if user is None:
            client = request.client.host if request.client is not None else None
            user = await run_in_threadpool(guard.authenticate, header, client)
        current_user.set(user)
        return user

    async def authorize(self, user: User | None, route: Any, params: Any, path_params: Any) -> None:
        if user is None or user.is_admin:
            return
        access, resource = route.access.name, route.resource.name
        if resource == "EXPERIMENT_HEADER":
            params = _header_params(_headers.get())
        check = functools.partial(self.guard.authorize, user, access, resource, params, path_params,
                                  endpoint=f"{route.method} {route.path}")
        try:
            check(db=False)
        except NeedsDatabase:
            await run_in_threadpool(check)

    def restrict(self, what: str):
        """The filter for the current request's search over `what`, or None (no user, or an admin)."""
        user = current_user.get()
        if user is None or user.is_admin:
            return None
        return functools.partial(_restrict, user=user, default=self.guard.default, what=what)

    def grant_creator(self, kind: str, resource: Any) -> None:
        user = current_user.get()
        if user is None:
            return
        with self.guard.engine.begin() as conn:
            self.guard.store.grant_by_id(conn, user.id, kind, resource, Permission.MANAGE)
        self.guard.forget_permissions()


def _header_params(headers: Any) -> QueryParams:
    """The ids an OTLP export names in its headers, as the parameters the guard reads."""
    found = [] if headers is None else [(name, headers.get(header)) for name, header in (
        ("experiment_id", EXPERIMENT_HEADER), ("run_id", RUN_HEADER))]
    return QueryParams([(name, value) for name, value in found if value])


def _restrict(stmt, *, user: User, default: Permission, what: str):
    return restrict(stmt, user, default, what)


class _Scoped:
    """Delegates everything to the wrapped store; subclasses override what auth changes."""

    def __init__(self, inner: Any, layer: AuthLayer):
        self._inner = inner
        self._layer = layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ScopedTracking(_Scoped):
    def create_experiment(self, *args, **kwargs):
        experiment_id = self._inner.create_experiment(*args, **kwargs)
        self._layer.grant_creator(EXPERIMENT, experiment_id)
        return experiment_id

    def search_experiments(self, *args, **kwargs):
        return self._inner.search_experiments(*args, restrict=self._layer.restrict("experiments"), **kwargs)

    def search_runs(self, *args, **kwargs):
        return self._inner.search_runs(*args, restrict=self._layer.restrict("runs"), **kwargs)


class ScopedRegistry(_Scoped):
    def create_registered_model(self, name, *args, **kwargs):
        model = self._inner.create_registered_model(name, *args, **kwargs)
        self._layer.grant_creator(REGISTERED_MODEL, name)
        return model

    def rename_registered_model(self, name, new_name):
        model = self._inner.rename_registered_model(name, new_name)
        with self._layer.guard.engine.begin() as conn:
            self._layer.guard.store.rename_model_grants(conn, name, new_name)
        self._layer.guard.forget_permissions()
        return model

    def delete_registered_model(self, name):
        self._inner.delete_registered_model(name)
        with self._layer.guard.engine.begin() as conn:
            self._layer.guard.store.drop_model_grants(conn, name)
        self._layer.guard.forget_permissions()

    def search_registered_models(self, *args, **kwargs):
        return self._inner.search_registered_models(*args, restrict=self._layer.restrict("registered_models"),
                                                    **kwargs)

    def search_model_versions(self, *args, **kwargs):
        return self._inner.search_model_versions(*args, restrict=self._layer.restrict("model_versions"), **kwargs)


class ScopedLoggedModels(_Scoped):
    def search_logged_models(self, *args, **kwargs):
        return self._inner.search_logged_models(*args, restrict=self._layer.restrict("logged_models"), **kwargs)


def install(ctx: Any, *, default_permission: str | Permission = Permission.READ,
            epoch_interval: float = 0.5) -> AuthLayer:
    """Turn auth on for a `ServerContext`: set ``ctx.auth`` and wrap its stores."""
    layer = AuthLayer(Guard(ctx.engine, default_permission=default_permission, epoch_interval=epoch_interval))
    ctx.auth = layer
    if ctx.tracking is not None:
        ctx.tracking = ScopedTracking(ctx.tracking, layer)
    if ctx.registry is not None:
        ctx.registry = ScopedRegistry(ctx.registry, layer)
    if ctx.logged_models is not None:
        ctx.logged_models = ScopedLoggedModels(ctx.logged_models, layer)
    return layer


def configure(ctx: Any, config: Any) -> None:
    """What `ServeConfig`'s security options ask of a worker's context: auth, and artifact credentials."""
    if getattr(config, "auth", False):
        install(ctx, default_permission=getattr(config, "default_permission", "READ"))
    secret = getattr(config, "artifacts_credentials_secret", None)
    if secret and ctx.serve_artifacts:
        from trackops.secrets.artifacts import repository_with_secret
        from trackops.secrets.cache import SecretCache, cache_settings
        from trackops.secrets.crypto import load_keyring
        from trackops.secrets.store import SecretStore

        ttl, size = cache_settings()
        store = SecretStore(ctx.engine, load_keyring(), cache=SecretCache(ttl, size))
        ctx.artifacts = repository_with_secret(config.artifacts_destination, store, secret, ttl=ttl)
        ctx.secrets = store


def auth_routes() -> list:
    """The MLflow basic-auth REST endpoints (users, permissions), served with --auth."""
    from trackops.server.handlers import auth as auth_routes_module
    from trackops.server.routing import collect

    return collect(auth_routes_module)
