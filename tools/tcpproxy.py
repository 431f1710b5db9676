"""A TCP relay whose link can be cut: the network between two processes, for fault injection.

``LinkProxy(target_host, target_port).start()`` listens on a free local port and relays every
connection to the target, byte for byte (TLS passes through untouched). ``cut()`` drops every
relayed connection at once, both ways, the way a failed switch or a pulled cable does, and
refuses new connections until ``restore()``. It runs its own event loop in a thread.

With ``fallbacks`` it is also the simplest load balancer a site puts in front of a broker
cluster (HAProxy in TCP mode, say): each new connection goes to the next target in turn, and to
the one after that if it refuses, so clients move to a live node when theirs dies.
"""

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from tools.ports import free_port


class LinkProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        host: str = "127.0.0.1",
        fallbacks: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.targets = [(target_host, target_port), *fallbacks]
        self.host = host
        self.port = free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # relayed so far
        self.cuts = 0

    def start(self) -> "LinkProxy":
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._close_all())
            loop.close()

        self._thread = threading.Thread(target=main, name="link-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, self.host, self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = self.connections % len(self.targets)
        for target in self.targets[first:] + self.targets[:first]:
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
                break
            except OSError:
                continue
        else:
            writer.close()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _close_all(self) -> None:
        for w in list(self._writers):
            with contextlib.suppress(OSError, RuntimeError):
                transport = w.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:  # a hard drop: RST, not a polite FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                transport.abort()
        self._writers.clear()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones."""

        async def go() -> None:
            server, self._server = self._server, None
            if server is not None:
                server.close()
            await self._close_all()
            if server is not None:
                await server.wait_closed()

        self._call(go())
        self.cuts += 1

    def restore(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self.cut()
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None
