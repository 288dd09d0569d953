"""Server capabilities the 3.x client asks for (``GET /api/3.0/mlflow/server-info``)."""

from __future__ import annotations

from trackops.server.protocol import Params
from trackops.server.routing import Access, route


@route("GET", "/mlflow/server-info", Access.PUBLIC, versions=("3.0",))
def server_info(ctx, _p: Params, _path) -> dict:
    multipart = bool(ctx.serve_artifacts and ctx.artifacts is not None and getattr(ctx.artifacts, "bucket", None))
    return {"store_type": "SqlStore", "workspaces_enabled": False, "trace_archival_enabled": False,
            "multipart_uploads_enabled": multipart, "multipart_downloads_enabled": False,
            "presigned_upload_run_id_supported": False, "presigned_upload_model_id_supported": False,
            "features_enabled": {"gateway": False}}
