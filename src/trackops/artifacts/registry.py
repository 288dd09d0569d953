"""Artifact repositories chosen by URI scheme, and the split of stored artifact URIs into root + path.

Supported URIs:

- plain paths, absolute (``/srv/mlruns/1``) or relative to the working directory (``./mlruns/0``,
  what MLflow 1.x stored), and ``file:`` URIs (``file:///srv/mlruns``, ``file:/srv/mlruns``,
  ``file://localhost/srv/mlruns``; percent-escapes are decoded);
- ``s3://bucket/prefix``;
- ``mlflow-artifacts:/<path>`` (and ``mlflow-artifacts://host:port/<path>``): resolved to
  ``<artifacts_destination>/<path>``, the destination being a folder or an ``s3://`` URI.

Another scheme raises a `UsageError` naming it and the supported ones. New backends register a
factory with `register`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from urllib.parse import unquote, urlparse

from trackops.artifacts.base import ArtifactRepository
from trackops.artifacts.local import LocalArtifactRepository
from trackops.artifacts.paths import InvalidArtifactPath, is_within, relative_to, validate_path
from trackops.artifacts.proxied import SCHEME as PROXIED, parse_mlflow_artifacts_uri, require_destination
from trackops.artifacts.s3 import S3ArtifactRepository, parse_s3_uri
from trackops.errors import UsageError

Factory = Callable[[str], ArtifactRepository]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_FACTORIES: dict[str, Factory] = {}


def register(scheme: str, factory: Factory) -> None:
    """Make `repository_for` build repositories for `scheme` URIs with `factory(uri)`."""
    _FACTORIES[scheme.lower()] = factory


def supported_schemes() -> list[str]:
    """The registered schemes, plus the two handled here (plain paths and mlflow-artifacts)."""
    return ["(plain path)", *sorted(_FACTORIES), PROXIED]


def scheme_of(uri: str) -> str:
    """The lower-cased URI scheme; "" for a plain path (a one-letter "scheme" is a drive letter)."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match and len(match.group(1)) > 1 else ""


def local_path(uri: str) -> str:
    """The absolute filesystem path of a plain path or ``file:`` URI."""
    if scheme_of(uri) == "file":
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"file URI {uri} names another host ({parsed.netloc})",
                             hint="use file:///<absolute path> for a local folder")
        path = unquote(parsed.path)
    elif scheme_of(uri) == "":
        path = uri
    else:
        raise UsageError(f"not a local path or file: URI: {uri}")
    if not path:
        raise UsageError(f"empty local path in {uri!r}", hint="name a folder")
    return os.path.abspath(path)


def repository_for(uri: str, *, artifacts_destination: str | None = None) -> ArtifactRepository:
    """The repository rooted at `uri`; ``mlflow-artifacts:`` URIs resolve under the destination."""
    scheme = scheme_of(uri)
    if scheme == PROXIED:
        destination = require_destination(uri, artifacts_destination)
        return repository_for(destination).child(parse_mlflow_artifacts_uri(uri))
    factory = _FACTORIES.get(scheme or "file")
    if factory is None:
        raise UsageError(f"artifact URI scheme '{scheme}:' is not supported ({uri})",
                         hint="supported: plain paths, file:, s3:// and mlflow-artifacts:/")
    return factory(uri)


@dataclasses.dataclass(frozen=True)
class _Place:
    """Where a URI points, comparable across spellings: kind, anchor (bucket) and path."""

    kind: str
    anchor: str
    path: str


def _place(uri: str, destination: str | None) -> _Place:
    scheme = scheme_of(uri)
    if scheme == PROXIED:
        base = _place(require_destination(uri, destination), None)
        rel = parse_mlflow_artifacts_uri(uri)
        if base.kind == "file":
            return _Place("file", "", os.path.join(base.path, rel) if rel else base.path)
        return _Place(base.kind, base.anchor, "/".join(p for p in (base.path, rel) if p))
    if scheme in ("", "file"):
        return _Place("file", "", local_path(uri))
    if scheme == "s3":
        bucket, prefix = parse_s3_uri(uri)
        return _Place("s3", bucket, prefix)
    repository_for(uri)  # raises the unsupported-scheme error
    raise UsageError(f"cannot compare artifact URIs with scheme '{scheme}:' ({uri})")


def _relative(place: _Place, root: _Place) -> str | None:
    """`place` relative to `root` as a normalised artifact path, or None when outside it."""
    if (place.kind, place.anchor) != (root.kind, root.anchor):
        return None
    if place.kind == "file":
        if place.path == root.path:
            return ""
        base = root.path.rstrip(os.sep) + os.sep
        if not place.path.startswith(base):
            return None
        rel = place.path[len(base):].replace(os.sep, "/")
    else:
        if not is_within(place.path, root.path):
            return None
        rel = relative_to(place.path, root.path)
    try:
        return validate_path(rel)
    except InvalidArtifactPath:
        return None


def split_artifact_uri(uri: str, *, artifacts_destination: str | None = None,
                       within: str | None = None) -> tuple[str, str]:
    """Split a stored artifact URI (``runs.artifact_uri``, a model ``source``) into (root URI, path).

    - With `within` (e.g. the experiment's ``artifact_location`` or the default artifact root),
      the root is `within` and the path is `uri` relative to it; a `uri` outside `within` is a
      UsageError. Spellings are compared by where they point: ``file:///a/b`` is within ``/a``.
    - Else an ``mlflow-artifacts:/p`` URI splits into (destination, ``p``).
    - Else the URI is its own root: (uri, "").

    Deletes remove emptied folders up to the root, so a wider root (the experiment's location
    rather than the run's own folder) is what keeps ``<run_id>/`` from being left behind.
    """
    if within is not None:
        rel = _relative(_place(uri, artifacts_destination), _place(within, artifacts_destination))
        if rel is None:
            raise UsageError(f"artifact URI {uri} is not inside {within}",
                             hint="pass the experiment's artifact location, or no root at all")
        return within, rel
    if scheme_of(uri) == PROXIED:
        return require_destination(uri, artifacts_destination), parse_mlflow_artifacts_uri(uri)
    repository_for(uri)  # validate: unsupported schemes and malformed URIs fail here, not later
    return uri, ""


def locate(uri: str, *, artifacts_destination: str | None = None,
           within: str | None = None) -> tuple[ArtifactRepository, str]:
    """`split_artifact_uri`, with the root opened as a repository."""
    root, path = split_artifact_uri(uri, artifacts_destination=artifacts_destination, within=within)
    return repository_for(root, artifacts_destination=artifacts_destination), path


register("file", lambda uri: LocalArtifactRepository(local_path(uri)))
register("s3", S3ArtifactRepository)
