"""`trackops info`."""

from __future__ import annotations

from trackops.cli.common import (ArtifactsDestination, BackendStoreUri, DefaultArtifactRoot, JsonOutput,
                                 console, print_json, settings_from)
from trackops.errors import TrackopsError
from trackops.services.info import info as info_service


def info(
    backend_store_uri: BackendStoreUri = None,
    artifacts_destination: ArtifactsDestination = None,
    default_artifact_root: DefaultArtifactRoot = None,
    json_output: JsonOutput = False,
) -> int:
    """Show the resolved settings, the database and its schema revision.

    Passwords in URIs are shown as ***. Exits 1 when the database cannot be reached.

    Examples:

      trackops info

      trackops info --backend-store-uri postgresql://mlflow@db.internal/mlflow --json
    """
    settings = settings_from(backend_store_uri=backend_store_uri, artifacts_destination=artifacts_destination,
                             default_artifact_root=default_artifact_root)
    report = info_service(settings)
    from trackops.server.ui import locate_bundle

    try:  # the UI bundle trackops serve would show (server/ui.py), with its folder on this machine
        ui = locate_bundle().to_json()
    except TrackopsError as exc:  # TRACKOPS_UI_DIR names a folder without index.html
        ui = {"source": "ui-dir", "path": None, "mlflow_version": None, "error": exc.message}
    if json_output:
        print_json({**report.to_json(), "ui": ui})
    else:
        rows = [
            ("trackops", report.trackops_version),
            ("backend store", f"{report.backend_store_uri}  ({report.sources.get('backend_store_uri')})"),
            ("artifacts destination", f"{report.artifacts_destination}  "
                                      f"({report.sources.get('artifacts_destination')})"),
            ("default artifact root", report.default_artifact_root or "mlflow-artifacts:/ (proxied)"),
            ("config file", report.config_file or "none"),
            ("dialect", report.dialect),
            ("web UI", ui.get("error") or (f"{ui['source']}  {ui['path'] or ''}".rstrip() +
                                          (f"  (MLflow {ui['mlflow_version']})" if ui["mlflow_version"] else ""))),
        ]
        if not report.exists:
            rows.append(("database", "not created yet (trackops serve or trackops db init creates it)"))
        else:
            rows.append(("reachable", "yes" if report.reachable else "no"))
            if report.reachable:
                rows += [("server version", report.server_version or "?"),
                         ("schema revision", report.revision or "none (empty database)"),
                         ("trackops revision", report.trackops_revision or "none")]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            console.print(f"{key:<{width}}  {value}", markup=False, soft_wrap=True)
    if report.error is not None:
        raise report.error
    return 0
