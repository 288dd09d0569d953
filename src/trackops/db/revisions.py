"""The tracking-schema chain, driven programmatically: what exists, where a database is, upgrade.

The chain is MLflow's: the 0.9.1 baseline tables (not a revision) and then 70 revisions from
`ROOT` (451aebb31d03) to `NEWEST` (f4a9b2c7d1e6, MLflow 3.18.0), recorded in ``alembic_version``. The
scripts are trackops' own (``db/migrations/versions``); only their ids and resulting schema match MLflow's.

`DEFAULT_HEAD` (dc11669786a5, MLflow 3.17.x; also spelled `HEAD`) is what ``db upgrade``, ``db init`` and
``serve`` mean by head. The revisions after it (MLflow 3.18.0's) are applied only when asked for
(``--to 3.18.0``); a database already at one of them is known and served as it is, never moved back.

alembic is imported only by what migrates (`upgrade`, `upgrade_sql`, `chain`): the questions a server
asks at start-up and on ``/ready`` (where is the database, is it at head) are answered from `CHAIN_IDS`
and a plain read of ``alembic_version``, so a running server does not carry alembic, mako and pygments
(about 11 MiB resident).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

ROOT = "451aebb31d03"
DEFAULT_HEAD = "dc11669786a5"
HEAD = DEFAULT_HEAD
NEWEST = "f4a9b2c7d1e6"
"""The last revision trackops carries; the chain's alembic head."""
CHAIN_IDS: tuple[str, ...] = (
    "451aebb31d03", "90e64c465722", "181f10493468", "df50e92ffc5e", "7ac759974ad8",
    "89d4b8295536", "2b4d017a5e9b", "cfd24bdc0731", "0a8213491aaa", "728d730b5ebd",
    "27a6a02d2cf1", "84291f40a231", "a8c4a736bde6", "39d1c3be5f05", "c48cb773bb87",
    "bd07f7e963c5", "0c779009ac13", "cc1f77228345", "97727af70f4d", "3500859a5d39",
    "7f2a7d5fae7d", "2d6e25af4d3e", "acf3f17fdcc7", "867495a8f9d4", "5b0e9adcef9c",
    "4465047574b1", "f5a4f2784254", "0584bdc529eb", "400f98739977", "6953534de441",
    "bda7b8c39065", "cbc13b556ace", "770bee3ae1dd", "a1b2c3d4e5f6", "de4033877273",
    "1a0cddfcaa16", "534353b11cbc", "71994744cf8e", "3da73c924c2f", "bf29a5ff90ea",
    "1bd49d398cd23", "b7c8d9e0f1a2", "5d2d30f0abce", "c9d4e5f6a7b8", "2c33131f4dae",
    "d3e4f5a6b7c8", "d0e1f2a3b4c5", "c8d9e0f1a2b3", "1b5f0d9ad7c1", "e1f2a3b4c5d6",
    "76601a5f987d", "c3d6457b6d8a", "a5b4c3d2e1f0", "ae8bbe7743c9", "7d34483879f0",
    "da6fb0208061", "89d3d66ed43f", "b7e4c1a90f23", "a8b9c0d1e2f3", "c1d2e3f4a5b6",
    "c3d9e7f1a2b4", "6f8d9c3b2a1e", "1971f2d9a75b", "17e22815139b", "b7e2c1a4d9f3",
    "75868b020152", "dc11669786a5", "e7d1f4b2a9c6", "8b6ad64cb8f5", "f4a9b2c7d1e6",
)
"""The revision ids of `chain()`, oldest first; a test proves them equal to the scripts' walk, so a new
script fails the suite until it is added here."""
VERSION_TABLE = "alembic_version"
# Tables that do not count when deciding whether a database is empty: alembic's bookkeeping (a failed
# first upgrade may leave it behind) and trackops' own tables.
IGNORED_PREFIXES = ("alembic_", "trackops_")

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"

StepCallback = Callable[[str, str | None], None]
"""Called after each applied revision with (revision, its down_revision)."""


def alembic_config(**attributes) -> Config:
    from alembic.config import Config

    config = Config(output_buffer=attributes.pop("output_buffer", None))
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    config.attributes.update(attributes)
    return config


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def chain() -> list[Script]:
    """Every revision from ROOT to NEWEST, in order."""
    return list(script_directory().walk_revisions("base", "heads"))[::-1]


def chain_ids() -> tuple[str, ...]:
    """The revision ids of `chain()`, oldest first, without reading the scripts (`CHAIN_IDS`)."""
    return CHAIN_IDS


def beyond_default_head(revision: str | None) -> bool:
    """True for a known revision after `DEFAULT_HEAD` (a database MLflow 3.18 or ``--to 3.18.0`` wrote)."""
    ids = chain_ids()
    return revision in ids and ids.index(revision) > ids.index(DEFAULT_HEAD)


def at_or_beyond_default_head(revision: str | None) -> bool:
    """True when a database at `revision` needs no upgrade to be served."""
    return revision == DEFAULT_HEAD or beyond_default_head(revision)


def recorded_revisions(conn: sa.Connection, version_table: str = VERSION_TABLE) -> tuple[str, ...]:
    """Every row of `version_table` (alembic's heads), or () when the table does not exist.

    The same reads as alembic's ``MigrationContext.get_current_heads``, without importing alembic.
    """
    if not conn.dialect.has_table(conn, version_table):
        return ()
    table = sa.table(version_table, sa.column("version_num"))
    return tuple(conn.execute(sa.select(table.c.version_num)).scalars())


def single_revision(conn: sa.Connection, version_table: str = VERSION_TABLE) -> str | None:
    """The one revision in `version_table`, or None; alembic's CommandError when it holds several."""
    rows = recorded_revisions(conn, version_table)
    if len(rows) > 1:  # what alembic's get_current_revision raises, so callers see no difference
        from alembic.util import CommandError

        raise CommandError(f"Version table '{version_table}' has more than one head present; "
                           "please use get_current_heads()")
    return rows[0] if rows else None


def current_revision(conn: sa.Connection) -> str | None:
    """The revision recorded in alembic_version, or None when there is none."""
    return single_revision(conn, VERSION_TABLE)


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

    from alembic import command

    config = alembic_config(connection=conn, on_version_apply=on_version_apply)
    command.upgrade(config, target)


def upgrade_sql(url: str | sa.URL, target: str = DEFAULT_HEAD, *, start: str | None = None) -> str:
    """The DDL an upgrade from `start` (None: an empty database) to `target` would run, as text."""
    from trackops.db.baseline import baseline_sql

    buffer = io.StringIO()
    if start is None:
        buffer.write(baseline_sql(url))
    from alembic import command

    config = alembic_config(url=url, output_buffer=buffer)
    command.upgrade(config, f"{start}:{target}" if start else target, sql=True)
    return buffer.getvalue()
