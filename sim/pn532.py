"""A PN532 board on a UART, emulated on a pseudo-terminal: the host side (``agent/pn532.py``, or
any PN532 driver) talks the frame protocol of the NXP PN532 User Manual (6.2) to it, and the APDUs
of InDataExchange go to a virtual chip (``sim.chip.VirtualChip``). ``chip`` None: no card in the
field; set it to place one.
"""

from __future__ import annotations

import os
import threading
import tty

from sim.chip import VirtualChip

_ACK = b"\x00\x00\xff\x00\xff\x00"
_ATS = bytes.fromhex("0578807002")  # a typical ISO 14443-4 card's answer to select


def _frame(data: bytes) -> bytes:
    n = len(data)
    return b"\x00\x00\xff" + bytes([n, (256 - n) % 256]) + data + bytes([(256 - sum(data)) % 256, 0])


class Pn532Emulator:
    """``port`` is the device path the host opens; ``start()`` serves it in a thread."""

    def __init__(self, chip: VirtualChip | None = None) -> None:
        self.chip = chip
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self.exchanges = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pn532-emulator", daemon=True)

    def start(self) -> Pn532Emulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        """After the host closed the port: closing the last slave side ends the thread's read."""
        self._stop.set()
        os.close(self._slave)
        self._thread.join(timeout=5)
        os.close(self._master)

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = os.read(self._master, n - len(out))
            if not chunk:
                raise OSError("closed")
            out += chunk
        return out

    def _serve(self) -> None:
        window = b""
        try:
            while not self._stop.is_set():
                window = (window + self._read(1))[-3:]
                if window != b"\x00\x00\xff":
                    continue
                length, lcs = self._read(2)
                body = self._read(length + 2)
                if (length + lcs) % 256 or sum(body[: length + 1]) % 256:
                    continue  # a broken frame: the real board sends a NACK-less silence too
                os.write(self._master, _ACK)
                os.write(self._master, _frame(self._answer(body[:length])))
        except OSError:
            return  # the pty closed: stopped

    def _answer(self, data: bytes) -> bytes:
        code, params = data[1], data[2:]
        if code == 0x14:  # SAMConfiguration
            return b"\xd5\x15"
        if code == 0x4A:  # InListPassiveTarget, 106 kbps type A
            if self.chip is None:
                return b"\xd5\x4b\x00"
            self.chip.power_on()
            uid = b"\x08\x12\x34\x56"
            return b"\xd5\x4b\x01\x01\x00\x04\x20" + bytes([len(uid)]) + uid + _ATS
        if code == 0x40:  # InDataExchange
            if self.chip is None:
                return b"\xd5\x41\x01"  # timeout: the card is gone
            self.exchanges += 1
            response = self.chip.transmit(params[1:])
            if len(response) > 252:
                return b"\xd5\x41\x0b"  # buffer overflow
            return b"\xd5\x41\x00" + response
        return bytes([0xD5, code + 1])
