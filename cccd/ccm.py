"""AES-CCM (RFC 3610) with a 13-byte nonce and a 16-byte tag: COSE's AES-CCM-16-128-256.

Built on two AES operations with one key: ECB over many blocks (the counter keystream, one call)
and the last block of CBC with a zero IV (the CBC-MAC, one call). The device's ``cryptolib.aes``
does both (modes 1 and 2) in C; under CPython the ``cryptography`` package does. So a seal costs
two AES calls however long the payload, not one call per block.

With a 13-byte nonce the length field is L = 2 bytes: at most 65,535 bytes of plaintext.
"""

try:
    import cryptolib as _cryptolib  # MicroPython on the device (tests supply a stand-in)
except ImportError:
    _cryptolib = None
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cccd.errors import EnvelopeError

NONCE_LEN = 13
TAG_LEN = 16
MAX_PLAINTEXT = 0xFFFF
_L = 15 - NONCE_LEN  # bytes of the length field
_ZERO_IV = bytes(16)


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


def _ecb(key: bytes, data: bytes) -> bytes:
    if _cryptolib is not None:
        return bytes(_cryptolib.aes(key, 1).encrypt(data))
    return _ciphers(key)[0].encryptor().update(data)


def _cbc_mac(key: bytes, data: bytes) -> bytes:
    if _cryptolib is not None:
        return bytes(_cryptolib.aes(key, 2, _ZERO_IV).encrypt(data)[-16:])
    return _ciphers(key)[1].encryptor().update(data)[-16:]


def _pad(n: int) -> bytes:
    return bytes(-n % 16)


def _mac(key: bytes, nonce: bytes, aad: bytes, msg: bytes, tag_len: int) -> bytes:
    flags = (0x40 if aad else 0) | (((tag_len - 2) // 2) << 3) | (_L - 1)
    parts = [bytes([flags]), nonce, len(msg).to_bytes(_L, "big")]
    if aad:
        if len(aad) < 0xFF00:
            head = len(aad).to_bytes(2, "big")
        else:
            head = b"\xff\xfe" + len(aad).to_bytes(4, "big")
        parts += [head, aad, _pad(len(head) + len(aad))]
    parts += [msg, _pad(len(msg))]
    return _cbc_mac(key, b"".join(parts))[:tag_len]


def _keystream(key: bytes, nonce: bytes, nblocks: int) -> bytes:
    """S_0 | S_1 | ... : the encrypted counter blocks A_0 .. A_nblocks-1."""
    prefix = bytes([_L - 1]) + nonce
    ctrs = b"".join([prefix + i.to_bytes(_L, "big") for i in range(nblocks)])
    return _ecb(key, ctrs)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b[: len(a)], "big")).to_bytes(len(a), "big")


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
    tag = _mac(key, nonce, aad, plaintext, tag_len)
    stream = _keystream(key, nonce, 1 + (len(plaintext) + 15) // 16)
    return _xor(plaintext, stream[16:]) + _xor(tag, stream)


def decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"", tag_len: int = TAG_LEN) -> bytes:
    """The plaintext of ciphertext+tag; ``EnvelopeError`` (reason ``tag``) if it does not verify."""
    if len(data) < tag_len:
        raise EnvelopeError("ciphertext shorter than the tag", "malformed")
    n = len(data) - tag_len
    _check(key, nonce, n, tag_len)
    stream = _keystream(key, nonce, 1 + (n + 15) // 16)
    plaintext = _xor(data[:n], stream[16:])
    expected = _xor(_mac(key, nonce, aad, plaintext, tag_len), stream)
    if not _equal(expected, data[n:]):
        raise EnvelopeError("authentication tag does not verify", "tag")
    return plaintext


def _equal(a: bytes, b: bytes) -> bool:
    """Compare without an early exit (MicroPython's hmac has no compare_digest)."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
