"""`trackops backup list` and `trackops backup forget`: snapshots kept by a policy, then prune.

`plan_forget` decides which snapshots a policy keeps (``keep_last``: the newest N; ``keep_daily``: the
newest snapshot of each of the N most recent days that have one, UTC) and, with prune, which objects no
kept snapshot references. `ForgetPlan.execute` deletes manifests first, then objects: an interruption
leaves unreferenced objects (the next prune removes them), never a snapshot that names a deleted object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from trackops.archive import crypto, index as artifact_index, manifest as manifests
from trackops.archive.repository import Repository
from trackops.config import Settings
from trackops.errors import CheckFailedError, LockedError, UsageError
from trackops.services.backup import ProgressEvent, repository_uri

Progress = Callable[[ProgressEvent], None]


@dataclasses.dataclass
class SnapshotInfo:
    id: str
    created: str
    database: str
    dialect: str
    revision: str | None
    tables: int
    rows: int
    files: int
    bytes: int
    missing: int
    trackops_version: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _info(manifest: dict[str, Any]) -> SnapshotInfo:
    src, art = manifest["source"], manifest["artifacts"]
    return SnapshotInfo(manifest["id"], manifest["created"], src["database"], src["dialect"], src["revision"],
                        len(manifest["tables"]), sum(t["rows"] for t in manifest["tables"]), art["files"],
                        art["bytes"], art["missing"], manifest["trackops_version"])


def _manifests(repo: Repository) -> dict[str, dict[str, Any]]:
    out = {}
    for snapshot_id in repo.snapshot_ids():
        try:
            out[snapshot_id] = manifests.parse(repo.read_manifest_bytes(snapshot_id))
        except (manifests.ManifestError, crypto.CorruptObject) as exc:
            raise CheckFailedError(f"snapshot {snapshot_id}: the manifest is damaged ({exc})",
                                   hint="run trackops verify --all; delete the damaged manifest by hand") from None
    return out


def list_snapshots(settings: Settings, *, repository: str | None = None,
                   key_file: str | None = None) -> list[SnapshotInfo]:
    """The repository's complete snapshots, oldest first."""
    repo = Repository.open(repository_uri(settings, repository), secret=crypto.passphrase(key_file))
    return [_info(m) for m in _manifests(repo).values()]


@dataclasses.dataclass
class ForgetPlan:
    repo: Repository
    keep: list[SnapshotInfo]
    remove: list[SnapshotInfo]
    prune_objects: list[tuple[str, int]]
    dry_run: bool
    prune: bool = True
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repo.uri, "dry_run": self.dry_run,
                "keep": [s.id for s in self.keep], "remove": [s.id for s in self.remove],
                "prune": {"objects": len(self.prune_objects), "bytes": sum(s for _o, s in self.prune_objects)}}

    def execute(self, progress: Progress | None = None) -> ForgetPlan:
        """Delete the forgotten manifests, then the unreferenced objects (once)."""
        if self.done or self.dry_run:
            return self
        emit = progress or (lambda _e: None)
        for snap in self.remove:
            self.repo.delete_manifest(snap.id)
        emit(ProgressEvent("objects", "start", total=len(self.prune_objects)))
        for object_id, _size in self.prune_objects:
            self.repo.delete_object(object_id)
            emit(ProgressEvent("objects", "advance", amount=1))
        if self.prune:
            from trackops.archive.repository import STALE_LOCK_SECONDS

            self.repo.backend.clean_temp(STALE_LOCK_SECONDS)  # spool files of killed backups
        emit(ProgressEvent("objects", "done"))
        self.done = True
        return self


def keep_policy(snapshots: list[SnapshotInfo], keep_last: int | None, keep_daily: int | None) -> set[str]:
    """Ids a policy keeps (snapshots come oldest first)."""
    newest_first = sorted(snapshots, key=lambda s: s.id, reverse=True)
    keep: set[str] = set()
    if keep_last:
        keep.update(s.id for s in newest_first[:keep_last])
    if keep_daily:
        days: list[str] = []
        for s in newest_first:
            day = s.created[:10]
            if day not in days:
                if len(days) == keep_daily:
                    break
                days.append(day)
                keep.add(s.id)
    return keep


def plan_forget(settings: Settings, *, repository: str | None = None, keep_last: int | None = None,
                keep_daily: int | None = None, prune: bool = True, dry_run: bool = False,
                key_file: str | None = None) -> ForgetPlan:
    """Forget snapshots a keep policy does not keep, then prune objects nothing references."""
    if not keep_last and not keep_daily:
        raise UsageError("forget needs a policy: --keep-last N and/or --keep-daily N (N >= 1)",
                         hint="trackops backup forget --keep-last 7 --keep-daily 30")
    if (keep_last or 0) < 0 or (keep_daily or 0) < 0:
        raise UsageError("--keep-last and --keep-daily take a number >= 1")
    repo = Repository.open(repository_uri(settings, repository), secret=crypto.passphrase(key_file))
    found = _manifests(repo)
    infos = [_info(m) for m in found.values()]
    kept_ids = keep_policy(infos, keep_last, keep_daily)
    keep = [s for s in infos if s.id in kept_ids]
    remove = [s for s in infos if s.id not in kept_ids]
    unreferenced: list[tuple[str, int]] = []
    if prune:
        if repo.active_locks():
            raise LockedError(f"a backup is writing to {repo.uri} (a lock in locks/ is less than a day old)",
                              hint="wait for it to finish; a lock left by a killed backup can be deleted by hand")
        referenced: set[str] = set()
        for snap in keep:
            referenced.update(_referenced(repo, found[snap.id]))
        unreferenced = [(oid, size) for oid, size in repo.object_sizes() if oid not in referenced]
    return ForgetPlan(repo, keep, remove, sorted(unreferenced), dry_run, prune)


def _referenced(repo: Repository, manifest: dict[str, Any]) -> set[str]:
    ids = {t["object"] for t in manifest["tables"]}
    index_id = manifest["artifacts"].get("index")
    if index_id:
        ids.add(index_id)
        try:
            _locations, _packs, entries = artifact_index.read(repo.read_object(index_id, manifests.hash_of(manifest)))
            ids.update(e.pack or e.object for e in entries)  # a packed file keeps its pack
        except Exception as exc:  # noqa: BLE001 - never prune on a partial picture
            raise CheckFailedError(f"snapshot {manifest['id']}: its artifact index cannot be read ({exc}); "
                                   "nothing was pruned", hint="run trackops verify --all") from None
    return ids
