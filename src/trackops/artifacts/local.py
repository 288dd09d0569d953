"""Artifacts in a local folder (``file:`` URIs and plain paths).

Beyond the protocol (see `base`): writes go to a hidden temp file in the target folder, are
fsynced and renamed over the target, then the folder is fsynced, so a crash leaves either the old
file or the new one. In-flight temp files (ours, and MLflow's ``.artifact.uploading.*``) are never
listed. Symbolic links are not followed by `walk` and `delete_prefix`: a delete unlinks the link,
never its target, and `walk` skips links to directories; `open`, `write` and `stat` refuse a path
that a link leads outside the root.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as stat_module
import time
from collections.abc import Iterator
from pathlib import Path

from trackops.artifacts.base import (
    CHUNK_SIZE,
    ArtifactConflict,
    ArtifactEntry,
    ArtifactError,
    ArtifactNotFound,
    ArtifactReader,
    ArtifactRepository,
    DeleteFailure,
    DeleteResult,
    WriteSource,
    iter_chunks,
)
from trackops.artifacts.paths import InvalidArtifactPath, join, validate_path

TEMP_PREFIX = ".trackops-upload-"
_HIDDEN_PREFIXES = (TEMP_PREFIX, ".artifact.uploading.")


MAX_NAME_BYTES = 255  # NAME_MAX of every common filesystem: a longer name is ENAMETOOLONG
MAX_PATH_BYTES = 4000  # below PATH_MAX (4096) with room for the root


def _fits_filesystem(path: str) -> None:
    """Refuse, as a bad path, a name the filesystem would refuse with ENAMETOOLONG."""
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidArtifactPath(path, f"longer than {MAX_PATH_BYTES} bytes")
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        raise InvalidArtifactPath(path, f"a name in it is longer than {MAX_NAME_BYTES} bytes")


def _hidden(name: str) -> bool:
    return name.startswith(_HIDDEN_PREFIXES)


def _walk_key(entry: os.DirEntry) -> str:
    # Sorting siblings as "name/" for folders makes a depth-first walk come out in the
    # code-point order of full paths (the order S3 lists keys in): "a.txt" < "a/b".
    return entry.name + "/" if _is_real_dir(entry) else entry.name


def _is_real_dir(entry: os.DirEntry) -> bool:
    return entry.is_dir(follow_symlinks=False)


class LocalArtifactRepository(ArtifactRepository):
    """A folder on the local filesystem; created on the first write."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(root))
        self.uri = self.root.as_uri()

    def _full(self, path: str) -> Path:
        return self.root / path if path else self.root

    def _checked(self, path: str) -> Path:
        """The filesystem path for `path`, refusing one that a symlink leads out of the root."""
        _fits_filesystem(path)
        full = self._full(path)
        real, real_root = os.path.realpath(full), os.path.realpath(self.root)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise InvalidArtifactPath(path, "a symbolic link leads outside the repository root")
        return full

    def _checked_parent(self, path: str) -> Path:
        """Like _checked, for deletes: the entry itself may be a link (it is unlinked, not followed)."""
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        _fits_filesystem(path)
        self._checked(parent)
        return self._full(path)

    def child(self, path: str) -> LocalArtifactRepository:
        return LocalArtifactRepository(self._full(validate_path(path)))

    def list(self, path: str = "") -> list[ArtifactEntry]:
        path = validate_path(path)
        try:
            with os.scandir(self._checked(path)) as it:
                entries = [self._entry(join(path, e.name), e) for e in it if not _hidden(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(e for e in entries if e is not None)

    @staticmethod
    def _entry(path: str, entry: os.DirEntry) -> ArtifactEntry | None:
        try:
            if entry.is_dir():
                return ArtifactEntry(path, True, None)
            return ArtifactEntry(path, False, entry.stat().st_size)
        except FileNotFoundError:  # removed while we listed, or a dangling link
            return None

    def walk(self, path: str = "") -> Iterator[ArtifactEntry]:
        path = validate_path(path)
        full = self._checked(path)
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return
        if stat_module.S_ISDIR(st.st_mode):
            yield from self._walk_dir(path, full)
        elif path:
            yield ArtifactEntry(path, False, st.st_size, st.st_mtime)

    def _walk_dir(self, path: str, full: Path) -> Iterator[ArtifactEntry]:
        try:
            with os.scandir(full) as it:
                children = sorted((e for e in it if not _hidden(e.name)), key=_walk_key)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in children:
            rel = join(path, entry.name)
            if _is_real_dir(entry):
                yield from self._walk_dir(rel, Path(entry.path))
            elif not entry.is_dir():  # a file, or a link to a file; links to folders are skipped
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield ArtifactEntry(rel, False, st.st_size, st.st_mtime)

    def open(self, path: str, *, chunk_size: int = CHUNK_SIZE) -> ArtifactReader:
        path = validate_path(path, file=True)
        full = self._checked(path)
        try:
            handle = open(full, "rb")  # noqa: SIM115 - closed by the reader
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(path) from None
        size = os.fstat(handle.fileno()).st_size
        return ArtifactReader(handle.read, handle.close, size, chunk_size)

    def stat(self, path: str) -> ArtifactEntry:
        path = validate_path(path)
        if not path:
            return ArtifactEntry("", True, None)
        try:
            st = os.stat(self._checked(path))
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactNotFound(path) from None
        if stat_module.S_ISDIR(st.st_mode):
            return ArtifactEntry(path, True, None)
        return ArtifactEntry(path, False, st.st_size)

    def write(self, path: str, source: WriteSource) -> int:
        path = validate_path(path, file=True)
        if _hidden(path.rsplit("/", 1)[-1]):
            raise InvalidArtifactPath(path, "names starting with '.trackops-upload-' or "
                                            "'.artifact.uploading.' are reserved for uploads")
        target = self._checked(path)
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ArtifactConflict(f"cannot write '{path}': a parent of it is a file",
                                   hint="delete that file first, or write elsewhere") from None
        if target.is_dir():
            raise ArtifactConflict(f"cannot write '{path}': it is a directory",
                                   hint="delete the directory first (delete-prefix), or pick another name")
        # O_EXCL on a random name: the mode follows the umask like any new file (mkstemp would
        # force 0600), and two writers never share a temp file.
        temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter_chunks(source):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(folder)
        return written

    def delete(self, path: str) -> bool:
        path = validate_path(path, file=True)
        full = self._checked_parent(path)
        try:
            st = os.lstat(full)
            if stat_module.S_ISDIR(st.st_mode):
                return False
            os.unlink(full)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise ArtifactError(f"cannot delete '{path}': {exc.strerror}",
                                hint="check the permissions of the artifact folder") from None
        self._prune(full.parent)
        return True

    def delete_prefix(self, path: str = "") -> DeleteResult:
        path = validate_path(path)
        full = self._checked_parent(path) if path else self.root
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return DeleteResult()
        if stat_module.S_ISDIR(st.st_mode):
            result = self._delete_tree(path, full)
            if path:
                self._prune(full)
        else:
            result = self._delete_file(path, full, st.st_size)
            self._prune(full.parent)
        return result

    def _delete_file(self, path: str, full: Path | str, size: int) -> DeleteResult:
        for attempt in range(DELETE_ATTEMPTS):
            try:
                os.unlink(full)
            except FileNotFoundError:
                return DeleteResult()
            except PermissionError as exc:
                # A read-only folder (chmod a-w) keeps its entries: make it writable, once, and try again.
                if attempt == 0 and _make_writable(os.path.dirname(full)):
                    continue
                return DeleteResult(failures=(DeleteFailure(path, exc.strerror or str(exc)),))
            except OSError as exc:
                if exc.errno in TRANSIENT_ERRNOS and attempt + 1 < DELETE_ATTEMPTS:
                    time.sleep(0.05 * 4 ** attempt)  # bounded back-off: 50 ms, 200 ms
                    continue
                return DeleteResult(failures=(DeleteFailure(path, exc.strerror or str(exc)),))
            return DeleteResult(1, size)
        return DeleteResult(failures=(DeleteFailure(path, "still busy after retries"),))

    def _delete_tree(self, path: str, full: Path | str) -> DeleteResult:
        """Delete files bottom-up without following links; folders are removed once empty."""
        result = DeleteResult()
        if not os.access(full, os.W_OK | os.X_OK, follow_symlinks=False):
            _make_writable(full)  # a read-only folder: its entries (files and folders) must be removable
        try:
            entries = _entries(full)
        except FileNotFoundError:
            return result
        except OSError as exc:
            return DeleteResult(failures=(DeleteFailure(path, exc.strerror or str(exc)),))
        for entry in entries:
            rel = join(path, entry.name)
            if _is_real_dir(entry):
                result += self._delete_tree(rel, entry.path)
                _rmdir_if_empty(entry.path)
            else:
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                result += self._delete_file(rel, entry.path, size)
        return result

    def _prune(self, folder: Path) -> None:
        """Remove `folder` and its parents while they are empty, stopping below the root."""
        root = self.root
        while folder != root and root in folder.parents:
            if not _rmdir_if_empty(folder):
                return
            folder = folder.parent


DELETE_ATTEMPTS = 3
TRANSIENT_ERRNOS = (errno.EBUSY, errno.EAGAIN, errno.ETXTBSY, errno.EINTR)


def _make_writable(folder: str | Path) -> bool:
    """Give the owner rwx on `folder` (a read-only artifact tree); False when that is not allowed."""
    try:
        mode = os.lstat(folder).st_mode
        if stat_module.S_ISLNK(mode):
            return False
        os.chmod(folder, stat_module.S_IMODE(mode) | stat_module.S_IRWXU)
        return True
    except OSError:
        return False


def _entries(folder: str | Path) -> list[os.DirEntry]:
    """The entries of `folder`; one without read or search permission is made readable first."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except PermissionError:
        if not _make_writable(folder):
            raise
        with os.scandir(folder) as it:
            return list(it)


def _rmdir_if_empty(folder: str | Path) -> bool:
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EACCES, errno.EPERM,
                         errno.EBUSY):
            return False
        raise
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; some filesystems (and Windows) cannot fsync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
