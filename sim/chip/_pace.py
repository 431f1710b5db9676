"""The card's side of PACE-ECDH-GM-AES-CBC-CMAC-128 on brainpoolP256r1 (ICAO Doc 9303 Part 11, 4.4),
written apart from the agent's (``sim`` never imports ``agent``): its own curve arithmetic, in
Jacobian coordinates where the agent's is affine, so a shared mistake is unlikely."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _der

P = 0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377
A = 0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9
B = 0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6
N = 0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7
G = (
    0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
    0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
)
OID = "0.4.0.127.0.7.2.2.4.2.2"  # id-PACE-ECDH-GM-AES-CBC-CMAC-128
PARAMETER_ID = 13

Jacobian = tuple[int, int, int]  # (X, Y, Z): x = X/Z^2, y = Y/Z^3; Z = 0 is infinity


def _double(pt: Jacobian) -> Jacobian:
    x, y, z = pt
    if z == 0 or y == 0:
        return (1, 1, 0)
    yy = y * y % P
    s = 4 * x * yy % P
    m = (3 * x * x + A * pow(z, 4, P)) % P
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add(p1: Jacobian, p2: Jacobian) -> Jacobian:
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    u1, u2 = x1 * z2 * z2 % P, x2 * z1 * z1 % P
    s1, s2 = y1 * pow(z2, 3, P) % P, y2 * pow(z1, 3, P) % P
    if u1 == u2:
        return _double(p1) if s1 == s2 else (1, 1, 0)
    h, r = (u2 - u1) % P, (s2 - s1) % P
    hh = h * h % P
    x3 = (r * r - hh * h - 2 * u1 * hh) % P
    return x3, (r * (u1 * hh - x3) - s1 * hh * h) % P, h * z1 * z2 % P


def multiply(k: int, point: tuple[int, int]) -> tuple[int, int]:
    acc: Jacobian = (1, 1, 0)
    for bit in bin(k)[2:]:
        acc = _double(acc)
        if bit == "1":
            acc = _add(acc, (*point, 1))
    return affine(acc)


def affine(pt: Jacobian) -> tuple[int, int]:
    x, y, z = pt
    if z == 0:
        raise ValueError("the point at infinity")
    zi = pow(z, -1, P)
    return x * zi * zi % P, y * zi * zi * zi % P


def plus(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int]:
    return affine(_add((*p1, 1), (*p2, 1)))


def encode(pt: tuple[int, int]) -> bytes:
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def decode(data: bytes) -> tuple[int, int]:
    if len(data) != 65 or data[0] != 4:
        raise ValueError("not an uncompressed point")
    x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
    if (y * y - x**3 - A * x - B) % P:
        raise ValueError("not on the curve")
    return x, y


def kdf(secret: bytes, counter: int) -> bytes:
    return hashlib.sha1(secret + bytes([0, 0, 0, counter])).digest()[:16]


def aes(key: bytes, data: bytes, iv: bytes = b"\x00" * 16, *, decrypt: bool = False) -> bytes:
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    ctx = c.decryptor() if decrypt else c.encryptor()
    return ctx.update(data) + ctx.finalize()


def cmac8(key: bytes, data: bytes) -> bytes:
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()[:8]


def token(ks_mac: bytes, public: bytes) -> bytes:
    return cmac8(ks_mac, _der.tlv(0x7F49, _der.oid(OID), _der.tlv(0x86, public)))


def card_access() -> bytes:
    """EF.CardAccess offering this PACE (version 2, brainpoolP256r1)."""
    return _der.set_of(_der.seq(_der.oid(OID), _der.integer(2), _der.integer(PARAMETER_ID)))
