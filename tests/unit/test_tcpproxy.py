"""The fault-injection relay: relays bytes both ways, cuts every connection at once, refuses new
ones while cut, and relays again when restored."""

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tools.tcpproxy import LinkProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _talk(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return s.recv(65536)


def test_relay_cut_and_restore(echo: int) -> None:
    link = LinkProxy("127.0.0.1", echo).start()
    try:
        assert _talk(link.port, b"hello") == b"hello"
        held = socket.create_connection(("127.0.0.1", link.port), timeout=5)
        held.sendall(b"x")
        assert held.recv(10) == b"x"
        link.cut()
        with pytest.raises(OSError):  # the held connection is dropped
            held.sendall(b"y" * 100_000)
            if not held.recv(10):
                raise ConnectionResetError("closed")
        held.close()
        with pytest.raises(OSError):  # and nobody gets through while cut
            _talk(link.port, b"again")
        link.restore()
        assert _talk(link.port, b"back") == b"back"
        assert link.cuts == 1 and link.connections >= 3
    finally:
        link.stop()


def test_with_fallbacks_new_connections_go_round_and_skip_a_dead_target(echo: int) -> None:
    with socket.socket() as s:  # a port nobody listens on: a dead broker node
        s.bind(("127.0.0.1", 0))
        dead = int(s.getsockname()[1])
    balancer = LinkProxy("127.0.0.1", dead, fallbacks=[("127.0.0.1", echo)]).start()
    try:
        for i in range(4):  # every second connection starts at the dead target and moves on
            assert _talk(balancer.port, b"x%d" % i) == b"x%d" % i
        assert balancer.connections == 4
    finally:
        balancer.stop()
