"""Artifact path rules: the one validation every backend, and the HTTP server, applies to paths.

A path inside a repository is a relative POSIX path: segments separated by ``/``. It is
validated *after* any URL decoding (the caller decodes; this module never does), and rejected
with `InvalidArtifactPath` when it

- is not a string, or contains a control character (NUL, newline, DEL, ...);
- contains a backslash (a second separator on Windows, and a classic traversal trick);
- is absolute (``/etc/passwd``) or starts with a drive (``C:``, ``c:/x``);
- has a ``..`` segment anywhere, even one that would stay inside the root (``a/../b``).

Otherwise it is normalised: empty and ``.`` segments are dropped, so ``./a//b/`` becomes
``a/b`` and ``""``, ``"."`` and ``"./"`` name the repository root (``""``).
"""

from __future__ import annotations

import re

from trackops.errors import UsageError

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidArtifactPath(UsageError):
    """An artifact path that is malformed or would leave the repository root."""

    def __init__(self, path: object, reason: str):
        shown = repr(path) if not isinstance(path, str) else repr(path[:200])
        super().__init__(f"invalid artifact path {shown}: {reason}",
                         hint="use a relative path with '/' separators and no '..' segments")
        self.path = path
        self.reason = reason

    @property
    def client_message(self) -> str:
        """What a server answers: mlflow server's bare "Invalid path" for the paths it refuses as
        unsafe; the reason for those only trackops refuses (a 300-byte name, the root as a file)."""
        return "Invalid path" if self.reason in _MLFLOW_UNSAFE else f"Invalid path: {self.reason}"


_MLFLOW_UNSAFE = frozenset({"contains a '..' segment", "is absolute", "contains a backslash",
                            "starts with a drive letter"})


def validate_path(path: str, *, file: bool = False) -> str:
    """Return the normalised form of `path`, or raise InvalidArtifactPath (rules in the module doc).

    With ``file=True`` the path must name a file, so the root (``""``) is rejected too.
    """
    if not isinstance(path, str):
        raise InvalidArtifactPath(path, "not a string")
    if _CONTROL.search(path):
        raise InvalidArtifactPath(path, "contains a control character")
    if "\\" in path:
        raise InvalidArtifactPath(path, "contains a backslash")
    if path.startswith("/"):
        raise InvalidArtifactPath(path, "is absolute")
    if _DRIVE.match(path):
        raise InvalidArtifactPath(path, "starts with a drive letter")
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise InvalidArtifactPath(path, "contains a '..' segment")
    normalised = "/".join(segments)
    if file and not normalised:
        raise InvalidArtifactPath(path, "names the repository root, not a file")
    return normalised


def join(*parts: str) -> str:
    """Join already-normalised relative paths, skipping empty ones."""
    return "/".join(p for p in parts if p)


def is_within(path: str, prefix: str) -> bool:
    """True when normalised `path` equals `prefix` or lies under it (``a/b`` is not under ``a/bc``)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


def relative_to(path: str, prefix: str) -> str:
    """`path` relative to `prefix`; `path` must be within it."""
    if not prefix:
        return path
    return path[len(prefix) + 1:] if path != prefix else ""
