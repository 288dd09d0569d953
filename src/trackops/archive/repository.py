"""A backup repository (docs/backup-format.md): config, content-addressed objects, manifests, locks.

`Repository.open` reads ``config.json`` and unlocks an encrypted repository (a wrong key is exit 12
before anything else happens); `Repository.create` writes it once. Objects are written through
`ObjectWriter` (hash while spooling, then put under the id unless it exists) and read back through
`read_object`, which checks authentication and the id; damage raises `CorruptObject`.

Version 2 names new objects by BLAKE3 (`Repository.hash`); objects of version-1 snapshots keep their
SHA-256 ids, so readers pass the hash the manifest names (`manifest.hash_of`). `upgrade` turns a
version-1 repository into a version-2 one before the first version-2 snapshot is written into it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trackops.archive import crypto
from trackops.archive.backend import Backend, open_backend
from trackops.archive.crypto import CorruptObject, Keys
from trackops.artifacts import ArtifactNotFound
from trackops.errors import NotFoundError, UsageError

FORMAT = "trackops-backup"
VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG = "config.json"
SNAPSHOTS = "snapshots"
OBJECTS = "objects"
LOCKS = "locks"
READ_CHUNK = 1024 * 1024
STALE_LOCK_SECONDS = 24 * 3600


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def object_key(object_id: str) -> str:
    return f"{OBJECTS}/{object_id[:2]}/{object_id}"


class Repository:
    """An opened repository: its backend, config and (when encrypted) keys."""

    def __init__(self, backend: Backend, config: dict, keys: Keys | None):
        self.backend, self.config, self.keys = backend, config, keys
        self.uri = backend.uri
        self._known: set[str] | None = None
        self.version = config.get("version", VERSION)
        self.hash = config.get("hash", crypto.SHA256) if self.version >= 2 else crypto.SHA256
        """The hash that names objects written now (section 4)."""

    # --- opening ------------------------------------------------------------------------------------

    @classmethod
    def open(cls, uri: str, *, secret: str | None = None) -> Repository:
        """Open an existing repository; NotFoundError when there is none at `uri`."""
        backend = open_backend(uri)
        try:
            with backend.get(CONFIG) as reader:
                config = json.loads(reader.read())
        except ArtifactNotFound:
            raise NotFoundError(f"no backup repository at {uri}",
                                hint="create one with: trackops backup --to " + uri) from None
        except ValueError:
            raise UsageError(f"{uri}/{CONFIG} is not a trackops backup repository config") from None
        if config.get("format") != FORMAT:
            raise UsageError(f"{uri} is not a trackops backup repository")
        if config.get("version") not in READABLE_VERSIONS:
            raise UsageError(f"{uri} has repository format version {config.get('version')}, "
                             f"this trackops reads versions {', '.join(map(str, READABLE_VERSIONS))}",
                             hint="use a newer trackops")
        if config.get("version") == 2 and config.get("hash", crypto.BLAKE3) not in crypto.HASHES:
            raise UsageError(f"{uri} names objects by {config.get('hash')!r}, which this trackops does not know",
                             hint="use a newer trackops")
        params = config.get("encryption")
        keys = crypto.unlock(params, secret, uri) if params else None
        return cls(backend, config, keys)

    @classmethod
    def open_or_create(cls, uri: str, *, secret: str | None = None, encrypt: bool = False) -> Repository:
        """Open the repository at `uri`, creating it (encrypted with `secret` if asked) when absent."""
        backend = open_backend(uri)
        if backend.exists(CONFIG):
            repo = cls.open(uri, secret=secret)
            if encrypt and repo.keys is None:
                raise UsageError(f"the backup repository {uri} exists and is not encrypted",
                                 hint="drop --encrypt, or back up into a new repository")
            return repo
        config: dict[str, Any] = {"format": FORMAT, "version": VERSION, "id": secrets.token_hex(16),
                                  "created": now_iso(), "hash": crypto.BLAKE3, "encryption": None}
        keys = None
        if encrypt:
            if not secret:
                raise crypto.KeyFailureError("--encrypt needs a key", hint=crypto.KEY_HINT)
            config["encryption"], keys = crypto.new_parameters(secret)
        backend.put_bytes(CONFIG, json.dumps(config, indent=2).encode() + b"\n")
        return cls(backend, config, keys)

    @property
    def encrypted(self) -> bool:
        return self.keys is not None

    def upgrade(self) -> bool:
        """Make a version-1 repository version 2 (config.json rewritten once, id and keys kept), so that
        version-2 snapshots can be written into it; True when it was upgraded. Its version-1 snapshots
        stay readable; a trackops that reads only version 1 refuses the repository from now on."""
        if self.version >= VERSION:
            return False
        self.config = {**self.config, "version": VERSION, "hash": crypto.BLAKE3, "upgraded": now_iso()}
        self.backend.put_bytes(CONFIG, json.dumps(self.config, indent=2).encode() + b"\n")
        self.version, self.hash = VERSION, crypto.BLAKE3
        return True

    def hasher(self, algorithm: str | None = None, size_hint: int = 0):
        return crypto.new_hasher(self.keys, algorithm or self.hash, size_hint=size_hint)

    # --- objects ------------------------------------------------------------------------------------

    def known_objects(self) -> set[str]:
        """Ids of every stored object (listed once, then kept up to date by this process's writes)."""
        if self._known is None:
            self._known = set(self.backend.names(OBJECTS))
        return self._known

    def object_sizes(self) -> Iterator[tuple[str, int]]:
        for key, size, _m in self.backend.keys(OBJECTS):
            yield key.rsplit("/", 1)[-1], size

    def has_object(self, object_id: str) -> bool:
        """Whether the object is stored. Once `known_objects` has listed the repository, the listing
        (kept current by this process's writes) is trusted: an object another writer adds meanwhile is
        at worst written again, with the same content, by an atomic rename."""
        if self._known is not None:
            return object_id in self._known
        return self.backend.exists(object_key(object_id))

    def writer(self, size_hint: int = 0) -> ObjectWriter:
        return ObjectWriter(self, size_hint)

    def spool(self, limit: int = 8 * 1024 * 1024) -> Spool:
        """A writer that keeps small content in memory (hashed before any write) and spills past `limit`."""
        return Spool(self, limit)

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int, bool]:
        """Store the content from `chunks`; (id, size, whether it was new)."""
        with self.spool() as w:
            for chunk in chunks:
                w.write(chunk)
            return w.finish()

    def put_bytes_object(self, data: bytes | memoryview, object_id: str | None = None) -> tuple[str, int, bool]:
        """Store a small object held in memory: hashed first (or named by the caller, who hashed it),
        so a known one is not written at all."""
        if object_id is None:
            hasher = self.hasher(size_hint=len(data))
            hasher.update(data)
            object_id = hasher.hexdigest()
        if self.has_object(object_id):
            return object_id, len(data), False
        if self.keys is None and self.backend.local:
            # Already hashed: write the spool file and rename it, without hashing again.
            self._put_spooled(object_id, lambda temp: temp.write_bytes(data))
            return object_id, len(data), True
        with self.writer() as w:
            w.write(data)
            return w.finish()

    def put_parts(self, parts: list[bytes], size: int) -> tuple[str, int, bool]:
        """Store an object held in memory as consecutive parts (a pack): hashed part by part, and, when
        new, written with vectored writes, so the parts are never joined into one copy."""
        hasher = self.hasher(size_hint=size)
        for part in parts:
            hasher.update(part)
        object_id = hasher.hexdigest()
        if self.has_object(object_id):
            return object_id, size, False
        if self.keys is not None or not self.backend.local:
            with self.writer() as w:
                for part in parts:
                    w.write(part)
                return w.finish()
        def write(temp) -> None:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                pending = [memoryview(part) for part in parts if part]
                while pending:
                    written = os.writev(fd, pending[:IOV_BATCH])
                    while pending and written >= len(pending[0]):
                        written -= len(pending[0])
                        pending.pop(0)
                    if written:
                        pending[0] = pending[0][written:]
            finally:
                os.close(fd)

        self._put_spooled(object_id, write)
        return object_id, size, True

    def _put_spooled(self, object_id: str, write) -> None:
        """Store an already hashed object: `write(temp)` fills a spool file of the local backend, which
        is then renamed into place (removed on any failure)."""
        temp = self.backend.temp_file()
        try:
            write(temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._install(temp, object_id)

    def _install(self, temp, object_id: str) -> None:
        """Rename a spool file holding `object_id` into place (removed if that fails)."""
        try:
            self.backend.put_file(object_key(object_id), temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if self._known is not None:
            self._known.add(object_id)

    def put_local_file(self, path: str | os.PathLike) -> tuple[str, int, bool] | None:
        """Store a local file by an in-kernel copy, then hash the copy; None when this repository can't.

        The fast path of a local, unencrypted repository: ``copy_file_range`` into the spool file (no
        user-space copy, like ``cp``), then the hash of the spool file, read back from the page cache
        into this thread's reused buffer. Hashing the copy, not the source, keeps id and content
        consistent even if the source changes meanwhile. Measured against the alternatives (one pass
        of read, hash and write; or hashing the copy through ``mmap``, whose page faults cost more
        than the hashing), this costs the least CPU, and the copy is bound by the CPU.
        """
        if self.keys is not None or not self.backend.local or not hasattr(os, "copy_file_range"):
            return None
        buffer = _copy_buffer()
        view = memoryview(buffer)
        temp = self.backend.temp_file()
        try:
            with open(path, "rb", buffering=0) as src, open(temp, "wb+", buffering=0) as out:
                size = 0
                while True:
                    n = os.copy_file_range(src.fileno(), out.fileno(), 1 << 30)
                    if n == 0:
                        break
                    size += n
                out.seek(0)
                hasher = self.hasher()  # one thread per file: the copying threads keep the cores busy
                while True:
                    n = out.readinto(buffer)
                    if not n:
                        break
                    hasher.update(view[:n])  # BLAKE3 releases the GIL while hashing
            object_id = hasher.hexdigest()
            known = self.has_object(object_id)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if known:
            temp.unlink(missing_ok=True)
            return object_id, size, False
        self._install(temp, object_id)
        return object_id, size, True

    def read_object(self, object_id: str, algorithm: str | None = None) -> Iterator[bytes]:
        """Plaintext chunks of an object, checked against its id at the end (CorruptObject otherwise).

        `algorithm` is the hash the manifest naming the object uses (default: the repository's)."""
        hasher = self.hasher(algorithm)
        with self.backend.get(object_key(object_id)) as reader:
            if self.keys is None:
                chunks: Iterator[bytes] = iter(lambda: reader.read(READ_CHUNK), b"")
            else:
                chunks = crypto.decrypt_frames(self.keys, reader.read)
            for chunk in chunks:
                hasher.update(chunk)
                yield chunk
        if hasher.hexdigest() != object_id:
            raise CorruptObject("content does not match its id")

    def stored_size(self, plain_size: int) -> int:
        return crypto.stored_size(plain_size) if self.keys else plain_size

    def object_size(self, object_id: str) -> int:
        return self.backend.size(object_key(object_id))

    def delete_object(self, object_id: str) -> bool:
        if self._known is not None:
            self._known.discard(object_id)
        return self.backend.delete(object_key(object_id))

    # --- manifests ----------------------------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        """Ids of complete snapshots (those with a manifest), oldest first."""
        return sorted(name[:-5] for name in self.backend.files(SNAPSHOTS) if name.endswith(".json"))

    def read_manifest_bytes(self, snapshot_id: str) -> bytes:
        key = f"{SNAPSHOTS}/{snapshot_id}.json"
        with self.backend.get(key) as reader:
            if self.keys is None:
                return reader.read()
            return b"".join(crypto.decrypt_frames(self.keys, reader.read))

    def write_manifest(self, snapshot_id: str, data: bytes) -> None:
        """Write a manifest: the last write of a backup, after `sync`."""
        self.backend.sync()
        if self.keys is not None:
            parts: list[bytes] = []
            enc = crypto.Encryptor(self.keys, parts.append)
            enc.write(data)
            enc.finish()
            data = b"".join(parts)
        self.backend.put_bytes(f"{SNAPSHOTS}/{snapshot_id}.json", data)

    def delete_manifest(self, snapshot_id: str) -> bool:
        return self.backend.delete(f"{SNAPSHOTS}/{snapshot_id}.json")

    # --- locks --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """A lock file that tells prune a backup may be writing unreferenced objects.

        Not fsynced: a lock lost in a crash only matters while its backup runs, and that died too."""
        key = f"{LOCKS}/{secrets.token_hex(8)}.json"
        body = {"purpose": purpose, "host": socket.gethostname(), "pid": os.getpid(), "created": now_iso()}
        self.backend.put_bytes(key, json.dumps(body).encode(), durable=False)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.backend.delete(key)

    def active_locks(self) -> list[str]:
        """Lock keys younger than a day (older ones are left by killed processes and ignored)."""
        import time

        now = time.time()
        return [key for key, _size, modified in self.backend.keys(LOCKS)
                if modified is None or now - modified < STALE_LOCK_SECONDS]


class ObjectWriter:
    """Spool one object while hashing (and encrypting) it; `finish` puts it under its id if new."""

    def __init__(self, repo: Repository, size_hint: int = 0):
        self.repo = repo
        self.hasher = repo.hasher(size_hint=size_hint)
        self.size = 0
        self.path: Path = repo.backend.temp_file()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish/abort
        self._enc = crypto.Encryptor(repo.keys, self._file.write) if repo.keys is not None else None

    def write(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.size += len(chunk)
        if self._enc is not None:
            self._enc.write(chunk)
        else:
            self._file.write(chunk)

    def finish(self) -> tuple[str, int, bool]:
        if self._enc is not None:
            self._enc.finish()
        self._file.close()
        object_id = self.hasher.hexdigest()
        if self.repo.has_object(object_id):
            self.path.unlink(missing_ok=True)
            return object_id, self.size, False
        self.repo.backend.put_file(object_key(object_id), self.path)
        if self.repo._known is not None:
            self.repo._known.add(object_id)
        return object_id, self.size, True

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is not None:
            self.abort()


class Spool:
    """Object content collected in memory up to a limit, then continued in an `ObjectWriter`.

    Most table dumps and indexes are small and unchanged between backups: hashing them in memory means
    an unchanged one costs no file at all.
    """

    def __init__(self, repo: Repository, limit: int):
        self.repo, self.limit = repo, limit
        self.parts: list[bytes] = []
        self.size = 0
        self.writer: ObjectWriter | None = None

    def write(self, chunk: bytes) -> None:
        if self.writer is not None:
            self.writer.write(chunk)
            return
        self.parts.append(chunk)
        self.size += len(chunk)
        if self.size > self.limit:
            self.writer = self.repo.writer()
            for part in self.parts:
                self.writer.write(part)
            self.parts = []

    def finish(self) -> tuple[str, int, bool]:
        if self.writer is not None:
            return self.writer.finish()
        return self.repo.put_bytes_object(b"".join(self.parts))

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is not None and self.writer is not None:
            self.writer.abort()


COPY_BUFFER = 1024 * 1024
IOV_BATCH = 512  # buffers per writev call (IOV_MAX is 1024 on Linux)
_buffers = threading.local()


def _copy_buffer() -> bytearray:
    """This thread's copy buffer (one per copying thread, reused for every file)."""
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(COPY_BUFFER)
    return buffer


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_hex(data: bytes, algorithm: str, keys: Keys | None = None) -> str:
    """The id `data` has as an object (or pack member) under `algorithm`, keyed when `keys` are given."""
    hasher = crypto.new_hasher(keys, algorithm, size_hint=len(data))
    hasher.update(data)
    return hasher.hexdigest()
