"""Active Authentication (ICAO Doc 9303 Part 11, 6.1): the chip proves it holds the private key of
DG15 by signing the terminal's random challenge (INTERNAL AUTHENTICATE). A cloned chip -- its files
copied, passive authentication passing -- fails here.

ECDSA keys: the signature algorithm is named in DG14's ActiveAuthenticationInfo (ECDSA plain
signatures r || s, BSI TR-03111). RSA keys sign with ISO/IEC 9796-2 scheme 1 with message recovery,
which is not implemented: such chips come back ``unsupported`` (never ``passed``).
"""

from __future__ import annotations

import enum

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from . import tlv
from .errors import ChipDataError

AA_INFO = "2.23.136.1.1.5"
_ECDSA_PLAIN: dict[str, type[hashes.HashAlgorithm]] = {
    "0.4.0.127.0.7.1.1.4.1.1": hashes.SHA1,
    "0.4.0.127.0.7.1.1.4.1.2": hashes.SHA224,
    "0.4.0.127.0.7.1.1.4.1.3": hashes.SHA256,
    "0.4.0.127.0.7.1.1.4.1.4": hashes.SHA384,
    "0.4.0.127.0.7.1.1.4.1.5": hashes.SHA512,
}


class ActiveOutcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


def signature_algorithm(dg14: bytes | None) -> str | None:
    """The ECDSA signature algorithm of DG14's ActiveAuthenticationInfo, if any."""
    if dg14 is None:
        return None
    for info in tlv.decode_one(dg14, 0x6E).child(0x31).children():
        parts = info.children() if info.tag == 0x30 else []
        if len(parts) >= 3 and parts[0].tag == 0x06 and tlv.oid(parts[0]) == AA_INFO and parts[2].tag == 0x06:
            return tlv.oid(parts[2])
    return None


def public_key(dg15: bytes) -> object:
    try:
        return serialization.load_der_public_key(tlv.decode_one(dg15, 0x6F).value)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ChipDataError("DG15: the Active Authentication key does not parse") from exc


def verify(dg15: bytes, dg14: bytes | None, challenge: bytes, response: bytes) -> ActiveOutcome:
    """Check the chip's answer to INTERNAL AUTHENTICATE with ``challenge``."""
    key = public_key(dg15)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return ActiveOutcome.UNSUPPORTED
    algorithm = _ECDSA_PLAIN.get(signature_algorithm(dg14) or "")
    if algorithm is None or not response or len(response) % 2:
        return ActiveOutcome.FAILED if algorithm else ActiveOutcome.UNSUPPORTED
    half = len(response) // 2
    signature = encode_dss_signature(
        int.from_bytes(response[:half], "big"), int.from_bytes(response[half:], "big")
    )
    try:
        key.verify(signature, challenge, ec.ECDSA(algorithm()))
    except InvalidSignature:
        return ActiveOutcome.FAILED
    return ActiveOutcome.PASSED
