"""Artifact-URI arithmetic as MLflow records it: experiment and run locations under a root.

MLflow derives `experiments.artifact_location` as ``<root>/<experiment_id>`` and
`runs.artifact_uri` as ``<experiment location>/<run_id>/artifacts``, joining POSIX path
segments onto the path part of the URI (query strings stay at the end), and turns a relative
local root into an absolute path against the working directory. Rows written here must read the
same as MLflow's, so these helpers reproduce that arithmetic exactly.
"""

from __future__ import annotations

import pathlib
import posixpath
import urllib.parse
import urllib.request

from trackops.errors import InvalidParameterValue


def _join(prefix: str, suffix: str) -> str:
    # Unlike posixpath.join, an absolute suffix is appended rather than replacing the prefix.
    if not prefix:
        return suffix
    return posixpath.join(prefix, suffix.lstrip("/"))


def append_to_uri_path(uri: str, *paths: str) -> str:
    """`uri` with POSIX `paths` appended to its path component (``s3://b/p?x=1`` + ``a`` → ``s3://b/p/a?x=1``)."""
    path = ""
    for sub in paths:
        path = _join(path, sub)
    parsed = urllib.parse.urlparse(uri)
    if ".." in urllib.parse.unquote(parsed.query).split("/"):
        raise InvalidParameterValue("Invalid query string in artifact location")
    if not parsed.scheme:
        return _join(uri, path)
    prefix = ""
    if not parsed.path.startswith("/"):
        # urlunparse would make a relative path absolute for some schemes (``file:rel``); keep it.
        prefix = parsed.scheme + ":"
        parsed = parsed._replace(scheme="")
    return prefix + urllib.parse.urlunparse(parsed._replace(path=_join(parsed.path, path)))


def is_local_uri(uri: str) -> bool:
    """A plain path or a ``file:`` URI on this machine."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "":
        return True
    if parsed.scheme != "file":
        return False
    host = parsed.hostname
    return not host or host == "." or host.startswith(("localhost", "127.0.0.1"))


def resolve_uri_if_local(uri: str | None) -> str | None:
    """A relative local path or ``file:`` URI made absolute against the working directory."""
    if uri is None or not is_local_uri(uri):
        return uri
    parsed = urllib.parse.urlsplit(uri)
    local = urllib.request.url2pathname(parsed.path) if uri.startswith("file:") else uri
    if pathlib.Path(local).is_absolute():
        return uri
    absolute = pathlib.Path.cwd().joinpath(local).as_posix()
    if parsed.scheme == "":
        return absolute
    return urllib.parse.urlunsplit((parsed.scheme, None, absolute, parsed.query, parsed.fragment))

