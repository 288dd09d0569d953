"""Bounds on a request's head (request line and headers), answered as MLflow error JSON.

uvicorn's httptools protocol keeps a request's URL and headers in memory until the head is complete,
with no bound, and refuses a URL beyond 65,535 bytes (llhttp's URL parser) with a plain-text
``400 Invalid HTTP request received.``. `LimitedHTTPProtocol` counts the head as it arrives and
refuses it as soon as it is too large:

- a request target (path and query string) over `MAX_URL` bytes: ``414``;
- headers over `MAX_HEADERS` bytes in all (names, values and separators): ``431``;

each with ``{"error_code": "INVALID_PARAMETER_VALUE", "message": ...}`` and ``Connection: close``.
A connection thus holds at most one read chunk beyond these limits, whatever the client sends.
After the answer the server reads and drops what the client still sends for `LINGER_SECONDS`
before it closes (a lingering close, as nginx does): closing with unread data would reset the
connection, and a client still sending would lose the answer.
Bodies are capped per route by the app (`server/protocol.py`, 413).
"""

from __future__ import annotations

import asyncio
import json
import logging

from trackops.server.transport import NoDelayHTTPProtocol

log = logging.getLogger("trackops.server")

MAX_URL = 65_535  # the most llhttp's URL parser takes; a 64 KiB filter in a query string fits
MAX_HEADERS = 64 * 1024  # cookies of other local apps and long bearer tokens fit many times over
_SLACK = 8 * 1024  # the request line's method and version, the blank line
LINGER_SECONDS = 2.0

STATUS_TEXT = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised inside a parser callback: stops the parser, which uvicorn then reports as a bad request."""


def refusal(status: int) -> bytes:
    """The complete HTTP/1.1 response for a head refused with `status`."""
    if status == 414:
        message = f"Request URL (path and query string) is longer than {MAX_URL} bytes; send the " \
                  "parameters in a POST body where the endpoint takes one"
    else:
        message = f"Request headers are larger than {MAX_HEADERS // 1024} KiB in all"
    body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": message}).encode()
    return b"".join([b"HTTP/1.1 %d %s\r\n" % (status, STATUS_TEXT[status]),
                     b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                     b"x-content-type-options: nosniff\r\n", b"connection: close\r\n\r\n", body])


if hasattr(NoDelayHTTPProtocol, "on_url"):  # httptools (a dependency); h11 keeps its own 16 KiB bound

    class LimitedHTTPProtocol(NoDelayHTTPProtocol):
        """uvicorn's httptools protocol (with TCP_NODELAY) refusing over-long URLs and headers."""

        _in_head = False
        _head_bytes = 0
        _header_bytes = 0
        _refused: int | None = None
        _discarding = False

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes, self._header_bytes, self._refused = True, 0, 0, None

        def on_url(self, url: bytes) -> None:
            if len(self.url) + len(url) > MAX_URL:
                self._refused = 414
                raise HeadTooLarge
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_bytes += len(name) + len(value) + 4
            if self._header_bytes > MAX_HEADERS:
                self._refused = 431
                raise HeadTooLarge
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self._discarding:  # the rest of a refused request: read and dropped, never parsed or kept
                return
            super().data_received(data)
            # httptools buffers a header's name and value until the header ends, out of our sight:
            # count the bytes of an unfinished head here, so one endless header is refused too.
            if self._in_head and self._refused is None and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_URL + MAX_HEADERS + _SLACK:
                    self._refused = 431
                    self._refuse()

        def send_400_response(self, msg: str) -> None:
            if self._refused is None:
                super().send_400_response(msg)
            else:
                self._refuse()

        def _refuse(self) -> None:
            log.warning("refused a request with a %s", "URL too long" if self._refused == 414 else
                        "header section too large")
            self._in_head, self._discarding = False, True
            self.transport.write(refusal(self._refused))
            if self.transport.can_write_eof():
                self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)

else:  # pragma: no cover - only without httptools
    LimitedHTTPProtocol = NoDelayHTTPProtocol
