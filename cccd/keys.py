"""Key schedule of the wire contract: HKDF-SHA256 (RFC 5869) from one device secret.

Provisioning creates one random 32-byte secret per device. Both sides derive, with an empty salt
and the secret as input key material, one key and one base IV per direction; the labels are
defined here and nowhere else. The two directions never share a key, so never a nonce.
"""

import hashlib

try:
    from hmac import digest as _hmac_digest  # CPython: one C call

    _FAST = True
except ImportError:  # MicroPython: its hmac (when present) has no digest()
    _FAST = False

SECRET_LEN = 32
KEY_LEN = 32
IV_LEN = 13

# info label (ASCII) -> output length
UP_KEY = b"cccd/v1/up/key"
UP_IV = b"cccd/v1/up/iv"
DOWN_KEY = b"cccd/v1/down/key"
DOWN_IV = b"cccd/v1/down/iv"
LABELS = ((UP_KEY, KEY_LEN), (UP_IV, IV_LEN), (DOWN_KEY, KEY_LEN), (DOWN_IV, IV_LEN))

_BLOCK = 64


_PADS: dict[bytes, tuple[bytes, bytes]] = {}  # key -> (ipad, opad): the pseudonym secret is reused


def _pads(key: bytes) -> tuple[bytes, bytes]:
    pads = _PADS.get(key)
    if pads is None:
        k = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
        k = k + bytes(_BLOCK - len(k))
        pads = (bytes([b ^ 0x36 for b in k]), bytes([b ^ 0x5C for b in k]))
        if len(_PADS) >= 8:
            _PADS.clear()
        _PADS[bytes(key)] = pads
    return pads


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104); MicroPython has hashlib.sha256 but not always an hmac module."""
    if _FAST:
        return _hmac_digest(key, msg, "sha256")
    ipad, opad = _pads(key)
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def hkdf(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """HKDF-SHA256 extract-then-expand (RFC 5869); an empty salt means 32 zero bytes."""
    if length > 255 * 32:
        raise ValueError("HKDF output too long")
    prk = hmac_sha256(salt or bytes(32), ikm)
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_sha256(prk, block + info + bytes([counter]))
        out += block
        counter += 1
    return out[:length]


class DeviceKeys:
    """The four values both sides derive from a device secret."""

    __slots__ = ("down_iv", "down_key", "up_iv", "up_key")

    def __init__(self, up_key: bytes, up_iv: bytes, down_key: bytes, down_iv: bytes) -> None:
        self.up_key = up_key
        self.up_iv = up_iv
        self.down_key = down_key
        self.down_iv = down_iv


def derive(secret: bytes) -> DeviceKeys:
    """Derive a device's directional keys and base IVs from its 32-byte secret."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_LEN:
        raise ValueError("a device secret is %d bytes" % SECRET_LEN)
    secret = bytes(secret)
    up_key, up_iv, down_key, down_iv = [hkdf(secret, info, n) for info, n in LABELS]
    return DeviceKeys(up_key, up_iv, down_key, down_iv)
