"""`trackops serve`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from trackops.cli.common import (ArtifactsDestination, BackendStoreUri, DefaultArtifactRoot, console,
                                 settings_from)
from trackops.services.serve import CONFIG_ENV, preflight


def serve(
    backend_store_uri: BackendStoreUri = None,
    artifacts_destination: ArtifactsDestination = None,
    default_artifact_root: DefaultArtifactRoot = None,
    serve_artifacts: Annotated[bool, typer.Option(
        "--serve-artifacts/--no-serve-artifacts",
        help="Proxy artifact uploads and downloads (mlflow-artifacts:/). With --no-serve-artifacts clients "
             "write to --default-artifact-root themselves.")] = True,
    host: Annotated[str | None, typer.Option("--host", metavar="HOST",
                                             help="Address to listen on. Env: TRACKOPS_HOST. Default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", metavar="PORT",
                                             help="Port to listen on. Env: TRACKOPS_PORT. Default 5000.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, metavar="N",
                                         help="Worker processes (each with its own connection pool).")] = 1,
    upgrade: Annotated[bool, typer.Option(
        "--upgrade", help="Upgrade a database that is behind head before serving (otherwise it is refused).")] = False,
    auth: Annotated[bool, typer.Option(
        "--auth", help="Require HTTP Basic or Bearer-token credentials and check per-experiment / per-model "
                       "permissions. The first admin comes from TRACKOPS_ADMIN_USERNAME + TRACKOPS_ADMIN_PASSWORD "
                       "or trackops users create --admin (docs/auth.md).")] = False,
    default_permission: Annotated[str, typer.Option(
        "--default-permission", metavar="PERMISSION",
        help="With --auth: what users may do where they have no grant: READ (default), EDIT, MANAGE or "
             "NO_PERMISSIONS.")] = "READ",
    artifacts_credentials_secret: Annotated[str | None, typer.Option(
        "--artifacts-credentials-secret", metavar="NAME",
        help="Take the S3 destination's credentials from this named secret (trackops secrets set; "
             "needs TRACKOPS_SECRETS_KEK). See docs/secrets.md.")] = None,
    gc_interval: Annotated[str | None, typer.Option(
        "--gc-interval", metavar="AGE",
        help="Run trackops gc in a background thread every AGE (e.g. 1h); each pass is logged. See docs/gc.md.")] = None,
    gc_older_than: Annotated[str, typer.Option(
        "--gc-older-than", metavar="AGE", help="With --gc-interval: collect only items deleted longer ago.")] = "30d",
    gc_orphans: Annotated[bool, typer.Option(
        "--gc-orphans/--no-gc-orphans",
        help="With --gc-interval: also sweep artifact folders no row points at, once older than "
             "--gc-orphan-grace.")] = True,
    gc_orphan_grace: Annotated[str, typer.Option(
        "--gc-orphan-grace", metavar="AGE",
        help="With --gc-orphans: leave orphaned folders younger than this (an upload may be in flight).")] = "1d",
    backup_repo: Annotated[str | None, typer.Option(
        "--backup-repo", metavar="REPO",
        help="With --auth: the backup repository whose snapshots the admin console lists (a folder or "
             "s3://bucket/prefix). Env: TRACKOPS_BACKUP_REPO.")] = None,
    backup_max_age: Annotated[str, typer.Option(
        "--backup-max-age", metavar="AGE",
        help="With --backup-repo: the admin console warns when the newest snapshot is older than this.")] = "2d",
    ui_dir: Annotated[str | None, typer.Option(
        "--ui-dir", metavar="DIR",
        help="Serve MLflow's web UI from this folder (it holds index.html). Env: TRACKOPS_UI_DIR. Default: the "
             "installed mlflow package's bundle, else the one trackops ui fetch cached (docs/ui.md).")] = None,
    no_ui: Annotated[bool, typer.Option(
        "--no-ui", help="Serve no web UI: / and /static-files answer 404 like any unknown path.")] = False,
    static_prefix: Annotated[str | None, typer.Option(
        "--static-prefix", metavar="PREFIX",
        help="Serve the UI, the API and the probes under this path (e.g. /mlflow), as mlflow server does.")] = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log",
        help="Log one line per request on stderr: client, method, path, status, user, duration (never "
             "headers, bodies or query strings).")] = True,
    allowed_hosts: Annotated[str | None, typer.Option(
        "--allowed-hosts", metavar="HOSTS",
        help="Comma-separated Host headers to accept (DNS rebinding protection); * in a name matches anything, "
             "* alone accepts all. Env: TRACKOPS_ALLOWED_HOSTS, then MLFLOW_SERVER_ALLOWED_HOSTS. Default: "
             "localhost, 127.0.0.1, [::1], 0.0.0.0 on any port, private IPs (10.*, 192.168.*, 172.16-31.*) "
             "and --host.")] = None,
    cors_allowed_origins: Annotated[str | None, typer.Option(
        "--cors-allowed-origins", metavar="ORIGINS",
        help="Comma-separated origins (https://app.example, https://*.corp.example) whose pages may call the "
             "API; cross-origin writes from others get 403. * allows any origin without credentials. Env: "
             "TRACKOPS_CORS_ALLOWED_ORIGINS, then MLFLOW_SERVER_CORS_ALLOWED_ORIGINS. Default: localhost "
             "origins on any port.")] = None,
    x_frame_options: Annotated[str | None, typer.Option(
        "--x-frame-options", metavar="VALUE",
        help="X-Frame-Options on every response: SAMEORIGIN (default), DENY, or NONE (no header). Env: "
             "TRACKOPS_X_FRAME_OPTIONS, then MLFLOW_SERVER_X_FRAME_OPTIONS.")] = None,
    frame_ancestors: Annotated[str | None, typer.Option(
        "--frame-ancestors", metavar="SITES",
        help="Comma-separated sites that may show the UI in an iframe (https://portal.example); sent as "
             "Content-Security-Policy: frame-ancestors 'self' SITES instead of X-Frame-Options. Env: "
             "TRACKOPS_FRAME_ANCESTORS.")] = None,
    disable_security_middleware: Annotated[bool, typer.Option(
        "--disable-security-middleware",
        help="DANGEROUS: no host check, no CORS protection, no security headers (for testing only). Env: "
             "TRACKOPS_DISABLE_SECURITY_MIDDLEWARE, then MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE.")] = False,
    sqlite_synchronous: Annotated[str | None, typer.Option(
        "--sqlite-synchronous", metavar="MODE",
        help="SQLite only: full (default) flushes every commit to disk; normal skips that wait (faster small "
             "writes where the flush is slow), and a power loss or OS crash may undo the last commits, never "
             "corrupt the file. Env: TRACKOPS_SQLITE_SYNCHRONOUS. See docs/serve.md#sqlite-durability.")] = None,
    webhooks_allow_private: Annotated[bool, typer.Option(
        "--webhooks-allow-private",
        help="Let registry webhooks reach loopback, private and link-local addresses (no SSRF check), for "
             "private deployments. Env: MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true. See docs/serve.md#webhooks.")] = False,
) -> int:
    """Run an MLflow-compatible tracking server (REST API 2.0, proxied artifacts, model registry).

    A missing or empty database is created at head; one behind head is refused unless --upgrade
    is given. Probes: /health, /ready, /version; Prometheus metrics on /metrics. SIGTERM stops
    the server gracefully (in-flight requests finish). See docs/serve.md.

    Examples:

      trackops serve

      trackops serve --backend-store-uri postgresql://mlflow@db/mlflow \\
        --artifacts-destination s3://bucket/mlartifacts --host 0.0.0.0 --workers 4

      trackops serve --host 0.0.0.0 --allowed-hosts "mlflow.example.com" \\
        --frame-ancestors "https://portal.example.com"
    """
    from trackops.db.engine import SQLITE_SYNCHRONOUS_ENV, sqlite_synchronous as synchronous_mode

    if sqlite_synchronous is not None:  # the workers' engines read it from the environment
        os.environ[SQLITE_SYNCHRONOUS_ENV] = sqlite_synchronous
    synchronous_mode()  # a bad value is a usage error before anything is opened

    settings = settings_from(backend_store_uri=backend_store_uri, artifacts_destination=artifacts_destination,
                             default_artifact_root=default_artifact_root, host=host, port=port,
                             backup_repository=backup_repo)
    from trackops.server.ui import locate_bundle, normalise_prefix

    from trackops.server.security import resolve_flags

    security = resolve_flags(allowed_hosts=allowed_hosts, cors_allowed_origins=cors_allowed_origins,
                             x_frame_options=x_frame_options, frame_ancestors=frame_ancestors,
                             disable_security_middleware=disable_security_middleware)
    bundle = locate_bundle(ui_dir=ui_dir, disabled=no_ui)
    report = preflight(settings, upgrade=upgrade, serve_artifacts=serve_artifacts, workers=workers, auth=auth,
                       default_permission=default_permission.upper(),
                       artifacts_credentials_secret=artifacts_credentials_secret, access_log=access_log,
                       ui_source=bundle.source, ui_dir=bundle.path, ui_mlflow_version=bundle.mlflow_version,
                       static_prefix=normalise_prefix(static_prefix), webhooks_allow_private=webhooks_allow_private,
                       gc_interval=_checked_interval(gc_interval), gc_older_than=_checked_age(gc_older_than),
                       gc_orphans=gc_orphans, gc_orphan_grace=_checked_age(gc_orphan_grace),
                       backup_repository=settings.backup_repository, backup_max_age=_checked_age(backup_max_age),
                       **security)
    config = report.config
    if report.created:
        console.print(f"Created the database {report.database} at head {report.revision}.", markup=False)
    if report.upgraded_from:
        console.print(f"Upgraded the database {report.database} from {report.upgraded_from} to "
                      f"{report.revision}.", markup=False)
    where = config.artifacts_destination if config.serve_artifacts else "not served (clients write directly)"
    console.print(f"Serving {report.database} on http://{config.host}:{config.port} "
                  f"(artifacts: {where}; workers: {config.workers})", markup=False, soft_wrap=True)
    console.print(f"UI: {_ui_line(bundle, config)}", markup=False, soft_wrap=True)
    for warning in (*report.warnings, *_security_warnings(config)):
        console.print(f"WARNING: {warning}", markup=False, soft_wrap=True)
    os.environ[CONFIG_ENV] = config.to_env()
    from trackops.stores.webhooks import share_process_key

    share_process_key(os.environ)  # one webhook-secret key for all workers when none is configured
    from trackops.server import run

    if run.exec_available():
        run.replace_process()  # the serving process, without the CLI's and the migrations' modules
    return run.run(config)  # no exec here (Windows), or it failed: serve from this process


def _checked_age(age: str) -> str:
    from trackops.services.gc_plan import parse_age

    parse_age(age)  # a bad value is a usage error before the server starts
    return age


def _checked_interval(interval: str | None) -> str | None:
    from trackops.services.gc_plan import interval_seconds

    if interval is not None:
        interval_seconds(interval)  # zero or a bad value is a usage error before the server starts
    return interval


def _ui_line(bundle, config) -> str:
    if bundle.source == "none":
        return "not installed (trackops ui fetch installs it; see docs/ui.md)"
    if bundle.source == "disabled":
        return "disabled (--no-ui)"
    return (f"http://{config.host}:{config.port}{config.static_prefix or ''}/ "
            f"(MLflow {bundle.mlflow_version or '?'} from {bundle.source})")


def _security_warnings(config) -> list[str]:
    """MLflow's warnings for the settings that take a protection away."""
    if config.disable_security_middleware:
        return ["security middleware disabled: no host check, no CORS protection, no security headers."]
    out = []
    if config.allowed_hosts == "*":
        out.append("Accepting ALL hosts. This may leave the server vulnerable to DNS rebinding attacks.")
    if config.cors_allowed_origins and "*" in config.cors_allowed_origins.split(","):
        out.append("Allowing ALL origins for CORS. This allows ANY website to access your MLflow data.")
    return out
