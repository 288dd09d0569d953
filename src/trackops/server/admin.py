"""The admin console of `trackops serve --auth`: server-rendered pages under /admin, JSON twins under /admin/api.

- ``/admin`` status: version, database (password hidden), schema revision vs head, artifact
  destination, this worker's uptime, request and error counts;
- ``/admin/cleaner``: recent gc passes, what a pass would purge now (a dry run made in the
  background, cached for `PLAN_TTL` seconds), and "Run a pass now" (a confirm page with a fresh
  plan, then one `batched_gc` pass with ``trigger="admin"``);
- ``/admin/storage``: experiments, runs (active/deleted) and artifact bytes by experiment
  (`gc_usage.usage_on`), computed in a background thread and cached for `STORAGE_TTL` seconds;
- ``/admin/backups``: the snapshots of the configured repository (``--backup-repo``) with age, size,
  whether the console's own check (`verify` without --read-data) passed, the restore command, and a
  warning when the newest is older than ``--backup-max-age``; cached like the storage page;
- ``/admin/users``: users, their tokens, create a user, reset a password, revoke a token, grant and
  revoke experiment and registered-model permissions (`AuthStore`, which bumps the auth epoch in the
  same transaction so every worker follows within a second).

What `trackops serve` was started with (``--gc-older-than``, ``--backup-repo``, ``--backup-max-age``)
comes from its `ServeConfig`, which every worker finds in its environment.

Only administrators: no credentials is 401 with ``WWW-Authenticate``, a non-admin 403. Without
--auth these routes are not mounted (404 like any unknown path). Every POST needs the double-submit
CSRF token (cookie and form field) and an Origin (or Referer) whose host is the request's Host.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
import shlex
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route as StarletteRoute

from trackops import __version__
from trackops.auth.permissions import NAMES as PERMISSIONS
from trackops.auth.users import EXPERIMENT, KINDS, AuthStore
from trackops.db import own_schema, revisions, schema
from trackops.db.engine import hide_password
from trackops.errors import StoreError, TrackopsError
from trackops.server.routing import Access, Route

log = logging.getLogger("trackops.server.admin")

CSRF_COOKIE = "trackops_admin_csrf"
CSRF_FIELD = "csrf_token"
MAX_FORM = 64 * 1024
DEFAULT_GC_AGE = "30d"
DEFAULT_BACKUP_MAX_AGE = "2d"
STORAGE_TTL = 600.0  # seconds a storage figure is shown before the next view recomputes it
BACKUPS_TTL = 300.0
PLAN_TTL = 60.0
GUARD_ROUTE = Route("GET", "/admin", handler=None, access=Access.ADMIN)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates" / "admin")),
    autoescape=True, undefined=jinja2.StrictUndefined)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _size(n: int | None) -> str:
    n = int(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


_templates.filters["when"] = _when
_templates.filters["size"] = _size


class Refused(Exception):
    """A request the console answers with `status` and a one-line `message` (403 CSRF, 400 bad form)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _safe_uri(uri: str | None) -> str | None:
    """A URI without any user:password part."""
    if not uri or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    n = int(seconds)
    if n >= 86400:
        return f"{n // 86400}d {n % 86400 // 3600}h"
    if n >= 3600:
        return f"{n // 3600}h {n % 3600 // 60}m"
    return f"{n // 60}m" if n >= 60 else f"{n}s"


_templates.filters["age"] = _age_text


def serve_config_of(ctx: Any) -> Any:
    """The `ServeConfig` this worker serves: ``ctx.config``, else the one `trackops serve` put in the
    environment (when it names the same database); None when neither is there (an app built in-process)."""
    config = getattr(ctx, "config", None)
    if config is not None:
        return config
    from trackops.services.serve import ServeConfig

    try:
        config = ServeConfig.from_env()
    except (TrackopsError, TypeError, ValueError):
        return None
    return config if config.backend_store_uri == ctx.settings.backend_store_uri else None


class Background:
    """A value computed in a daemon thread and shown for `ttl` seconds; a page view never computes it.

    `get()` answers at once with the last value (``state`` "ready", or "computing" before the first
    one) and starts a recomputation when the value is older than `ttl` and none is running.
    """

    def __init__(self, name: str, compute: Callable[[], Any], ttl: float):
        self.name, self.compute, self.ttl = name, compute, ttl
        self.value: Any = None
        self.error: str | None = None
        self.refreshed_at: float | None = None  # time.time() of the last finished computation
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self) -> threading.Thread:
        """Start a computation unless one is running; the thread doing it."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"trackops-admin-{self.name}", daemon=True)
                self._thread.start()
            return self._thread

    def _run(self) -> None:
        try:
            value, error = self.compute(), None
        except TrackopsError as exc:
            value, error = None, exc.message
        except Exception:  # noqa: BLE001 - a background figure must not take the worker down
            log.exception("admin console: computing %s failed", self.name)
            value, error = None, "Internal error while computing this page; see the server log."
        with self._lock:
            self.value, self.error, self.refreshed_at = value, error, time.time()

    def get(self) -> dict[str, Any]:
        with self._lock:
            stale = self.refreshed_at is None or time.time() - self.refreshed_at > self.ttl
            running = self._thread is not None and self._thread.is_alive()
        if stale and not running:
            self.refresh()
            running = True
        with self._lock:
            return {"state": "ready" if self.refreshed_at is not None else "computing",
                    "refreshing": running, "refreshed_at": None if self.refreshed_at is None
                    else int(self.refreshed_at * 1000), "ttl_seconds": self.ttl,
                    "error": self.error, "value": self.value}


class Console:
    """The pages; one per worker, built by `admin_routes(ctx)`."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.started = time.time()
        self.store = AuthStore(ctx.engine)
        config = serve_config_of(ctx)
        self.gc_age = getattr(config, "gc_older_than", None) or DEFAULT_GC_AGE
        self.gc_interval = getattr(config, "gc_interval", None)
        self.backup_repository = ctx.settings.backup_repository or getattr(config, "backup_repository", None)
        self.backup_max_age = getattr(config, "backup_max_age", None) or DEFAULT_BACKUP_MAX_AGE
        self.storage_cache = Background("storage", self._usage, STORAGE_TTL)
        self.backups_cache = Background("backups", self._backups, BACKUPS_TTL)
        self.plan_cache = Background("gc plan", self._plan, PLAN_TTL)

    # --- access, CSRF, rendering ----------------------------------------------------------------

    async def _admin(self, request: Request):
        user = await self.ctx.auth.authenticate(request, GUARD_ROUTE)
        if user is None or not user.is_admin:
            raise Refused(403, "The admin console is for administrators only.")
        return user

    def _page(self, request: Request, name: str, code: int = 200, **values: Any) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or ""
        fresh = len(token) < 32
        if fresh:
            token = secrets.token_urlsafe(32)
        base = request.scope.get("root_path", "").rstrip("/")  # --static-prefix
        html = _templates.get_template(name).render(csrf=token, version=__version__, path=request.url.path,
                                                    base=base, **values)
        response = HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})
        if fresh:
            response.set_cookie(CSRF_COOKIE, token, path=f"{base}/admin", httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response

    async def _form(self, request: Request) -> dict[str, str]:
        """The POST's fields, after the same-origin and CSRF checks."""
        host = request.headers.get("host", "")
        source = request.headers.get("origin") or request.headers.get("referer")
        if not source or source == "null" or urlsplit(source).netloc != host:
            raise Refused(403, "Refused: the form was not sent from this server's own pages (Origin/Referer).")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise Refused(400, "Send the form as application/x-www-form-urlencoded.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise Refused(413, "The form is larger than 64 KiB.")
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        cookie, sent = request.cookies.get(CSRF_COOKIE, ""), fields.get(CSRF_FIELD, "")
        if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
            raise Refused(403, "Refused: the form's CSRF token is missing or does not match; reload the page.")
        return fields

    def wrap(self, handler: Callable[[Request], Awaitable[Response]], json: bool = False) -> Callable:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                await self._admin(request)
                response = await handler(request)
            except StoreError as exc:  # 401 (with WWW-Authenticate), 429 (with Retry-After)
                headers = getattr(exc, "headers", None)
                response = (JSONResponse({"error_code": exc.error_code, "message": exc.message}, exc.http_status,
                                         headers=headers) if json else
                            self._page(request, "error.html", exc.http_status, message=exc.message))
                if headers:
                    response.headers.update(headers)
            except Refused as exc:
                response = (JSONResponse({"error_code": "PERMISSION_DENIED" if exc.status == 403 else
                                          "INVALID_PARAMETER_VALUE", "message": exc.message}, exc.status)
                            if json else self._page(request, "error.html", exc.status, message=exc.message))
            except Exception:  # noqa: BLE001 - a bug answers without SQL, paths or tracebacks
                log.exception("admin console failed on %s %s", request.method, request.url.path)
                message = "Internal error while handling the request; see the server log."
                response = (JSONResponse({"error_code": "INTERNAL_ERROR", "message": message}, 500) if json
                            else self._page(request, "error.html", 500, message=message))
            self.ctx.metrics.observe(request.method, request.url.path if json else "/admin",
                                     response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        engine = self.ctx.engine
        try:
            with engine.connect() as conn:
                revision, own = revisions.current_revision(conn), own_schema.own_current(conn)
        except sa.exc.SQLAlchemyError:
            log.warning("admin status: cannot read the schema revision", exc_info=True)
            revision = own = None
        with self.ctx.metrics._lock:  # noqa: SLF001 - the counters /metrics renders, read in place
            counts = list(self.ctx.metrics._requests.items())  # noqa: SLF001
        return {"trackops": __version__, "database": hide_password(engine.url),
                "schema": {"revision": revision, "head": schema.HEAD_REVISION, "at_head": revision == schema.HEAD_REVISION,
                           "trackops_revision": own, "trackops_head": own_schema.own_head()},
                "artifacts_destination": _safe_uri(self.ctx.settings.artifacts_destination)
                if self.ctx.serve_artifacts else None,
                "uptime_seconds": round(time.time() - self.started, 1),
                "requests": sum(n for _, n in counts),
                "client_errors": sum(n for (_, _, s), n in counts if 400 <= s < 500),
                "errors": sum(n for (_, _, s), n in counts if s >= 500)}

    async def status_page(self, request: Request) -> Response:
        return self._page(request, "status.html", status=await run_in_threadpool(self.status))

    async def status_json(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.status))

    # --- cleaner --------------------------------------------------------------------------------

    def _plan(self) -> dict[str, Any]:
        from trackops.services.gc import gc

        return gc(self.ctx.settings, older_than=self.gc_age, dry_run=True).to_json()

    def cleaner(self, fresh: bool = False) -> dict[str, Any]:
        """Recent passes and the plan: made now when `fresh` (the confirmation), else the cached one."""
        from trackops.services.gc_log import recent_passes

        passes = recent_passes(self.ctx.engine, 10)
        if fresh:
            try:
                plan, plan_error = self._plan(), None
            except TrackopsError as exc:
                plan, plan_error = None, exc.message
            state, refreshed_at, refreshing = "ready", int(time.time() * 1000), False
        else:  # a dry run lists the files of every deleted item: no work for each page view
            cached = self.plan_cache.get()
            plan, plan_error, state, refreshed_at, refreshing = (
                cached["value"], cached["error"], cached["state"], cached["refreshed_at"], cached["refreshing"])
        return {"older_than": self.gc_age, "interval": self.gc_interval, "passes": passes, "plan": plan,
                "plan_error": plan_error, "plan_state": state, "plan_refreshed_at": refreshed_at,
                "plan_refreshing": refreshing}

    async def cleaner_page(self, request: Request) -> Response:
        return self._page(request, "cleaner.html", **await run_in_threadpool(self.cleaner))

    async def cleaner_json(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.cleaner))

    async def cleaner_confirm(self, request: Request) -> Response:
        await self._form(request)
        data = await run_in_threadpool(self.cleaner, True)
        return self._page(request, "cleaner_confirm.html", **data)

    async def cleaner_run(self, request: Request) -> Response:
        from trackops.services.gc_background import batched_gc

        await self._form(request)
        try:  # the background cleaner's pass: deleted runs in batches, so memory stays flat on a big store
            report = await run_in_threadpool(lambda: batched_gc(self.ctx.settings, older_than=self.gc_age,
                                                                trigger="admin"))
        except TrackopsError as exc:
            return self._page(request, "error.html", 409, message=f"The pass did not run: {exc.message}")
        self.plan_cache.refresh()  # what is left to purge changed
        return self._page(request, "cleaner_result.html", older_than=self.gc_age, report=report.to_json())

    # --- storage and backups: computed in the background --------------------------------------

    def _usage(self) -> dict[str, Any]:
        from trackops.services.gc_usage import usage_on

        return usage_on(self.ctx.engine, self.ctx.settings).to_json()

    def storage(self) -> dict[str, Any]:
        cached = self.storage_cache.get()
        return {"state": cached["state"], "refreshing": cached["refreshing"], "refreshed_at": cached["refreshed_at"],
                "ttl_seconds": cached["ttl_seconds"], "error": cached["error"], "usage": cached["value"]}

    async def storage_page(self, request: Request) -> Response:
        return self._page(request, "storage.html", storage=self.storage())

    async def storage_json(self, request: Request) -> Response:
        return JSONResponse(self.storage())

    def _backups(self) -> dict[str, Any]:
        from trackops.services.forget import list_snapshots
        from trackops.services.gc_plan import parse_age
        from trackops.services.verify import verify

        repo = self.backup_repository
        max_age_s = parse_age(self.backup_max_age) / 1000
        out: dict[str, Any] = {"repository": _safe_uri(repo), "max_age": self.backup_max_age,
                               "max_age_seconds": max_age_s, "checked_at": int(time.time() * 1000),
                               "snapshots": [], "newest": None, "newest_age_seconds": None, "stale": False,
                               "warning": None}
        if not repo:
            out["warning"] = ("No backup repository is configured: start trackops serve with --backup-repo "
                              "(or TRACKOPS_BACKUP_REPO).")
            return out
        settings = self.ctx.settings
        snapshots = list_snapshots(settings, repository=repo)
        problems: dict[str, list[str]] = {}
        if snapshots:
            report = verify(settings, repository=repo)  # manifests, indexes, objects present with their sizes
            for p in report.problems:
                problems.setdefault(p.snapshot, []).append(str(p))
        now = time.time()
        destination = settings.artifacts_destination or "./mlartifacts"
        for snap in snapshots:
            item = snap.to_json()
            created = dt.datetime.fromisoformat(snap.created.replace("Z", "+00:00")).timestamp()
            item.update(age_seconds=round(now - created, 1), verified=snap.id not in problems,
                        problems=problems.get(snap.id, []),
                        restore_command=" ".join(["trackops", "restore", snap.id, "--repo", shlex.quote(repo),
                                                  "--to-backend-store-uri",
                                                  shlex.quote(hide_password(settings.backend_store_uri)),
                                                  "--to-artifacts-destination", shlex.quote(destination)]))
            out["snapshots"].append(item)
        if not snapshots:
            out["stale"] = True
            out["warning"] = f"The repository {out['repository']} holds no snapshot yet: run trackops backup."
            return out
        newest = max(out["snapshots"], key=lambda item: item["created"])
        out["newest"], out["newest_age_seconds"] = newest["id"], newest["age_seconds"]
        if newest["age_seconds"] > max_age_s:
            out["stale"] = True
            out["warning"] = (f"The newest snapshot ({newest['id']}) is {_age_text(newest['age_seconds'])} old, "
                              f"older than --backup-max-age {self.backup_max_age}.")
        return out

    def backups(self) -> dict[str, Any]:
        cached = self.backups_cache.get()
        value = cached["value"] or {}
        return {**value, "state": cached["state"], "refreshing": cached["refreshing"],
                "refreshed_at": cached["refreshed_at"], "ttl_seconds": cached["ttl_seconds"],
                "error": cached["error"], "snapshots": value.get("snapshots", []),
                "repository": value.get("repository", _safe_uri(self.backup_repository)),
                "max_age": self.backup_max_age}

    async def backups_page(self, request: Request) -> Response:
        return self._page(request, "backups.html", backups=self.backups())

    async def backups_json(self, request: Request) -> Response:
        return JSONResponse(self.backups())

    def refresh_action(self, cache_name: str, page: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            await self._form(request)
            getattr(self, cache_name).refresh()
            return RedirectResponse(f"{request.scope.get('root_path', '').rstrip('/')}/admin/{page}", status_code=303)

        return handle

    # --- users ----------------------------------------------------------------------------------

    def users(self) -> dict[str, Any]:
        return {"users": self.store.list_users(), "tokens": [t.to_json() for t in self.store.list_tokens()],
                "permissions": [g.to_json() for g in self.store.list_grants()]}

    async def users_page(self, request: Request, status: int = 200, message: str | None = None,
                         error: str | None = None) -> Response:
        data = await run_in_threadpool(self.users)
        return self._page(request, "users.html", status, message=message, error=error,
                          permission_names=PERMISSIONS, kinds=KINDS, **data)

    async def users_json(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.users))

    def users_action(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            fields = await self._form(request)
            username = fields.get("username", "")
            try:
                if action == "create":
                    await run_in_threadpool(self.store.create_user, username, fields.get("password", ""))
                    message = f"User {username} created."
                elif action == "password":
                    await run_in_threadpool(self.store.set_password, username, fields.get("password", ""))
                    message = f"Password of {username} reset."
                elif action == "token-revoke":
                    token_id = fields.get("token_id", "").strip()
                    await run_in_threadpool(self.store.revoke_token, token_id)
                    message = f"Token {token_id} revoked."
                else:
                    kind, resource = _resource(fields)
                    what = kind.replace("_", " ")
                    if action == "grant":
                        grant = await run_in_threadpool(self.store.grant, username, kind, resource,
                                                        fields.get("permission", ""))
                        message = f"{grant.username} now has {grant.permission} on {what} {grant.resource}."
                    else:
                        await run_in_threadpool(self.store.revoke, username, kind, resource)
                        message = f"Revoked the permission of {username} on {what} {resource}."
            except TrackopsError as exc:  # one-line usage errors: bad name, short password, unknown user
                return await self.users_page(request, 400, error=exc.message)
            self.ctx.auth.guard.forget_permissions()  # this worker at once; the others by the epoch
            return await self.users_page(request, message=message)

        return handle


def _resource(fields: dict[str, str]) -> tuple[str, str]:
    """(kind, resource) of a grant or revoke form: ``kind`` + ``resource``, or the older ``experiment_id``."""
    kind = fields.get("kind", EXPERIMENT) or EXPERIMENT
    if kind not in KINDS:
        raise TrackopsError(f"unknown resource kind {kind!r}: experiment or registered_model")
    resource = fields.get("resource", fields.get("experiment_id", ""))
    return kind, resource.strip() if kind == EXPERIMENT else resource


def admin_routes(ctx: Any) -> list[StarletteRoute]:
    """The console's routes for a context with auth on (`create_app` adds them when ``ctx.auth`` is set)."""
    c = Console(ctx)

    def page(path, handler, methods=("GET",)):
        return StarletteRoute(path, c.wrap(handler), methods=list(methods), include_in_schema=False)

    def api(path, handler):
        return StarletteRoute(path, c.wrap(handler, json=True), methods=["GET"], include_in_schema=False)

    return [page("/admin", c.status_page), api("/admin/api/status", c.status_json),
            page("/admin/cleaner", c.cleaner_page), api("/admin/api/cleaner", c.cleaner_json),
            page("/admin/cleaner/confirm", c.cleaner_confirm, ["POST"]),
            page("/admin/cleaner/run", c.cleaner_run, ["POST"]),
            page("/admin/storage", c.storage_page), api("/admin/api/storage", c.storage_json),
            page("/admin/storage/refresh", c.refresh_action("storage_cache", "storage"), ["POST"]),
            page("/admin/backups", c.backups_page), api("/admin/api/backups", c.backups_json),
            page("/admin/backups/refresh", c.refresh_action("backups_cache", "backups"), ["POST"]),
            page("/admin/users", c.users_page), api("/admin/api/users", c.users_json),
            page("/admin/users/create", c.users_action("create"), ["POST"]),
            page("/admin/users/password", c.users_action("password"), ["POST"]),
            page("/admin/users/grant", c.users_action("grant"), ["POST"]),
            page("/admin/users/revoke", c.users_action("revoke"), ["POST"]),
            page("/admin/users/tokens/revoke", c.users_action("token-revoke"), ["POST"])]
