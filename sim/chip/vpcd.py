"""The virtual chip on the real PC/SC stack: vsmartcard's vpcd protocol, the card's side.

pcscd's vpcd driver listens on TCP 127.0.0.1:35963 and the card connects to it. Every message is a
2-byte big-endian length and a payload; a 1-byte payload is a control (0 power off, 1 power on,
2 reset, 4 asks for the ATR, which the card sends back); anything longer is a command APDU, answered
with the response APDU. ``VpcdCard`` runs that loop in a thread, reconnecting while pcscd starts.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

from .card import ATR, VirtualChip

log = logging.getLogger(__name__)

VPCD_PORT = 35963
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        data += chunk
        # vpcd writes the length and the APDU separately: with Nagle on its side and delayed ACKs on
        # ours, each APDU waited ~40 ms for our ACK. Acknowledge at once (Linux; reset by every recv).
        if hasattr(socket, "TCP_QUICKACK"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    return data


class VpcdCard:
    """Insert ``chip`` into pcscd's virtual reader: ``start()``, then ``stop()`` removes it."""

    def __init__(self, chip: VirtualChip, host: str = "127.0.0.1", port: int = VPCD_PORT) -> None:
        self.chip = chip
        self.address = (host, port)
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="vpcd-card", daemon=True)

    def start(self) -> VpcdCard:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Remove the card (pcscd sees it gone at its next exchange) and end the thread."""
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection(self.address, timeout=1) as sock:
                    sock.settimeout(None)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._sock = sock
                    self._serve(sock)
            except OSError as exc:  # pcscd not up yet, or gone: try again
                log.debug("vpcd connection: %s", exc)
                time.sleep(0.1)

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            size = int.from_bytes(_recv_exactly(sock, 2), "big")
            payload = _recv_exactly(sock, size)
            if size == 1:
                reply = self._control(payload[0])
                if reply is None:
                    continue
            else:
                reply = self.chip.transmit(payload)
            sock.sendall(len(reply).to_bytes(2, "big") + reply)

    def _control(self, code: int) -> bytes | None:
        if code in (_POWER_ON, _RESET, _POWER_OFF):
            self.chip.power_on()
            return None
        if code == _GET_ATR:
            return ATR
        log.warning("vpcd: unknown control %d", code)
        return None
