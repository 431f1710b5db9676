"""The forwarders' HTTP client (collector/forward/http.py) against real servers: the fake HIS, and
a raw TCP server that answers what each test scripts (torn, malformed, hostile, oversized)."""

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from collector.forward.http import AnswerTooLargeError, HttpClient, HttpError, HttpTimeoutError
from sim.his import FhirHis

SECRET = "tok3n-s3cr3t"  # stands for a token or an identifier in a URL


class Scripted:
    """A TCP server on 127.0.0.1 whose every connection gets ``answer(request_bytes, conn)``;
    it counts the connections open at once and keeps the raw requests."""

    def __init__(self, answer: Callable[[bytes, socket.socket], None]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.open = self.peak = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/base"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
        try:
            with conn:
                while True:
                    request = _read_request(conn)
                    if not request:
                        return
                    self.requests.append(request)
                    self.answer(request, conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self.open -= 1

    def close(self) -> None:
        self._sock.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> Callable[[bytes, socket.socket], None]:
    def answer(_request: bytes, conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )

    return answer


def raw(data: bytes, close: bool = True) -> Callable[[bytes, socket.socket], None]:
    def answer(_request: bytes, conn: socket.socket) -> None:
        conn.sendall(data)
        if close:
            conn.shutdown(socket.SHUT_RDWR)
            raise OSError("closed")

    return answer


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[bytes, socket.socket], None]], Scripted]]:
    servers: list[Scripted] = []

    def start(answer: Callable[[bytes, socket.socket], None]) -> Scripted:
        servers.append(Scripted(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ask(
    url: str, *args: object, connections: int = 4, timeout: float = 2.0, max_body: int = 1 << 20, **kw: object
) -> object:
    async def go() -> object:
        client = HttpClient(url, connections=connections, timeout=timeout, max_body=max_body)
        try:
            return await client.request(*args, **kw)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_request_is_sent_as_built_and_its_answer_read_whole(serve) -> None:  # type: ignore[no-untyped-def]
    s = serve(ok(b'{"maKetQua": "000", "hoTen": "Nguy\xe1\xbb\x85n V\xc4\x83n A"}', b"Location: /x/1\r\n"))
    params = {"identifier": "urn:x|a\\,b", "token": SECRET}
    answer = ask(s.url, "PUT", "Patient", params=params, json={"hoTen": "Nguyễn Văn A"})
    assert answer.status == 200 and answer.headers["location"] == "/x/1"  # type: ignore[attr-defined]
    assert answer.json() == {"maKetQua": "000", "hoTen": "Nguyễn Văn A"}  # type: ignore[attr-defined]
    head, _, body = s.requests[0].partition(b"\r\n\r\n")
    line = head.split(b"\r\n")[0]
    # the query exactly as urlencode made it: no second quoting, no unquoting of %2C or %7C
    assert line == b"PUT /base/Patient?identifier=urn%3Ax%7Ca%5C%2Cb&token=tok3n-s3cr3t HTTP/1.1"
    assert b"content-type: application/json; charset=utf-8" in head.lower()
    assert body.decode("utf-8") == '{"hoTen":"Nguyễn Văn A"}'  # UTF-8, not \u escapes


def test_the_base_itself_and_raw_content(serve) -> None:  # type: ignore[no-untyped-def]
    s = serve(ok())
    assert ask(s.url + "/", "POST", "", content=b"\x00bytes").status == 200  # type: ignore[attr-defined]
    assert s.requests[0].startswith(b"POST /base HTTP/1.1") and s.requests[0].endswith(b"\r\n\r\n\x00bytes")


def test_a_body_that_is_not_json_is_a_value_error(serve) -> None:  # type: ignore[no-untyped-def]
    for body in (b"<html>", b"\xff\xfe{", b""):
        answer = ask(serve(ok(body)).url, "GET", "x")
        with pytest.raises(ValueError):
            answer.json()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "answer, why",
    [
        (raw(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"torn'), "torn body"),
        (raw(b"HTTP/1.1 200 OK\r\nContent-Le"), "torn head"),
        (raw(b""), "closed without a word"),
        (raw(b"SMTP ready\r\n\r\n"), "not HTTP"),
        (raw(b"HTTP/1.1 abc OK\r\n\r\n"), "a status that is not a number"),
        (raw(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"), "a negative length"),
        (raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "a bad chunk size"),
        (raw(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100_000 + b"\r\n\r\n"), "a header of 100 kB"),
    ],
)
def test_torn_and_malformed_answers_are_an_http_error(serve, answer, why: str) -> None:  # type: ignore[no-untyped-def]
    s = serve(answer)
    with pytest.raises(HttpError) as caught:
        ask(s.url, "GET", "Patient", params={"token": SECRET})
    assert SECRET not in str(caught.value) and "127.0.0.1" not in str(caught.value), why
    assert caught.value.__cause__ is None and caught.value.__suppress_context__, why


def test_an_answer_longer_than_the_bound_is_refused_however_it_is_sent(serve) -> None:  # type: ignore[no-untyped-def]
    big = b"x" * 5000
    declared = serve(ok(big))
    chunked = serve(
        raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(
                b"%x\r\n%s\r\n" % (len(big[i : i + 700]), big[i : i + 700]) for i in range(0, 5000, 700)
            )
            + b"0\r\n\r\n",
            close=False,
        )
    )
    endless = serve(raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + big, close=True))
    for s in (declared, chunked, endless):
        with pytest.raises(AnswerTooLargeError):
            ask(s.url, "GET", "x", max_body=4096)
        assert ask(s.url, "GET", "x", max_body=5000).body == big  # type: ignore[attr-defined]


def test_a_server_that_never_answers_is_a_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    s = serve(lambda _request, _conn: threading.Event().wait(5))
    with pytest.raises(HttpTimeoutError):
        ask(s.url, "GET", "x", params={"token": SECRET}, timeout=0.3)


def test_nothing_listening_is_an_http_error() -> None:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(HttpError) as caught:
            ask(f"http://127.0.0.1:{port}/fhir", "GET", "x", params={"token": SECRET})
    assert SECRET not in str(caught.value) and str(port) not in str(caught.value)


def test_no_more_connections_than_allowed_however_many_requests_wait(serve) -> None:  # type: ignore[no-untyped-def]
    def slow(request: bytes, conn: socket.socket) -> None:
        threading.Event().wait(0.05)
        ok()(request, conn)

    s = serve(slow)

    async def go() -> list[int]:
        client = HttpClient(s.url, connections=5, timeout=10)
        try:
            answers = await asyncio.gather(*(client.request("GET", f"n/{i}") for i in range(60)))
            return [a.status for a in answers]
        finally:
            await client.aclose()

    assert asyncio.run(go()) == [200] * 60
    assert s.peak == 5  # all five used, never a sixth
    assert len(s.requests) == 60


def test_many_in_flight_against_the_fake_his() -> None:
    with FhirHis(latency=(0.05, 0.05)) as his:

        async def go() -> list[int]:
            client = HttpClient(his.url, connections=25, timeout=10)
            try:
                calls = (
                    client.request("GET", "Patient", params={"identifier": f"x|{i}"}) for i in range(100)
                )
                return [a.status for a in await asyncio.gather(*calls)]
            finally:
                await client.aclose()

        assert asyncio.run(go()) == [200] * 100
