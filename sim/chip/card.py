"""The card side of a CCCD chip: ISO 7816-4 commands, BAC and secure messaging, over one seam,
``VirtualChip.transmit(apdu) -> response``, that unit tests call in-process and ``vpcd.py`` serves
to pcscd.

Commands: SELECT the eMRTD application by AID (``00 A4 04 0C``), SELECT EF by file identifier
(``00 A4 02 0C``), GET CHALLENGE, EXTERNAL AUTHENTICATE (BAC), READ BINARY by offset or by short
EF identifier (P1 = 80 | SFI, which also selects the file). Selecting the MF is answered 6D00, as
CCCD chips do. Files need BAC (6982 before it); after BAC every command must be protected, and a
command that fails its MAC ends the session (6988), as 9303 Part 11, 9.8.4 says.

``max_le`` mimics a chip with a small buffer: READ BINARY asking for more is answered 6700.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from . import _crypto
from .files import ChipFiles, check_digit

AID = bytes.fromhex("A0000002471001")
ATR = bytes.fromhex("3B8880014D524544303031008E")  # a contactless card's ATR as a PC/SC reader builds it

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
SW_WRONG_LENGTH = 0x6700
SW_SECURITY = 0x6982
SW_AUTH_FAILED = 0x6300
SW_SM_MISSING = 0x6987
SW_SM_WRONG = 0x6988
SW_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_INS = 0x6D00
SW_CLA = 0x6E00


@dataclass
class _Session:
    ks_enc: bytes
    ks_mac: bytes
    ssc: int

    def bump(self) -> bytes:
        self.ssc = (self.ssc + 1) & (1 << 64) - 1
        return self.ssc.to_bytes(8, "big")


def _objects(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            size = n & 0x7F
            n = int.from_bytes(data[i : i + size], "big")
            i += size
        if i + n > len(data):
            raise ValueError("torn data object")
        out.append((tag, data[i : i + n]))
        i += n
    return out


def _do(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big")
    return bytes([tag]) + length + value


class VirtualChip:
    """One chip. ``random(n)`` gives RND.ICC and K.ICC (``os.urandom`` by default)."""

    def __init__(
        self, files: ChipFiles, *, max_le: int = 0xE0, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.files = files
        self.max_le = max_le
        self._random = random
        doc, birth, expiry = files.bac
        info = "".join(f + check_digit(f) for f in (doc.ljust(9, "<"), birth, expiry))
        seed = hashlib.sha1(info.encode("ascii")).digest()[:16]
        self._k_enc, self._k_mac = _crypto.kdf(seed, 1), _crypto.kdf(seed, 2)
        self.commands = 0  # APDUs answered since power on, for the round-trip budget
        self.power_on()

    def power_on(self) -> None:
        """Power on or reset: nothing selected, no session."""
        self._app = False
        self._current: int | None = None
        self._challenge: bytes | None = None
        self._session: _Session | None = None
        self.commands = 0

    # -- the seam -----------------------------------------------------------------------------
    def transmit(self, apdu: bytes) -> bytes:
        self.commands += 1
        if len(apdu) < 4:
            return SW_WRONG_LENGTH.to_bytes(2, "big")
        if self._session is not None:
            return self._protected(apdu)
        if apdu[0] & 0x0C:
            return SW_SM_MISSING.to_bytes(2, "big")
        data, sw = self._plain(apdu)
        return data + sw.to_bytes(2, "big")

    # -- secure messaging -----------------------------------------------------------------------
    def _protected(self, apdu: bytes) -> bytes:
        session = self._session
        assert session is not None
        try:
            plain = self._unwrap(session, apdu)
        except ValueError:
            self._session = None  # 9303 Part 11, 9.8.4: the chip drops the session keys
            return SW_SM_WRONG.to_bytes(2, "big")
        data, sw = self._plain(plain)
        ssc = session.bump()
        body = b""
        if data:
            body += _do(0x87, b"\x01" + _crypto.des3(session.ks_enc, _crypto.iso_pad(data)))
        body += _do(0x99, sw.to_bytes(2, "big"))
        body += _do(0x8E, _crypto.mac(session.ks_mac, ssc + body))
        return body + sw.to_bytes(2, "big")

    def _unwrap(self, session: _Session, apdu: bytes) -> bytes:
        """The plain APDU inside a protected one; ValueError when it does not verify."""
        if apdu[0] & 0x0C != 0x0C or len(apdu) < 6:
            raise ValueError("not a protected command")
        header = bytes([apdu[0] & ~0x0C & 0xFF]) + apdu[1:4]
        lc = apdu[4]
        objects = dict(_objects(apdu[5 : 5 + lc]))
        ssc = session.bump()
        covered = b"".join(_do(t, objects[t]) for t in (0x87, 0x97) if t in objects)
        expected = _crypto.mac(session.ks_mac, ssc + _crypto.iso_pad(apdu[:4]) + covered)
        if not hmac.compare_digest(expected, objects.get(0x8E, b"")):
            raise ValueError("command MAC")
        plain = header
        if 0x87 in objects:
            data = _crypto.iso_unpad(_crypto.des3(session.ks_enc, objects[0x87][1:], decrypt=True))
            plain += bytes([len(data)]) + data
        if 0x97 in objects:
            plain += objects[0x97][-1:]
        return plain

    # -- commands -----------------------------------------------------------------------------
    def _plain(self, apdu: bytes) -> tuple[bytes, int]:
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        body = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        le = (apdu[4] or 256) if len(apdu) == 5 else (apdu[-1] or 256) if len(apdu) > 5 + apdu[4] else 0
        if apdu[0] & 0xF3:
            return b"", SW_CLA
        if ins == 0xA4:
            return b"", self._select(p1, body)
        if ins == 0x84:
            self._challenge = self._random(8)
            return self._challenge, SW_OK
        if ins == 0x82:
            return self._external_authenticate(body)
        if ins == 0xB0:
            return self._read_binary(p1, p2, le)
        return b"", SW_INS

    def _select(self, p1: int, body: bytes) -> int:
        if p1 == 0x04:
            self._app = body == AID
            self._current = None
            return SW_OK if self._app else SW_NOT_FOUND
        if p1 == 0x02 and len(body) == 2:
            fid = int.from_bytes(body, "big")
            if not self._app or fid not in self.files.files:
                return SW_NOT_FOUND
            self._current = fid
            return SW_OK
        return SW_INS  # the MF and other selections: CCCD chips answer 6D00

    def _external_authenticate(self, body: bytes) -> tuple[bytes, int]:
        challenge, self._challenge = self._challenge, None
        if challenge is None or len(body) != 40:
            return b"", SW_SECURITY
        e_ifd, m_ifd = body[:32], body[32:]
        if not hmac.compare_digest(_crypto.mac(self._k_mac, e_ifd), m_ifd):
            return b"", SW_AUTH_FAILED
        s = _crypto.des3(self._k_enc, e_ifd, decrypt=True)
        rnd_ifd, rnd_icc, k_ifd = s[:8], s[8:16], s[16:]
        if rnd_icc != challenge:
            return b"", SW_AUTH_FAILED
        k_icc = self._random(16)
        e_icc = _crypto.des3(self._k_enc, rnd_icc + rnd_ifd + k_icc)
        seed = bytes(a ^ b for a, b in zip(k_ifd, k_icc, strict=True))
        ssc = int.from_bytes(rnd_icc[4:] + rnd_ifd[4:], "big")
        self._session = _Session(_crypto.kdf(seed, 1), _crypto.kdf(seed, 2), ssc)
        return e_icc + _crypto.mac(self._k_mac, e_icc), SW_OK

    def _read_binary(self, p1: int, p2: int, le: int) -> tuple[bytes, int]:
        if self._session is None:
            return b"", SW_SECURITY
        if p1 & 0x80:
            fid = 0x0100 | (p1 & 0x1F)
            if not self._app or fid not in self.files.files:
                return b"", SW_NOT_FOUND
            self._current, offset = fid, p2
        else:
            offset = (p1 << 8) | p2
        if self._current is None:
            return b"", SW_NOT_FOUND
        if le > self.max_le:
            return b"", SW_WRONG_LENGTH
        data = self.files.files[self._current]
        if offset >= len(data):
            return b"", SW_WRONG_P1P2
        chunk = data[offset : offset + le]
        return chunk, SW_OK if len(chunk) == le else SW_END_OF_FILE
