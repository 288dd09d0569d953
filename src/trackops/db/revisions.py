"""The tracking-schema chain, driven programmatically: what exists, where a database is, upgrade.

The chain is MLflow's: the 0.9.1 baseline tables (not a revision) and then 70 revisions from
`ROOT` (451aebb31d03) to `NEWEST` (f4a9b2c7d1e6, MLflow 3.18.0), recorded in ``alembic_version``. The
scripts are trackops' own (``db/migrations/versions``); only their ids and resulting schema match MLflow's.

`DEFAULT_HEAD` (dc11669786a5, MLflow 3.17.x; also spelled `HEAD`) is what ``db upgrade``, ``db init`` and
``serve`` mean by head. The revisions after it (MLflow 3.18.0's) are applied only when asked for
(``--to 3.18.0``); a database already at one of them is known and served as it is, never moved back.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory

ROOT = "451aebb31d03"
DEFAULT_HEAD = "dc11669786a5"
HEAD = DEFAULT_HEAD
NEWEST = "f4a9b2c7d1e6"
"""The last revision trackops carries; the chain's alembic head."""
VERSION_TABLE = "alembic_version"
# Tables that do not count when deciding whether a database is empty: alembic's bookkeeping (a failed
# first upgrade may leave it behind) and trackops' own tables.
IGNORED_PREFIXES = ("alembic_", "trackops_")

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"

StepCallback = Callable[[str, str | None], None]
"""Called after each applied revision with (revision, its down_revision)."""


def alembic_config(**attributes) -> Config:
    config = Config(output_buffer=attributes.pop("output_buffer", None))
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    config.attributes.update(attributes)
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def chain() -> list[Script]:
    """Every revision from ROOT to NEWEST, in order."""
    return list(script_directory().walk_revisions("base", "heads"))[::-1]


@functools.cache
def chain_ids() -> tuple[str, ...]:
    """The revision ids of `chain()`, oldest first (read once: the scripts do not change while running)."""
    return tuple(s.revision for s in chain())


def beyond_default_head(revision: str | None) -> bool:
    """True for a known revision after `DEFAULT_HEAD` (a database MLflow 3.18 or ``--to 3.18.0`` wrote)."""
    ids = chain_ids()
    return revision in ids and ids.index(revision) > ids.index(DEFAULT_HEAD)


def at_or_beyond_default_head(revision: str | None) -> bool:
    """True when a database at `revision` needs no upgrade to be served."""
    return revision == DEFAULT_HEAD or beyond_default_head(revision)


def current_revision(conn: sa.Connection) -> str | None:
    """The revision recorded in alembic_version, or None when there is none."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def user_tables(conn: sa.Connection) -> list[str]:
    """Tables that hold MLflow data (not alembic's or trackops' own)."""
    return [t for t in sa.inspect(conn).get_table_names() if not t.startswith(IGNORED_PREFIXES)]


def is_empty(conn: sa.Connection) -> bool:
    return not user_tables(conn)


def upgrade(conn: sa.Connection, target: str = DEFAULT_HEAD, *, on_step: StepCallback | None = None) -> None:
    """Bring the database on `conn` to `target`, creating the 0.9.1 baseline first when it is empty.

    The caller owns the transaction: on PostgreSQL and SQLite the whole upgrade can be rolled back;
    on MySQL/MariaDB DDL commits as it goes, and the scripts check what exists so a re-run finishes.
    """
    from trackops.db.baseline import create_baseline

    if is_empty(conn) and current_revision(conn) is None:
        create_baseline(conn)

    def on_version_apply(*, ctx, step, heads, run_args) -> None:  # alembic's callback signature
        if on_step is not None:
            on_step(step.up_revision_id, step.down_revision_ids[0] if step.down_revision_ids else None)

    config = alembic_config(connection=conn, on_version_apply=on_version_apply)
    command.upgrade(config, target)


def upgrade_sql(url: str | sa.URL, target: str = DEFAULT_HEAD, *, start: str | None = None) -> str:
    """The DDL an upgrade from `start` (None: an empty database) to `target` would run, as text."""
    from trackops.db.baseline import baseline_sql

    buffer = io.StringIO()
    if start is None:
        buffer.write(baseline_sql(url))
    config = alembic_config(url=url, output_buffer=buffer)
    command.upgrade(config, f"{start}:{target}" if start else target, sql=True)
    return buffer.getvalue()
