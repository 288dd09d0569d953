"""The artifact repository protocol: one artifact root (a URI) and the calls every backend answers.

Contract, shared by every backend (local folder, S3, ``mlflow-artifacts:`` resolved onto either)
and checked by one conformance suite:

Paths
    Every ``path`` argument is a relative POSIX path inside the root, validated and normalised by
    `trackops.artifacts.paths.validate_path`; a bad path raises `InvalidArtifactPath` (a
    `UsageError`) before any I/O, in every call. ``""`` names the root. Paths returned in
    entries are relative to the repository root (as MLflow's ``list_artifacts`` returns them),
    never to the folder that was listed.

Files and directories
    Only files are stored. A directory exists while it holds at least one file (on S3 it is a
    key prefix ending in ``/``; locally, emptied directories are removed by the deletes, so both
    backends agree). The root always exists. Zero-byte S3 "directory marker" keys (ending in
    ``/``) are not files and are never listed.

Ordering
    `list` returns entries sorted by path; `walk` yields files in ascending code-point order of
    their path on every backend (S3's key order), so two walks can be merged like sorted lists.

Not found
    `list` of a missing path, or of a file, returns ``[]`` (as MLflow does). `walk` of a missing
    path yields nothing. `open` and `stat` of a missing path raise `ArtifactNotFound`
    (a `NotFoundError`); `open` of a directory does too. `exists` never raises for absence.
    A missing *store* (no such bucket), denied access or an unreachable endpoint raise other
    `ArtifactError`s, never `ArtifactNotFound`: absence of a file is not a broken store.

Writes
    `write` creates parent directories as needed and replaces an existing file. A reader sees
    either the old or the new content, never a half-written file (local: temp file, fsync,
    rename; S3: a single PUT or a completed multipart upload). Memory stays bounded by the
    chunk size (and, on S3, by the multipart part size times the parts in flight). Locally a
    file cannot sit where a directory is (or below a file): that raises `ArtifactConflict`; S3
    allows a key ``a`` beside keys ``a/...``, and then `list` shows both.

Deletes (idempotent)
    `delete` removes one file and returns False when there was no file at the path (including
    when the path is a directory: use `delete_prefix`). `delete_prefix(p)` removes the file named
    ``p`` and every file under ``p/`` -- exactly what ``walk(p)`` yields -- and never touches
    ``p`` siblings such as ``pq``. Both treat "already gone" as success and return counts;
    per-file failures are reported in `DeleteResult.failures`, not raised, so a caller can finish
    the batch and report a partial result. Locally, directories emptied by a delete are removed
    up to, not including, the repository root.
"""

from __future__ import annotations

import abc
import dataclasses
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Callable, Union

from trackops.errors import NotFoundError, TrackopsError, UsageError

CHUNK_SIZE = 1024 * 1024

# What `write` accepts: bytes, a binary file-like object (anything with `read(n)`), or an
# iterable of byte chunks (a generator, an ASGI body iterator wrapped synchronously, ...).
WriteSource = Union[bytes, bytearray, memoryview, BinaryIO, Iterable[bytes]]


class ArtifactError(TrackopsError):
    """The artifact store failed (unreachable, refused, or an unexpected backend error)."""


class ArtifactNotFound(NotFoundError):
    """No file (or, for stat, no file or directory) at an artifact path."""

    def __init__(self, path: str, where: str = ""):
        super().__init__(f"no artifact at '{path}'" + (f" in {where}" if where else ""),
                         hint="list the parent folder to see what exists")
        self.path = path


class ArtifactStoreNotFound(NotFoundError):
    """The store itself is missing (an S3 bucket that does not exist)."""


class ArtifactAccessDenied(ArtifactError):
    """The store refused our credentials or this operation."""


class ArtifactConflict(UsageError):
    """The path clashes with what exists (a file where a directory is needed, or the reverse)."""


@dataclasses.dataclass(frozen=True, order=True)
class ArtifactEntry:
    """A file or directory: path relative to the repository root; size is None for directories.

    `modified` (seconds since the epoch) is filled by `walk` where the backend knows it; it is not
    part of equality or ordering.
    """

    path: str
    is_dir: bool
    size: int | None
    modified: float | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class DeleteFailure:
    """One file a delete could not remove, and why."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class DeleteResult:
    """What a delete removed: file and byte counts, and the files it failed to remove."""

    files: int = 0
    bytes: int = 0
    failures: tuple[DeleteFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def __add__(self, other: DeleteResult) -> DeleteResult:
        return DeleteResult(self.files + other.files, self.bytes + other.bytes,
                            self.failures + other.failures)


class ArtifactReader(io.RawIOBase):
    """A readable binary stream over one artifact, with its size; iterate it for byte chunks.

    Returned by `ArtifactRepository.open` already opened, so "not found" is raised by `open`,
    not on the first read. Close it (or use ``with``) to release the file or connection.
    """

    def __init__(self, read: Callable[[int], bytes], close: Callable[[], None], size: int,
                 chunk_size: int = CHUNK_SIZE):
        super().__init__()
        self._read, self._close, self.size, self.chunk_size = read, close, size, chunk_size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return self._read(size)

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self._read(self.chunk_size), b""))

    def readinto(self, buffer) -> int:
        data = self._read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        return iter(lambda: self._read(self.chunk_size), b"")

    def close(self) -> None:
        if not self.closed:
            try:
                self._close()
            finally:
                super().close()


def iter_chunks(source: WriteSource, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The byte chunks of a write source (bytes, file-like or iterable of bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start:start + chunk_size])
        return
    read = getattr(source, "read", None)
    if callable(read):
        yield from iter(lambda: read(chunk_size), b"")
        return
    for chunk in source:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"write sources yield bytes, not {type(chunk).__name__}")
        if chunk:
            yield bytes(chunk)


class ChunkReader(io.RawIOBase):
    """A non-seekable file-like view of a chunk iterator (for APIs that want `read(n)`)."""

    def __init__(self, chunks: Iterator[bytes]):
        super().__init__()
        self._chunks, self._pending, self.consumed = chunks, b"", 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        parts, have = ([self._pending], len(self._pending)) if self._pending else ([], 0)
        self._pending = b""
        while size is None or size < 0 or have < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        if size is not None and 0 <= size < have:
            # Only the last chunk overshoots: split it, rather than copying everything twice.
            cut = len(parts[-1]) - (have - size)
            parts[-1], self._pending = parts[-1][:cut], parts[-1][cut:]
        data = b"".join(parts)
        self.consumed += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class ArtifactRepository(abc.ABC):
    """One artifact root. See the module docstring for the contract every method follows."""

    #: The root as a URI (``file:///...``, ``s3://bucket/prefix``).
    uri: str

    @abc.abstractmethod
    def list(self, path: str = "") -> list[ArtifactEntry]:
        """The files and directories directly under `path`, sorted by path; [] if missing or a file."""

    @abc.abstractmethod
    def walk(self, path: str = "") -> Iterator[ArtifactEntry]:
        """Every file at or under `path`, recursively, in path order; streamed, never listed whole."""

    @abc.abstractmethod
    def open(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> ArtifactReader:
        """An open stream over the file at `path`; ArtifactNotFound if there is no file there."""

    @abc.abstractmethod
    def write(self, path: str, source: WriteSource) -> int:
        """Write the file at `path` from `source` atomically, replacing it; return bytes written."""

    @abc.abstractmethod
    def delete(self, path: str) -> bool:
        """Delete the file at `path`; False if there was none (idempotent)."""

    @abc.abstractmethod
    def delete_prefix(self, path: str = "") -> DeleteResult:
        """Delete the file `path` and everything under `path/` (idempotent); counts what went."""

    @abc.abstractmethod
    def stat(self, path: str) -> ArtifactEntry:
        """The entry for the file or directory at `path`; ArtifactNotFound if neither."""

    @abc.abstractmethod
    def child(self, path: str) -> ArtifactRepository:
        """A repository rooted at `path` inside this one (sharing its connection)."""

    def delete_files(self, files: Iterable[ArtifactEntry]) -> DeleteResult:
        """Delete these files (entries from `walk`); absent ones are skipped; failures are reported.

        Backends override this to batch (S3: DeleteObjects, 1000 keys a call).
        """
        result = DeleteResult()
        for entry in files:
            try:
                if self.delete(entry.path):
                    result += DeleteResult(1, entry.size or 0)
            except ArtifactError as exc:
                result += DeleteResult(failures=(DeleteFailure(entry.path, exc.message),))
        return result

    def exists(self, path: str) -> bool:
        """True when a file or directory is at `path`."""
        try:
            self.stat(path)
        except ArtifactNotFound:
            return False
        return True

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a (small) file."""
        with self.open(path) as reader:
            return reader.read()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
