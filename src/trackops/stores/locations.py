"""Experiment locations and model-version sources, checked as MLflow 3.17.2's server checks them.

A stored URI is later resolved, listed, downloaded from and deleted by the server (and by gc), so a
location or source that names another host or climbs out with ``..`` is refused when it arrives, with
MLflow's INVALID_PARAMETER_VALUE messages. One check is stricter than MLflow: an ``artifact_location``
with a ``..`` path segment, which MLflow stores, is refused.
"""

from __future__ import annotations

import os
import pathlib
import re
import urllib.parse
import urllib.request
from collections.abc import Callable

from trackops.errors import InvalidParameterValue
from trackops.stores.uris import is_local_uri
from trackops.stores.validation import validate_artifact_location

HOST_ADDRESSED_SCHEMES = frozenset({"ftp", "sftp", "hdfs", "viewfs", "http", "https", "mlflow-artifacts",
                                    "r2", "b2", "abfss"})
ALLOWED_SCHEMES_ENV = "MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES"
_RELATIVE_SOURCE = ("Invalid model version source: '{}'. If supplying a source as an http, https, local file "
                    "path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without "
                    "relative path references present. Please provide an absolute path.")
_LOCAL_SOURCE = ("Invalid model version source: '{}'. To use a local path as a model version source, the {} "
                 "request parameter has to be specified and the local path has to be contained within the "
                 "artifact directory of the run specified by the {}.")


def _scheme(uri: str) -> str:
    scheme = urllib.parse.urlparse(uri).scheme
    return "" if len(scheme) == 1 and scheme.isalpha() else scheme


def _decoded(text: str) -> str:
    for _ in range(10):
        unquoted = urllib.parse.unquote(text)
        again = urllib.parse.urlunparse(urllib.parse.urlparse(unquoted))
        if again == text:
            return text
        text = again
    raise InvalidParameterValue("Invalid query string")


def check_host_scheme(uri: str, field: str) -> None:
    """Refuse a URI whose scheme makes the server connect to the host it names (MLflow's host policy)."""
    scheme = _scheme(uri).lower()
    if scheme not in HOST_ADDRESSED_SCHEMES:
        return
    if scheme == "mlflow-artifacts" and not urllib.parse.urlparse(uri).netloc:
        return  # resolved against this server's own artifacts destination
    allowed = {s.strip().lower() for s in os.environ.get(ALLOWED_SCHEMES_ENV, "").split(",") if s.strip()}
    if scheme in allowed:
        return
    raise InvalidParameterValue(
        f"'{field}' cannot use the '{scheme}' scheme: the '{scheme}' scheme addresses a host other than the "
        "tracking server's configured artifact storage, so the server would connect to the host named in "
        f"the URI. Set the {ALLOWED_SCHEMES_ENV} environment variable on the server to allow it.")


def validate_experiment_location(location: str) -> str:
    """An experiments/create ``artifact_location``: MLflow's checks, in its order, then no ``..`` segment."""
    parsed = urllib.parse.urlparse(location)
    if parsed.fragment or parsed.params:
        raise InvalidParameterValue("'artifact_location' URL can't include fragments or params.")
    if ".." in _decoded(parsed.query):
        raise InvalidParameterValue("Invalid query string")
    check_host_scheme(location, "artifact_location")
    if location.startswith("runs:"):
        raise InvalidParameterValue(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    validate_artifact_location(location)
    # Stricter than MLflow, which stores "mlflow-artifacts:/../../etc": a location that climbs out of
    # where it names is never what a client means, and the server and gc would resolve it elsewhere.
    if any(part == ".." for part in _unquoted(location).replace("\\", "/").split("/")):
        raise InvalidParameterValue(f"Invalid artifact location: '{location}'. An artifact location must not "
                                    "contain relative path references ('..').")
    return location


def _unquoted(text: str) -> str:
    while (once := urllib.parse.unquote_plus(text)) != text:
        text = once
    return text


def _check_relative_paths(source: str) -> None:
    text = _unquoted(source)
    path = re.sub(r"/+", "/", urllib.parse.urlparse(text).path.rstrip("/"))
    if "\x00" in path or any(p == ".." for p in text.split("/")):
        raise InvalidParameterValue(_RELATIVE_SOURCE.format(source))
    # As MLflow: the path must be its own resolved form (no ".", "..", empty or symlinked parts).
    if os.path.splitdrive(pathlib.Path(path).resolve().as_posix())[1] != path:
        raise InvalidParameterValue(_RELATIVE_SOURCE.format(source))


def _not_identified(source: str, what: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid model version source: '{source}'. The {what} request parameter "
                                 "must identify the resource that contains the source.")


def _uri_parts(uri: str) -> tuple[str, str, tuple[str, ...]]:
    parsed = urllib.parse.urlsplit(uri)
    parts = tuple(_unquoted_once_fully(p) for p in parsed.path.split("/") if p)
    return parsed.scheme.lower(), parsed.netloc.lower(), parts


def _unquoted_once_fully(text: str) -> str:
    while (once := urllib.parse.unquote(text)) != text:
        text = once
    return text


def _within_root(source: str, root: str | None) -> bool:
    if not root:
        return False
    s_scheme, s_host, s_parts = _uri_parts(source)
    r_scheme, r_host, r_parts = _uri_parts(root)
    return (s_scheme, s_host) == (r_scheme, r_host) and bool(r_parts) and s_parts[:len(r_parts)] == r_parts


def _is_proxied_source(source: str) -> bool:
    scheme, _, parts = _uri_parts(source)
    if scheme == "mlflow-artifacts":
        return True
    route = ("api", "2.0", "mlflow-artifacts", "artifacts")
    return scheme in ("http", "https") and any(parts[i:i + 4] == route for i in range(len(parts) - 3))


def _local_dir(uri: str) -> pathlib.Path:
    path = urllib.request.url2pathname(urllib.parse.urlparse(uri).path) if uri.startswith("file:") else uri
    return pathlib.Path(path).resolve()


IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
# The sources MLflow's client and store give a prompt version (it has no artifacts).
PROMPT_SOURCE_PLACEHOLDERS = frozenset({"dummy-source", "prompt-template"})


def is_prompt(tags: dict[str, str]) -> bool:
    """As MLflow decides it for a model-versions/create: only an `mlflow.prompt.is_prompt` of "true"."""
    return tags.get(IS_PROMPT_TAG, "false").lower() == "true"


def validate_prompt_source(source: str) -> None:
    """A prompt version's source: one of MLflow's placeholders, nothing else (a server must not
    register a path or bucket as a prompt)."""
    if source not in PROMPT_SOURCE_PLACEHOLDERS:
        raise InvalidParameterValue(f"Invalid prompt source: '{source}'. Prompt sources must use an MLflow "
                                    "placeholder.")


def validate_model_version_source(source: str, run_id: str | None, model_id: str | None, *,
                                  run_artifact_uri: Callable[[str], str | None],
                                  model_location: Callable[[str], str | None]) -> None:
    """A model-versions/create ``source``, checked as MLflow's server does.

    `run_artifact_uri(run_id)` / `model_location(model_id)` give the run's artifact URI or the logged
    model's location, or None when there is no such row. Local paths must lie inside that run's (or
    model's) local artifact folder; ``runs:/`` must name `run_id`; ``mlflow-artifacts`` sources must lie
    inside the run's (or model's) artifact URI; no source may contain ``..``.
    """
    check_host_scheme(source, "source")
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "models" and parsed.netloc:
        raise InvalidParameterValue(f"Invalid model version source: '{source}'. Registered model sources must "
                                    "use the active model registry.")
    what, key, lookup = ("model_id", model_id, model_location) if model_id else ("run_id", run_id, run_artifact_uri)
    if is_local_uri(source):
        if key:
            root = lookup(key)
            if root is None:
                raise _not_identified(source, what)
            resolved = _local_dir(source)
            if is_local_uri(root) and _local_dir(root) in (resolved, *resolved.parents):
                return
            source = resolved.as_posix()
        raise InvalidParameterValue(_LOCAL_SOURCE.format(source, what, what))
    _check_relative_paths(source)
    model_ref = None
    if parsed.scheme == "models":
        parts = parsed.path.lstrip("/").split("/")
        model_ref = parts[0] if len(parts) == 1 and parts[0] and "@" not in parts[0] else None
    if model_id:
        if model_ref is not None:
            if model_ref == model_id:
                return
            raise _not_identified(source, what)
        if parsed.scheme == "runs":
            raise _not_identified(source, what)
    else:
        if parsed.scheme == "runs":
            if parsed.netloc:
                raise _not_identified(source, what)
            if run_id and parsed.path.lstrip("/").split("/")[0] == run_id:
                return
            raise _not_identified(source, what)
        if model_ref is not None:
            raise _not_identified(source, "model_id")
    if _is_proxied_source(source):
        if key:
            root = lookup(key)
            if root is None:
                raise _not_identified(source, what)
            if _within_root(source, root):
                return
        raise _not_identified(source, what)
