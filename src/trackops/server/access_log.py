"""The access log: one line per request with client, method, path, status, user and duration.

It is an ASGI middleware around the whole app, so it also sees the UI's files, the probes and
requests the security guards refused. It never logs headers, bodies or query strings: credentials
travel in headers, and a query string can carry a token or a filter with private values.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from trackops.server.auth import current_user

log = logging.getLogger("trackops.access")


def _ensure_handler() -> None:
    """Access lines go to stderr, as uvicorn's do, unless the embedding program configured logging."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = bool(logging.getLogger().handlers)


class AccessLogMiddleware:
    """Wraps an ASGI app; logs each HTTP request once its response has started (or the request failed)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        _ensure_handler()

    def __getattr__(self, name: str) -> Any:  # app.state and friends stay reachable through the wrapper
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            user = current_user.get(None)
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "-"
            log.info('%s "%s %s" %d %s %.1fms', where, scope.get("method", "-"), scope.get("path", ""), status,
                     getattr(user, "username", None) or "-", (time.perf_counter() - started) * 1000)
