"""MLflow as the oracle: schemas built by the real mlflow package, and single trackops steps to compare.

`mlflow_upgrade(url, revision)` builds what ``mlflow db upgrade`` would, stopped at `revision`.
`apply_trackops_revision(url, revision)` runs one trackops script on a database at its parent.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

import trackops.db.migrations
from trackops.db.engine import create_engine
from trackops.db.introspect import snapshot

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

VERSIONS_DIR = Path(trackops.db.migrations.__file__).parent / "versions"


def engine_for(url: str) -> sa.Engine:
    """An engine without pooling, so that nothing holds the database open between steps."""
    return create_engine(url, poolclass=sa.pool.NullPool)


def mlflow_upgrade(url: str, revision: str = "heads") -> None:
    """Build the schema as `mlflow db upgrade` does, stopping the chain at `revision`."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            empty = not [t for t in sa.inspect(conn).get_table_names() if not t.startswith("alembic_")]
        if empty:
            InitialBase.metadata.create_all(engine)
        if revision == "base":
            return
        config = _get_alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def mlflow_baseline(url: str) -> None:
    """Only MLflow's 0.9.1 tables, as MLflow creates them before the first revision."""
    mlflow_upgrade(url, "base")


def trackops_scripts() -> dict[str, Path]:
    """Every revision id in trackops' versions folder, mapped to its file."""
    return {p.name.split("_", 1)[0]: p for p in sorted(VERSIONS_DIR.glob("*.py")) if not p.name.startswith("_")}


def load_script(revision: str) -> ModuleType:
    path = trackops_scripts()[revision]
    spec = importlib.util.spec_from_file_location(f"trackops_rev_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def apply_trackops_revision(url: str, revision: str, *, record: bool = True) -> None:
    """Run only trackops' script for `revision` on a database at its parent, in one transaction.

    With record=False alembic_version is left alone: that is how a re-run of an interrupted step looks.
    """
    module = load_script(revision)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            ctx = MigrationContext.configure(conn, opts={"render_as_batch": True,
                                                         "version_table": "alembic_version"})
            with Operations.context(ctx):
                module.upgrade()
            parent = module.down_revision
            if not record:
                return
            if parent is None:
                ctx._version.create(conn, checkfirst=True)
                conn.execute(ctx._version.insert().values(version_num=revision))
            else:
                conn.execute(ctx._version.update().values(version_num=revision)
                             .where(ctx._version.c.version_num == parent))
    finally:
        engine.dispose()


def snapshot_of(url: str) -> dict:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return snapshot(conn)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def mlflow_chain() -> list[str]:
    """MLflow's revision ids from root to head."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(""))
    return [s.revision for s in script.walk_revisions("base", "heads")][::-1]


def mlflow_parent(revision: str) -> str | None:
    chain = mlflow_chain()
    i = chain.index(revision)
    return chain[i - 1] if i else None


def two_databases(request, dialect: str, tmp_path) -> tuple[str, str]:
    """Two fresh, empty databases of one dialect: the fixture's and a sibling dropped afterwards."""
    first = request.getfixturevalue("postgres_url" if dialect == "postgresql" else f"{dialect}_url")
    if dialect == "sqlite":
        return first, f"sqlite:///{tmp_path / 'second.db'}"
    from tests import conftest

    admin = conftest.POSTGRES_ADMIN_URL if dialect == "postgresql" else conftest.MYSQL_ADMIN_URL
    second = conftest.create_server_database(admin)
    request.addfinalizer(lambda: conftest.drop_server_database(admin, second))
    return first, second
