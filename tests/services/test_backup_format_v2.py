"""Repository format 2: pack objects, the index written last, reused table dumps, version-1 repositories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.archive.helpers import all_files, all_rows, fixture_copy
from tests.conftest import FIXTURES
from trackops.archive import index as artifact_index, manifest as manifests
from trackops.archive.repository import Repository
from trackops.config import Settings
from trackops.services import backup, forget, restore, verify

V1_PREFIX = "file:///srv/mlflow/artifacts"


def _settings(db_url: str, destination) -> Settings:
    return Settings(backend_store_uri=db_url, artifacts_destination=str(destination))


def _restore(repo, db_url, destination, remaps=(), **kw):
    return restore.restore(Settings(), snapshot="latest", repository=str(repo), to_backend_store_uri=db_url,
                           to_artifacts_destination=str(destination), remap=list(remaps), **kw)


def _latest(repo) -> tuple[Repository, dict]:
    r = Repository.open(str(repo), **({"secret": "k"} if (Path(str(repo)) / "config.json").exists()
                                      and json.loads((Path(str(repo)) / "config.json").read_text())["encryption"]
                                      else {}))
    return r, manifests.parse(r.read_manifest_bytes(r.snapshot_ids()[-1]))


def _index(repo: Repository, manifest: dict):
    locations, packs, entries = artifact_index.read(repo.read_object(manifest["artifacts"]["index"]))
    return locations, packs, list(entries)


def _object_files(repo: Path) -> set[str]:
    return {p.name for p in (repo / "objects").rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path):
    url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    return url, artifacts


# --- packs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_small_files_share_one_pack_and_restore_byte_for_byte(store, tmp_path, monkeypatch, encrypted):
    url, artifacts = store
    repo = tmp_path / "repo"
    if encrypted:
        monkeypatch.setenv("TRACKOPS_BACKUP_KEY", "k")
    report = backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), encrypt=encrypted)
    r, manifest = _latest(repo)
    assert r.version == 2 and manifest["version"] == 2 and manifest["hash"] == "blake3"
    _locations, packs, entries = _index(r, manifest)
    assert report.files == len(entries) == 36
    # All 36 artifact files are small: one pack holds them, and the index lists it with its size.
    assert {e.pack for e in entries} == set(packs) and len(packs) == 1
    assert all(e.inode is not None and e.offset is not None for e in entries)
    tables = len(manifest["tables"])
    assert len(_object_files(repo)) == tables + 1 + 1  # dumps (all distinct), the pack, the index

    moved = tmp_path / "moved"
    _restore(repo, f"sqlite:///{tmp_path / 'restored.db'}", tmp_path / "dest",
             [f"{artifacts.as_uri()}={moved.as_uri()}"])
    assert all_files(moved) == all_files(artifacts)
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok


def test_large_files_are_objects_of_their_own_and_s3_repository_round_trips_packs(s3, sqlite_head_url, tmp_path):
    engine = sa.create_engine(sqlite_head_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage) "
                             "VALUES (1, 'e', 'mlflow-artifacts:/1', 'active')"))
    engine.dispose()
    source = tmp_path / "mlartifacts" / "1" / "run" / "artifacts"
    source.mkdir(parents=True)
    big = bytes(range(256)) * (5 * 4096 + 7)  # ~5 MiB: past the pack limit
    (source / "big.bin").write_bytes(big)
    for i in range(20):
        (source / f"small-{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (source / "dup.txt").write_text("file 0\n")  # the same content as small-0.txt: one member
    repo = s3.uri("backups")
    backup.backup(_settings(sqlite_head_url, tmp_path / "mlartifacts"), to=repo)
    r = Repository.open(repo)
    manifest = manifests.parse(r.read_manifest_bytes(r.snapshot_ids()[-1]))
    _locations, packs, entries = _index(r, manifest)
    by_path = {e.path: e for e in entries}
    assert by_path["run/artifacts/big.bin"].pack is None and by_path["run/artifacts/big.bin"].size == len(big)
    assert len(packs) == 1 and by_path["run/artifacts/dup.txt"].object == by_path["run/artifacts/small-0.txt"].object
    assert by_path["run/artifacts/dup.txt"].offset == by_path["run/artifacts/small-0.txt"].offset

    out = tmp_path / "restored"
    _restore(repo, f"sqlite:///{tmp_path / 'r.db'}", out)
    assert all_files(out / "1") == all_files(tmp_path / "mlartifacts" / "1")
    assert verify.verify(Settings(), repository=repo, read_data=True).ok


# --- the index is written last ----------------------------------------------------------------------

def test_backup_interrupted_after_its_packs_lists_no_snapshot_and_prune_removes_them(store, tmp_path, monkeypatch):
    url, artifacts = store
    repo = tmp_path / "repo"
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    (next(artifacts.rglob("notes.txt"))).write_text("new content: a new pack\n")
    before = _object_files(repo)

    def fail(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact_index, "encode", fail)
    with pytest.raises(KeyboardInterrupt):
        backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    monkeypatch.undo()
    orphans = _object_files(repo) - before
    assert orphans  # the new pack was stored ...
    assert len(Repository.open(str(repo)).snapshot_ids()) == 1  # ... but no snapshot names it
    assert verify.verify(Settings(), repository=str(repo)).ok
    plan = forget.plan_forget(Settings(), repository=str(repo), keep_last=1)
    assert {oid for oid, _size in plan.prune_objects} == orphans
    plan.execute()
    assert _object_files(repo) == before
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok


# --- a second backup reuses packs and table dumps ---------------------------------------------------

def test_unchanged_second_backup_reuses_every_table_dump_and_pack(store, tmp_path):
    url, artifacts = store
    repo = tmp_path / "repo"
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    r, first = _latest(repo)
    objects = _object_files(repo)
    second = backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    r, manifest = _latest(repo)
    assert second.objects_new == 0 and second.files_stored == 0 and second.files_unchanged == 36
    assert all(t["reused"] for t in manifest["tables"])
    assert [t["object"] for t in manifest["tables"]] == [t["object"] for t in first["tables"]]
    assert manifest["artifacts"]["index"] == first["artifacts"]["index"]
    assert _object_files(repo) == objects

    # New rows: only their table is dumped again; a file touched in place is read again but, with the
    # same content, stored nowhere.
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        run = conn.execute(sa.text("SELECT run_uuid FROM runs LIMIT 1")).scalar_one()
        conn.execute(sa.text("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                             "VALUES ('added', 1.5, 1, :r, 0, 0)"), {"r": run})
    engine.dispose()
    notes = next(artifacts.rglob("notes.txt"))
    notes.write_bytes(notes.read_bytes())
    third = backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    r, manifest = _latest(repo)
    dumped = {t["name"] for t in manifest["tables"] if not t["reused"]}
    assert dumped == {"metrics"}
    assert third.files_unchanged == 35 and third.files_stored == 0
    assert third.objects_new == 2  # the metrics dump, and an index with the touched file's new mtime

    rehashed = backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), rehash=True)
    r, manifest = _latest(repo)
    assert not any(t["reused"] for t in manifest["tables"])
    assert rehashed.files_unchanged == 0 and rehashed.objects_new == 0

    target = f"sqlite:///{tmp_path / 'restored.db'}"
    _restore(repo, target, tmp_path / "dest")
    assert all_rows(target) == {k: v for k, v in all_rows(url).items() if k != "alembic_version"} | \
        {"alembic_version": all_rows(target)["alembic_version"]}


def test_untouched_sqlite_file_reuses_every_dump_without_reading_a_row(store, tmp_path, monkeypatch):
    from trackops.archive import fingerprint

    url, _artifacts = store
    monkeypatch.setattr(fingerprint, "SETTLED_SECONDS", 0)  # the fixture copy was just written
    repo = tmp_path / "repo"
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), artifacts=False)
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), artifacts=False)  # the first may checkpoint
    r, before = _latest(repo)
    assert before["source"]["file_state"]

    def no_scan(*_a, **_k):
        raise AssertionError("an untouched file needs no table fingerprint")

    with monkeypatch.context() as patched:
        patched.setattr(fingerprint, "sqlite_fingerprint", no_scan)
        again = backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), artifacts=False)
    r, manifest = _latest(repo)
    assert again.objects_new == 0 and all(t["reused"] for t in manifest["tables"])

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # a change in place: same size, same row count
        conn.execute(sa.text("UPDATE experiments SET name = 'renamed' WHERE experiment_id = "
                             "(SELECT min(experiment_id) FROM experiments)"))
    engine.dispose()
    changed = backup.backup(_settings(url, tmp_path / "dest"), to=str(repo), artifacts=False)
    r, manifest = _latest(repo)
    assert {t["name"] for t in manifest["tables"] if not t["reused"]} == {"experiments"}
    assert changed.objects_new == 1


def test_postgres_second_backup_reuses_unchanged_tables_and_redumps_an_updated_one(store, postgres_url, tmp_path):
    url, _artifacts = store
    seed = tmp_path / "seed"
    backup.backup(_settings(url, tmp_path / "dest"), to=str(seed), artifacts=False)
    _restore(seed, postgres_url, tmp_path / "dest")  # SQLite -> PostgreSQL
    repo = tmp_path / "repo"
    backup.backup(_settings(postgres_url, tmp_path / "dest"), to=str(repo), artifacts=False)
    r, first = _latest(repo)
    assert first["source"]["xmin"]
    second = backup.backup(_settings(postgres_url, tmp_path / "dest"), to=str(repo), artifacts=False)
    r, manifest = _latest(repo)
    assert second.objects_new == 0 and all(t["reused"] for t in manifest["tables"])

    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # same row count, one value changed in place
        conn.execute(sa.text("UPDATE runs SET name = 'renamed' WHERE run_uuid = "
                             "(SELECT min(run_uuid) FROM runs)"))
    engine.dispose()
    third = backup.backup(_settings(postgres_url, tmp_path / "dest"), to=str(repo), artifacts=False)
    r, manifest = _latest(repo)
    assert {t["name"] for t in manifest["tables"] if not t["reused"]} == {"runs"} and third.objects_new == 1
    target = f"sqlite:///{tmp_path / 'back.db'}"
    _restore(repo, target, tmp_path / "dest")  # PostgreSQL -> SQLite, from reused and fresh dumps
    assert all_rows(target)["runs"] == all_rows(postgres_url)["runs"]
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok


# --- version-1 repositories -------------------------------------------------------------------------

def test_version_1_repository_verifies_restores_and_takes_version_2_snapshots(tmp_path):
    repo = tmp_path / "v1"
    shutil.copytree(FIXTURES / "backup-v1" / "plain", repo)
    assert json.loads((repo / "config.json").read_text())["version"] == 1
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok

    moved = tmp_path / "moved"
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    _restore(repo, target, tmp_path / "dest", [f"{V1_PREFIX}={moved.as_uri()}"])
    source = FIXTURES / "mlflow-2.12.2"
    assert all_files(moved) == all_files(source / "artifacts")
    expected = all_rows(f"sqlite:///{source / 'mlflow.db'}", replace=(V1_PREFIX, moved.as_uri()))
    restored = all_rows(target)
    assert {k: v for k, v in restored.items() if k != "alembic_version"} == \
        {k: v for k, v in expected.items() if k != "alembic_version"}

    # A version-2 backup into it upgrades config.json once; both snapshots stay restorable.
    url, artifacts = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    config = json.loads((repo / "config.json").read_text())
    assert config["version"] == 2 and config["hash"] == "blake3"
    ids = Repository.open(str(repo)).snapshot_ids()
    assert len(ids) == 2 and verify.verify(Settings(), repository=str(repo), read_data=True).ok
    again = f"sqlite:///{tmp_path / 'old-again.db'}"
    restore.restore(Settings(), snapshot=ids[0], repository=str(repo), to_backend_store_uri=again,
                    to_artifacts_destination=str(tmp_path / "dest"),
                    remap=[f"{V1_PREFIX}={(tmp_path / 'moved2').as_uri()}"])
    assert all_files(tmp_path / "moved2") == all_files(source / "artifacts")
    plan = forget.plan_forget(Settings(), repository=str(repo), keep_last=2)  # prune keeps both kinds
    assert plan.prune_objects == []


def test_encrypted_version_1_repository_restores_with_its_key(tmp_path, monkeypatch):
    repo = tmp_path / "v1e"
    shutil.copytree(FIXTURES / "backup-v1" / "encrypted", repo)
    monkeypatch.setenv("TRACKOPS_BACKUP_KEY", "fixture-key")
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    _restore(repo, target, tmp_path / "dest")
    source = FIXTURES / "mlflow-2.12.2" / "mlflow.db"
    # The snapshot's artifacts destination moves to the new one: its URIs are rewritten.
    expected = all_rows(f"sqlite:///{source}", replace=(V1_PREFIX, (tmp_path / "dest").as_uri()))
    assert all_rows(target)["runs"] == expected["runs"]


# --- damage -----------------------------------------------------------------------------------------

def test_corrupt_pack_is_named_by_verify_with_exit_4_and_stops_restore(store, tmp_path, capsys):
    from trackops.cli.main import invoke
    from trackops.errors import CheckFailedError

    url, _artifacts = store
    repo = tmp_path / "repo"
    backup.backup(_settings(url, tmp_path / "dest"), to=str(repo))
    r, manifest = _latest(repo)
    _locations, packs, entries = _index(r, manifest)
    (pack,) = packs
    victim = entries[len(entries) // 2]
    path = repo / "objects" / pack[:2] / pack
    data = bytearray(path.read_bytes())
    data[victim.offset] ^= 0xFF
    path.write_bytes(bytes(data))

    report = verify.verify(Settings(), repository=str(repo), read_data=True)
    problems = [p for p in report.problems if p.object == pack]
    assert any(victim.path in p.what and "member id" in p.problem for p in problems)
    assert any(p.what.startswith("pack of 36 artifacts") and "does not match its id" in p.problem for p in problems)
    code = invoke(["verify", "--repo", str(repo), "--read-data"])
    err = capsys.readouterr().err
    assert code == 4 and pack[:12] in err and victim.path in err
    with pytest.raises(CheckFailedError, match="does not match its member id|damaged"):
        _restore(repo, f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "dest")

    path.write_bytes(bytes(data[:-1]))  # a truncated pack: caught without reading data
    quick = verify.verify(Settings(), repository=str(repo))
    assert any(p.object == pack and "stored size" in p.problem for p in quick.problems)
