"""Building the app a worker serves, from a `ServeConfig` (passed in, or read from the environment).

uvicorn starts each worker by import string, so `app_from_env` is the factory it calls
(``trackops.server.factory:app_from_env``, ``factory=True``); the parent process has already run
the preflight (`services.serve.preflight`), so a worker only opens its engine and stores.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading

from starlette.applications import Starlette

from trackops.db.engine import create_engine, parse_url
from trackops.server.app import ServerContext, create_app
from trackops.server.routing import Route, collect
from trackops.server.ui import bundle_of
from trackops.services.serve import ServeConfig, readiness

log = logging.getLogger("trackops.server")

HANDLER_MODULES = ("tracking", "artifacts", "meta", "registry", "logged_models", "traces", "ui_support", "webhooks")

# The thread pool runs up to 40 handlers at once; the pool lets most of them hold a connection.
POOL_SIZE = 10
MAX_OVERFLOW = 30


def routes() -> list[Route]:
    modules = []
    for name in HANDLER_MODULES:
        try:
            modules.append(importlib.import_module(f"trackops.server.handlers.{name}"))
        except ImportError as exc:  # a store the handlers need is not available in this build
            log.warning("endpoints in %s are disabled: %s", name, exc)
    from trackops.server.handlers.webhooks import with_events

    return with_events(collect(*modules))  # registry changes queue their webhook events


def build_context(config: ServeConfig) -> ServerContext:
    from trackops.artifacts import repository_for
    from trackops.stores.tracking import TrackingStore

    url = parse_url(config.backend_store_uri)
    kwargs = {} if url.get_backend_name() == "sqlite" else {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW}
    engine = create_engine(url, **kwargs)
    ctx = ServerContext(settings=config.settings, engine=engine, serve_artifacts=config.serve_artifacts)
    ctx.tracking = TrackingStore(engine, default_artifact_root=config.default_artifact_root)
    ctx.registry = _optional_store("trackops.stores.registry", "RegistryStore", engine)
    ctx.logged_models = _optional_store("trackops.stores.logged_models", "LoggedModelStore", engine,
                                        default_artifact_root=config.default_artifact_root)
    ctx.artifacts = repository_for(config.artifacts_destination) if config.serve_artifacts else None
    from trackops.stores.webhook_urls import private_allowed_by_env
    from trackops.stores.webhooks import WebhookStore

    ctx.webhooks = WebhookStore(engine, allow_private=config.webhooks_allow_private or private_allowed_by_env())
    ctx.readiness = lambda: readiness(engine, ctx.artifacts)
    ctx.ui, ctx.static_prefix = bundle_of(config), config.static_prefix
    if url.get_backend_name() == "sqlite":
        ctx.write_lock = threading.Lock()
        ctx.inline_handlers = True
    else:
        from trackops.db.engine import event_loop_reader

        ctx.loop_reader = event_loop_reader(engine)  # PostgreSQL: one-row reads awaited on the loop
        ctx.inline_handlers = ctx.loop_reader is not None
    if config.auth or config.artifacts_credentials_secret:
        from trackops.server.auth import configure

        configure(ctx, config)  # --auth, --artifacts-credentials-secret (server/auth.py)
    return ctx


def _optional_store(module: str, cls: str, engine, **kwargs):
    try:
        store_cls = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None
    try:
        return store_cls(engine, **kwargs)
    except TypeError:
        return store_cls(engine)


def build_app(config: ServeConfig) -> Starlette:
    if config.auth:
        from trackops.server.auth import auth_routes

        return create_app(build_context(config), routes() + auth_routes())
    return create_app(build_context(config), routes())


def serve_app(config: ServeConfig):
    """`build_app` behind the host/origin/frame protection (server/security.py), as a worker serves it,
    with ``/version`` answering the MLflow client as `mlflow server` does (server/client_version.py)."""
    from trackops.server.client_version import MlflowClientVersion
    from trackops.server.security import SecurityOptions, secure

    return secure(MlflowClientVersion(build_app(config), config.static_prefix), SecurityOptions.from_config(config))


def _start_webhook_sender(app) -> None:
    """This worker's webhook sender (services/webhooks.py), stopped when the process exits."""
    import atexit

    from trackops.services.webhooks import WebhookSender

    inner = app
    while not hasattr(getattr(inner, "state", None), "ctx") and hasattr(inner, "app"):
        inner = inner.app  # through the security middleware to the Starlette app
    ctx = inner.state.ctx
    sender = WebhookSender(ctx.webhooks, lock=ctx.write_lock)
    ctx.webhook_sender = sender
    sender.start()
    atexit.register(sender.stop)


def app_from_env():
    """The uvicorn factory: the app for the `ServeConfig` the parent put in the environment."""
    config = ServeConfig.from_env()
    app = serve_app(config)
    _start_webhook_sender(app)
    if config.access_log:
        from trackops.server.access_log import AccessLogMiddleware

        app = AccessLogMiddleware(app)
    # What start-up built lives as long as the worker: kept out of the collector's generations, a
    # full collection (which a 1000-run search page's objects trigger) no longer walks all of it.
    gc.freeze()
    return app
