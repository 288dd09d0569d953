"""trackops' own tables: ``trackops_*`` tables in the tracking database, with their own alembic chain.

They live beside MLflow's tables but are versioned in ``trackops_alembic_version`` by the scripts in
``db/own_migrations/versions``, so MLflow's ``alembic_version`` and schema stay exactly what MLflow
expects (MLflow ignores tables it does not know). Later features add their tables (users,
permissions, secrets, backup catalog) as new revisions of this chain.

As in `revisions`, alembic is imported only to migrate: `OWN_HEAD` and a plain read of the version table
answer what a server asks at start-up.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from trackops import __version__
from trackops.db.revisions import single_revision

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "trackops_alembic_version"
OWN_HEAD = "t0003"
"""The newest revision of the own chain; a test proves it is the scripts' head."""
_SCRIPTS = Path(__file__).parent / "own_migrations"

_md = sa.MetaData()
operations = sa.Table(
    "trackops_operations", _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("from_revision", sa.String(32)),
    sa.Column("to_revision", sa.String(32)),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger),
    sa.Column("trackops_version", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("message", sa.String(1000)),
)
"""The log of maintenance runs (revision t0001)."""


def _config(**attributes) -> Config:
    from alembic.config import Config

    config = Config(output_buffer=attributes.pop("output_buffer", None))
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes.update(attributes)
    return config


def own_head() -> str:
    """The newest revision of trackops' own chain (`OWN_HEAD`, without reading the scripts)."""
    return OWN_HEAD


def scripts_head() -> str:
    """The own chain's head as alembic reads it from the scripts (what `OWN_HEAD` must equal)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def own_current(conn: sa.Connection) -> str | None:
    """The revision in ``trackops_alembic_version``, or None when the own tables were never created."""
    return single_revision(conn, VERSION_TABLE)


def upgrade_own(conn: sa.Connection) -> list[str]:
    """Bring trackops' own tables to their head on `conn` (the caller owns the transaction); the revisions run."""
    applied: list[str] = []

    def on_version_apply(*, ctx, step, heads, run_args) -> None:
        applied.append(step.up_revision_id)

    from alembic import command

    command.upgrade(_config(connection=conn, on_version_apply=on_version_apply), "heads")
    return applied


def own_upgrade_sql(url: str | sa.URL, *, start: str | None = None) -> str:
    """The DDL that `upgrade_own` would run from `start` (None: no own tables yet), as text."""
    if start == own_head():
        return ""
    from alembic import command

    buffer = io.StringIO()
    config = _config(url=url, output_buffer=buffer)
    command.upgrade(config, f"{start}:heads" if start else "heads", sql=True)
    return buffer.getvalue()


def now_ms() -> int:
    return int(time.time() * 1000)


def log_operation(conn: sa.Connection, operation: str, *, from_revision: str | None, to_revision: str | None,
                  started_at: int, outcome: str, message: str | None = None) -> None:
    """Add one finished run to ``trackops_operations`` (the own tables must exist)."""
    conn.execute(operations.insert().values(
        operation=operation, from_revision=from_revision, to_revision=to_revision, started_at=started_at,
        finished_at=now_ms(), trackops_version=__version__, outcome=outcome,
        message=None if message is None else message[:1000]))


def recent_operations(conn: sa.Connection, limit: int = 20) -> list[dict]:
    """The newest rows of ``trackops_operations``, newest first (empty when the table does not exist)."""
    if not sa.inspect(conn).has_table("trackops_operations"):
        return []
    rows = conn.execute(sa.select(operations).order_by(operations.c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]
