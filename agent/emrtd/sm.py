"""Secure messaging (ICAO Doc 9303 Part 11, 9.8): DO'87' encrypted (3DES-CBC after BAC, AES-CBC
after PACE), DO'8E' a MAC (retail MAC, or AES-CMAC) over the send sequence counter and the
protected header and data objects.

``SecureMessaging.protect`` turns a short plain command APDU into its protected form,
``unprotect`` checks and opens the chip's answer. Each call increments the SSC first, so one
``protect`` must be followed by exactly one ``unprotect``.
"""

from __future__ import annotations

import hmac

from . import _crypto
from .errors import SecureMessagingError
from .tlv import ber_length


def _split_command(apdu: bytes) -> tuple[bytes, bytes, int | None]:
    """Header, data and Le (None when absent, 256 for 00) of a short command APDU."""
    if len(apdu) < 4:
        raise ValueError("a command APDU has at least 4 bytes")
    header, body = apdu[:4], apdu[4:]
    if not body:
        return header, b"", None
    if len(body) == 1:
        return header, b"", body[0] or 256
    lc = body[0]
    if lc and len(body) == 1 + lc:
        return header, body[1:], None
    if lc and len(body) == 2 + lc:
        return header, body[1 : 1 + lc], body[-1] or 256
    raise ValueError("not a short command APDU")


def _objects(data: bytes) -> dict[int, bytes]:
    """The SM data objects of a response body, by tag (one-byte tags, definite lengths)."""
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise SecureMessagingError("torn secure messaging object")
        tag, first = data[i], data[i + 1]
        i += 2
        if first < 0x80:
            length = first
        elif first in (0x81, 0x82) and i + (first & 0x7F) <= len(data):
            size = first & 0x7F
            length = int.from_bytes(data[i : i + size], "big")
            i += size
        else:
            raise SecureMessagingError("bad length in a secure messaging object")
        if i + length > len(data) or tag in out:
            raise SecureMessagingError("torn or repeated secure messaging object")
        out[tag] = data[i : i + length]
        i += length
    return out


class SecureMessaging:
    """The terminal's secure messaging session: session keys and the send sequence counter.

    ``aes`` False: 3DES-CBC with a zero IV and the retail MAC, 8-byte blocks and SSC (after BAC);
    True: AES-CBC with IV = AES(KS_enc, SSC) and AES-CMAC, 16-byte blocks and SSC (after PACE)."""

    def __init__(self, ks_enc: bytes, ks_mac: bytes, ssc: bytes, *, aes: bool = False) -> None:
        self.ks_enc = ks_enc
        self.ks_mac = ks_mac
        self.aes = aes
        self.block = 16 if aes else _crypto.BLOCK
        if len(ssc) != self.block:
            raise ValueError("the SSC is one block long")
        self._ssc = int.from_bytes(ssc, "big")

    def __repr__(self) -> str:  # keys never in logs
        return f"SecureMessaging({'AES' if self.aes else '3DES'})"

    @property
    def ssc(self) -> bytes:
        return self._ssc.to_bytes(self.block, "big")

    def _next(self) -> bytes:
        self._ssc = (self._ssc + 1) % (1 << (8 * self.block))
        return self.ssc

    def _mac(self, data: bytes) -> bytes:
        if self.aes:
            return _crypto.aes_cmac(self.ks_mac, _crypto.pad(data, 16))
        return _crypto.retail_mac(self.ks_mac, data)

    def _encrypt(self, data: bytes) -> bytes:
        if self.aes:
            iv = _crypto.aes_cbc(self.ks_enc, self.ssc)  # AES-ECB of the SSC: one block, zero IV
            return _crypto.aes_cbc(self.ks_enc, _crypto.pad(data, 16), iv)
        return _crypto.encrypt(self.ks_enc, _crypto.pad(data))

    def _decrypt(self, data: bytes) -> bytes:
        if self.aes:
            iv = _crypto.aes_cbc(self.ks_enc, self.ssc)
            return _crypto.unpad(_crypto.aes_cbc(self.ks_enc, data, iv, decrypt=True), 16)
        return _crypto.unpad(_crypto.decrypt(self.ks_enc, data))

    def protect(self, apdu: bytes) -> bytes:
        """The protected form of a plain short command APDU (CLA with the SM bits set)."""
        header, data, le = _split_command(apdu)
        header = bytes([header[0] | 0x0C]) + header[1:]
        objects = b""
        ssc = self._next()
        if data:
            body = b"\x01" + self._encrypt(data)
            objects += b"\x87" + ber_length(len(body)) + body
        if le is not None:
            objects += b"\x97\x01" + bytes([le & 0xFF])
        mac = self._mac(ssc + _crypto.pad(header, self.block) + objects)
        objects += b"\x8e\x08" + mac
        return header + bytes([len(objects)]) + objects + b"\x00"

    def unprotect(self, rapdu: bytes) -> tuple[bytes, int]:
        """Check a protected response APDU; its plain data and status word.

        A bare status word (the chip's answer to a broken SM command) comes back with no data; the
        session is over then (the chip has dropped its keys)."""
        if len(rapdu) < 2:
            raise SecureMessagingError("response shorter than a status word")
        if len(rapdu) == 2:
            return b"", int.from_bytes(rapdu, "big")
        ssc = self._next()
        objects = _objects(rapdu[:-2])
        do87, do99, do8e = objects.get(0x87), objects.get(0x99), objects.get(0x8E)
        if do99 is None or len(do99) != 2 or do8e is None:
            raise SecureMessagingError("protected response lacks DO'99' or DO'8E'")
        covered = b""
        if do87 is not None:
            covered += b"\x87" + ber_length(len(do87)) + do87
        covered += b"\x99\x02" + do99
        if not hmac.compare_digest(self._mac(ssc + covered), do8e):
            raise SecureMessagingError("response MAC does not verify")
        data = b""
        if do87 is not None:
            if not do87 or do87[0] != 0x01:
                raise SecureMessagingError("DO'87' without padding indicator 01")
            try:
                data = self._decrypt(do87[1:])
            except ValueError as exc:
                raise SecureMessagingError(f"DO'87' does not decrypt: {exc}") from exc
        return data, int.from_bytes(do99, "big")
