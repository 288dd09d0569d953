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


LINE_FORMAT = "%(asctime)s %(message)s"


def _ensure_handler() -> bool:
    """Access lines go to stderr, as uvicorn's do, unless the embedding program configured logging.

    True when they go to stderr through the handler set up here (nobody else configured the
    logger): the middleware then writes its lines itself (`StderrLines`)."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LINE_FORMAT))
        handler.set_name("trackops-access-stderr")
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = bool(logging.getLogger().handlers)
    return not log.propagate and [h.get_name() for h in log.handlers] == ["trackops-access-stderr"]


class StderrLines:
    """Writes an access line to stderr exactly as the logger's own handler would (`LINE_FORMAT`, with
    logging's local-time ``asctime``), without a log record, a formatter pass and the handler's
    lock: through `logging` a line cost about 35 us of the server's CPU per request, a quarter of what
    `GET /health` costs in all. The date and time are formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def __call__(self, message: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        stream = sys.stderr  # looked up per line: whoever replaces sys.stderr gets the lines
        try:
            stream.write(f"{self._stamp},{int((now - second) * 1000):03d} {message}\n")
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed or missing stderr must not fail a request
            pass


class AccessLogMiddleware:
    """Wraps an ASGI app; logs each HTTP request once its response has started (or the request failed)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.write = StderrLines() if _ensure_handler() else None

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
            fields = (where, scope.get("method", "-"), scope.get("path", ""), status,
                      getattr(user, "username", None) or "-", (time.perf_counter() - started) * 1000)
            if self.write is not None and log.isEnabledFor(logging.INFO):
                self.write('%s "%s %s" %d %s %.1fms' % fields)
            else:
                log.info('%s "%s %s" %d %s %.1fms', *fields)
