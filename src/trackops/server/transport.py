"""uvicorn's HTTP protocol with TCP_NODELAY set on every accepted socket.

Without it, a response written in two segments (headers, then body) on a reused connection waits
for the client's delayed ACK (Nagle's algorithm): ~40 ms a request, which is what the `mlflow`
client sees from a server that leaves the option off. Setting it costs nothing.
"""

from __future__ import annotations

import socket

try:  # httptools is faster when installed; h11 always is
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base


class NoDelayHTTPProtocol(_Base):
    def connection_made(self, transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
