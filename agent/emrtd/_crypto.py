"""The symmetric primitives of BAC, PACE and secure messaging (ICAO Doc 9303 Part 11, 9.7 and 9.8).

Two-key 3DES in CBC mode with a zero IV, ISO/IEC 9797-1 padding method 2 and MAC algorithm 3 (the
"retail MAC": single DES CBC, then a 3DES step on the last block), and the key derivation function
that turns a seed into 3DES keys with their DES parity bits set.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 8
ENC, MAC = 1, 2  # the counter of the key derivation function: KDF(seed, 1) is K_enc, KDF(seed, 2) K_mac


def with_parity(key: bytes) -> bytes:
    """Each byte's low bit set so that the byte has odd parity, as DES keys have."""
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) & 1) for b in key)


def derive_key(seed: bytes, counter: int) -> bytes:
    """KDF(K_seed, c): the first 16 bytes of SHA-1(seed || c as 4 bytes), with DES parity (9.7.1)."""
    return with_parity(hashlib.sha1(seed + counter.to_bytes(4, "big")).digest()[:16])


def pad(data: bytes, block: int = BLOCK) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros to a whole block."""
    data += b"\x80"
    return data + bytes(-len(data) % block)


def unpad(data: bytes, block: int = BLOCK) -> bytes:
    """Undo padding method 2; ``ValueError`` when the padding is not there."""
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80") or len(data) - len(stripped) >= block:
        raise ValueError("bad ISO 9797-1 padding")
    return stripped[:-1]


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    # K1 || K2 || K1: the 24-byte form of a 2-key 3DES key (the library deprecates 16-byte keys)
    return Cipher(TripleDES(key + key[:8] if len(key) == 16 else key), modes.CBC(bytes(BLOCK)))


def encrypt(key: bytes, data: bytes) -> bytes:
    """2-key 3DES-CBC, zero IV; ``data`` a whole number of blocks."""
    enc = _cipher(key).encryptor()
    return enc.update(data) + enc.finalize()


def decrypt(key: bytes, data: bytes) -> bytes:
    if len(data) % BLOCK:
        raise ValueError("3DES ciphertext is not a whole number of blocks")
    dec = _cipher(key).decryptor()
    return dec.update(data) + dec.finalize()


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES over ``data`` padded by method 2: 8 bytes."""
    data = pad(data)
    k1 = key[:8]
    chained = encrypt(k1 * 3, data[:-BLOCK])[-BLOCK:] if len(data) > BLOCK else bytes(BLOCK)
    last = bytes(a ^ b for a, b in zip(chained, data[-BLOCK:], strict=True))
    return encrypt(key, last)


def aes_kdf(secret: bytes, counter: int) -> bytes:
    """KDF for AES-128 (9.7.1.1): the first 16 bytes of SHA-1(secret || counter as 4 bytes)."""
    return hashlib.sha1(secret + counter.to_bytes(4, "big")).digest()[:16]


PACE = 3  # the KDF counter of K_pi, PACE's password key


def aes_cbc(key: bytes, data: bytes, iv: bytes = bytes(16), *, decrypt: bool = False) -> bytes:
    if len(data) % 16:
        raise ValueError("AES data is not a whole number of blocks")
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), truncated to 8 bytes as 9303 uses it."""
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()[:8]
