"""What trackops would use: resolved settings, the database behind them and its schema revision."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from trackops import __version__
from trackops.config import Settings
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url, server_version, sqlite_path
from trackops.errors import TrackopsError


@dataclasses.dataclass
class InfoReport:
    """The result of `info`; `to_json()` is the documented `--json` shape."""

    trackops_version: str
    backend_store_uri: str
    dialect: str
    artifacts_destination: str
    default_artifact_root: str | None
    config_file: str | None
    sources: dict[str, str]
    exists: bool = True
    reachable: bool = False
    server_version: str | None = None
    revision: str | None = None
    trackops_revision: str | None = None
    error: TrackopsError | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "error"}
        out["error"] = None if self.error is None else {
            "message": self.error.message, "hint": self.error.hint, "exit_code": int(self.error.exit_code)}
        return out


def info(settings: Settings) -> InfoReport:
    """Show the resolved settings, the database and its schema revision."""
    url = parse_url(settings.backend_store_uri)
    report = InfoReport(
        trackops_version=__version__,
        backend_store_uri=hide_password(url),
        dialect=url.get_backend_name(),
        artifacts_destination=settings.artifacts_destination,
        default_artifact_root=settings.default_artifact_root,
        config_file=settings.config_file,
        sources=dict(settings.sources),
    )
    path = sqlite_path(url) if report.dialect == "sqlite" else None
    if path is not None and not path.exists() and path.parent.exists():
        # A SQLite file not created yet is the fresh-machine state, not an error; never create it here.
        report.exists = False
        return report
    try:
        engine = create_engine(url, must_exist=True)
        try:
            with connect_errors(url), engine.connect() as conn:
                report.reachable = True
                report.server_version = server_version(conn)
                report.revision = read_revision(conn, "alembic_version")
                report.trackops_revision = read_revision(conn, "trackops_alembic_version")
        finally:
            engine.dispose()
    except TrackopsError as exc:
        report.error = exc
    return report


def read_revision(conn: sa.Connection, version_table: str) -> str | None:
    """The single revision in an alembic version table, or None when there is no table or row."""
    if not sa.inspect(conn).has_table(version_table):
        return None
    rows = conn.execute(sa.text(f"SELECT version_num FROM {version_table}")).scalars().all()
    return ",".join(sorted(rows)) if rows else None
