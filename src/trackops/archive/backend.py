"""Where a backup repository's files live: a local directory or an S3 prefix, behind one small interface.

Contract (both backends): keys are relative POSIX paths (``objects/ab/ab12...``). `put_file` and
`put_bytes` make a key appear whole or not at all (local: temp file + rename; S3: one PUT or a completed
multipart upload). `get` of a missing key raises `ArtifactNotFound`; `exists` never raises for absence;
`delete` is idempotent; `keys(prefix)` yields every key under ``prefix/`` in code-point order.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from trackops.artifacts import ArtifactNotFound, ArtifactReader, ArtifactRepository, repository_for
from trackops.artifacts.local import LocalArtifactRepository
from trackops.artifacts.registry import local_path, scheme_of
from trackops.errors import UsageError


class Backend:
    """One repository root. Subclasses implement the storage calls."""

    uri: str
    local = False

    def put_file(self, key: str, path: Path) -> None:
        """Store the finished local file at `path` under `key` (the file may be consumed)."""
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store `data` under `key`; durable=False may skip the fsync (a lock file)."""
        raise NotImplementedError

    def get(self, key: str) -> ArtifactReader:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int:
        """The stored size; ArtifactNotFound when missing."""
        raise NotImplementedError

    def delete(self, key: str) -> bool:
        raise NotImplementedError

    def keys(self, prefix: str) -> Iterator[tuple[str, int, float | None]]:
        """(key, size, modified) for every key under ``prefix/``, sorted."""
        raise NotImplementedError

    def temp_file(self) -> Path:
        """A fresh path for spooling an object before `put_file` (inside the repository when local)."""
        raise NotImplementedError

    def names(self, prefix: str) -> Iterator[str]:
        """The last path segment of every key under ``prefix/`` (unordered)."""
        for key, _size, _modified in self.keys(prefix):
            yield key.rsplit("/", 1)[-1]

    def files(self, prefix: str) -> list[str]:
        """Names of the files directly under ``prefix/`` (no deeper), unordered."""
        return [key[len(prefix) + 1:] for key, _size, _m in self.keys(prefix) if "/" not in key[len(prefix) + 1:]]

    def sync(self) -> None:
        """Make every finished put durable (before a manifest is written)."""

    def clean_temp(self, older_than: float) -> int:
        """Remove spool files of killed writers older than `older_than` seconds; how many went."""
        return 0


class LocalBackend(Backend):
    """A directory. Objects are renamed into place from ``tmp/``: one write per new object, like ``cp``.

    The hot paths use plain strings and no per-call mkdir: with many small files, path objects and
    redundant syscalls cost more than the copying.
    """

    local = True

    def __init__(self, root: str):
        self.root = Path(root)
        self._root = str(self.root)
        self.uri = self.root.as_uri()
        self._files = LocalArtifactRepository(self.root)
        self._temp_ready = False
        self._made: set[str] = set()
        self._unsynced = False

    def put_file(self, key: str, path: Path | str) -> None:
        target = os.path.join(self._root, key)
        folder = os.path.dirname(target)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        os.replace(path, target)
        self._unsynced = True

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        # A temp file in tmp/, then a rename: keys are the repository's own names (no user paths to
        # check), so none of the artifact store's path checks are needed.
        temp = self.temp_file()
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            target = os.path.join(self._root, key)
            folder = os.path.dirname(target)
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            os.replace(temp, target)  # a lock is not counted as unsynced: nothing waits for it
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def get(self, key: str) -> ArtifactReader:
        return self._files.open(key)

    def exists(self, key: str) -> bool:
        return os.path.isfile(os.path.join(self._root, key))

    def size(self, key: str) -> int:
        try:
            return os.stat(os.path.join(self._root, key)).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactNotFound(key, self.uri) from None

    def delete(self, key: str) -> bool:
        try:
            os.unlink(os.path.join(self._root, key))
        except FileNotFoundError:
            return False
        return True

    def keys(self, prefix: str) -> Iterator[tuple[str, int, float | None]]:
        for entry in self._files.walk(prefix):
            yield entry.path, entry.size or 0, entry.modified

    def names(self, prefix: str) -> Iterator[str]:
        # objects/<xx>/<id>: two levels of scandir, no stat and no sorting.
        top = os.path.join(self._root, prefix)
        try:
            with os.scandir(top) as groups:
                folders = [g.path for g in groups if g.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        for folder in folders:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_file(follow_symlinks=False):
                        yield entry.name

    def files(self, prefix: str) -> list[str]:
        try:
            with os.scandir(os.path.join(self._root, prefix)) as it:  # no stat per file
                return [e.name for e in it if e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def temp_file(self) -> Path:
        folder = os.path.join(self._root, "tmp")
        if not self._temp_ready:
            os.makedirs(folder, exist_ok=True)
            self._temp_ready = True
        return Path(folder, f"obj-{secrets.token_hex(8)}")

    def clean_temp(self, older_than: float) -> int:
        import time

        removed = 0
        folder = self.root / "tmp"
        if not folder.is_dir():
            return 0
        for entry in os.scandir(folder):
            try:
                if entry.is_file() and time.time() - entry.stat().st_mtime > older_than:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def sync(self) -> None:
        # Objects are not fsynced one by one (that would cost far more than cp -r); one sync of the
        # filesystem before the manifest makes them durable before anything references them (none
        # needed when this process stored no new object: an unchanged backup).
        if self._unsynced and hasattr(os, "sync"):
            os.sync()
            self._unsynced = False


class RemoteBackend(Backend):
    """Any artifact repository (S3): puts are single uploads of a spooled file or a byte string."""

    def __init__(self, files: ArtifactRepository):
        self._files = files
        self.uri = files.uri

    def put_file(self, key: str, path: Path) -> None:
        try:
            with open(path, "rb") as handle:
                self._files.write(key, handle)
        finally:
            path.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self._files.write(key, data)

    def get(self, key: str) -> ArtifactReader:
        return self._files.open(key)

    def exists(self, key: str) -> bool:
        return self._files.exists(key)

    def size(self, key: str) -> int:
        entry = self._files.stat(key)
        if entry.is_dir:
            raise ArtifactNotFound(key, self.uri)
        return entry.size or 0

    def delete(self, key: str) -> bool:
        return self._files.delete(key)

    def keys(self, prefix: str) -> Iterator[tuple[str, int, float | None]]:
        for entry in self._files.walk(prefix):
            yield entry.path, entry.size or 0, entry.modified

    def temp_file(self) -> Path:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="trackops-obj-")
        os.close(fd)
        return Path(name)


def open_backend(uri: str) -> Backend:
    """The backend for a repository URI: a local path / ``file:`` URI, or ``s3://bucket/prefix``."""
    if not uri:
        raise UsageError("no backup repository given",
                         hint="pass --repo (or --to) PATH|s3://bucket/prefix, or set TRACKOPS_BACKUP_REPO")
    scheme = scheme_of(uri)
    if scheme in ("", "file"):
        return LocalBackend(local_path(uri))
    if scheme == "s3":
        return RemoteBackend(repository_for(uri))
    raise UsageError(f"backup repository scheme '{scheme}:' is not supported ({uri})",
                     hint="use a local folder or s3://bucket/prefix")
