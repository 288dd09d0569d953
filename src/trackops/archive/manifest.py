"""Snapshot manifests (docs/backup-format.md section 5): ids, the self-checksum, parsing and selection."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from trackops.errors import NotFoundError, UsageError

FORMAT = "trackops-backup-snapshot"
VERSION = 2


class ManifestError(Exception):
    """A manifest that does not parse or whose checksum does not match."""


def new_snapshot_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(4)


def checksum(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(manifest: dict[str, Any], version: int = VERSION) -> bytes:
    """The manifest as stored: indented JSON with its checksum filled in."""
    manifest = {**manifest, "format": FORMAT, "version": version}
    manifest["checksum"] = checksum(manifest)
    # One line: json's C encoder does not indent, and the pure-Python one costs more than the rest of
    # an unchanged backup of a small store.
    return json.dumps(manifest, separators=(",", ":")).encode() + b"\n"


def parse(data: bytes) -> dict[str, Any]:
    """A stored manifest, checked; ManifestError when it is damaged."""
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError("not a snapshot manifest")
    if manifest.get("checksum") != checksum(manifest):
        raise ManifestError("checksum does not match its content")
    return manifest


def hash_of(manifest: dict[str, Any]) -> str:
    """The hash that names the objects a manifest refers to: sha256 for version 1 (section 5)."""
    if manifest.get("version", 1) < 2:
        return "sha256"
    return manifest.get("hash", "blake3")


def table_digest(table: dict[str, Any]) -> str:
    """The expected hash of a table's uncompressed dump (`digest`; `sha256` in version 1)."""
    return table.get("digest") or table["sha256"]


def select(ids: list[str], wanted: str) -> str:
    """The snapshot id for `wanted`: an id, a unique prefix of one, or ``latest``."""
    if not ids:
        raise NotFoundError("the repository holds no snapshots", hint="take one with: trackops backup")
    if wanted == "latest":
        return ids[-1]
    if wanted in ids:
        return wanted
    matches = [i for i in ids if i.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"snapshot prefix {wanted!r} matches {len(matches)} snapshots",
                         hint="give more of the id (trackops backup list shows them)")
    raise NotFoundError(f"no snapshot {wanted!r} in the repository", hint="list them with: trackops backup list")


def created_at(manifest: dict[str, Any]) -> dt.datetime:
    return dt.datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
