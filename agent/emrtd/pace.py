"""PACE (ICAO Doc 9303 Part 11, 4.4): the terminal's side of PACE-ECDH-GM-AES-CBC-CMAC-128, the
protocol CCCD chips announce in EF.CardAccess (on brainpoolP256r1, parameter ID 13).

The password is the CAN (for a CCCD: the last 6 digits of the personal ID) or the MRZ information.
Four GENERAL AUTHENTICATE commands: the chip's encrypted nonce (decrypted with K_pi), the generic
mapping (G~ = s*G + H), the ephemeral key agreement on G~, and the authentication tokens. The
result is an AES secure messaging session with SSC 0.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from . import _crypto, tlv
from ._ec import CURVES, Curve
from .bac import mrz_information
from .errors import AccessDeniedError, CardError, ChipDataError
from .sm import SecureMessaging

PACE_PREFIX = "0.4.0.127.0.7.2.2.4."
ECDH_GM_AES_128 = "0.4.0.127.0.7.2.2.4.2.2"
MRZ, CAN = 1, 2  # password references of MSE:Set AT
Exchange = Callable[[bytes], tuple[bytes, int]]  # a plain command -> (data, status word)


@dataclass(frozen=True)
class PaceInfo:
    oid: str
    version: int
    parameter_id: int | None


def parse_card_access(data: bytes) -> list[PaceInfo]:
    """The PACEInfos of EF.CardAccess (a SET of SecurityInfos); other SecurityInfos are skipped."""
    out = []
    for info in tlv.decode_one(data, 0x31).children():
        parts = info.children() if info.tag == 0x30 else []
        if len(parts) < 2 or parts[0].tag != 0x06:
            continue
        oid = tlv.oid(parts[0])
        if oid.startswith(PACE_PREFIX) and parts[1].tag == 0x02:
            param = tlv.integer(parts[2]) if len(parts) > 2 and parts[2].tag == 0x02 else None
            out.append(PaceInfo(oid, tlv.integer(parts[1]), param))
    return out


def mrz_password(document_number: str, birth: str, expiry: str) -> bytes:
    """The MRZ password: SHA-1 of the MRZ information (4.4.1)."""
    return hashlib.sha1(mrz_information(document_number, birth, expiry).encode("ascii")).digest()


def can_password(can: str) -> bytes:
    if not (can.isdigit() and len(can) == 6):
        raise ValueError("a CAN has 6 digits")
    return can.encode("ascii")


def _oid_bytes(oid: str) -> bytes:
    arcs = [int(a) for a in oid.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.insert(0, 0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(chunk)
    return bytes(out)


def _dynamic(data: bytes, tag: int) -> bytes:
    """The value of ``tag`` inside a GENERAL AUTHENTICATE answer's dynamic authentication data 7C."""
    return tlv.decode_one(data, 0x7C).child(tag).value


def _general_authenticate(exchange: Exchange, tag: int, value: bytes, *, last: bool = False) -> bytes:
    body = tlv.encode(0x7C, tlv.encode(tag, value) if tag else b"")
    cla = 0x00 if last else 0x10  # command chaining on all but the last
    data, sw = exchange(bytes([cla, 0x86, 0x00, 0x00, len(body)]) + body + b"\x00")
    if sw != 0x9000:
        if last:
            raise AccessDeniedError(f"the chip refused PACE ({sw:04X}): check the CAN")
        raise CardError("PACE GENERAL AUTHENTICATE", sw)
    return data


def auth_token(ks_mac: bytes, oid: str, public: bytes) -> bytes:
    """T = CMAC(KS_mac, 7F49 { 06 oid, 86 public key }), 8 bytes (4.4.3.4)."""
    return _crypto.aes_cmac(
        ks_mac, tlv.encode(0x7F49, tlv.encode(0x06, _oid_bytes(oid)) + tlv.encode(0x86, public))
    )


def run(
    exchange: Exchange,
    password: bytes,
    reference: int,
    info: PaceInfo,
    *,
    scalar: Callable[[Curve], int] | None = None,
) -> SecureMessaging:
    """PACE over the plain ``exchange``; the AES secure messaging session it opens.

    ``scalar(curve)`` gives the terminal's ephemeral private keys (mapping, then agreement);
    random by default, fixed in tests that replay 9303's worked example."""
    if info.oid != ECDH_GM_AES_128 or info.parameter_id not in CURVES:
        raise ChipDataError(f"PACE {info.oid} with parameters {info.parameter_id} is not supported")
    curve = CURVES[info.parameter_id]
    pick = scalar or (lambda c: 1 + secrets.randbelow(c.n - 1))
    oid = _oid_bytes(info.oid)
    mse = (
        tlv.encode(0x80, oid)
        + tlv.encode(0x83, bytes([reference]))
        + tlv.encode(0x84, bytes([info.parameter_id]))
    )
    _, sw = exchange(b"\x00\x22\xc1\xa4" + bytes([len(mse)]) + mse)
    if sw != 0x9000:
        raise CardError("PACE MSE:Set AT", sw)
    k_pi = _crypto.aes_kdf(password, _crypto.PACE)
    z = _dynamic(_general_authenticate(exchange, 0, b""), 0x80)
    s = int.from_bytes(_crypto.aes_cbc(k_pi, z, decrypt=True), "big")
    try:
        sk_map = pick(curve)
        chip_map = curve.decode(
            _dynamic(_general_authenticate(exchange, 0x81, curve.encode(curve.mul(sk_map, curve.g))), 0x82)
        )
        mapped = curve.add(curve.mul(s, curve.g), curve.mul(sk_map, chip_map))
        sk_eph = pick(curve)
        ours = curve.encode(curve.mul(sk_eph, mapped))
        theirs = _dynamic(_general_authenticate(exchange, 0x83, ours), 0x84)
        if hmac.compare_digest(theirs, ours):
            raise AccessDeniedError("PACE: the chip echoed our key")
        shared = curve.mul(sk_eph, curve.decode(theirs))
    except ValueError as exc:
        raise ChipDataError(f"PACE: {exc}") from exc
    if shared is None:
        raise AccessDeniedError("PACE: degenerate key agreement")
    secret = shared[0].to_bytes(curve.size, "big")
    ks_enc, ks_mac = _crypto.aes_kdf(secret, 1), _crypto.aes_kdf(secret, 2)
    token = _dynamic(
        _general_authenticate(exchange, 0x85, auth_token(ks_mac, info.oid, theirs), last=True), 0x86
    )
    if not hmac.compare_digest(token, auth_token(ks_mac, info.oid, ours)):
        raise AccessDeniedError("PACE: the chip's authentication token does not verify")
    return SecureMessaging(ks_enc, ks_mac, bytes(16), aes=True)
