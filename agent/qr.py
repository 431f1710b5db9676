"""QR scanners on a serial port (USB CDC-ACM or a UART): frames of scanned text, parsed by the
protocol core (``cccd.qr``, which repairs BOMs, CR LF suffixes, doubled reads and mojibake).

Scanners end a code with CR, LF or CR LF, or send nothing more: a frame also ends after ``idle``
seconds of silence. A frame over ``MAX_FRAME`` bytes (no QR of ours is a quarter of it) is dropped
and counted, as is every code the parser refuses: ``rejected`` with its reason, never its content.
The same frame twice within ``REPEAT_WINDOW`` (a doubled read sent on two lines) is one scan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from cccd import qr

log = logging.getLogger(__name__)

MAX_FRAME = 4096
REPEAT_WINDOW = 1.0  # seconds: the same frame again within it is one scan, sent twice


class Framer:
    """Bytes in, whole frames out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                frames += self.flush()
            else:
                self._buf.append(byte)
                if len(self._buf) > MAX_FRAME:
                    self._buf.clear()
                    self.oversized += 1
        return frames

    def flush(self) -> list[bytes]:
        """The frame so far (idle line, or its end): none when it is empty."""
        frame, self._buf = bytes(self._buf), bytearray()
        return [frame] if frame.strip() else []


class SerialScanner:
    """A scanner on ``port``; ``on_scan(scan)`` for every accepted code. ``open_port`` is the seam
    (pyserial's ``Serial`` by default, imported only then)."""

    def __init__(
        self,
        port: str,
        on_scan: Callable[[qr.Scan], object],
        *,
        baudrate: int = 9600,
        idle: float = 0.2,
        open_port: Callable[..., Any] | None = None,
    ) -> None:
        self.port, self.baudrate, self.idle = port, baudrate, idle
        self.on_scan = on_scan
        self._open = open_port
        self.framer = Framer()
        self.accepted = 0
        self.repeats = 0
        self.rejected: Counter[str] = Counter()
        self._last, self._last_at = b"", 0.0

    def handle(self, frame: bytes) -> None:
        now = time.monotonic()
        if frame == self._last and now - self._last_at < REPEAT_WINDOW:
            self.repeats += 1  # the same code again at once: a doubled read sent on two lines
            return
        self._last, self._last_at = frame, now
        try:
            scan = qr.parse(frame)
        except qr.QRError as exc:
            self.rejected[exc.reason] += 1
            log.info("QR refused: %s", exc.reason)
            return
        self.accepted += 1
        self.on_scan(scan)

    async def run(self) -> None:
        """Read until cancelled; the port is read in a worker thread (pyserial blocks)."""
        opener = self._open
        if opener is None:
            import serial  # noqa: PLC0415  (the agent extra; only a node with a serial scanner needs it)

            opener = serial.Serial
        port = opener(self.port, self.baudrate, timeout=self.idle)
        try:
            while True:
                data = await asyncio.to_thread(port.read, 512)
                frames = self.framer.feed(data) if data else self.framer.flush()
                for frame in frames:
                    self.handle(frame)
        finally:
            port.close()
