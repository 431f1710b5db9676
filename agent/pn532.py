"""A PN532 NFC board on a UART (HSU), as a ``transmit(apdu) -> response`` for ``ChipReader``.

Why our own 120 lines rather than ``adafruit-circuitpython-pn532`` or libnfc's ``ifdnfc``: the
Adafruit library drags in Blinka's board detection and still has no APDU helper (APDUs go through
InDataExchange either way), and ifdnfc puts a C stack and its configuration between us and the
board. The frame protocol is small and documented (NXP PN532 User Manual, 6.2), and this way the
PN532 path is tested like everything else: through a pseudo-terminal against the emulator in
``sim/pn532.py``, which hands InDataExchange APDUs to the same virtual chip.

Normal information frames carry at most 254 data bytes, so an APDU response is at most 252 bytes:
read the chip with ``ChipReader(max_le=MAX_LE)`` (192: AES secure messaging adds up to 36 bytes).
"""

from __future__ import annotations

import time
from typing import Protocol

from .emrtd.errors import ChipError

ACK = b"\x00\x00\xff\x00\xff\x00"
HOST, CHIP = 0xD4, 0xD5
SAM_CONFIGURATION, IN_LIST_PASSIVE_TARGET, IN_DATA_EXCHANGE = 0x14, 0x4A, 0x40
MAX_LE = 192


class Port(Protocol):
    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int = 1) -> bytes: ...


def frame(data: bytes) -> bytes:
    """A normal information frame around TFI + command data."""
    if not 0 < len(data) < 256:
        raise ValueError("a normal frame carries 1..255 bytes")
    length = len(data)
    return b"\x00\x00\xff" + bytes([length, -length & 0xFF]) + data + bytes([-sum(data) & 0xFF, 0x00])


def read_frame(port: Port, timeout: float = 2.0) -> bytes:
    """The data (TFI onwards) of the next frame; an ACK frame gives b""."""
    deadline = time.monotonic() + timeout
    window = b""
    while window[-2:] != b"\x00\xff":
        byte = port.read(1)
        if not byte:
            if time.monotonic() > deadline:
                raise ChipError("the PN532 does not answer")
            continue
        window = (window + byte)[-2:]
    head = _exactly(port, 2, deadline)
    if head == b"\x00\xff":
        return b""  # ACK
    length, lcs = head
    if (length + lcs) & 0xFF:
        raise ChipError("PN532 frame: bad length checksum")
    body = _exactly(port, length + 2, deadline)
    data, dcs = body[:length], body[length]
    if (sum(data) + dcs) & 0xFF:
        raise ChipError("PN532 frame: bad data checksum")
    return data


def _exactly(port: Port, n: int, deadline: float) -> bytes:
    out = b""
    while len(out) < n:
        chunk = port.read(n - len(out))
        if not chunk and time.monotonic() > deadline:
            raise ChipError("the PN532 stopped in the middle of a frame")
        out += chunk
    return out


class Pn532:
    """The board on ``port`` (a pyserial ``Serial`` at 115200 baud, or anything with read/write)."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.target: bytes | None = None  # the card's ATS or UID after find_card

    def command(self, code: int, params: bytes = b"", timeout: float = 2.0) -> bytes:
        self.port.write(frame(bytes([HOST, code]) + params))
        if read_frame(self.port, timeout) != b"":
            raise ChipError("the PN532 did not acknowledge")
        answer = read_frame(self.port, timeout)
        if answer[:2] != bytes([CHIP, code + 1]):
            raise ChipError("the PN532 answered another command")
        return answer[2:]

    def wake(self) -> None:
        """Out of power-down (HSU needs a long preamble), then the SAM in normal mode."""
        self.port.write(b"\x55\x55" + bytes(14))
        self.command(SAM_CONFIGURATION, b"\x01\x14\x01")

    def find_card(self) -> bool:
        """One ISO 14443-A card in the field, activated (RATS done by the PN532)."""
        answer = self.command(IN_LIST_PASSIVE_TARGET, b"\x01\x00", timeout=1.0)
        if not answer or answer[0] == 0:
            self.target = None
            return False
        self.target = answer[2:]
        return True

    def transmit(self, apdu: bytes) -> bytes:
        if self.target is None:
            raise ChipError("no card on the PN532")
        answer = self.command(IN_DATA_EXCHANGE, b"\x01" + apdu)
        if not answer or answer[0] & 0x3F:
            self.target = None
            raise ChipError(f"the card stopped answering (removed?): PN532 status {answer[:1].hex()}")
        return answer[1:]
