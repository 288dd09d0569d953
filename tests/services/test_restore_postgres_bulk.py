"""Restore onto PostgreSQL: large tables are loaded with their keys, indexes and foreign keys set aside and
put back after the rows, ending with the very schema a load with them in place gives."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.archive.helpers import all_rows, fixture_copy
from tests.conftest import POSTGRES_ADMIN_URL, create_server_database, drop_server_database
from trackops.config import Settings
from trackops.errors import DatabaseError
from trackops.services import backup, restore

CATALOG = """
    SELECT c.relname, 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    WHERE c.relnamespace = current_schema()::regnamespace
    UNION ALL
    SELECT c.conrelid::regclass::text, c.contype::text, c.conname, pg_get_constraintdef(c.oid)
    FROM pg_constraint c WHERE c.connamespace = current_schema()::regnamespace
    ORDER BY 1, 2, 3"""


def _catalog(url: str) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        found = [tuple(row) for row in conn.exec_driver_sql(CATALOG)]
    engine.dispose()
    return found


def _snapshot(tmp_path) -> tuple[str, str]:
    source_url, _artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(Settings(backend_store_uri=source_url, artifacts_destination=str(tmp_path / "dest")),
                  to=str(repo), artifacts=False)
    return source_url, str(repo)


def _restore(repo: str, url: str, tmp_path):
    return restore.restore(Settings(), snapshot="latest", repository=repo, to_backend_store_uri=url,
                           to_artifacts_destination=str(tmp_path / "dest"))


@pytest.fixture
def second_postgres():
    url = create_server_database(POSTGRES_ADMIN_URL)
    yield url
    drop_server_database(POSTGRES_ADMIN_URL, url)


def test_tables_loaded_with_keys_set_aside_end_with_the_same_schema_and_rows(postgres_url, second_postgres,
                                                                             tmp_path, monkeypatch):
    source_url, repo = _snapshot(tmp_path)
    _restore(repo, postgres_url, tmp_path)  # the fixture's tables are small: loaded with everything in place
    calls = []
    real = restore._pg_set_aside
    monkeypatch.setattr(restore, "SET_ASIDE_ROWS", 1)
    monkeypatch.setattr(restore, "_pg_set_aside", lambda conn, table: calls.append(table) or real(conn, table))
    _restore(repo, second_postgres, tmp_path)
    assert {"metrics", "runs", "experiments", "tags", "params"} <= set(calls)
    assert _catalog(second_postgres) == _catalog(postgres_url)
    assert all_rows(second_postgres) == all_rows(postgres_url) == all_rows(source_url)


@pytest.mark.parametrize("set_aside", [True, False], ids=["keys-set-aside", "keys-in-place"])
def test_rows_that_break_a_foreign_key_fail_the_restore_and_leave_the_target_empty(postgres_url, tmp_path,
                                                                                  monkeypatch, set_aside):
    source_url, _artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    engine = sa.create_engine(source_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # SQLite does not enforce foreign keys: a metric of a run that is gone
        conn.exec_driver_sql("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                             "VALUES ('orphan', 1.0, 1, 'no-such-run', 0, 0)")
    engine.dispose()
    repo = tmp_path / "repo"
    backup.backup(Settings(backend_store_uri=source_url, artifacts_destination=str(tmp_path / "dest")),
                  to=str(repo), artifacts=False)
    monkeypatch.setattr(restore, "SET_ASIDE_ROWS", 1 if set_aside else 10 ** 9)
    with pytest.raises(DatabaseError) as failed:
        _restore(str(repo), postgres_url, tmp_path)
    assert "table metrics" in str(failed.value) and "metrics_run_uuid_fkey" in str(failed.value)
    assert "nothing was restored" in failed.value.hint
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()
