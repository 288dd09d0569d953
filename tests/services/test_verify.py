"""verify finds damaged and missing objects and names what they held."""

from __future__ import annotations

import pytest

from tests.archive.helpers import fixture_copy
from trackops.archive import index as artifact_index, manifest as manifests
from trackops.archive.repository import Repository, object_key
from trackops.config import Settings
from trackops.services import backup, verify


@pytest.fixture
def backed_up(tmp_path):
    source_url, _ = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    report = backup.backup(Settings(backend_store_uri=source_url, artifacts_destination=str(tmp_path / "d")),
                           to=str(repo))
    return repo, report.snapshot


def _artifact_object(repo_path, snapshot, name):
    """The stored file holding an artifact's bytes (its pack: the fixture's files are all small), and its entry."""
    repo = Repository.open(str(repo_path))
    manifest = manifests.parse(repo.read_manifest_bytes(snapshot))
    locations, entries = artifact_index.decode(repo.read_object(manifest["artifacts"]["index"]))
    entry = next(e for e in entries if e.path.endswith(name))
    return repo_path / object_key(entry.pack or entry.object), entry


def test_clean_repository_verifies_with_and_without_reading_data(backed_up):
    repo, snapshot = backed_up
    for read_data in (False, True):
        report = verify.verify(Settings(), repository=str(repo), read_data=read_data)
        tables = len(manifests.parse(Repository.open(str(repo)).read_manifest_bytes(snapshot))["tables"])
        # every table dump, the artifact index and the one pack holding the 36 small files
        assert report.ok and report.snapshots == [snapshot] and report.objects == tables + 2


def test_flipped_byte_is_found_only_by_read_data_and_named(backed_up):
    repo, snapshot = backed_up
    path, entry = _artifact_object(repo, snapshot, "weights.json")
    data = bytearray(path.read_bytes())
    data[entry.offset] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify.verify(Settings(), repository=str(repo)).ok  # same size: only reading finds it
    report = verify.verify(Settings(), repository=str(repo), read_data=True)
    assert not report.ok
    # The damaged file (and every file sharing its content) is named, and the pack that holds it.
    assert report.problems and all(p.object == entry.pack and p.problem.startswith("damaged")
                                   for p in report.problems)
    named = [p.what for p in report.problems if "member id" in p.problem]
    assert named and all("weights.json" in what for what in named)
    assert any(p.what.startswith("pack of") for p in report.problems)


def test_missing_and_truncated_objects_are_found_without_reading(backed_up):
    repo, snapshot = backed_up
    opened = Repository.open(str(repo))
    metrics = next(t for t in manifests.parse(opened.read_manifest_bytes(snapshot))["tables"] if t["name"] == "metrics")
    missing = repo / object_key(metrics["object"])
    missing.unlink()
    truncated, _ = _artifact_object(repo, snapshot, "history.csv")
    truncated.write_bytes(truncated.read_bytes()[:-1])
    report = verify.verify(Settings(), repository=str(repo), snapshot="latest")
    kinds = sorted(p.problem.split()[0] for p in report.problems)
    assert kinds == ["missing", "stored"]


def test_damaged_table_dump_and_edited_manifest_are_reported(backed_up):
    repo, snapshot = backed_up
    opened = Repository.open(str(repo))
    manifest = manifests.parse(opened.read_manifest_bytes(snapshot))
    metrics = next(t for t in manifest["tables"] if t["name"] == "metrics")
    (repo / object_key(metrics["object"])).write_bytes(b"x" * metrics["object_size"])
    report = verify.verify(Settings(), repository=str(repo), read_data=True)
    assert [p.what for p in report.problems] == ["table metrics"]

    manifest_path = repo / "snapshots" / f"{snapshot}.json"
    manifest_path.write_text(manifest_path.read_text().replace('"rows":68', '"rows":69'))
    report = verify.verify(Settings(), repository=str(repo))
    assert [p.what for p in report.problems] == ["manifest"]
