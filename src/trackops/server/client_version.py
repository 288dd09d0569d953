"""``GET /version`` as the MLflow Python client reads it: the plain-text MLflow version.

The 3.17 client logs spans over OTLP (``POST /v1/traces``) only when the server's ``/version``
parses as an MLflow version of at least 3.4 (`mlflow server` answers e.g. ``3.17.2``); otherwise it
falls back to uploading ``traces.json`` as an artifact, which is not how MLflow stores traces.
trackops' own ``/version`` answers JSON (docs/serve.md, Probes). This ASGI wrapper answers the
MLflow client (user agent ``mlflow-python-client/...``) with the MLflow version trackops is
compatible with, and passes every other request through unchanged.
"""

from __future__ import annotations

from trackops.server.app import MLFLOW_COMPATIBLE_VERSION

MLFLOW_CLIENT_AGENT = b"mlflow-python-client/"


class MlflowClientVersion:
    def __init__(self, app, static_prefix: str | None = None):
        self.app = app
        self.path = f"{static_prefix or ''}/version"
        self.body = MLFLOW_COMPATIBLE_VERSION.encode()

    @property
    def state(self):
        """The Starlette app's state (its ServerContext), reachable through this wrapper."""
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] in ("GET", "HEAD"):
            for name, value in scope["headers"]:
                if name == b"user-agent" and value.startswith(MLFLOW_CLIENT_AGENT):
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                            (b"content-length", str(len(self.body)).encode())]})
                    await send({"type": "http.response.body",
                                "body": self.body if scope["method"] == "GET" else b""})
                    return
        await self.app(scope, receive, send)
