"""`trackops verify`: check snapshot manifests and the objects they name.

Without ``read_data``: every manifest parses and matches its checksum, every artifact index is read,
and every object a snapshot names exists with the size its content implies (one listing of the
repository). With ``read_data``: every object is read whole, authenticated (encrypted repositories) and
hashed against its id; table dumps are also decompressed and checked against their row count and
checksum, and each file in a pack is checked against its member id as the pack is read. The report names each damaged snapshot, object and what it held.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from typing import Any

from trackops.archive import crypto, dump, index as artifact_index, manifest as manifests, packs
from trackops.archive.crypto import CorruptObject
from trackops.archive.repository import Repository, digest_hex
from trackops.artifacts import ArtifactNotFound
from trackops.config import Settings
from trackops.services.backup import ProgressEvent, repository_uri

Progress = Callable[[ProgressEvent], None]


@dataclasses.dataclass(frozen=True)
class Problem:
    snapshot: str
    what: str
    object: str | None
    problem: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        obj = f" (object {self.object[:12]})" if self.object else ""
        return f"{self.snapshot}: {self.what}{obj}: {self.problem}"


@dataclasses.dataclass
class VerifyReport:
    """`to_json()` is the documented ``--json`` shape."""

    repository: str
    snapshots: list[str]
    read_data: bool
    objects: int = 0
    bytes_read: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    incomplete: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Snapshots whose backup found referenced files missing (not damage: they were gone at backup time)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "snapshots": self.snapshots, "read_data": self.read_data,
                "objects_checked": self.objects, "bytes_read": self.bytes_read, "ok": self.ok,
                "problems": [p.to_json() for p in self.problems], "incomplete": self.incomplete}


def verify(settings: Settings, *, repository: str | None = None, snapshot: str | None = None,
           read_data: bool = False, key_file: str | None = None, progress: Progress | None = None) -> VerifyReport:
    """Check snapshot manifests and object checksums; with read_data, read every object."""
    emit = progress or (lambda _e: None)
    repo = Repository.open(repository_uri(settings, repository), secret=crypto.passphrase(key_file))
    ids = repo.snapshot_ids()
    chosen = [manifests.select(ids, snapshot)] if snapshot else ids
    report = VerifyReport(repo.uri, chosen, read_data)
    wanted: dict[str, _Wanted] = {}

    def want(object_id: str, size: int | None, snapshot_id: str, what: str, algorithm: str,
             table: dict | None = None) -> _Wanted:
        entry = wanted.setdefault(object_id, _Wanted(size, algorithm, table))
        entry.users.append((snapshot_id, what))
        return entry

    for snapshot_id in chosen:
        try:
            manifest = manifests.parse(repo.read_manifest_bytes(snapshot_id))
        except (manifests.ManifestError, CorruptObject) as exc:
            report.problems.append(Problem(snapshot_id, "manifest", None, str(exc)))
            continue
        algorithm = manifests.hash_of(manifest)
        for table in manifest["tables"]:
            want(table["object"], table.get("object_size"), snapshot_id, f"table {table['name']}", algorithm, table)
        art = manifest["artifacts"]
        if art.get("missing"):
            report.incomplete.append({"snapshot": snapshot_id, "missing": art["missing"],
                                      "paths": art.get("missing_paths", [])[:20]})
        if not art.get("index"):
            continue
        want(art["index"], art.get("index_size"), snapshot_id, "artifact index", algorithm)
        try:
            locations, packs, entries = artifact_index.read(repo.read_object(art["index"], algorithm))
            for e in entries:
                what = f"artifact {locations[e.location].uri}/{e.path}"
                if e.pack is None:
                    want(e.object, e.size, snapshot_id, what, algorithm)
                    continue
                pack = wanted.get(e.pack)
                if pack is None or (snapshot_id, "pack") not in pack.users:
                    pack = want(e.pack, packs.get(e.pack), snapshot_id, "pack", algorithm)
                pack.members.setdefault((e.offset, e.size, e.object), []).append((snapshot_id, what))
        except ArtifactNotFound:
            pass  # reported below as a missing object
        except (CorruptObject, ValueError) as exc:
            report.problems.append(Problem(snapshot_id, "artifact index", art["index"], f"damaged ({exc})"))

    stored = dict(repo.object_sizes())
    emit(ProgressEvent("objects", "start", total=len(wanted)))
    for object_id, item in wanted.items():
        report.objects += 1
        problem = _check(repo, object_id, item, stored, read_data, report)
        if problem:
            for snapshot_id, what in item.users:
                if what == "pack":  # name what the pack held
                    held = [w for members in item.members.values() for s, w in members if s == snapshot_id]
                    what = f"pack of {len(held)} artifacts ({held[0]}{', ...' if len(held) > 1 else ''})" \
                        if held else "pack"
                report.problems.append(Problem(snapshot_id, what, object_id, problem))
        emit(ProgressEvent("objects", "advance", amount=1))
    emit(ProgressEvent("objects", "done"))
    return report


@dataclasses.dataclass
class _Wanted:
    """An object some snapshots name: its expected content size, hash, users, and what it holds."""

    size: int | None
    algorithm: str
    table: dict | None = None
    users: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    members: dict[tuple[int, int, str], list[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    """For a pack: (offset, size, member id) -> the (snapshot, artifact) it is."""


def _check(repo: Repository, object_id: str, item: _Wanted, stored: dict[str, int], read_data: bool,
           report: VerifyReport) -> str | None:
    if object_id not in stored:
        return "missing"
    size = item.size
    if size is not None and stored[object_id] != repo.stored_size(size):
        return f"stored size {stored[object_id]} differs from the expected {repo.stored_size(size)}"
    if not read_data:
        return None
    try:
        if item.table is not None:
            reader = dump.DumpReader(repo.read_object(object_id, item.algorithm), item.algorithm)
            rows = sum(len(b) for b in reader.batches())
            if reader.hasher.hexdigest() != manifests.table_digest(item.table) or rows != item.table["rows"]:
                return f"dump holds {rows} rows and does not match the manifest's checksum"
            report.bytes_read += stored[object_id]
            return None
        chunks = repo.read_object(object_id, item.algorithm)
        if item.members:
            members = sorted(item.members)
            for position, data in packs.cut_members(chunks, [(o, s) for o, s, _m in members]):
                report.bytes_read += len(data)
                offset, size, member = members[position]
                if digest_hex(data, item.algorithm, repo.keys) != member:
                    for snapshot_id, what in item.members[members[position]]:
                        report.problems.append(Problem(snapshot_id, what, object_id,
                                                       f"damaged: bytes {offset}-{offset + size} of the pack do "
                                                       "not match the file's member id"))
            return None
        for chunk in chunks:
            report.bytes_read += len(chunk)
    except ArtifactNotFound:
        return "missing"
    except CorruptObject as exc:
        return f"damaged: {exc}"
    except (ValueError, OSError, zlib.error) as exc:
        return f"damaged: {exc}"
    return None
