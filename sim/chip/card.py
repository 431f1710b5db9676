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

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from . import _crypto, _der, _pace
from .files import ChipFiles, check_digit

AID = bytes.fromhex("A0000002471001")
CARD_ACCESS = 0x011C
ATR = bytes.fromhex("3B8880014D524544303031008E")  # a contactless card's ATR as a PC/SC reader builds it

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
SW_WRONG_LENGTH = 0x6700
SW_SECURITY = 0x6982
SW_AUTH_FAILED = 0x6300
SW_SM_MISSING = 0x6987
SW_SM_WRONG = 0x6988
SW_WRONG_DATA = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_INS = 0x6D00
SW_CLA = 0x6E00


@dataclass
class _Session:
    """3DES (after BAC) or AES (after PACE) secure messaging, the card's side."""

    ks_enc: bytes
    ks_mac: bytes
    ssc: int
    aes: bool = False

    @property
    def block(self) -> int:
        return 16 if self.aes else 8

    def bump(self) -> bytes:
        self.ssc = (self.ssc + 1) % (1 << (8 * self.block))
        return self.ssc.to_bytes(self.block, "big")

    def mac(self, data: bytes) -> bytes:
        if self.aes:
            return _pace.cmac8(self.ks_mac, _iso_pad(data, 16))
        return _crypto.mac(self.ks_mac, data)

    def encrypt(self, data: bytes) -> bytes:
        if self.aes:
            iv = _pace.aes(self.ks_enc, self.ssc.to_bytes(16, "big"))
            return _pace.aes(self.ks_enc, _iso_pad(data, 16), iv)
        return _crypto.des3(self.ks_enc, _crypto.iso_pad(data))

    def decrypt(self, data: bytes) -> bytes:
        if self.aes:
            iv = _pace.aes(self.ks_enc, self.ssc.to_bytes(16, "big"))
            return _crypto.iso_unpad(_pace.aes(self.ks_enc, data, iv, decrypt=True), 16)
        return _crypto.iso_unpad(_crypto.des3(self.ks_enc, data, decrypt=True))


def _iso_pad(data: bytes, block: int) -> bytes:
    data += b"\x80"
    return data + bytes(-len(data) % block)


@dataclass
class _PaceRun:
    """The card's state between the GENERAL AUTHENTICATE steps of one PACE run."""

    password: bytes
    step: int = 0
    nonce: int = 0
    generator: tuple[int, int] | None = None
    public: bytes = b""  # the card's ephemeral public key
    terminal: bytes = b""  # the terminal's
    keys: tuple[bytes, bytes] | None = None


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
        # PACE passwords: 1 the MRZ (SHA-1 of its information), 2 the CAN (last 6 digits of the ID)
        self._passwords = {1: hashlib.sha1(info.encode("ascii")).digest(), 2: doc[-6:].encode("ascii")}
        self.commands = 0  # APDUs answered since power on, for the round-trip budget
        self.power_on()

    def power_on(self) -> None:
        """Power on or reset: nothing selected, no session."""
        self._app = False
        self._current: int | None = None
        self._challenge: bytes | None = None
        self._session: _Session | None = None
        self._pace: _PaceRun | None = None
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
            body += _do(0x87, b"\x01" + session.encrypt(data))
        body += _do(0x99, sw.to_bytes(2, "big"))
        body += _do(0x8E, session.mac(ssc + body))
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
        expected = session.mac(ssc + _iso_pad(apdu[:4], session.block) + covered)
        if not hmac.compare_digest(expected, objects.get(0x8E, b"")):
            raise ValueError("command MAC")
        plain = header
        if 0x87 in objects:
            data = session.decrypt(objects[0x87][1:])
            plain += bytes([len(data)]) + data
        if 0x97 in objects:
            plain += objects[0x97][-1:]
        return plain

    # -- commands -----------------------------------------------------------------------------
    def _plain(self, apdu: bytes) -> tuple[bytes, int]:
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        body = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        le = (apdu[4] or 256) if len(apdu) == 5 else (apdu[-1] or 256) if len(apdu) > 5 + apdu[4] else 0
        if apdu[0] & 0xE3:  # 0x10, command chaining, is allowed (PACE's GENERAL AUTHENTICATE)
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
        if ins == 0x88 and self._session is not None and self.files.aa_key is not None:
            return self._internal_authenticate(body)
        if ins == 0x22 and (p1, p2) == (0xC1, 0xA4) and CARD_ACCESS in self.files.files:
            return b"", self._set_pace(body)
        if ins == 0x86 and self._pace is not None:
            return self._general_authenticate(body)
        return b"", SW_INS

    def _select(self, p1: int, body: bytes) -> int:
        if p1 == 0x04:
            self._app = body == AID
            self._current = None
            return SW_OK if self._app else SW_NOT_FOUND
        if p1 == 0x02 and len(body) == 2:
            fid = int.from_bytes(body, "big")
            if not (self._app or fid == CARD_ACCESS) or fid not in self.files.files:
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

    def _internal_authenticate(self, challenge: bytes) -> tuple[bytes, int]:
        """Active Authentication: ECDSA-plain-SHA256 (r || s) of the terminal's 8-byte challenge."""
        key = self.files.aa_key
        if key is None or len(challenge) != 8:
            return b"", SW_WRONG_DATA
        r, s = decode_dss_signature(key.sign(challenge, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big"), SW_OK

    # -- PACE ---------------------------------------------------------------------------------------
    def _set_pace(self, body: bytes) -> int:
        try:
            objects = dict(_objects(body))
        except (ValueError, IndexError):
            return SW_WRONG_DATA
        if objects.get(0x80) != _der.oid(_pace.OID)[2:] or objects.get(0x84, b"\x0d") != b"\x0d":
            return SW_WRONG_DATA
        password = self._passwords.get(int.from_bytes(objects.get(0x83, b"\x00"), "big"))
        if password is None:
            return SW_WRONG_DATA
        self._session, self._pace = None, _PaceRun(password)
        return SW_OK

    def _general_authenticate(self, body: bytes) -> tuple[bytes, int]:
        run = self._pace
        assert run is not None
        try:
            ((tag, inner),) = _objects(body)
            items = dict(_objects(inner)) if tag == 0x7C else {}
            return self._pace_step(run, items)
        except (ValueError, IndexError, KeyError):
            self._pace = None
            return b"", SW_WRONG_DATA

    def _scalar(self) -> int:
        return 1 + int.from_bytes(self._random(40), "big") % (_pace.N - 1)

    def _pace_step(self, run: _PaceRun, items: dict[int, bytes]) -> tuple[bytes, int]:
        run.step += 1
        if run.step == 1:  # the encrypted nonce
            nonce = self._random(16)
            run.nonce = int.from_bytes(nonce, "big")
            z = _pace.aes(_pace.kdf(run.password, 3), nonce)
            return _do(0x7C, _do(0x80, z)), SW_OK
        if run.step == 2:  # generic mapping: G~ = s*G + SK*PK_terminal
            secret = self._scalar()
            shared = _pace.multiply(secret, _pace.decode(items[0x81]))
            run.generator = _pace.plus(_pace.multiply(run.nonce, _pace.G), shared)
            return _do(0x7C, _do(0x82, _pace.encode(_pace.multiply(secret, _pace.G)))), SW_OK
        if run.step == 3 and run.generator is not None:  # key agreement on G~
            secret = self._scalar()
            run.terminal = items[0x83]
            run.public = _pace.encode(_pace.multiply(secret, run.generator))
            x = _pace.multiply(secret, _pace.decode(run.terminal))[0].to_bytes(32, "big")
            run.keys = (_pace.kdf(x, 1), _pace.kdf(x, 2))
            return _do(0x7C, _do(0x84, run.public)), SW_OK
        if run.step == 4 and run.keys is not None:  # mutual authentication
            self._pace = None
            if not hmac.compare_digest(items[0x85], _pace.token(run.keys[1], run.public)):
                return b"", SW_AUTH_FAILED
            self._session = _Session(*run.keys, 0, aes=True)
            return _do(0x7C, _do(0x86, _pace.token(run.keys[1], run.terminal))), SW_OK
        self._pace = None
        return b"", SW_WRONG_DATA

    # -- files ---------------------------------------------------------------------------------------
    def _read_binary(self, p1: int, p2: int, le: int) -> tuple[bytes, int]:
        target: int | None
        if p1 & 0x80:
            fid = 0x0100 | (p1 & 0x1F)
            if not (self._app or fid == CARD_ACCESS) or fid not in self.files.files:
                return b"", SW_NOT_FOUND
            target, offset = fid, p2
        else:
            target, offset = self._current, (p1 << 8) | p2
        if target is None:
            return b"", SW_NOT_FOUND
        if self._session is None and target != CARD_ACCESS:
            return b"", SW_SECURITY
        self._current = target
        if le > self.max_le:
            return b"", SW_WRONG_LENGTH
        data = self.files.files[self._current]
        if offset >= len(data):
            return b"", SW_WRONG_P1P2
        chunk = data[offset : offset + le]
        return chunk, SW_OK if len(chunk) == le else SW_END_OF_FILE
