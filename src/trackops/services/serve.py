"""`trackops serve` as a use case: the preflight that runs once before the server's workers start.

The preflight makes the database and artifact destination ready, and never surprises the
administrator:

- a database that does not exist yet, or is empty, is created at head (the fresh-machine case);
- a database at head is used as it is;
- a database behind head is refused unless ``upgrade=True`` (``--upgrade``), with the exact
  ``trackops db upgrade`` command as the hint -- never a silent migration;
- a revision trackops does not know (a newer MLflow wrote it) is refused;
- the Default experiment (id 0) is created when missing, as `mlflow server` does on first start;
- a local artifacts destination is created, so that ``/ready`` can check it is writable.

`ServeConfig` is what the workers receive (through an environment variable, since uvicorn starts
them by import string); `readiness` is the ``/ready`` check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from typing import Any

import sqlalchemy as sa

from trackops.config import Settings
from trackops.db import revisions
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url
from trackops.errors import CheckFailedError, TrackopsError
from trackops.services import migrate

CONFIG_ENV = "TRACKOPS_SERVE_CONFIG"
PROXIED_ROOT = "mlflow-artifacts:/"
LOCAL_ROOT = "./mlruns"


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Everything a worker needs to build the app; JSON-serialisable for the hand-over to workers."""

    backend_store_uri: str
    artifacts_destination: str
    default_artifact_root: str
    serve_artifacts: bool = True
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    auth: bool = False
    default_permission: str = "READ"
    artifacts_credentials_secret: str | None = None
    # MLflow's web UI (server/ui.py): the bundle the parent located, so that every worker serves it
    ui_source: str = "none"  # mlflow-package, ui-dir, cache, none or disabled
    ui_dir: str | None = None
    ui_mlflow_version: str | None = None
    static_prefix: str | None = None  # UI and API under this path, as mlflow server --static-prefix
    access_log: bool = True
    # Host, origin and frame protection (server/security.py), MLflow's --allowed-hosts and friends
    allowed_hosts: str | None = None  # comma-separated; None: localhost, private ranges and --host
    cors_allowed_origins: str | None = None
    x_frame_options: str = "SAMEORIGIN"
    frame_ancestors: str | None = None  # sites that may embed the UI (Content-Security-Policy)
    disable_security_middleware: bool = False
    webhooks_allow_private: bool = False  # webhook URLs may reach loopback/private addresses (SSRF check off)
    # What the admin console (server/admin.py) shows and plans with: the cleaner's age and interval,
    # the backup repository whose snapshots it lists, and when the newest is too old.
    gc_interval: str | None = None
    gc_older_than: str = "30d"
    gc_orphans: bool = True  # with gc_interval: also sweep orphaned artifact folders older than the grace
    gc_orphan_grace: str = "1d"
    backup_repository: str | None = None
    backup_max_age: str = "2d"

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServeConfig:
        raw = (env if env is not None else os.environ).get(CONFIG_ENV)
        if not raw:
            raise TrackopsError(f"{CONFIG_ENV} is not set", hint="start the server with: trackops serve")
        return cls(**json.loads(raw))

    @property
    def settings(self) -> Settings:
        return Settings(backend_store_uri=self.backend_store_uri, artifacts_destination=self.artifacts_destination,
                        default_artifact_root=self.default_artifact_root, host=self.host, port=self.port,
                        backup_repository=self.backup_repository)


@dataclasses.dataclass(frozen=True)
class PreflightReport:
    """What the preflight found and did."""

    database: str
    created: bool
    upgraded_from: str | None
    revision: str
    default_experiment_created: bool
    config: ServeConfig
    warnings: tuple[str, ...] = ()  # what the admin should know about the database (printed at start)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["config"]["backend_store_uri"] = hide_password(self.config.backend_store_uri)
        return out


def serve_config(settings: Settings, *, serve_artifacts: bool = True, workers: int = 1,
                 **security: Any) -> ServeConfig:
    """Resolve the artifact root new experiments get: the flag, else proxied, else ./mlruns (absolute)."""
    from trackops.stores.uris import resolve_uri_if_local

    root = settings.default_artifact_root or (PROXIED_ROOT if serve_artifacts else LOCAL_ROOT)
    destination = settings.artifacts_destination
    if destination and "://" not in destination and not destination.startswith("file:"):
        destination = os.path.abspath(destination)
    if workers < 1:
        raise TrackopsError(f"--workers must be at least 1, not {workers}")
    security.setdefault("backup_repository", settings.backup_repository)
    return ServeConfig(backend_store_uri=settings.backend_store_uri, artifacts_destination=destination,
                       default_artifact_root=resolve_uri_if_local(root), serve_artifacts=serve_artifacts,
                       host=settings.host, port=settings.port, workers=workers, **security)


def preflight(settings: Settings, *, upgrade: bool = False, serve_artifacts: bool = True,
              workers: int = 1, **security: Any) -> PreflightReport:
    """Make the database (at head, with the Default experiment) and the artifact destination ready."""
    config = serve_config(settings, serve_artifacts=serve_artifacts, workers=workers, **security)
    url = parse_url(settings.backend_store_uri)
    before = migrate.current(settings)
    upgraded_from = None
    if before.revision is not None and not before.known:
        migrate.init(settings)  # raises the "unknown revision" error with its hint
    # A known revision past head (MLflow 3.18.0's) is served as it is: that MLflow wrote it, and
    # trackops never moves a database back.
    behind_head = before.revision is not None and not revisions.at_or_beyond_default_head(before.revision)
    if behind_head and not upgrade:
        raise CheckFailedError(
            f"the database {before.database} is at revision {before.revision} (MLflow {before.mlflow_version}), "
            f"behind head {revisions.HEAD}; trackops serve does not migrate without being asked",
            hint=f"trackops db upgrade --backend-store-uri {before.database}   (or start with --upgrade)")
    if upgrade:
        report = migrate.upgrade(settings)
        if report.plan.steps and not report.plan.empty:
            upgraded_from = report.plan.current or "0.9.1 baseline"
    else:
        try:
            migrate.init(settings)
        except CheckFailedError as exc:  # the 0.9.1 baseline without any revision: behind head too
            raise CheckFailedError(exc.message, hint=f"trackops db upgrade --backend-store-uri {before.database}"
                                   "   (or start with --upgrade)") from None
    created = not before.exists or (before.revision is None and not upgraded_from)

    from trackops.stores.tracking import TrackingStore

    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with connect_errors(url):
            made_default = TrackingStore(engine, default_artifact_root=config.default_artifact_root
                                         ).ensure_default_experiment()
            warnings = database_warnings(engine)
    finally:
        engine.dispose()
    if serve_artifacts:
        _prepare_destination(config.artifacts_destination)
    if config.auth or config.artifacts_credentials_secret:  # first admin, readable secret (auth/bootstrap.py)
        from trackops.auth.bootstrap import security_preflight

        security_preflight(config.backend_store_uri, auth=config.auth, default_permission=config.default_permission,
                           artifacts_credentials_secret=config.artifacts_credentials_secret,
                           artifacts_destination=config.artifacts_destination)
    return PreflightReport(database=hide_password(url), created=created, upgraded_from=upgraded_from,
                           revision=before.revision if revisions.beyond_default_head(before.revision)
                           else revisions.HEAD, default_experiment_created=made_default, config=config,
                           warnings=warnings)


AUTOVACUUM_OFF = ("PostgreSQL autovacuum is off on this server: tables get no fresh planner statistics, and "
                  "searches slow down as they grow (a run search measured 100x slower on never-analysed tables). "
                  "Turn autovacuum on, or run ANALYZE after large loads and on a schedule.")


def database_warnings(engine: sa.Engine) -> tuple[str, ...]:
    """Settings of the database server that hurt a tracking server: PostgreSQL without autovacuum."""
    if engine.dialect.name != "postgresql":
        return ()
    with engine.connect() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    return (AUTOVACUUM_OFF,) if str(autovacuum).lower() in ("off", "false", "0") else ()


def _prepare_destination(destination: str) -> None:
    from trackops.artifacts import repository_for
    from trackops.artifacts.registry import local_path, scheme_of

    if scheme_of(destination) in ("", "file"):
        os.makedirs(local_path(destination), exist_ok=True)
    else:
        repository_for(destination)  # an unsupported scheme fails here, before the workers start


def readiness(engine: sa.Engine, artifacts) -> dict[str, Any]:
    """``/ready``: database reachable and at head, artifact destination writable (each check named)."""
    checks: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            revision = revisions.current_revision(conn)
        checks["database"] = "ok"
        checks["schema"] = ("ok" if revisions.at_or_beyond_default_head(revision)
                            else f"at {revision}, expected {revisions.HEAD}")
    except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["schema"] = "unknown"
    if artifacts is None:
        checks["artifacts"] = "not served"
    else:
        probe = f".trackops-ready-{uuid.uuid4().hex}"
        try:
            artifacts.write(probe, b"")
            artifacts.delete(probe)
            checks["artifacts"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["artifacts"] = f"not writable ({type(exc).__name__})"
    checks["ok"] = all(v in ("ok", "not served") for k, v in checks.items() if k != "ok")
    return checks
