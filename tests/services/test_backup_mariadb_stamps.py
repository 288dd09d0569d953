"""MariaDB: a second backup reuses the dumps of tables InnoDB's commit stamps show unchanged (format 6a).

Every test here runs against the real MariaDB server; the stamps have a resolution of one second, so
each waits until the writes it made have settled (`fingerprint.SETTLED_SECONDS`).
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tests.archive.helpers import all_rows, fixture_copy
from trackops.archive import fingerprint, manifest as manifests
from trackops.archive.repository import Repository
from trackops.config import Settings
from trackops.services import backup, restore, verify

SETTLE = fingerprint.SETTLED_SECONDS + 1.2


def _settings(db_url: str, destination) -> Settings:
    return Settings(backend_store_uri=db_url, artifacts_destination=str(destination))


def _backup(url, repo, tmp_path):
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), artifacts=False)
    r = Repository.open(str(repo))
    return {t["name"]: t for t in manifests.parse(r.read_manifest_bytes(r.snapshot_ids()[-1]))["tables"]}


def _restored(repo, tmp_path, name: str) -> str:
    target = f"sqlite:///{tmp_path / name}"
    restore.restore(Settings(), snapshot="latest", repository=str(repo), to_backend_store_uri=target,
                    to_artifacts_destination=str(tmp_path / "dest"))
    return target


def _column(url: str, sql: str) -> set:
    engine = _engine(url)
    with engine.connect() as conn:
        found = {row[0] for row in conn.exec_driver_sql(sql)}
    engine.dispose()
    return found


def _restored_rows(repo, tmp_path, name: str) -> dict:
    return all_rows(_restored(repo, tmp_path, name))


@pytest.fixture
def mariadb_store(mysql_url, tmp_path) -> str:
    """The MLflow 2.22.5 fixture store restored onto a fresh MariaDB database, its writes settled."""
    url, _artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    seed = tmp_path / "seed"
    backup.backup(_settings(url, tmp_path / "dest"), to=str(seed), artifacts=False)
    restore.restore(Settings(), snapshot="latest", repository=str(seed), to_backend_store_uri=mysql_url,
                    to_artifacts_destination=str(tmp_path / "dest"))
    time.sleep(SETTLE)
    return mysql_url


def _engine(url):
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def test_mariadb_second_backup_reuses_settled_tables_and_redumps_updated_and_truncated_ones(mariadb_store,
                                                                                          tmp_path):
    url, repo = mariadb_store, tmp_path / "repo"
    first = _backup(url, repo, tmp_path)
    # A table never written since the server started has no stamp (NULL): it is dumped each time.
    assert all(t["fingerprint"].startswith("mariadb-stamp:") for t in first.values() if t["rows"])
    second = _backup(url, repo, tmp_path)
    assert all(t["reused"] for t in second.values() if t["rows"])
    assert sum(t["rows"] for t in second.values() if not t["reused"]) == 0

    engine = _engine(url)
    with engine.begin() as conn:  # same row count, one value changed in place
        conn.execute(sa.text("UPDATE runs SET name = 'renamed' WHERE run_uuid = (SELECT m FROM "
                             "(SELECT min(run_uuid) AS m FROM runs) AS x)"))
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE TABLE latest_metrics")  # no stamp moves: the table id does
    engine.dispose()
    third = _backup(url, repo, tmp_path)
    assert {n for n, t in third.items() if not t["reused"]} == {"runs", "latest_metrics"}
    assert third["latest_metrics"]["rows"] == 0 and first["latest_metrics"]["rows"] > 0

    restored = _restored_rows(repo, tmp_path, "back.db")
    live = all_rows(url)
    assert restored["runs"] == live["runs"] and restored["latest_metrics"] == []
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok


def _start_second(conn) -> int:
    return conn.exec_driver_sql("SELECT UNIX_TIMESTAMP(trx_started) FROM information_schema.innodb_trx "
                                "WHERE trx_mysql_thread_id = CONNECTION_ID()").scalar_one()


def _raw_stamp(conn, table: str) -> str:
    stamp = fingerprint.mariadb_stamps(conn, trusted_only=False)[table]
    conn.rollback()
    return stamp


def test_mariadb_transaction_open_across_a_backup_gets_its_rows_into_the_next_one(mariadb_store, tmp_path):
    """A transaction stamps its own start time when it commits: one that began in the second of the
    table's current stamp and commits after a backup leaves that stamp as it was. The backup it was open
    across must not trust the stamp, or the next backup would reuse a dump without its rows."""
    url, repo = mariadb_store, tmp_path / "repo"
    engine = _engine(url)
    with engine.connect() as conn:
        experiment = conn.exec_driver_sql("SELECT min(experiment_id) FROM experiments").scalar_one()
    with engine.connect() as writer, engine.connect() as other:
        for _attempt in range(10):
            writer.exec_driver_sql("INSERT INTO experiment_tags (`key`, value, experiment_id) "
                                   "VALUES ('late', 'committed after the backup', %s)", (experiment,))
            started = _start_second(writer)
            with other.begin():  # committed at once, in the same second: the table's stamp is `started`
                other.exec_driver_sql("INSERT INTO experiment_tags (`key`, value, experiment_id) "
                                      "VALUES ('early', 'committed before the backup', %s)", (experiment,))
            stamp = _raw_stamp(other, "experiment_tags")
            if stamp.endswith(f":{started}"):
                break
            writer.rollback()
            with other.begin():
                other.exec_driver_sql("DELETE FROM experiment_tags WHERE `key` = 'early'")
            time.sleep(SETTLE)
        else:
            pytest.fail("could not commit within the writer's first second")
        time.sleep(SETTLE)  # the stamp is old enough now; only the open transaction makes it untrusted
        first = _backup(url, repo, tmp_path)
        assert "fingerprint" not in first["experiment_tags"]
        assert first["experiments"]["fingerprint"].startswith("mariadb-stamp:")
        writer.commit()
        assert _raw_stamp(other, "experiment_tags") == stamp  # the commit left the stamp as it was
    engine.dispose()

    second = _backup(url, repo, tmp_path)
    assert not second["experiment_tags"]["reused"] and second["experiments"]["reused"]
    assert {"early", "late"} <= _column(_restored(repo, tmp_path, "back.db"), "SELECT key FROM experiment_tags")


def test_mariadb_commit_between_the_stamp_reading_and_the_snapshot_is_not_lost(mariadb_store, tmp_path,
                                                                               monkeypatch):
    """The stamps are read just before the snapshot starts; a commit in between is in the snapshot but
    not in that reading. The second reading, after the dumps, shows it, and the table is dumped after all."""
    url, repo = mariadb_store, tmp_path / "repo"
    _backup(url, repo, tmp_path)
    real = fingerprint.mariadb_stamps

    def stamps_then_a_commit(conn, trusted_only=True):
        found = real(conn, trusted_only)
        if trusted_only:
            engine = _engine(url)
            with engine.begin() as other:
                other.exec_driver_sql("UPDATE runs SET name = 'in the gap'")
            engine.dispose()
        return found

    monkeypatch.setattr(fingerprint, "mariadb_stamps", stamps_then_a_commit)
    second = _backup(url, repo, tmp_path)
    assert not second["runs"]["reused"] and "fingerprint" not in second["runs"]
    assert second["experiments"]["reused"]
    assert _column(_restored(repo, tmp_path, "back.db"), "SELECT name FROM runs") == {"in the gap"}


def test_mariadb_user_without_process_privilege_backs_up_every_table_in_full(mariadb_store, tmp_path):
    url = sa.make_url(mariadb_store)
    user = f"trk_{url.database[-8:]}"
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw'")
        conn.exec_driver_sql(f"GRANT ALL ON `{url.database}`.* TO '{user}'@'%%'")
    try:
        limited = url.set(username=user, password="pw").render_as_string(hide_password=False)
        repo = tmp_path / "repo"
        first = _backup(limited, repo, tmp_path)
        second = _backup(limited, repo, tmp_path)
        assert not any(t["reused"] for t in second.values())
        assert not any("fingerprint" in t for t in first.values())
        assert _restored_rows(repo, tmp_path, "back.db")["runs"] == all_rows(mariadb_store)["runs"]
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
        admin.dispose()
