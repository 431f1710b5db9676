"""What the fakes of sim/ that speak HTTP share (the BHXH gateway, the FHIR HIS).

- ``Server``: a threaded HTTP server that tracks its open connections, so that stopping it (or an
  outage) shuts them too, and logs a dropped connection at DEBUG without a stack trace;
- ``Handler``: HTTP/1.1 with keep-alive; reads a body within bounds (``read_body``); never logs a
  request line (it carries tokens and identifiers in the query string); after an answer sent
  before the body was read, half-closes and drains what the client still sends, since closing a
  socket with unread data resets the connection and may destroy the answer before it is read;
- ``Listener``: a server served from a daemon thread on a port kept across restarts;
- ``Latency``: a delay drawn from a range that may change while the fake runs;
- ``Service``: a fake's life cycle on both (start, stop, ``with``, port, latency).
"""

import contextlib
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

log = logging.getLogger("cccd.sim")


class GoneError(Exception):
    """The client went away mid-request."""


class BodyError(Exception):
    """A request body that is not read: ``chunked``, a bad ``length``, or too ``large``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s dropped", client_address[0] if client_address else "?")

    def shut_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """Subclasses define ``dispatch(method)``, ``send_error`` and their answers."""

    server: Server
    protocol_version = "HTTP/1.1"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # a broken request line still gets a status line
    timeout = 10.0  # a client that stops sending mid-body does not hold a thread forever
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall
    drain_limit = 1024 * 1024  # an oversized body up to this is read and dropped, to answer cleanly
    unread = False  # the request's body was not read: drain it before closing (no RST)

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()
        if self.unread:
            self._linger()

    def _linger(self) -> None:
        """Half-close, then read what the client still sends (1 s, ``drain_limit`` at most)."""
        deadline = time.monotonic() + 1.0
        left = self.drain_limit
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                self.connection.settimeout(wait)
                chunk = self.connection.recv(min(65536, left))
                if not chunk:
                    break
                left -= len(chunk)

    def read_body(self, limit: int) -> bytes:
        """The body (empty without a Content-Length). Raises BodyError for a body not read (the
        connection then closes after the answer) and GoneError when the client went away."""
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding") is not None:  # not read: the stream is lost
            self.close_connection = self.unread = True
            raise BodyError("chunked")
        if not lengths:
            return b""
        if len(set(lengths)) != 1 or not re.fullmatch(r"[0-9]{1,15}", lengths[0].strip()):
            self.close_connection = self.unread = True
            raise BodyError("length")
        length = int(lengths[0])
        if length > limit:
            if length > self.drain_limit:
                self.close_connection = self.unread = True
            else:
                self._take(length)
            raise BodyError("large")
        return self._take(length)

    def _take(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) < length:
            raise GoneError
        return data

    def dispatch(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # subclasses log their answers, without the query string

    def log_error(self, format: str, *args: Any) -> None:
        pass  # the base class would put the request line (tokens, identifiers) in it

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Listener:
    """``make(address)`` served from a daemon thread named ``name``. Port 0 picks a free port,
    which later starts reuse. Not thread-safe: its owner serialises start and stop."""

    def __init__(self, host: str, port: int, make: Callable[[tuple[str, int]], Server], name: str) -> None:
        self.host = host
        self.port = port
        self._make = make
        self._name = name
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        server = self._make((self.host, self.port))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and shut the open connections."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.shut_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None


class Latency:
    """A delay drawn uniformly from [low, high] seconds; thread-safe."""

    def __init__(self, low: float = 0.0, high: float | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._range = (0.0, 0.0)
        self.set(low, high)

    def set(self, low: float, high: float | None = None) -> None:
        """high defaults to low."""
        top = low if high is None else high
        if not 0 <= low <= top:
            raise ValueError("latency needs 0 <= min <= max")
        with self._lock:
            self._range = (float(low), float(top))

    @property
    def range(self) -> tuple[float, float]:
        with self._lock:
            return self._range

    def wait(self, stopping: threading.Event) -> None:
        """Sleep one delay, or until ``stopping`` is set."""
        with self._lock:
            low, high = self._range
            pause = self._rng.uniform(low, high) if high > 0 else 0.0
        if pause > 0:
            stopping.wait(pause)


class Service:
    """A fake served by a Listener: ``start()`` (port 0: a free one, kept for later restarts),
    ``stop()`` (open connections are shut), a ``with`` block for both, and its latency."""

    def __init__(
        self,
        host: str,
        port: int,
        make: Callable[[tuple[str, int]], Server],
        name: str,
        latency: tuple[float, float] = (0.0, 0.0),
        seed: int | None = None,
    ) -> None:
        self._listener = Listener(host, port, make, name)
        self._latency = Latency(*latency, seed=seed)
        self._life = threading.Lock()  # start / stop transitions
        self._stopping = threading.Event()  # ends the latency of requests in flight

    def start(self) -> Self:
        """Serve on ``host:port``. Returns self."""
        with self._life:
            if not self._listener.listening:
                self._stopping.clear()
                self._listener.start()
        return self

    def stop(self) -> None:
        with self._life:
            self._stopping.set()
            self._listener.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def origin(self) -> str:
        """``http://host:port``."""
        return f"http://{self._listener.host}:{self._listener.port}"

    def set_latency(self, low: float, high: float | None = None) -> None:
        """Every answer waits a uniform random time in [low, high] seconds (high defaults to low)."""
        self._latency.set(low, high)

    @property
    def latency(self) -> tuple[float, float]:
        return self._latency.range

    def _delay(self) -> None:
        self._latency.wait(self._stopping)
