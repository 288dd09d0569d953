"""Engines for the URI forms MLflow users have, and one-line errors for every way connecting fails."""

import importlib.util

import pytest
import sqlalchemy as sa

from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url, reading_engine
from trackops.errors import DatabaseError, ExitCode, NotFoundError, UsageError


@pytest.mark.parametrize("uri, driver", [
    ("sqlite:///mlflow.db", "sqlite"),
    ("mysql://root@127.0.0.1/test", "mysql+pymysql"),
    ("mysql+pymysql://root@127.0.0.1/test", "mysql+pymysql"),
    ("mariadb://root@127.0.0.1/test", "mysql+pymysql"),
    ("postgresql://postgres@127.0.0.1/test", "postgresql+psycopg"),
    ("postgres://postgres@127.0.0.1/test", "postgresql+psycopg"),
    ("postgresql+psycopg://postgres@127.0.0.1/test", "postgresql+psycopg"),
])
def test_uri_forms_map_to_installed_drivers(uri, driver):
    assert parse_url(uri).drivername == driver


def test_mysql_gets_utf8mb4_unless_the_uri_says_otherwise():
    assert parse_url("mysql://u@h/db").query["charset"] == "utf8mb4"
    assert parse_url("mysql://u@h/db?charset=latin1").query["charset"] == "latin1"


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed here")
def test_psycopg2_uri_without_psycopg2_says_how_to_fix():
    with pytest.raises(UsageError, match="psycopg2") as err:
        parse_url("postgresql+psycopg2://u@h/db")
    assert "postgresql://" in err.value.hint


@pytest.mark.parametrize("uri", ["nonsense", "foo://x/y", "sqlite://", "gs://bucket/x"])
def test_malformed_or_unknown_uri_is_a_usage_error(uri):
    with pytest.raises(UsageError) as err:
        parse_url(uri)
    assert err.value.exit_code == ExitCode.USAGE and err.value.hint


def test_password_is_hidden_when_rendered():
    assert "s3cret" not in hide_password("postgresql://u:s3cret@h/db")
    assert "***" in hide_password("postgresql://u:s3cret@h/db")
    assert "s3cret" not in hide_password("weird://u:s3cret@h:notaport/db")


def test_sqlite_gets_wal_and_busy_timeout_and_leaves_foreign_keys_off(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
    engine.dispose()


def test_sqlite_commits_wait_for_the_disk_unless_normal_is_asked_for(tmp_path, monkeypatch):
    def synchronous() -> int:
        engine = create_engine(f"sqlite:///{tmp_path / 'sync.db'}")
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql("PRAGMA synchronous").scalar()
        finally:
            engine.dispose()

    monkeypatch.delenv("TRACKOPS_SQLITE_SYNCHRONOUS", raising=False)
    assert synchronous() == 2  # FULL
    monkeypatch.setenv("TRACKOPS_SQLITE_SYNCHRONOUS", "Normal")
    assert synchronous() == 1  # NORMAL
    monkeypatch.setenv("TRACKOPS_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(UsageError, match="not a SQLite commit mode"):
        create_engine(f"sqlite:///{tmp_path / 'sync.db'}")


def test_sqlite_in_missing_folder_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        create_engine(f"sqlite:///{tmp_path / 'nope' / 'a.db'}")


def test_sqlite_must_exist_refuses_to_create_a_file(tmp_path):
    with pytest.raises(NotFoundError):
        create_engine(f"sqlite:///{tmp_path / 'a.db'}", must_exist=True)
    assert not (tmp_path / "a.db").exists()


def test_sqlite_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    engine = create_engine(f"sqlite:///{path}")
    with pytest.raises(DatabaseError, match="not a SQLite database"), connect_errors(engine.url), engine.connect() as c:
        c.exec_driver_sql("select * from sqlite_master").all()


def test_mysql_connection_uses_utf8mb4(mysql_url):
    engine = create_engine(mysql_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@character_set_connection").scalar() == "utf8mb4"
    engine.dispose()


def _connect(uri):
    engine = create_engine(uri)
    try:
        with connect_errors(uri), engine.connect():
            pass
    finally:
        engine.dispose()


def test_unreachable_server_is_failure_with_hint(postgres_url):
    uri = sa.make_url(postgres_url).set(port=1).render_as_string(hide_password=False)
    with pytest.raises(DatabaseError, match="cannot reach") as err:
        _connect(uri)
    assert err.value.exit_code == ExitCode.FAILURE and "running" in err.value.hint


def test_wrong_password_is_failure_and_never_echoes_it(mysql_url):
    uri = sa.make_url(mysql_url).set(password="wr0ng-pw").render_as_string(hide_password=False)
    with pytest.raises(DatabaseError, match="refused the credentials") as err:
        _connect(uri)
    assert "wr0ng-pw" not in err.value.message


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_missing_server_database_is_not_found(request, server):
    url = sa.make_url(request.getfixturevalue(server)).set(database="trackops_no_such_db")
    with pytest.raises(NotFoundError, match="does not exist") as err:
        _connect(url.render_as_string(hide_password=False))
    assert err.value.exit_code == ExitCode.NOT_FOUND


def _transaction_status(conn: sa.Connection):
    conn.exec_driver_sql("SELECT 1").scalar()
    return conn.connection.dbapi_connection.info.transaction_status


def test_postgresql_reads_hold_no_transaction_at_read_committed(postgres_url):
    from psycopg.pq import TransactionStatus

    engine = create_engine(postgres_url)
    try:
        with reading_engine(engine).connect() as conn:
            assert _transaction_status(conn) == TransactionStatus.IDLE  # no BEGIN sent, no ROLLBACK to send
        with engine.connect() as conn:  # the shared pool's connections go back to transactions for writes
            assert _transaction_status(conn) == TransactionStatus.INTRANS
    finally:
        engine.dispose()


def test_postgresql_reads_stay_in_one_snapshot_when_the_default_is_repeatable_read(postgres_url):
    from psycopg.pq import TransactionStatus

    engine = create_engine(postgres_url, connect_args={"options": "-c default_transaction_isolation=repeatable\\ read"})
    try:
        reader = reading_engine(engine)
        assert reader is engine
        with reader.connect() as conn:
            assert _transaction_status(conn) == TransactionStatus.INTRANS
    finally:
        engine.dispose()


def test_sqlite_reads_use_the_engine_itself(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert reading_engine(engine) is engine
