"""The db services (upgrade, init, current, history, check) on real SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from trackops.config import Settings
from trackops.db import own_schema, revisions
from trackops.db.engine import create_engine
from trackops.db.introspect import snapshot
from trackops.errors import CheckFailedError, DatabaseError, ExitCode, LockedError, NotFoundError, TrackopsError, UsageError
from trackops.services import migrate
from trackops.services.locking import hold_lock

HEAD = revisions.HEAD
from tests.conftest import FIXTURES


def settings(url: str) -> Settings:
    return Settings(backend_store_uri=url)


def engine_for(url: str) -> sa.Engine:
    return create_engine(url, poolclass=sa.pool.NullPool)


def query(url: str, sql: str) -> list[tuple]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    rows = query(url, "SELECT version_num FROM alembic_version")
    return rows[0][0] if rows else None


def schema_of(url: str) -> dict:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return snapshot(conn)
    finally:
        engine.dispose()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fixture_copy(version: str, tmp_path: Path) -> Path:
    source = FIXTURES / f"mlflow-{version}" / "mlflow.db"
    target = tmp_path / f"mlflow-{version}.db"
    shutil.copyfile(source, target)
    return target


@pytest.fixture
def fail_on_statement():
    """Make the first executed SQL statement that starts with `prefix` fail in the database itself.

    The statement is swapped for one the server rejects (creating a table that already exists), so the
    failure is a genuine driver error half-way through a migration step.
    """
    listeners = []

    def arm(prefix: str, existing_table: str = "experiments") -> None:
        fired = []

        def swap(conn, cursor, statement, parameters, context, executemany):
            if not fired and statement.lstrip().upper().startswith(prefix.upper()):
                fired.append(statement)
                return f"CREATE TABLE {existing_table} (x INTEGER)", ()
            return statement, parameters

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", swap, retval=True)
        listeners.append(swap)

    yield arm
    for fn in listeners:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", fn)


# --- upgrade ----------------------------------------------------------------------------------------

def test_upgrade_of_an_empty_database_creates_baseline_chain_and_own_tables(db_url):
    report = migrate.upgrade(settings(db_url))
    assert report.plan.current is None and report.plan.target == HEAD
    applied = [r.revision for r, _ in report.applied]
    assert applied[0] == migrate.BASELINE and applied[1] == revisions.ROOT and applied[-1] == HEAD
    assert len(applied) == 68
    assert revision_of(db_url) == HEAD
    assert query(db_url, "SELECT version_num FROM trackops_alembic_version") == [(own_schema.own_head(),)]
    assert query(db_url, "SELECT operation, from_revision, to_revision, outcome FROM trackops_operations") == [
        ("db upgrade", None, HEAD, "succeeded")]
    assert query(db_url, "SELECT name FROM workspaces") == [("default",)]


def test_upgrade_at_the_target_is_a_noop(sqlite_url):
    migrate.upgrade(settings(sqlite_url), to="2.12.2")
    report = migrate.upgrade(settings(sqlite_url), to="2.12.2")
    assert report.plan.noop and report.applied == []
    assert len(query(sqlite_url, "SELECT id FROM trackops_operations")) == 1


def test_upgrade_to_an_mlflow_version_stops_at_the_head_it_expects(sqlite_url):
    events = []
    report = migrate.upgrade(settings(sqlite_url), to="2.12.2", progress=events.append)
    assert revision_of(sqlite_url) == "acf3f17fdcc7" == report.plan.target
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "done"
    steps = [e for e in events if e.kind == "step"]
    assert [e.index for e in steps] == list(range(1, len(report.plan.steps) + 1))
    assert all(e.seconds is not None and e.seconds >= 0 for e in steps)


def test_upgrade_continues_from_an_intermediate_revision(sqlite_url):
    migrate.upgrade(settings(sqlite_url), to="97727af70f4d")
    report = migrate.upgrade(settings(sqlite_url))
    assert report.plan.current == "97727af70f4d"
    assert report.applied[0][0].revision == "3500859a5d39"
    assert revision_of(sqlite_url) == HEAD


def test_upgrade_refuses_to_downgrade_and_changes_nothing(sqlite_url):
    migrate.upgrade(settings(sqlite_url), to="2.12.2")
    with pytest.raises(UsageError, match="does not downgrade"):
        migrate.upgrade(settings(sqlite_url), to="1.30.1")
    assert revision_of(sqlite_url) == "acf3f17fdcc7"


def test_upgrade_refuses_an_unknown_target(sqlite_url):
    with pytest.raises(NotFoundError):
        migrate.upgrade(settings(sqlite_url), to="0123456789ab")
    with pytest.raises(UsageError, match="unknown MLflow version"):
        migrate.upgrade(settings(sqlite_url), to="2.12.9")


@pytest.mark.parametrize("revision", ["0123456789ab"])
def test_a_revision_unknown_to_trackops_is_refused_and_the_file_left_untouched(sqlite_url, tmp_path, revision):
    migrate.upgrade(settings(sqlite_url), to="2.12.2")
    execute(sqlite_url, f"UPDATE alembic_version SET version_num = '{revision}'")
    before = sha256(tmp_path / "mlflow.db")
    with pytest.raises(CheckFailedError) as info:
        migrate.upgrade(settings(sqlite_url))
    assert info.value.exit_code == ExitCode.CHECK_FAILED
    assert "upgrade trackops" in info.value.hint
    assert sha256(tmp_path / "mlflow.db") == before


def test_an_unknown_revision_is_refused_on_a_server_database(request):
    url = request.getfixturevalue("postgres_url")
    migrate.upgrade(settings(url), to="2.22.5")
    execute(url, "UPDATE alembic_version SET version_num = '0123456789ab'")
    before = schema_of(url)
    with pytest.raises(CheckFailedError, match="does not know"):
        migrate.upgrade(settings(url))
    assert schema_of(url) == before


def test_a_database_with_foreign_tables_is_refused(sqlite_url):
    execute(sqlite_url, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CheckFailedError, match="no MLflow schema"):
        migrate.upgrade(settings(sqlite_url))


def test_a_failed_sqlite_upgrade_leaves_the_file_byte_for_byte(tmp_path, fail_on_statement):
    path = fixture_copy("2.12.2", tmp_path)
    url = f"sqlite:///{path}"
    before = sha256(path)
    fail_on_statement("CREATE TABLE trace_tags")
    with pytest.raises(DatabaseError) as info:
        migrate.upgrade(settings(url))
    assert "867495a8f9d4" in info.value.message and "rolled back" in info.value.hint
    assert sha256(path) == before
    assert not Path(f"{path}-journal").exists() and not Path(f"{path}-wal").exists()


def test_a_failed_first_sqlite_upgrade_leaves_no_file(sqlite_url, tmp_path, fail_on_statement):
    fail_on_statement("CREATE TABLE registered_models")
    with pytest.raises(DatabaseError):
        migrate.upgrade(settings(sqlite_url))
    assert not (tmp_path / "mlflow.db").exists()


def test_a_failed_postgres_upgrade_is_rolled_back_whole(postgres_url, fail_on_statement):
    migrate.upgrade(settings(postgres_url), to="2.12.2")
    before = schema_of(postgres_url)
    fail_on_statement("CREATE TABLE trace_tags")
    with pytest.raises(DatabaseError, match="867495a8f9d4"):
        migrate.upgrade(settings(postgres_url))
    assert schema_of(postgres_url) == before
    assert revision_of(postgres_url) == "acf3f17fdcc7"


def test_an_interrupted_mysql_upgrade_can_be_rerun_to_the_correct_schema(mysql_url, fail_on_statement):
    migrate.upgrade(settings(mysql_url), to="2.12.2")
    fail_on_statement("CREATE TABLE trace_tags")
    with pytest.raises(DatabaseError) as info:
        migrate.upgrade(settings(mysql_url))
    assert "run trackops db upgrade again" in info.value.hint
    # MySQL committed the first table of the step but not the version row: a half-applied revision.
    assert revision_of(mysql_url) == "acf3f17fdcc7"
    assert query(mysql_url, "SHOW TABLES LIKE 'trace_info'")
    assert query(mysql_url, "SELECT outcome FROM trackops_operations ORDER BY id") == [("succeeded",), ("failed",)]

    migrate.upgrade(settings(mysql_url))
    assert revision_of(mysql_url) == HEAD
    from tests.conftest import MYSQL_ADMIN_URL, create_server_database, drop_server_database

    reference = create_server_database(MYSQL_ADMIN_URL)
    try:
        migrate.upgrade(settings(reference))
        assert migrate_diff(schema_of(reference), schema_of(mysql_url)) == []
    finally:
        drop_server_database(MYSQL_ADMIN_URL, reference)


def migrate_diff(expected: dict, actual: dict) -> list[str]:
    from trackops.db.introspect import diff

    return diff(expected, actual)


def test_a_second_upgrade_while_one_holds_the_lock_is_refused(db_url):
    with hold_lock(db_url, purpose="db upgrade"):
        with pytest.raises(LockedError) as info:
            migrate.upgrade(settings(db_url))
    assert info.value.exit_code == ExitCode.LOCKED


def test_confirmation_is_asked_only_before_changing_an_existing_database(sqlite_url, tmp_path):
    asked = []
    migrate.upgrade(settings(sqlite_url), to="1.30.1", confirm=lambda plan: asked.append(plan) or True)
    assert asked == []  # an empty database
    before = sha256(tmp_path / "mlflow.db")
    with pytest.raises(TrackopsError, match="cancelled"):
        migrate.upgrade(settings(sqlite_url), confirm=lambda plan: asked.append(plan) or False)
    assert [p.current for p in asked] == ["97727af70f4d"]
    assert sha256(tmp_path / "mlflow.db") == before


def test_sql_renders_ddl_from_the_current_revision_and_touches_nothing(sqlite_url, tmp_path):
    migrate.upgrade(settings(sqlite_url), to="2.12.2")
    before = sha256(tmp_path / "mlflow.db")
    report = migrate.upgrade(settings(sqlite_url), sql=True)
    assert "CREATE TABLE trace_info" in report.sql
    assert "CREATE TABLE registered_models" not in report.sql  # already there
    assert f"version_num='{HEAD}'" in report.sql.replace(" ", "")
    assert sha256(tmp_path / "mlflow.db") == before


def test_sql_on_a_missing_sqlite_file_renders_from_empty_and_creates_nothing(sqlite_url, tmp_path):
    report = migrate.upgrade(settings(sqlite_url), sql=True)
    assert "CREATE TABLE experiments" in report.sql and "CREATE TABLE trackops_operations" in report.sql
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_sql_on_a_server_database_renders_offline_and_touches_nothing(request, server):
    url = request.getfixturevalue(server)
    migrate.upgrade(settings(url), to="1.30.1")
    report = migrate.upgrade(settings(url), to="2.12.2", sql=True)
    assert "CREATE TABLE registered_model_aliases" in report.sql
    assert "CREATE TABLE registered_models " not in report.sql  # already there
    assert revision_of(url) == "97727af70f4d"
    assert query(url, "SELECT count(*) FROM trackops_operations") == [(1,)]


# --- init, current, history -------------------------------------------------------------------------

def test_init_creates_head_then_is_a_noop_and_refuses_a_database_behind(sqlite_url, tmp_path):
    report = migrate.init(settings(sqlite_url))
    assert revision_of(sqlite_url) == HEAD and not report.plan.noop
    assert migrate.init(settings(sqlite_url)).plan.noop

    behind = f"sqlite:///{tmp_path / 'behind.db'}"
    migrate.upgrade(settings(behind), to="2.22.5")
    with pytest.raises(CheckFailedError) as info:
        migrate.init(settings(behind))
    assert "trackops db upgrade" in info.value.hint
    assert revision_of(behind) == "0584bdc529eb"


def test_current_reports_revision_head_and_matching_mlflow_releases(sqlite_url):
    report = migrate.current(settings(sqlite_url))
    assert not report.exists and report.revision is None and not report.at_head
    migrate.upgrade(settings(sqlite_url), to="2.12.2")
    report = migrate.current(settings(sqlite_url))
    assert (report.revision, report.at_head, report.known) == ("acf3f17fdcc7", False, True)
    assert report.mlflow_version == "2.8.0 – 2.12.2"
    assert report.trackops_revision == own_schema.own_head()


def test_history_lists_the_chain_and_marks_the_current_revision(sqlite_url):
    assert migrate.history(settings(sqlite_url)).current is None
    migrate.upgrade(settings(sqlite_url), to="1.30.1")
    report = migrate.history(settings(sqlite_url))
    assert report.current == "97727af70f4d"
    assert [r.revision for r in report.revisions][:2] == [revisions.ROOT, "90e64c465722"]
    assert len(report.revisions) == 70 and report.revisions[-1].revision == revisions.NEWEST
    assert all(r.purpose and r.mlflow_version for r in report.revisions)


# --- check ------------------------------------------------------------------------------------------

def test_check_is_clean_after_an_upgrade_and_finds_a_dropped_index(db_url):
    migrate.upgrade(settings(db_url), to="2.12.2")
    assert migrate.check(settings(db_url)).clean
    if db_url.startswith("mysql"):
        # MySQL will not drop an index a foreign key needs: drift the other way, with an extra one.
        execute(db_url, "CREATE INDEX index_latest_metrics_run_uuid_extra ON latest_metrics (value)")
    else:
        execute(db_url, "DROP INDEX index_latest_metrics_run_uuid")
    report = migrate.check(settings(db_url))
    assert not report.clean
    assert any("index_latest_metrics_run_uuid" in line for line in report.drift)


def test_check_removes_its_scratch_database(postgres_url):
    migrate.upgrade(settings(postgres_url), to="1.30.1")
    migrate.check(settings(postgres_url))
    assert query(postgres_url, "SELECT datname FROM pg_database WHERE datname LIKE 'trackops_check_%'") == []


def test_check_without_create_database_rights_says_so(postgres_url):
    migrate.upgrade(settings(postgres_url), to="1.30.1")
    role = "trackops_t_" + os.urandom(4).hex()
    name = sa.make_url(postgres_url).database
    execute(postgres_url, f"CREATE ROLE {role} LOGIN NOCREATEDB")
    try:
        execute(postgres_url, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        limited = sa.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
        with pytest.raises(DatabaseError, match="scratch database") as info:
            migrate.check(settings(limited))
        assert "CREATE DATABASE" in info.value.hint
    finally:
        execute(postgres_url, f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        execute(postgres_url, f"DROP OWNED BY {role}")
        execute(postgres_url, f"DROP ROLE {role}")
        assert name


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_sql_from_an_empty_server_database_renders_the_whole_chain_and_creates_nothing(request, server):
    url = request.getfixturevalue(server)
    report = migrate.upgrade(settings(url), sql=True)
    assert "CREATE TABLE experiments" in report.sql and "CREATE TABLE trackops_operations" in report.sql
    assert f"'{HEAD}'" in report.sql
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()


# --- releases ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("version", "revision"), [
    ("1.30.1", "97727af70f4d"), ("2.12.2", "acf3f17fdcc7"), ("2.22.5", "0584bdc529eb"), ("3.17.2", HEAD),
    ("1.13.0", "a8c4a736bde6"), ("2.13.0", "867495a8f9d4"), ("2.13.1", "5b0e9adcef9c")])
def test_an_mlflow_version_resolves_to_the_head_it_expects(version, revision):
    from trackops.db import releases

    assert releases.resolve_target(version) == revision


def test_unknown_or_too_new_mlflow_versions_are_usage_errors_with_nearby_releases():
    from trackops.db import releases

    with pytest.raises(UsageError) as info:
        releases.resolve_target("2.12.9")
    assert "2.12.2" in info.value.hint
    with pytest.raises(UsageError, match="unknown MLflow version"):
        releases.resolve_target("3.19.0")


def test_every_revision_of_the_chain_has_the_release_that_introduced_it():
    from trackops.db import releases

    chain = [r.revision for r in migrate.available_chain()]
    assert [r for r in releases.REVISION_FIRST_RELEASE if r not in releases.NEWER_REVISIONS] == chain
    assert releases.first_release(revisions.ROOT) == "1.0.0"
    assert releases.first_release(HEAD) == "3.17.0"


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_an_upgrade_killed_half_way_can_be_run_again_to_the_correct_schema(request, server):
    import signal
    import subprocess
    import sys

    url = request.getfixturevalue(server)
    migrate.upgrade(settings(url), to="1.30.1")
    trackops = Path(sys.executable).parent / "trackops"
    proc = subprocess.Popen([str(trackops), "db", "upgrade", "--yes", "--no-backup", "--backend-store-uri", url],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        steps_seen = 0
        for line in proc.stderr:  # one line per applied step: kill after the third
            steps_seen += line.startswith("  ") and "s  " in line
            if steps_seen == 3:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=300)
        proc.stderr.close()
    assert steps_seen == 3 and proc.returncode == -signal.SIGKILL
    if server == "postgres_url":
        assert revision_of(url) == "97727af70f4d"  # one transaction: nothing of it survived

    migrate.upgrade(settings(url))
    assert revision_of(url) == HEAD
    assert migrate.check(settings(url)).clean


def test_a_bare_0_9_1_database_without_alembic_version_is_upgraded_from_the_root(sqlite_url):
    from trackops.db.baseline import create_baseline

    engine = engine_for(sqlite_url)
    try:
        with engine.begin() as conn:
            create_baseline(conn)
            conn.execute(sa.text("INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
                                 "VALUES ('old', '/srv/old', 'active')"))
    finally:
        engine.dispose()
    report = migrate.upgrade(settings(sqlite_url))
    assert report.plan.current is None and report.plan.needs_confirmation
    assert report.applied[0][0].revision == revisions.ROOT
    assert revision_of(sqlite_url) == HEAD
    assert query(sqlite_url, "SELECT name, workspace FROM experiments") == [("old", "default")]
