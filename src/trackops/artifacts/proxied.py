"""``mlflow-artifacts:`` URIs: artifacts a tracking server proxies, stored under its destination.

A server started with ``--artifacts-destination D`` records experiment locations like
``mlflow-artifacts:/1`` and run roots like ``mlflow-artifacts:/1/<run_id>/artifacts``; the files
live at ``D/1/<run_id>/artifacts/...``. The URI may carry the server's address
(``mlflow-artifacts://host:5000/1/...``): the address is ignored here, only the path counts,
because whoever resolves the URI *is* the server (or holds its destination).
"""

from __future__ import annotations

from urllib.parse import urlparse

from trackops.artifacts.paths import validate_path
from trackops.errors import UsageError

SCHEME = "mlflow-artifacts"


def parse_mlflow_artifacts_uri(uri: str) -> str:
    """The relative path an ``mlflow-artifacts:`` URI names under the destination ("" for its root)."""
    parsed = urlparse(uri)
    if parsed.scheme.lower() != SCHEME:
        raise UsageError(f"not an {SCHEME}: URI: {uri}", hint=f"use {SCHEME}:/<path>")
    if parsed.query or parsed.fragment:
        raise UsageError(f"{SCHEME} URI {uri} has a query or fragment", hint=f"use {SCHEME}:/<path>")
    # MLflow refuses "mlflow-artifacts://5000/x": a port without a host would otherwise be read
    # as a host named "5000", and the path would silently lose its first segment.
    if parsed.netloc and parsed.hostname and parsed.hostname.isdigit() and parsed.port is None:
        raise UsageError(f"{SCHEME} URI {uri} has a port but no host",
                         hint=f"use {SCHEME}://<host>:<port>/<path> or {SCHEME}:/<path>")
    return validate_path(parsed.path.lstrip("/"))


def require_destination(uri: str, artifacts_destination: str | None) -> str:
    """The configured destination, or a UsageError explaining where to set it."""
    if not artifacts_destination:
        raise UsageError(f"{uri} is a proxied artifact URI, but no artifacts destination is configured",
                         hint="pass --artifacts-destination (or set TRACKOPS_ARTIFACTS_DESTINATION) "
                              "to the folder or s3:// URI the server stores artifacts in")
    if urlparse(artifacts_destination).scheme.lower() == SCHEME:
        raise UsageError(f"the artifacts destination cannot itself be an {SCHEME}: URI "
                         f"({artifacts_destination})",
                         hint="use a folder or an s3:// URI")
    return artifacts_destination
