"""forget keeps what the policy says, and prune removes only what no kept snapshot references."""

from __future__ import annotations

import pytest

from tests.archive.helpers import fixture_copy
from trackops.archive.repository import Repository
from trackops.config import Settings
from trackops.errors import LockedError, UsageError
from trackops.services import backup, forget, verify
from trackops.services.forget import SnapshotInfo, keep_policy


def _info(snapshot_id: str, created: str) -> SnapshotInfo:
    return SnapshotInfo(snapshot_id, created, "db", "sqlite", None, 0, 0, 0, 0, 0, "0")


def test_keep_policy_keeps_the_newest_and_the_newest_of_each_day():
    snaps = [_info(f"2026112{d}T{h:02d}0000Z-x", f"2026-11-2{d}T{h:02d}:00:00.000Z")
             for d in (1, 2, 3) for h in (1, 9)]
    assert keep_policy(snaps, 2, None) == {"20261123T090000Z-x", "20261123T010000Z-x"}
    assert keep_policy(snaps, None, 2) == {"20261123T090000Z-x", "20261122T090000Z-x"}
    assert keep_policy(snaps, 1, 3) == {"20261123T090000Z-x", "20261122T090000Z-x", "20261121T090000Z-x"}


def test_forget_with_prune_deletes_unreferenced_objects_and_the_rest_verifies(tmp_path):
    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    settings = Settings(backend_store_uri=source_url, artifacts_destination=str(tmp_path / "d"))
    repo = str(tmp_path / "repo")
    first = backup.backup(settings, to=repo)
    for path in artifacts.rglob("notes.txt"):
        path.write_text("rewritten\n")
    second = backup.backup(settings, to=repo)

    plan = forget.plan_forget(Settings(), repository=repo, keep_last=1, dry_run=True)
    assert [s.id for s in plan.remove] == [first.snapshot] and plan.prune_objects
    plan.execute()
    assert Repository.open(repo).snapshot_ids() == [first.snapshot, second.snapshot]  # dry run

    before = len(list(Repository.open(repo).object_sizes()))
    done = forget.plan_forget(Settings(), repository=repo, keep_last=1).execute()
    after = len(list(Repository.open(repo).object_sizes()))
    assert Repository.open(repo).snapshot_ids() == [second.snapshot]
    assert before - after == len(done.prune_objects) > 0
    assert verify.verify(Settings(), repository=repo, read_data=True).ok


def test_forget_needs_a_policy_and_prune_waits_for_a_running_backup(tmp_path):
    repo_path = str(tmp_path / "repo")
    repo = Repository.open_or_create(repo_path)
    with pytest.raises(UsageError):
        forget.plan_forget(Settings(), repository=repo_path)
    with repo.lock("backup"), pytest.raises(LockedError):
        forget.plan_forget(Settings(), repository=repo_path, keep_last=1)
    assert forget.plan_forget(Settings(), repository=repo_path, keep_last=1).prune_objects == []
