"""Frames from a serial QR scanner module (GM65 / GM805 class) on a UART.

The module sends each decoded code as its bytes followed by a terminator (CR by default; CR LF
or none at all are settings of the module, so the terminator is ours too). :class:`Scanner`
assembles frames from whatever the UART has and hands out complete ones:

- a frame left without its terminator for ``gap_ms`` (the cable pulled, the module reset in the
  middle) is dropped and counted in ``torn``; at 9600 baud a byte takes about 1 ms, so the
  module never pauses that long inside a frame;
- a frame longer than ``max_frame`` bytes is dropped up to its terminator and counted in
  ``oversize`` (a CCCD QR is about 100-200 bytes; the buffer is preallocated, nothing grows);
- the same code again within ``repeat_ms`` of its last sighting (the card held in front of a
  module in continuous mode, a receptionist's double scan) is suppressed and counted in
  ``repeats``: the window restarts at every sighting, so a card held still makes one read.
  Only a CRC32 of the last code is kept, not the code (personal data).

The clock is ``time.ticks_ms`` (``now`` may be given, for tests); ``ticks_diff`` keeps it right
across the tick counter's wrap.
"""

from binascii import crc32

from firmware.ticks import ticks_diff, ticks_ms

TERMINATOR = b"\r"
GAP_MS = 200
MAX_FRAME = 1024
REPEAT_MS = 3000


def open_uart(uart_id, baudrate=9600, tx=None, rx=None):
    """The device's UART for the module (9600 baud is the GM65's default, 115200 its fastest)."""
    from machine import UART  # noqa: PLC0415 - on the device only

    if tx is None:
        return UART(uart_id, baudrate=baudrate, rxbuf=MAX_FRAME)
    return UART(uart_id, baudrate=baudrate, tx=tx, rx=rx, rxbuf=MAX_FRAME)


class Scanner:
    """Frames from ``uart`` (anything with ``any()`` and ``read()``, as ``machine.UART``)."""

    def __init__(self, uart, terminator=TERMINATOR, gap_ms=GAP_MS, max_frame=MAX_FRAME, repeat_ms=REPEAT_MS):
        if not terminator or len(terminator) > 4:
            raise ValueError("scanner: a terminator of 1 to 4 bytes")
        self.uart = uart
        self.terminator = bytes(terminator)
        self.gap_ms = gap_ms
        self.repeat_ms = repeat_ms
        self._buf = bytearray(max_frame + len(terminator))
        self._n = 0
        self._last_byte = 0
        self._overflow = False  # dropping an oversize frame up to its terminator
        self._last_code = None  # CRC32 of the last code handed out or suppressed
        self._last_seen = 0
        self.frames = 0  # frames handed out
        self.torn = 0
        self.oversize = 0
        self.repeats = 0

    def poll(self, now=None):
        """Complete, new frames (``bytes``, terminator removed) from what the UART holds now."""
        if now is None:
            now = ticks_ms()
        out = []
        if self.uart.any():
            data = self.uart.read()
            if data:
                self.feed(data, now, out)
        self._expire(now)
        return out

    def feed(self, data, now, out):
        """Add bytes received at ``now``; complete frames are appended to ``out``."""
        self._expire(now)
        buf = self._buf
        term = self.terminator
        last = term[-1]
        tlen = len(term)
        cap = len(buf)
        for b in data:
            if self._n == cap:  # too long: forget it, keep only what may start the terminator
                if not self._overflow:
                    self._overflow = True
                    self.oversize += 1
                buf[: tlen - 1] = buf[cap - tlen + 1 : cap]
                self._n = tlen - 1
            buf[self._n] = b
            self._n += 1
            if b == last and self._n >= tlen and buf[self._n - tlen : self._n] == term:
                n = self._n - tlen
                self._n = 0
                if self._overflow:
                    self._overflow = False
                elif n:
                    self._frame(bytes(buf[:n]), now, out)
        self._last_byte = now

    def _expire(self, now):
        if self._n and ticks_diff(now, self._last_byte) > self.gap_ms:
            if not self._overflow:
                self.torn += 1
            self._overflow = False
            self._n = 0

    def _frame(self, frame, now, out):
        code = crc32(frame)
        if code == self._last_code and ticks_diff(now, self._last_seen) <= self.repeat_ms:
            self.repeats += 1
        else:
            self.frames += 1
            out.append(frame)
        self._last_code = code
        self._last_seen = now
