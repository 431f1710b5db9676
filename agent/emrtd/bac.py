"""Basic access control (ICAO Doc 9303 Part 11, 4.3 and 9.7): the keys from the MRZ information, the
terminal's side of mutual authentication, and the session keys and send sequence counter.

The CCCD's MRZ information: the document number is the last 9 digits of the 12-digit personal ID
(``cccd_document_number``), the dates of birth and expiry ``YYMMDD``, each followed by its check digit.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from . import _crypto
from .errors import AccessDeniedError, ChipDataError
from .sm import SecureMessaging

_WEIGHTS = (7, 3, 1)


def _value(ch: str) -> int:
    if ch.isdigit():
        return int(ch)
    if "A" <= ch <= "Z":
        return ord(ch) - ord("A") + 10
    if ch == "<":
        return 0
    raise ValueError(f"not an MRZ character: {ch!r}")


def check_digit(field: str) -> str:
    """The ICAO 9303 Part 3 check digit of an MRZ field (weights 7, 3, 1; letters A=10.., '<'=0)."""
    return str(sum(_value(ch) * _WEIGHTS[i % 3] for i, ch in enumerate(field)) % 10)


def cccd_document_number(personal_id: str) -> str:
    """The chip's document number of a CCCD: the last 9 digits of the 12-digit personal ID."""
    if len(personal_id) != 12 or not personal_id.isdigit():
        raise ValueError("a personal ID has 12 digits")
    return personal_id[3:]


def _is_yymmdd(value: str) -> bool:
    return len(value) == 6 and value.isdigit() and 1 <= int(value[2:4]) <= 12 and 1 <= int(value[4:]) <= 31


def mrz_information(document_number: str, birth: str, expiry: str) -> str:
    """Document number, DOB and expiry, each with its check digit: the input of BAC key derivation.

    A document number shorter than 9 characters is filled with '<'; longer ones (9303 Part 4's
    extended numbers) are used whole. A card without expiry (issued at 58 or later) is assumed to
    fill the field with '<' as 9303 Part 3 does for an absent date: not yet checked on a real chip."""
    document_number = document_number.upper().ljust(9, "<")
    for ch in document_number:
        _value(ch)
    if not (_is_yymmdd(birth) and (_is_yymmdd(expiry) or expiry == "<<<<<<")):
        raise ValueError("birth and expiry dates are YYMMDD (expiry '<<<<<<' for a card without one)")
    return "".join(f + check_digit(f) for f in (document_number, birth, expiry))


@dataclass(frozen=True)
class AccessKeys:
    """The document basic access keys: K_seed, K_enc and K_mac (9.7.2)."""

    seed: bytes
    k_enc: bytes
    k_mac: bytes

    @classmethod
    def from_mrz(cls, document_number: str, birth: str, expiry: str) -> AccessKeys:
        info = mrz_information(document_number, birth, expiry)
        seed = hashlib.sha1(info.encode("ascii")).digest()[:16]
        return cls(seed, _crypto.derive_key(seed, _crypto.ENC), _crypto.derive_key(seed, _crypto.MAC))

    def __repr__(self) -> str:  # keys never in logs
        return "AccessKeys(...)"


@dataclass(frozen=True)
class Challenge:
    """The terminal's side of one mutual authentication: RND.ICC from GET CHALLENGE, RND.IFD and K.IFD
    the terminal's random numbers (8 and 16 bytes)."""

    rnd_icc: bytes
    rnd_ifd: bytes
    k_ifd: bytes

    def command_data(self, keys: AccessKeys) -> bytes:
        """E.IFD || M.IFD, the data of EXTERNAL AUTHENTICATE."""
        e_ifd = _crypto.encrypt(keys.k_enc, self.rnd_ifd + self.rnd_icc + self.k_ifd)
        return e_ifd + _crypto.retail_mac(keys.k_mac, e_ifd)

    def session(self, keys: AccessKeys, response: bytes) -> SecureMessaging:
        """Check the chip's E.ICC || M.ICC and derive the session: KS_enc, KS_mac and the SSC."""
        if len(response) != 40:
            raise ChipDataError("EXTERNAL AUTHENTICATE answer is not 40 bytes")
        e_icc, m_icc = response[:32], response[32:]
        if not hmac.compare_digest(_crypto.retail_mac(keys.k_mac, e_icc), m_icc):
            raise AccessDeniedError("the chip's authentication does not verify: wrong MRZ information")
        plain = _crypto.decrypt(keys.k_enc, e_icc)
        if plain[:8] != self.rnd_icc or plain[8:16] != self.rnd_ifd:
            raise AccessDeniedError("the chip's authentication does not return our challenge")
        seed = bytes(a ^ b for a, b in zip(self.k_ifd, plain[16:], strict=True))
        ssc = self.rnd_icc[4:] + self.rnd_ifd[4:]
        return SecureMessaging(
            _crypto.derive_key(seed, _crypto.ENC), _crypto.derive_key(seed, _crypto.MAC), ssc
        )
