"""MLflow 3.18.0's three revisions: `--to 3.18.0` builds MLflow 3.18.0's schema, and head stays 3.17.2's.

The oracle is MLflow 3.18.0's own alembic chain: its wheel is installed without dependencies into a
cache folder and its ``db_migrations`` env runs in a subprocess with that folder first on sys.path
(the test process keeps importing the installed 3.17.2), on a database 3.17.2 took to its head.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import IN_CI
from tests.db.oracle import apply_trackops_revision, engine_for, mlflow_upgrade, snapshot_of, two_databases
from trackops.config import Settings
from trackops.db import releases, revisions
from trackops.db.introspect import diff
from trackops.errors import DatabaseError, UsageError
from trackops.services import migrate

MLFLOW_318 = "3.18.0"
NEW_REVISIONS = ["e7d1f4b2a9c6", "8b6ad64cb8f5", "f4a9b2c7d1e6"]
DIALECTS = ("sqlite", "postgresql", "mysql")

# Runs inside the subprocess: argv = wheel folder, database URL, alembic command, its argument.
_ALEMBIC = """
import sys
folder, url, what, arg = sys.argv[1:5]
sys.path.insert(0, folder)
from alembic import command
from alembic.config import Config
import mlflow
assert mlflow.__file__.startswith(folder), mlflow.__file__
config = Config()
config.set_main_option("script_location", folder + "/mlflow/store/db_migrations")
config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
if what == "upgrade":
    command.upgrade(config, arg)
else:
    command.current(config)
"""


@pytest.fixture(scope="session")
def mlflow_318(request, tmp_path_factory) -> Path:
    """A folder holding the MLflow 3.18.0 wheel's files (installed once into the pytest cache)."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider: a folder of this run
    folder = (Path(cache.mkdir("mlflow-3.18.0-wheel")) if cache is not None
              else tmp_path_factory.getbasetemp().parent / "mlflow-3.18.0-wheel")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "mlflow" / "store" / "db_migrations" / "versions"
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:  # xdist workers share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        if any(marker.glob(f"{NEW_REVISIONS[-1]}_*.py")):
            return folder
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
                               "--target", str(folder), f"mlflow=={MLFLOW_318}"],
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            if IN_CI:
                pytest.fail(f"installing mlflow {MLFLOW_318} failed: {done.stderr[-2000:]}")
            pytest.skip(f"mlflow {MLFLOW_318} cannot be installed (package registry unreachable?)")
    return folder


def mlflow_318_alembic(folder: Path, url: str, what: str = "upgrade", arg: str = "heads") -> str:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", _ALEMBIC, str(folder), url, what, arg], capture_output=True,
                          text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def mlflow_318_upgrade(folder: Path, url: str) -> None:
    """What MLflow 3.18.0's ``mlflow db upgrade`` does to a database 3.17.2 took to its head."""
    mlflow_upgrade(url, revisions.DEFAULT_HEAD)
    mlflow_318_alembic(folder, url)


def trackops_to_318(url: str) -> migrate.UpgradeReport:
    return migrate.upgrade(Settings(backend_store_uri=url), to=MLFLOW_318)


def execute(url: str, *statements: str, params: dict | None = None) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params or {})
    finally:
        engine.dispose()


def rows(url: str, query: str) -> list[tuple]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


# --- the schema and the data equal MLflow 3.18.0's ------------------------------------------------

@pytest.mark.slow
@pytest.mark.compat
@pytest.mark.parametrize("dialect", DIALECTS)
def test_trackops_to_3_18_0_builds_mlflow_3_18_0s_schema(request, dialect, tmp_path, mlflow_318):
    ours, theirs = two_databases(request, dialect, tmp_path)
    report = trackops_to_318(ours)
    mlflow_318_upgrade(mlflow_318, theirs)

    assert report.plan.target == "f4a9b2c7d1e6" and [s.revision for s in report.plan.steps][-3:] == NEW_REVISIONS
    assert diff(snapshot_of(theirs), snapshot_of(ours)) == []


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_mlflow_3_18_alembic_reports_a_trackops_3_18_0_database_at_its_head_and_leaves_it(
        request, dialect, tmp_path, mlflow_318):
    url, _ = two_databases(request, dialect, tmp_path)
    trackops_to_318(url)
    before = snapshot_of(url)

    assert "f4a9b2c7d1e6 (head)" in mlflow_318_alembic(mlflow_318, url, "current", "")
    mlflow_318_alembic(mlflow_318, url)  # mlflow db upgrade: nothing to do
    assert diff(before, snapshot_of(url)) == []


ISSUE = ("INSERT INTO issues (issue_id, experiment_id, name, description, status, categories, "
         "created_timestamp, last_updated_timestamp) VALUES (:id, 1, 'slow', 'd', 'open', :cats, :t, :t)")
CATEGORIES = {"i-1": json.dumps(["Latency", " latency ", "Cost"]), "i-2": json.dumps([]), "i-3": None}


def _with_issues(url: str) -> None:
    execute(url, "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                 "creation_time, last_update_time) VALUES (1, 'first', 'a', 'active', 1, 1)")
    for i, (issue_id, cats) in enumerate(CATEGORIES.items()):
        execute(url, ISSUE, params={"id": issue_id, "cats": cats, "t": 1000 + i})


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_issue_categories_are_copied_as_mlflow_3_18_0_copies_them(request, dialect, tmp_path, mlflow_318):
    ours, theirs = two_databases(request, dialect, tmp_path)
    for url in (ours, theirs):
        mlflow_upgrade(url, revisions.DEFAULT_HEAD)
        _with_issues(url)
    trackops_to_318(ours)
    mlflow_318_alembic(mlflow_318, theirs)

    for query in ("SELECT issue_id, category_hash, category FROM issue_categories ORDER BY issue_id, category_hash",
                  "SELECT issue_id, last_seen_timestamp FROM issues ORDER BY issue_id"):
        assert rows(ours, query) == rows(theirs, query)
    assert len(rows(ours, "SELECT * FROM issue_categories")) == 2  # Latency once (last spelling), Cost


# --- MySQL: re-runs finish, a case-only reference is refused ----------------------------------------

@pytest.mark.slow
def test_each_3_18_0_step_run_again_on_mysql_leaves_mlflows_schema(request, tmp_path, mlflow_318):
    ours, theirs = two_databases(request, "mysql", tmp_path)
    trackops_to_318(ours)
    mlflow_318_upgrade(mlflow_318, theirs)
    for revision in NEW_REVISIONS:  # what a re-run after an interrupted upgrade meets, at its hardest
        apply_trackops_revision(ours, revision, record=False)

    assert diff(snapshot_of(theirs), snapshot_of(ours)) == []


MCP_SERVER = ("INSERT INTO mcp_servers (workspace, name, created_at, last_updated_at) "
              "VALUES ('default', 'srv', 1, 1)")


def test_a_version_reference_differing_only_in_case_stops_the_mysql_upgrade_unchanged(request):
    url = request.getfixturevalue("mysql_url")
    migrate.upgrade(Settings(backend_store_uri=url))
    columns = ("workspace, name, version, version_major, version_minor, version_patch, "
               "version_prerelease_sort_key, server_json, created_at, last_updated_at")
    execute(url, MCP_SERVER,
            f"INSERT INTO mcp_server_versions ({columns}) "
            "VALUES ('default', 'srv', '1.0.0-RC1', 1, 0, 0, 'rc1', '{}', 1, 1)",
            "INSERT INTO mcp_server_aliases (workspace, name, alias, version) "
            "VALUES ('default', 'srv', 'stable', '1.0.0-rc1')")
    with pytest.raises(DatabaseError, match="'1.0.0-rc1'.*'1.0.0-RC1'") as info:
        trackops_to_318(url)
    assert "nothing was changed" in info.value.hint
    # The steps before it are (partly) done, as MySQL commits DDL; this one changed nothing; a fix lets it finish.
    assert rows(url, "SELECT version_num FROM alembic_version")[0][0] in NEW_REVISIONS[:2]
    execute(url, "UPDATE mcp_server_aliases SET version = '1.0.0-RC1'")
    assert trackops_to_318(url).plan.target == "f4a9b2c7d1e6"
    assert rows(url, "SELECT COUNT(*) FROM mcp_server_versions WHERE version = '1.0.0-rc1'") == [(0,)]


# --- head stays 3.17.2's; a 3.18.0 database is known, served and never moved back ---------------------

def test_head_stays_mlflow_3_17_2s_while_3_18_0_is_the_newest_known():
    assert revisions.DEFAULT_HEAD == revisions.HEAD == releases.HEAD == "dc11669786a5"
    assert revisions.NEWEST == releases.NEWEST == revisions.chain_ids()[-1] == NEW_REVISIONS[-1]
    assert list(revisions.chain_ids()[-4:]) == [revisions.DEFAULT_HEAD, *NEW_REVISIONS]
    assert releases.resolve_target(None) == releases.resolve_target("head") == revisions.DEFAULT_HEAD
    assert releases.resolve_target("3.18.0") == releases.resolve_target("3.18") == "f4a9b2c7d1e6"
    assert releases.resolve_target("3.17.2") == revisions.DEFAULT_HEAD
    assert not releases.NEWER_REVISIONS


def test_db_upgrade_without_to_stops_at_3_17_2s_head(sqlite_url):
    report = migrate.upgrade(Settings(backend_store_uri=sqlite_url))
    assert report.plan.target == revisions.DEFAULT_HEAD
    assert not set(NEW_REVISIONS) & {s.revision for s in report.plan.steps}
    assert rows(sqlite_url, "SELECT version_num FROM alembic_version") == [(revisions.DEFAULT_HEAD,)]


def test_a_3_18_0_database_is_reported_kept_and_never_taken_back(sqlite_head_url):
    sqlite_url = sqlite_head_url  # at 3.17.2's head
    settings = Settings(backend_store_uri=sqlite_url)
    assert [s.revision for s in trackops_to_318(sqlite_url).plan.steps] == NEW_REVISIONS

    current = migrate.current(settings)
    assert (current.revision, current.known, current.at_head, current.beyond_head) == ("f4a9b2c7d1e6", True, True, True)
    assert current.mlflow_version == "3.18.0" and current.head == revisions.DEFAULT_HEAD
    assert migrate.upgrade(settings).plan.noop and migrate.init(settings).plan.noop
    assert migrate.upgrade(settings, sql=True).sql == ""
    with pytest.raises(UsageError, match="does not downgrade"):
        migrate.upgrade(settings, to="3.17.2")
    assert migrate.check(settings).clean
    from mlflow.exceptions import MlflowException
    from mlflow.store.db.utils import _verify_schema

    engine = engine_for(sqlite_url)
    try:  # why it is not the default: the installable MLflow 3.17.2 server refuses such a database
        with pytest.raises(MlflowException, match="out-of-date database schema"):
            _verify_schema(engine)
    finally:
        engine.dispose()
    history = migrate.history(settings)
    assert [r.revision for r in history.revisions][-3:] == NEW_REVISIONS and history.current == NEW_REVISIONS[-1]
    assert {r.mlflow_version for r in history.revisions[-3:]} == {"3.18.0"}


def test_serve_accepts_a_database_mlflow_3_18_wrote_as_it_is(sqlite_head_url, tmp_path):
    sqlite_url = sqlite_head_url  # at 3.17.2's head
    from trackops.services.serve import preflight, readiness

    settings = Settings(backend_store_uri=sqlite_url, artifacts_destination=str(tmp_path / "artifacts"))
    trackops_to_318(sqlite_url)
    for upgrade in (False, True):
        report = preflight(settings, upgrade=upgrade)
        assert report.revision == "f4a9b2c7d1e6" and report.upgraded_from is None
    assert rows(sqlite_url, "SELECT version_num FROM alembic_version") == [("f4a9b2c7d1e6",)]
    engine = engine_for(sqlite_url)
    try:
        checks = readiness(engine, None)
    finally:
        engine.dispose()
    assert checks["schema"] == "ok" and checks["ok"] is True


def test_a_3_18_0_database_backs_up_and_restores_with_its_new_tables(sqlite_head_url, tmp_path):
    sqlite_url = sqlite_head_url  # at 3.17.2's head
    from trackops.services import backup, restore

    trackops_to_318(sqlite_url)
    execute(sqlite_url,
            "INSERT INTO skills (workspace, organization, name, created_at, last_updated_at) "
            "VALUES ('default', '', 'summarise', 1, 2)",
            "INSERT INTO skill_versions (workspace, organization, name, version, digest, created_at, "
            "last_updated_at) VALUES ('default', '', 'summarise', 1, 'abc', 1, 2)")
    snapshot = backup.backup(Settings(backend_store_uri=sqlite_url, artifacts_destination=str(tmp_path / "a")),
                             to=str(tmp_path / "repo"))
    assert snapshot.revision == "f4a9b2c7d1e6"

    target = f"sqlite:///{tmp_path / 'restored.db'}"
    for upgrade in (False, True):  # --upgrade has nothing to do: the snapshot is past head already
        if upgrade:
            Path(tmp_path / "restored.db").unlink()
        restore.restore(Settings(), snapshot="latest", repository=str(tmp_path / "repo"),
                        to_backend_store_uri=target, to_artifacts_destination=str(tmp_path / "a"), upgrade=upgrade)
        assert rows(target, "SELECT version_num FROM alembic_version") == [("f4a9b2c7d1e6",)]
        assert rows(target, "SELECT name, version, digest FROM skill_versions") == [("summarise", 1, "abc")]
        assert migrate.check(Settings(backend_store_uri=target)).clean
