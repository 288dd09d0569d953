"""The route table: every REST endpoint, the handler behind it and the permission it needs.

A handler is a plain function ``handler(ctx, params, path) -> dict``: it reads `Params`, calls the
stores, and returns the response object; it never sees HTTP. `StoreError`s become MLflow error JSON in
one place (`server/app.py`). Streaming endpoints (artifacts) are ``raw`` handlers: ``async
handler(ctx, request) -> Response``. The permission column is what the auth layer checks (docs/auth.md);
every route must have one, and a test fails when a route lacks it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any


class Access(enum.Enum):
    """What a route needs on the resource it touches."""

    PUBLIC = "public"  # health, version, server-info: no resource
    READ = "READ"
    EDIT = "EDIT"
    MANAGE = "MANAGE"
    CREATE = "CREATE"  # creating a top-level resource (experiment, registered model): any authenticated user
    ADMIN = "ADMIN"
    USER = "USER"  # any authenticated user; the handler checks the rest (self or admin, MANAGE on a named resource)


class Resource(enum.Enum):
    """Which resource's permission applies."""

    NONE = "none"
    EXPERIMENT = "experiment"
    RUN = "run"  # resolved to the run's experiment
    LOGGED_MODEL = "logged_model"  # resolved to the model's experiment
    REGISTERED_MODEL = "registered_model"
    ARTIFACT_PATH = "artifact_path"  # proxied artifacts: resolved from the path's experiment id
    TRACE = "trace"  # resolved to the trace's experiment (trace_id in the path or parameters, or request_id)
    TRACES = "traces"  # every trace in trace_ids, resolved in one query; none, or an unknown one, is refused
    EXPERIMENTS = "experiments"  # every experiment id the body lists (experiment_ids, locations, a new
    #                              trace's location); a request that lists none is refused
    EXPERIMENT_HEADER = "experiment_header"  # OTLP ingest: the x-mlflow-experiment-id header
    SEARCH = "search"  # filtered inside the query by what the user may read


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # after the API prefix, e.g. "/mlflow/runs/get" or "/mlflow/logged-models/{model_id}"
    handler: Callable[..., Any]
    access: Access
    resource: Resource = Resource.NONE
    versions: tuple[str, ...] = ("2.0",)
    raw: bool = False  # handler takes (ctx, request) and returns a Response (streaming)
    root: bool = False  # also mounted at `path` itself, outside API_PREFIXES (/graphql, /get-artifact)
    inline: bool = False  # a one-row read: may run on the event loop where the database is a local file

    def mounts(self) -> list[tuple[str, str]]:
        """(path to mount, metrics template) for each place the route answers: under every API prefix
        and version, and at `path` itself for a root route (so tools that walk the prefixed table
        still reach it)."""
        mounted = [(f"{prefix}/{v}{self.path}", f"/api/{v}{self.path}") for v in self.versions for prefix in API_PREFIXES]
        return [(self.path, self.path), *mounted] if self.root else mounted


API_PREFIXES = ("/api", "/ajax-api")


def route(method: str, path: str, access: Access, resource: Resource = Resource.NONE, *,
          versions: tuple[str, ...] = ("2.0",), raw: bool = False, root: bool = False, inline: bool = False
          ) -> Callable[[Callable], Callable]:
    """Decorator that records a handler in the module's ``ROUTES`` list (see `collect`).

    ``root=True`` also mounts the route at `path` as given, outside the API prefixes (MLflow's UI calls
    ``/graphql``, ``/get-artifact`` and ``/model-versions/get-artifact`` there). ``inline=True`` marks a
    read of a row or two by key (no scan, no artifact I/O): on a local SQLite file it may run on the
    event loop instead of the thread pool (server/app.py).
    """

    def register(func: Callable) -> Callable:
        routes = func.__globals__.setdefault("ROUTES", [])
        routes.append(Route(method, path, func, access, resource, versions, raw, root, inline))
        return func

    return register


def collect(*modules) -> list[Route]:
    routes: list[Route] = []
    for module in modules:
        routes.extend(getattr(module, "ROUTES", []))
    seen: set[tuple[str, str, str]] = set()
    for r in routes:
        for mounted, _template in r.mounts():
            key = (r.method, mounted)
            if key in seen:
                raise ValueError(f"route registered twice: {r.method} {mounted}")
            seen.add(key)
    return routes
