"""The card's side of BAC's primitives, written apart from the agent's on purpose (``sim`` never
imports ``agent``): a second implementation of 9303 Part 11, so each checks the other."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes


def des3(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    """3DES-CBC with a zero IV; a 16-byte key is K1 K2 K1, an 8-byte one single DES."""
    full = (key * 3)[:24] if len(key) == 8 else key + key[:8]
    cipher = Cipher(TripleDES(full), modes.CBC(b"\x00" * 8))
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def iso_pad(data: bytes) -> bytes:
    n = 8 - len(data) % 8
    return data + b"\x80" + b"\x00" * (n - 1)


def iso_unpad(data: bytes, block: int = 8) -> bytes:
    i = data.rindex(b"\x80")  # ValueError when absent
    if any(data[i + 1 :]) or len(data) - i > block:
        raise ValueError("bad padding")
    return data[:i]


def mac(key: bytes, data: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (DES, padding method 2)."""
    h = b"\x00" * 8
    blocks = iso_pad(data)
    for i in range(0, len(blocks), 8):
        h = des3(key[:8], bytes(a ^ b for a, b in zip(h, blocks[i : i + 8], strict=True)))
    return des3(key[:8], des3(key[8:16], h, decrypt=True))


def kdf(seed: bytes, counter: int) -> bytes:
    raw = hashlib.sha1(seed + bytes([0, 0, 0, counter])).digest()[:16]
    return bytes(b & 0xFE | (1 - bin(b & 0xFE).count("1") % 2) for b in raw)
