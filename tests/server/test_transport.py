"""The server sets TCP_NODELAY on accepted connections (a reused connection is not held back by Nagle)."""

import socket

from trackops.server import transport


class FakeTransport:
    def __init__(self, sock):
        self.sock = sock

    def get_extra_info(self, name):
        return self.sock if name == "socket" else None


def test_accepted_tcp_connections_get_tcp_nodelay(monkeypatch):
    monkeypatch.setattr(transport._Base, "connection_made", lambda self, t: None)
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            protocol = object.__new__(transport.NoDelayHTTPProtocol)
            protocol.connection_made(FakeTransport(accepted))
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
