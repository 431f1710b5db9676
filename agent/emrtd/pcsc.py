"""PC/SC transport (pyscard): a ``transmit`` for ``ChipReader`` over a USB chip reader, or over
pcscd's vpcd driver in tests. pyscard's exceptions become ``ChipError`` here, once.

pyscard is imported when a connection is opened, so the rest of the agent runs without it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .errors import ChipError


class PcscTransport:
    """One card connection on the reader whose name contains ``reader`` (the first reader if None)."""

    def __init__(self, reader: str | None = None) -> None:
        self.reader = reader
        self._connection: Any = None

    def __enter__(self) -> PcscTransport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        from smartcard.Exceptions import SmartcardException  # noqa: PLC0415
        from smartcard.System import readers  # noqa: PLC0415

        try:
            found = [r for r in readers() if self.reader is None or self.reader in str(r)]
            if not found:
                raise ChipError(f"no PC/SC reader{' named ' + self.reader if self.reader else ''}")
            connection = found[0].createConnection()
            connection.connect()
        except SmartcardException as exc:
            raise ChipError(f"no card on the reader: {exc}") from exc
        self._connection = connection

    def transmit(self, apdu: bytes) -> bytes:
        from smartcard.Exceptions import SmartcardException  # noqa: PLC0415

        if self._connection is None:
            raise ChipError("the PC/SC connection is not open")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except SmartcardException as exc:
            raise ChipError(f"the card stopped answering (removed?): {exc}") from exc
        return bytes(data) + bytes([sw1, sw2])

    def reset(self) -> None:
        """A warm reset of the card: its sessions end, nothing selected (as after it was placed)."""
        from smartcard.Exceptions import SmartcardException  # noqa: PLC0415
        from smartcard.scard import SCARD_RESET_CARD  # noqa: PLC0415

        if self._connection is None:
            raise ChipError("the PC/SC connection is not open")
        try:
            self._connection.reconnect(disposition=SCARD_RESET_CARD)
        except SmartcardException as exc:
            raise ChipError(f"the card did not take a reset (removed?): {exc}") from exc

    def close(self) -> None:
        if self._connection is not None:
            for step in (self._connection.disconnect, self._connection.release):
                with contextlib.suppress(Exception):  # closing: nothing left to tell the caller
                    step()
            self._connection = None
