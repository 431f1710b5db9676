"""AES-CCM (RFC 3610) with a 13-byte nonce and a 16-byte tag: COSE's AES-CCM-16-128-256.

``encrypt``/``decrypt`` use the platform's whole-CCM where it has one (CPython: OpenSSL through
``cryptography``); ``encrypt_blocks``/``decrypt_blocks`` are the construction the device runs,
tested under both CPython and MicroPython against RFC 3610 and against OpenSSL.

Built on two AES operations with one key: ECB over many blocks (the counter keystream, one call)
and the last block of CBC with a zero IV (the CBC-MAC, one call). The device's ``cryptolib.aes``
does both (modes 1 and 2) in C; under CPython the ``cryptography`` package does. So a seal costs
two AES calls however long the payload, not one call per block.

With a 13-byte nonce the length field is L = 2 bytes: at most 65,535 bytes of plaintext.
"""

import sys

try:
    import cryptolib as _cryptolib  # MicroPython on the device (tests supply a stand-in)
except ImportError:
    _cryptolib = None
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from cccd.errors import EnvelopeError

NONCE_LEN = 13
TAG_LEN = 16
MAX_PLAINTEXT = 0xFFFF
_L = 15 - NONCE_LEN  # bytes of the length field
_ZERO_IV = bytes(16)
_SMALL = sys.implementation.name == "micropython"


# CPython: Cipher objects are stateless and cost more to build than to use; keep a bounded set.
_CIPHERS: dict[bytes, tuple[Cipher[modes.ECB], Cipher[modes.CBC]]] = {}
_MAX_CIPHERS = 4096


def _ciphers(key: bytes) -> tuple[Cipher[modes.ECB], Cipher[modes.CBC]]:
    pair = _CIPHERS.get(key)
    if pair is None:
        if len(_CIPHERS) >= _MAX_CIPHERS:
            _CIPHERS.clear()
        alg = algorithms.AES(key)
        pair = (Cipher(alg, modes.ECB()), Cipher(alg, modes.CBC(_ZERO_IV)))
        _CIPHERS[bytes(key)] = pair
    return pair


# CPython: the whole of CCM in one OpenSSL call (12 us -> 1.3 us per open, measured by bench
# ingest); ``encrypt_blocks``/``decrypt_blocks`` below are the device's path, tested on both.
_AEADS: dict[tuple[bytes, int], "AESCCM"] = {}


def _native(key: bytes, tag_len: int) -> "AESCCM":
    aead = _AEADS.get((key, tag_len))
    if aead is None:
        if len(_AEADS) >= _MAX_CIPHERS:
            _AEADS.clear()
        aead = _AEADS[(bytes(key), tag_len)] = AESCCM(key, tag_len)
    return aead


def _ecb(key: bytes, data: bytes | bytearray) -> bytes:
    if _cryptolib is not None:
        return bytes(_cryptolib.aes(key, 1).encrypt(data))
    return _ciphers(key)[0].encryptor().update(data)


def _cbc_mac(key: bytes, data: bytes | bytearray) -> bytes:
    if _cryptolib is not None:
        return bytes(_cryptolib.aes(key, 2, _ZERO_IV).encrypt(data)[-16:])
    return _ciphers(key)[1].encryptor().update(data)[-16:]


def _ceil16(n: int) -> int:
    return (n + 15) & ~15


def _mac(key: bytes, nonce: bytes, aad: bytes, msg: bytes | bytearray, tag_len: int) -> bytes:
    """CBC-MAC over B0 | encoded AAD | padding | message | padding, built in one buffer."""
    na = len(aad)
    head = 0 if not na else (2 if na < 0xFF00 else 6)
    a_end = 16 + _ceil16(head + na)
    buf = bytearray(a_end + _ceil16(len(msg)))
    buf[0] = (0x40 if na else 0) | (((tag_len - 2) // 2) << 3) | (_L - 1)
    buf[1:14] = nonce
    buf[14] = len(msg) >> 8
    buf[15] = len(msg) & 0xFF
    if head == 2:
        buf[16] = na >> 8
        buf[17] = na & 0xFF
    elif head == 6:
        buf[16:22] = b"\xff\xfe" + na.to_bytes(4, "big")
    buf[16 + head : 16 + head + na] = aad
    buf[a_end : a_end + len(msg)] = msg
    return _cbc_mac(key, buf)[:tag_len]


def _keystream(key: bytes, nonce: bytes, nblocks: int) -> bytes:
    """S_0 | S_1 | ... : the encrypted counter blocks A_0 .. A_nblocks-1, in one AES call."""
    ctrs = bytearray((bytes([_L - 1]) + nonce + b"\x00\x00") * nblocks)
    for i in range(1, nblocks):
        o = 16 * i + 14
        ctrs[o] = i >> 8
        ctrs[o + 1] = i & 0xFF
    return _ecb(key, ctrs)


def _xor_into(out: bytearray, start: int, stream: bytes, offset: int, n: int) -> None:
    """out[start:start+n] ^= stream[offset:offset+n], in place."""
    if _SMALL:  # MicroPython: a byte loop allocates nothing; a big-int XOR allocates three copies
        for i in range(n):
            out[start + i] ^= stream[offset + i]
    else:  # CPython: one big-int XOR is much faster than a Python loop
        a = int.from_bytes(out[start : start + n], "big")
        b = int.from_bytes(stream[offset : offset + n], "big")
        out[start : start + n] = (a ^ b).to_bytes(n, "big")


def _check(key: bytes, nonce: bytes, n: int, tag_len: int) -> None:
    if tag_len not in (4, 6, 8, 10, 12, 14, 16):
        raise ValueError("CCM tag length must be an even number from 4 to 16")
    if len(key) not in (16, 24, 32):
        raise ValueError("AES key must be 16, 24 or 32 bytes")
    if len(nonce) != NONCE_LEN:
        raise ValueError("CCM nonce must be %d bytes" % NONCE_LEN)
    if n > MAX_PLAINTEXT:
        raise ValueError("CCM plaintext longer than %d bytes" % MAX_PLAINTEXT)


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"", tag_len: int = TAG_LEN) -> bytes:
    """Ciphertext followed by the tag (16 bytes in the contract; other lengths for RFC 3610's vectors)."""
    _check(key, nonce, len(plaintext), tag_len)
    if _cryptolib is None:
        return _native(key, tag_len).encrypt(nonce, plaintext, aad)
    return encrypt_blocks(key, nonce, plaintext, aad, tag_len)


def encrypt_blocks(
    key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"", tag_len: int = TAG_LEN
) -> bytes:
    """``encrypt`` built on the two AES block operations (what the device runs)."""
    n = len(plaintext)
    _check(key, nonce, n, tag_len)
    out = bytearray(n + tag_len)
    out[:n] = plaintext
    out[n:] = _mac(key, nonce, aad, plaintext, tag_len)
    stream = _keystream(key, nonce, 1 + (n + 15) // 16)
    _xor_into(out, 0, stream, 16, n)
    _xor_into(out, n, stream, 0, tag_len)
    return bytes(out)


def decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"", tag_len: int = TAG_LEN) -> bytes:
    """The plaintext of ciphertext+tag; ``EnvelopeError`` (reason ``tag``) if it does not verify."""
    if len(data) < tag_len:
        raise EnvelopeError("ciphertext shorter than the tag", "malformed")
    _check(key, nonce, len(data) - tag_len, tag_len)
    if _cryptolib is None:
        try:
            return _native(key, tag_len).decrypt(nonce, data, aad)
        except InvalidTag:
            raise EnvelopeError("authentication tag does not verify", "tag") from None
    return decrypt_blocks(key, nonce, data, aad, tag_len)


def decrypt_blocks(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"", tag_len: int = TAG_LEN) -> bytes:
    """``decrypt`` built on the two AES block operations (what the device runs)."""
    if len(data) < tag_len:
        raise EnvelopeError("ciphertext shorter than the tag", "malformed")
    n = len(data) - tag_len
    _check(key, nonce, n, tag_len)
    stream = _keystream(key, nonce, 1 + (n + 15) // 16)
    plain = bytearray(data[:n])
    _xor_into(plain, 0, stream, 16, n)
    tag = bytearray(_mac(key, nonce, aad, plain, tag_len))
    _xor_into(tag, 0, stream, 0, tag_len)
    if not _equal(tag, data[n:]):
        raise EnvelopeError("authentication tag does not verify", "tag")
    return bytes(plain)


def _equal(a: bytes | bytearray, b: bytes) -> bool:
    """Compare without an early exit (MicroPython's hmac has no compare_digest)."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
