"""Restore never harms its target: non-empty refused, failures leave it as it was, wrong keys restore nothing."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from tests.archive.helpers import all_rows, fixture_copy
from trackops.archive import manifest as manifests
from trackops.archive.repository import Repository, object_key
from trackops.config import Settings
from trackops.errors import CheckFailedError, KeyFailureError, UsageError
from trackops.services import backup, restore


def _backup(tmp_path, fixture="mlflow-2.22.5", **kw):
    source_url, artifacts = fixture_copy(fixture, tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(Settings(backend_store_uri=source_url, artifacts_destination=str(tmp_path / "d")),
                  to=str(repo), **kw)
    return source_url, artifacts, repo


def _restore(repo, url, dest, **kw):
    return restore.restore(Settings(), snapshot="latest", repository=str(repo), to_backend_store_uri=url,
                           to_artifacts_destination=str(dest), **kw)


def _corrupt_table(repo, name):
    opened = Repository.open(str(repo))
    snapshot = opened.snapshot_ids()[-1]
    manifest = manifests.parse(opened.read_manifest_bytes(snapshot))
    table = next(t for t in manifest["tables"] if t["name"] == name)
    path = repo / object_key(table["object"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_non_empty_target_is_refused_without_force_and_replaced_with_it(tmp_path):
    source_url, _, repo = _backup(tmp_path)
    target = tmp_path / "target.db"
    other_url, _ = fixture_copy("mlflow-1.30.1", tmp_path / "other")
    target.write_bytes((tmp_path / "other" / "mlflow.db").read_bytes())
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(UsageError, match="not empty"):
        _restore(repo, f"sqlite:///{target}", tmp_path / "d")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    _restore(repo, f"sqlite:///{target}", tmp_path / "d", force=True)
    assert all_rows(f"sqlite:///{target}") == all_rows(source_url)


def test_dry_run_plans_and_changes_nothing(tmp_path):
    _, artifacts, repo = _backup(tmp_path)
    target = tmp_path / "target.db"
    report = _restore(repo, f"sqlite:///{target}", tmp_path / "d", dry_run=True,
                      remap=[f"{artifacts.as_uri()}=s3://bucket/new"])
    data = report.to_json()
    assert data["dry_run"] and data["rows"] > 200 and not target.exists()
    assert {loc["to"] for loc in data["artifacts"]["locations"]} >= {"s3://bucket/new/iris-classifier"}


def test_failed_sqlite_restore_leaves_the_target_file_as_it_was(tmp_path):
    _, _, repo = _backup(tmp_path)
    _corrupt_table(repo, "metrics")
    target = tmp_path / "target.db"
    fixture_copy("mlflow-1.30.1", tmp_path / "other")
    target.write_bytes((tmp_path / "other" / "mlflow.db").read_bytes())
    before = target.read_bytes()
    with pytest.raises(CheckFailedError, match="metrics"):
        _restore(repo, f"sqlite:///{target}", tmp_path / "d", force=True)
    assert target.read_bytes() == before
    assert not (tmp_path / "target.db.tmp").exists()


def test_failed_server_restore_leaves_the_target_empty(postgres_url, mysql_url, tmp_path):
    _, _, repo = _backup(tmp_path)
    _corrupt_table(repo, "metrics")
    for url in (postgres_url, mysql_url):
        with pytest.raises(CheckFailedError, match="metrics"):
            _restore(repo, url, tmp_path / "d")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
        engine.dispose()


def test_force_on_postgres_replaces_a_populated_database_in_one_transaction(postgres_url, tmp_path):
    source_url, _, repo = _backup(tmp_path)
    _restore(repo, postgres_url, tmp_path / "d")
    _restore(repo, postgres_url, tmp_path / "d", force=True, upgrade=True)
    rows = all_rows(postgres_url)
    assert len(rows["runs"]) == 12 and rows["alembic_version"] == [(("version_num", "dc11669786a5"),)]


def test_encrypted_repository_restores_with_its_key_and_wrong_key_restores_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKOPS_BACKUP_KEY", "correct horse battery staple")
    source_url, _, repo = _backup(tmp_path, encrypt=True)
    assert b"iris-classifier" not in b"".join(p.read_bytes() for p in repo.rglob("*") if p.is_file())
    target = tmp_path / "target.db"
    monkeypatch.setenv("TRACKOPS_BACKUP_KEY", "wrong")
    with pytest.raises(KeyFailureError):
        _restore(repo, f"sqlite:///{target}", tmp_path / "d")
    assert not target.exists() and not (tmp_path / "d").exists()
    monkeypatch.delenv("TRACKOPS_BACKUP_KEY")
    key_file = tmp_path / "key"
    key_file.write_text("correct horse battery staple\n")
    _restore(repo, f"sqlite:///{target}", tmp_path / "d", key_file=str(key_file))
    assert all_rows(f"sqlite:///{target}") == all_rows(source_url)
    from trackops.services import verify

    assert verify.verify(Settings(), repository=str(repo), read_data=True, key_file=str(key_file)).ok


def test_tables_and_columns_the_revision_lacks_are_reported_not_lost_silently(tmp_path):
    source_url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    engine = sa.create_engine(source_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN team_note VARCHAR(20)")
        conn.exec_driver_sql("CREATE TABLE site_notes (id INTEGER PRIMARY KEY, note TEXT)")
    engine.dispose()
    repo = tmp_path / "repo"
    backup.backup(Settings(backend_store_uri=source_url, artifacts_destination=str(tmp_path / "d")), to=str(repo))
    report = _restore(repo, f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "d")
    assert report.skipped_tables == ["site_notes"] and report.skipped_columns == ["runs.team_note"]
