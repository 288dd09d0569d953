"""The ASGI app: the route table mounted under /api and /ajax-api, probes, metrics, error JSON.

Handlers are synchronous (SQLAlchemy is) and run in the thread pool; this module owns everything
HTTP: reading the body (bounded), choosing query or JSON parameters, turning `StoreError`s into
MLflow error JSON and anything unexpected into a 500 that leaks no SQL, traceback or path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Mount, Route as StarletteRoute

from trackops import __version__
from trackops.config import Settings
from trackops.artifacts.base import ArtifactError
from trackops.artifacts.paths import InvalidArtifactPath
from trackops.errors import NotFoundError, StoreError, TrackopsError, UsageError
from trackops.server.metrics import Metrics
from trackops.server.protocol import MAX_JSON_BODY, BadRequest, Params, body_limit, error_json
from trackops.server.routing import Access, Route

log = logging.getLogger("trackops.server")

MLFLOW_COMPATIBLE_VERSION = "3.17.2"


@dataclasses.dataclass
class ServerContext:
    """What handlers reach: settings, the engine, the stores and the artifact destination."""

    settings: Settings
    engine: Any
    tracking: Any = None
    registry: Any = None
    logged_models: Any = None
    artifacts: Any = None  # ArtifactRepository of --artifacts-destination, or None with --no-serve-artifacts
    serve_artifacts: bool = True
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    readiness: Callable[[], dict[str, Any]] | None = None
    auth: Any = None  # server.auth.AuthLayer with --auth: checks every route's access on its resource
    # SQLite: database writes of this process take turns on a lock. SQLite admits one writer at a
    # time anyway; queueing on a lock beats its busy handler, which sleeps 1-100 ms between tries.
    write_lock: Any = None
    ui: Any = None  # server.ui.UiBundle: MLflow's web UI on / (None: no bundle, the fallback page)
    static_prefix: str | None = None  # everything under this path, as mlflow server --static-prefix
    inline_handlers: bool = False  # run reads marked inline on the event loop (SQLite; PostgreSQL with loop_reader)
    # PostgreSQL: the asyncio pool the loop runs those reads on (`db.engine.event_loop_reader`)
    loop_reader: Any = None
    in_flight: list = dataclasses.field(default_factory=lambda: [0])  # JSON requests being handled now
    # SQLite: the thread that runs this worker's database writes (`SqliteWriter`), made on first use.
    writer: Any = None


# Handlers run on this pool (as many threads as Starlette's default, 40). A hand-off through
# asyncio's executor costs one thread wake-up each way; anyio's (run_in_threadpool) adds a
# capacity limiter, a cancel scope and an extra turn of the event loop, which for a one-row
# request is a good part of its time.
HANDLER_THREADS = 40
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _handler_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = concurrent.futures.ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="trackops-handler")
    return _pool


def _writer(ctx: ServerContext) -> SqliteWriter:
    """SQLite: the one thread that runs the worker's writes, in arrival order. SQLite admits one
    writer at a time anyway; with the writes spread over the pool, each waited for the write lock in its own
    thread, and every commit woke all of them to fight over it (and over the GIL)."""
    if ctx.writer is None:
        with _pool_lock:
            if ctx.writer is None:
                ctx.writer = SqliteWriter(ctx.engine, ctx.write_lock)
    return ctx.writer


# The frequent small tracking writes, whose store calls write through the tracking store only:
# those queued together on SQLite's writer thread are committed together.
GROUP_COMMIT_ROUTES = frozenset({"/mlflow/runs/log-metric", "/mlflow/runs/log-batch",
                                 "/mlflow/runs/log-parameter", "/mlflow/runs/set-tag"})
MAX_GROUP = 64
_STOP = object()


class _Job:
    __slots__ = ("call", "future", "grouped")

    def __init__(self, call: Callable[[], Any], grouped: bool):
        self.call, self.future, self.grouped = call, concurrent.futures.Future(), grouped

    def run(self) -> None:
        """Run the call and settle the future (already marked running)."""
        try:
            result = self.call()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class SqliteWriter(concurrent.futures.Executor):
    """SQLite's writes of one worker on one thread, in arrival order, with group commit.

    Each commit waits for the disk (the log's flush), and while one runs the next requests queue up.
    A group-commit write (`GROUP_COMMIT_ROUTES`) that finds others of its kind waiting runs with
    them, up to `MAX_GROUP`, in one transaction (`stores.sql.shared_transaction`): one commit and one
    flush for all, each request answered only after it. If any of them fails, or the commit does,
    the transaction is rolled back and each is run again alone, so the others still succeed and the
    failing one gets its own error. Every other write runs alone, as it would on a one-thread pool.
    The whole group holds the worker's write lock, which the webhook sender takes to write too.
    """

    def __init__(self, engine: Any, lock: Any):
        import queue

        self._engine, self._lock = engine, lock
        self._queue: Any = queue.SimpleQueue()
        self._empty = queue.Empty
        self._thread = threading.Thread(target=self._loop, name="trackops-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        job = _Job(lambda: fn(*args, **kwargs), grouped=False)
        self._queue.put(job)
        return job.future

    def submit_grouped(self, fn: Callable, /, *args: Any) -> concurrent.futures.Future:
        """Queue fn(*args) (which must write only through the stores) as a group-commit write."""
        job = _Job(lambda: fn(*args), grouped=True)
        self._queue.put(job)
        return job.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._queue.put(_STOP)
        if wait:
            self._thread.join()

    def _loop(self) -> None:
        carry = None
        while True:
            job, carry = (carry if carry is not None else self._queue.get()), None
            if job is _STOP:
                return
            if not job.grouped:
                if job.future.set_running_or_notify_cancel():
                    job.run()
                continue
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    waiting = self._queue.get_nowait()
                except self._empty:
                    break
                if waiting is _STOP or not waiting.grouped:
                    carry = waiting  # runs after the group, in its turn
                    break
                group.append(waiting)
            self._commit_together([j for j in group if j.future.set_running_or_notify_cancel()])

    def _commit_together(self, group: list[_Job]) -> None:
        from trackops.stores.sql import shared_transaction

        if len(group) == 1:
            with self._lock:
                group[0].run()
            return
        results = []
        try:
            with self._lock, shared_transaction(self._engine):
                for job in group:
                    results.append(job.call())
        except BaseException:  # noqa: BLE001 - one failed, or the commit: nothing was kept
            for job in group:
                with self._lock:
                    job.run()
            return
        for job, result in zip(group, results):
            job.future.set_result(result)


async def in_thread(pool: concurrent.futures.Executor, fn: Callable, *args: Any) -> Any:
    """fn(*args) on `pool`, with the caller's context variables (the authenticated user)."""
    return await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, fn, *args)


class FastJSONResponse(Response):
    """Compact UTF-8 JSON, written by orjson. It writes the values the json module would (a float
    may be spelt differently: 1e16 for 1e+16), except a float NaN or infinity, which it writes as
    null: responses carry those as the strings "NaN"/"Infinity" (protocol.json_number), and a body
    that still holds one is written by the json module, as before. So is a body orjson refuses
    (integers past 64 bits, non-string keys)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            body = orjson.dumps(content)
        except TypeError:
            return _json_dumps(content)
        if b"null" in body and _has_non_finite(content):
            return _json_dumps(content)
        return body


def _json_dumps(content: Any) -> bytes:
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _has_non_finite(value: Any) -> bool:
    """True if a float NaN or infinity is anywhere in `value` (walked without recursion)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if type(item) is float:
            if item != item or item in (math.inf, -math.inf):
                return True
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
    return False


def error_response(exc: TrackopsError) -> Response:
    """MLflow error JSON for a `TrackopsError`: store errors carry their code; the rest map by kind."""
    if isinstance(exc, StoreError):
        # `headers`: an auth error's WWW-Authenticate / Retry-After (trackops.auth.guard)
        return FastJSONResponse(error_json(exc.error_code, exc.message), status_code=exc.http_status,
                                headers=getattr(exc, "headers", None))
    if isinstance(exc, InvalidArtifactPath):
        return FastJSONResponse(error_json("INVALID_PARAMETER_VALUE", exc.client_message), status_code=400)
    if isinstance(exc, UsageError):
        return FastJSONResponse(error_json("INVALID_PARAMETER_VALUE", exc.message), status_code=400)
    if isinstance(exc, NotFoundError):
        return FastJSONResponse(error_json("RESOURCE_DOES_NOT_EXIST", exc.message), status_code=404)
    if isinstance(exc, ArtifactError):
        # Artifact errors are one-line messages about the store (unreachable, refused), safe to show.
        log.warning("artifact store error: %s", exc.message)
        return FastJSONResponse(error_json("INTERNAL_ERROR", exc.message), status_code=500)
    # Database errors may quote SQL: log them, answer without them.
    log.error("request failed: %s", exc.message)
    return FastJSONResponse(error_json("INTERNAL_ERROR", "Internal error while handling the request; "
                                       "see the server log"), status_code=500)


def internal_error(request: Request, exc: BaseException) -> Response:
    # The message names the request, never the exception: it may hold SQL, paths or secrets.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return FastJSONResponse(error_json("INTERNAL_ERROR", "Internal error while handling the request; "
                                       "see the server log"), status_code=500)


async def read_body(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The request body, refusing more than `limit` bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class PayloadTooLarge(BadRequest):
    http_status = 413

    def __init__(self, limit: int):
        size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
        super().__init__(f"Request body is larger than the {size} this endpoint accepts")


def _query_items(request: Request) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, read as Starlette's `request.query_params` reads them
    (latin-1, blank values kept), without building its multi-dict: a GET reads them once."""
    return parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)


async def request_params(request: Request, limit: int = MAX_JSON_BODY) -> Params:
    if request.method in ("GET", "HEAD"):
        return Params.from_query(_query_items(request))
    body = await read_body(request, limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body.strip() and content_type not in ("application/json", ""):
        raise BadRequest(f"Unsupported Content-Type {content_type!r}; send application/json")
    params = Params.from_json_bytes(body)
    if not params._data and request.query_params:
        # DELETE requests from some clients carry their fields in the query string
        return Params.from_query(request.query_params.multi_items())
    return params


def _serialised(handler: Callable, lock: Any) -> Callable:
    def locked(ctx, params, path):
        with lock:
            return handler(ctx, params, path)

    return locked


def _endpoint(route: Route, ctx: ServerContext, template: str) -> Callable:
    metrics = ctx.metrics
    handler = route.handler
    writes = ctx.write_lock is not None and not route.raw and route.access not in (Access.READ, Access.PUBLIC)
    grouped = writes and route.path in GROUP_COMMIT_ROUTES  # the writer holds the lock for the group
    if writes and not grouped:
        handler = _serialised(handler, ctx.write_lock)  # the lock still keeps out other writers (webhooks)

    if route.raw:
        async def raw_endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if ctx.auth is not None:
                    user = await ctx.auth.authenticate(request, route)
                    await ctx.auth.authorize(user, route, request.query_params, request.path_params)
                response = await route.handler(ctx, request)
            except TrackopsError as exc:
                response = error_response(exc)
            except Exception as exc:  # noqa: BLE001 - a bug must still answer without leaking
                response = internal_error(request, exc)
            metrics.observe(request.method, template, response.status_code, time.perf_counter() - started)
            return response

        return raw_endpoint

    limit = body_limit(route.path)
    # A one-row read runs on the event loop when it is the only request the worker is handling:
    # handing it to the thread pool and back costs two thread wake-ups, more than its database work.
    # On a local SQLite file the loop simply calls the handler; on PostgreSQL it runs it on the
    # asyncio reader (`read_on_loop`), so that the loop waits for no round trip. With other requests
    # in flight it goes to the pool, so that they are read and answered meanwhile. Writes always go
    # to the pool: the loop never waits for a commit.
    inline = route.inline and ctx.inline_handlers and route.access in (Access.READ, Access.PUBLIC)
    flight = ctx.in_flight

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        flight[0] += 1  # only the event loop's thread touches it
        try:
            user = await ctx.auth.authenticate(request, route) if ctx.auth is not None else None  # before the body
            params = await request_params(request, limit)
            if user is not None:
                await ctx.auth.authorize(user, route, params, request.path_params)
            if inline and flight[0] == 1:
                if ctx.loop_reader is None:
                    result = handler(ctx, params, request.path_params)
                else:
                    result = await read_on_loop(ctx, handler, params, request.path_params)
            elif grouped:
                result = await asyncio.wrap_future(_writer(ctx).submit_grouped(
                    contextvars.copy_context().run, handler, ctx, params, request.path_params))
            else:
                result = await in_thread(_writer(ctx) if writes else _handler_pool(), handler, ctx, params,
                                         request.path_params)
            response = result if isinstance(result, Response) else FastJSONResponse(result)
        except TrackopsError as exc:
            response = error_response(exc)
        except Exception as exc:  # noqa: BLE001
            response = internal_error(request, exc)
        finally:
            flight[0] -= 1
        metrics.observe(request.method, template, response.status_code, time.perf_counter() - started)
        return response

    return endpoint


async def read_on_loop(ctx: ServerContext, handler: Callable[..., Any], params: Any, path_params: Any) -> Any:
    """A read handler on the event loop through `ctx.loop_reader` (`stores.sql.read_on_loop`); if its
    connection was gone, once more on the thread pool, as a read may be run again."""
    from trackops.stores.sql import read_on_loop as loop_read

    return await loop_read(ctx.engine, ctx.loop_reader, handler, ctx, params, path_params,
                           fallback=lambda: in_thread(_handler_pool(), handler, ctx, params, path_params))


def _gc_metrics(ctx: ServerContext) -> str:
    """The gc cleaner's gauges from the operations log; nothing when it cannot be read."""
    from trackops.server.metrics import render_gc
    from trackops.services.gc_log import recent_passes

    if ctx.engine is None:
        return ""
    try:
        return render_gc(recent_passes(ctx.engine, 20))
    except Exception:  # noqa: BLE001 - a scrape must not fail because the log is unreadable
        log.warning("gc metrics unavailable", exc_info=True)
        return ""


def _probe_routes(ctx: ServerContext) -> list[StarletteRoute]:
    async def health(_: Request) -> Response:
        return PlainTextResponse("OK")

    async def ready(_: Request) -> Response:
        checks = await run_in_threadpool(ctx.readiness) if ctx.readiness else {"ok": True}
        return FastJSONResponse(checks, status_code=200 if checks.get("ok") else 503)

    async def version(_: Request) -> Response:
        # Which UI bundle is served; "path" is where on this server (never the folder on its disk).
        served = ctx.ui is not None and ctx.ui.served
        ui = {"source": ctx.ui.source if ctx.ui is not None else "none",
              "path": f"{ctx.static_prefix or ''}/" if served else None,
              "mlflow_version": ctx.ui.mlflow_version if served else None}
        return FastJSONResponse({"trackops": __version__, "mlflow_compatible": MLFLOW_COMPATIBLE_VERSION, "ui": ui})

    async def metrics(_: Request) -> Response:
        pool = ctx.engine.pool if ctx.engine is not None else None
        status = None
        if pool is not None and hasattr(pool, "checkedout"):
            status = {"in_use": pool.checkedout(), "idle": pool.checkedin()}
        gc_text = await run_in_threadpool(_gc_metrics, ctx)
        return PlainTextResponse(ctx.metrics.render(status) + gc_text, media_type="text/plain; version=0.0.4")

    return [StarletteRoute("/health", health, methods=["GET"]), StarletteRoute("/ready", ready, methods=["GET"]),
            StarletteRoute("/version", version, methods=["GET"]), StarletteRoute("/metrics", metrics, methods=["GET"])]


class TrackopsApp(Starlette):
    """Starlette, with a dictionary in front of its route list for the API's fixed paths.

    Starlette finds a request's route by trying each route's pattern in turn (a few hundred here:
    every endpoint under /api and /ajax-api) and then passes it through two exception-handling
    layers. An API endpoint answers every error itself, so a request for a fixed path that Starlette
    would route to it goes to it directly, with the scope Starlette would give it. Everything else
    (path parameters, HEAD, a trailing slash, the UI, a 404 or 405) takes Starlette's way.
    """

    exact: dict[tuple[str, str], StarletteRoute] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            target = self.exact.get((scope["method"], scope["path"]))
            if target is not None:
                scope["app"] = self
                scope.setdefault("router", self.router)
                scope["endpoint"] = target.endpoint
                scope["path_params"] = {}
                response = await target.endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _exact_routes(ordered: list, api_routes: list[StarletteRoute]) -> dict[tuple[str, str], StarletteRoute]:
    """(method, path) -> route for the API routes without path parameters that Starlette itself
    would pick for that method and path (the first route in `ordered` that matches it fully)."""
    exact: dict[tuple[str, str], StarletteRoute] = {}
    for candidate in api_routes:
        if candidate.param_convertors or not candidate.methods:
            continue
        for method in candidate.methods:
            if method == "HEAD":
                continue
            scope = {"type": "http", "path": candidate.path, "root_path": "", "method": method}
            first = next((r for r in ordered if r.matches(scope)[0] is Match.FULL), None)
            if first is candidate:
                exact[(method, candidate.path)] = candidate
    return exact


def create_app(ctx: ServerContext, routes: list[Route]) -> Starlette:
    """The Starlette app serving `routes` under every API prefix and version, plus the probes."""
    starlette_routes = _probe_routes(ctx)
    api_routes = []  # their endpoints answer every error themselves (error_response, internal_error)
    for r in routes:
        for path, template in r.mounts():  # under every API prefix and version, or at the root
            api_routes.append(StarletteRoute(path, _endpoint(r, ctx, template), methods=[r.method],
                                             include_in_schema=False))
    starlette_routes += api_routes

    async def not_found(request: Request, exc: HTTPException) -> Response:
        ctx.metrics.observe(request.method, "unmatched", exc.status_code, 0.0)
        if exc.status_code == 405:
            return FastJSONResponse(error_json("BAD_REQUEST", f"Method {request.method} is not allowed on "
                                               f"{request.url.path}"), status_code=405)
        return FastJSONResponse(error_json("ENDPOINT_NOT_FOUND", f"No endpoint {request.method} "
                                           f"{request.url.path}"), status_code=exc.status_code)

    async def crash(request: Request, exc: Exception) -> Response:
        return internal_error(request, exc)

    from trackops.server.ui import UiBundle, ui_routes

    def asset_missing(request: Request) -> Response:
        return FastJSONResponse(error_json("ENDPOINT_NOT_FOUND", f"No file {request.url.path}"), status_code=404)

    gate = None
    if ctx.auth is not None:  # like mlflow's basic-auth app: / asks for credentials, /static-files does not
        page = Route("GET", "/", handler=None, access=Access.READ)

        async def gate(request: Request) -> Response | None:
            try:
                await ctx.auth.authenticate(request, page)
            except TrackopsError as exc:
                return error_response(exc)
            return None

    if ctx.auth is not None:  # the admin console (server/admin.py), administrators only; 404 without --auth
        from trackops.server.admin import admin_routes

        starlette_routes += admin_routes(ctx)
    starlette_routes += ui_routes(ctx.ui or UiBundle("none"), asset_missing, gate)  # after the API routes
    if ctx.static_prefix:  # /mlflow answers nothing but its redirect to /mlflow/, as in mlflow server
        starlette_routes = [Mount(ctx.static_prefix, routes=starlette_routes)]
    app = TrackopsApp(routes=starlette_routes, exception_handlers={HTTPException: not_found, Exception: crash})
    app.state.ctx = ctx
    if not ctx.static_prefix:
        app.exact = _exact_routes(starlette_routes, api_routes)
    return app
