"""A pure-Python stand-in for MicroPython's ``cryptolib`` module, for tests only.

The MicroPython WebAssembly port that runs the test tier has no ``cryptolib``; ESP32 firmware
has it (mbedTLS underneath). This module copies the device's behaviour, checks and error texts
included (``extmod/modcryptolib.c``), so that code which passes against it also runs on the device:

- ``aes(key, mode, IV=None)``: mode 1 (ECB) or 2 (CBC); anything else raises ``ValueError("mode")``.
  The device build leaves out CTR (mode 6) and the ``MODE_*`` constants unless configured, so this
  stand-in has neither.
- Keys of 16 or 32 bytes (``ValueError("key")`` otherwise: the device rejects 24-byte keys even
  though AES-192 exists; the block cipher below supports it and the tests check it).
- The IV, when given, must be 16 bytes; CBC requires one (``ValueError("IV")``). CBC chains the
  IV across calls, as the device does.
- ``encrypt(in_buf, out_buf=None)`` / ``decrypt(...)``: the input length must be a multiple of 16
  (``ValueError("blksize % 16")``); with ``out_buf`` the result is written there (it must be at
  least as long as the input) and ``out_buf`` is returned, otherwise new ``bytes``.
- An object that has encrypted cannot decrypt and vice versa (``ValueError("can't encrypt &
  decrypt")``): the device keeps only one direction's key schedule.

It runs under CPython and MicroPython alike: no typing at run time, tables built once at import
as ``bytes``, and the rounds work on a preallocated ``bytearray`` per object with byte-sized
integers only (32-bit table words would be heap-allocated big integers on a 32-bit MicroPython).
"""

_MODE_ECB = 1
_MODE_CBC = 2


def _xtime(a):
    a <<= 1
    return (a ^ 0x11B) if a & 0x100 else a


def _mul(a, b):
    r = 0
    while b:
        if b & 1:
            r ^= a
        a = _xtime(a)
        b >>= 1
    return r


def _build_tables():
    # S-box from its definition: the multiplicative inverse in GF(2^8) followed by the affine map.
    # Walk the powers of the generator 3: p runs over 3^i, q over 3^-i, so q is p's inverse.
    sbox = bytearray(256)
    p = q = 1
    while True:
        p = p ^ _xtime(p)
        q ^= (q << 1) & 0xFF
        q ^= (q << 2) & 0xFF
        q ^= (q << 4) & 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q
        for shift in (1, 2, 3, 4):
            x ^= ((q << shift) | (q >> (8 - shift))) & 0xFF
        sbox[p] = x ^ 0x63
        if p == 1:
            break
    sbox[0] = 0x63
    inv = bytearray(256)
    for i in range(256):
        inv[sbox[i]] = i
    return (
        bytes(sbox),
        bytes(inv),
        bytes(_xtime(i) for i in range(256)),
        bytes(_mul(i, 9) for i in range(256)),
        bytes(_mul(i, 11) for i in range(256)),
        bytes(_mul(i, 13) for i in range(256)),
        bytes(_mul(i, 14) for i in range(256)),
    )


_SBOX, _INV_SBOX, _MUL2, _MUL9, _MUL11, _MUL13, _MUL14 = _build_tables()


def _expand_key(key):
    """The round keys for a 16-, 24- or 32-byte key, as one bytearray of 16 * (rounds + 1)."""
    nk = len(key) // 4
    if len(key) not in (16, 24, 32):
        raise ValueError("key")
    words = 4 * (nk + 7)
    w = bytearray(4 * words)
    w[: len(key)] = key
    sbox = _SBOX
    rcon = 1
    for i in range(nk, words):
        o = 4 * i
        t0 = w[o - 4]
        t1 = w[o - 3]
        t2 = w[o - 2]
        t3 = w[o - 1]
        if i % nk == 0:
            t0, t1, t2, t3 = sbox[t1] ^ rcon, sbox[t2], sbox[t3], sbox[t0]
            rcon = _xtime(rcon)
        elif nk > 6 and i % nk == 4:
            t0, t1, t2, t3 = sbox[t0], sbox[t1], sbox[t2], sbox[t3]
        p = o - 4 * nk
        w[o] = w[p] ^ t0
        w[o + 1] = w[p + 1] ^ t1
        w[o + 2] = w[p + 2] ^ t2
        w[o + 3] = w[p + 3] ^ t3
    return w


def _encrypt_block(rk, s, t):
    """Encrypt the 16-byte state ``s`` in place with round keys ``rk``; ``t`` is 16 bytes of scratch."""
    sbox = _SBOX
    m2 = _MUL2
    for i in range(16):
        s[i] ^= rk[i]
    last = len(rk) - 16
    o = 16
    while True:
        # SubBytes and ShiftRows together: row r of column c comes from column c + r.
        for c in range(0, 16, 4):
            t[c] = sbox[s[c]]
            t[c + 1] = sbox[s[(c + 5) & 15]]
            t[c + 2] = sbox[s[(c + 10) & 15]]
            t[c + 3] = sbox[s[(c + 15) & 15]]
        if o == last:
            for i in range(16):
                s[i] = t[i] ^ rk[o + i]
            return
        # MixColumns and AddRoundKey.
        for c in range(0, 16, 4):
            a0 = t[c]
            a1 = t[c + 1]
            a2 = t[c + 2]
            a3 = t[c + 3]
            k = o + c
            s[c] = m2[a0] ^ m2[a1] ^ a1 ^ a2 ^ a3 ^ rk[k]
            s[c + 1] = a0 ^ m2[a1] ^ m2[a2] ^ a2 ^ a3 ^ rk[k + 1]
            s[c + 2] = a0 ^ a1 ^ m2[a2] ^ m2[a3] ^ a3 ^ rk[k + 2]
            s[c + 3] = m2[a0] ^ a0 ^ a1 ^ a2 ^ m2[a3] ^ rk[k + 3]
        o += 16


def _decrypt_block(rk, s, t):
    """Decrypt the 16-byte state ``s`` in place with round keys ``rk``; ``t`` is 16 bytes of scratch."""
    inv = _INV_SBOX
    m9 = _MUL9
    m11 = _MUL11
    m13 = _MUL13
    m14 = _MUL14
    o = len(rk) - 16
    for i in range(16):
        s[i] ^= rk[o + i]
    while True:
        o -= 16
        # InvShiftRows and InvSubBytes together: row r of column c comes from column c - r.
        for c in range(0, 16, 4):
            t[c] = inv[s[c]] ^ rk[o + c]
            t[c + 1] = inv[s[(c + 13) & 15]] ^ rk[o + c + 1]
            t[c + 2] = inv[s[(c + 10) & 15]] ^ rk[o + c + 2]
            t[c + 3] = inv[s[(c + 7) & 15]] ^ rk[o + c + 3]
        if o == 0:
            s[:] = t
            return
        # InvMixColumns.
        for c in range(0, 16, 4):
            a0 = t[c]
            a1 = t[c + 1]
            a2 = t[c + 2]
            a3 = t[c + 3]
            s[c] = m14[a0] ^ m11[a1] ^ m13[a2] ^ m9[a3]
            s[c + 1] = m9[a0] ^ m14[a1] ^ m11[a2] ^ m13[a3]
            s[c + 2] = m13[a0] ^ m9[a1] ^ m14[a2] ^ m11[a3]
            s[c + 3] = m11[a0] ^ m13[a1] ^ m9[a2] ^ m14[a3]


class aes:  # noqa: N801 - the device's name
    """``cryptolib.aes(key, mode[, IV])`` as on the device; see the module docstring."""

    def __init__(self, key, mode, IV=None):  # noqa: N803 - the device's keyword
        if mode not in (_MODE_ECB, _MODE_CBC):
            raise ValueError("mode")
        if len(key) not in (16, 32):
            raise ValueError("key")
        if IV is not None:
            if len(IV) != 16:
                raise ValueError("IV")
        elif mode == _MODE_CBC:
            raise ValueError("IV")
        self._mode = mode
        self._rk = _expand_key(bytes(key))
        self._iv = bytearray(IV) if IV is not None else bytearray(16)
        self._state = bytearray(16)
        self._scratch = bytearray(16)
        self._prev = bytearray(16)
        self._direction = 0  # 0 unused, 1 encrypt, 2 decrypt

    def encrypt(self, in_buf, out_buf=None):
        return self._process(in_buf, out_buf, 1)

    def decrypt(self, in_buf, out_buf=None):
        return self._process(in_buf, out_buf, 2)

    def _process(self, in_buf, out_buf, direction):
        n = len(in_buf)
        if n % 16:
            raise ValueError("blksize % 16")
        if out_buf is None:
            out = bytearray(n)
        elif len(out_buf) < n:
            raise ValueError("output too small")
        else:
            out = out_buf
        if self._direction == 0:
            self._direction = direction
        elif self._direction != direction:
            raise ValueError("can't encrypt & decrypt")
        src = memoryview(in_buf)
        rk = self._rk
        s = self._state
        t = self._scratch
        prev = self._prev
        iv = self._iv
        cbc = self._mode == _MODE_CBC
        for off in range(0, n, 16):
            s[:] = src[off : off + 16]
            if direction == 1:
                if cbc:
                    for i in range(16):
                        s[i] ^= iv[i]
                _encrypt_block(rk, s, t)
                if cbc:
                    iv[:] = s
            elif cbc:
                # This block's ciphertext is the next block's IV; keep a copy, since the output
                # buffer may be the input.
                prev[:] = s
                _decrypt_block(rk, s, t)
                for i in range(16):
                    s[i] ^= iv[i]
                iv[:] = prev
            else:
                _decrypt_block(rk, s, t)
            out[off : off + 16] = s
        if out_buf is None:
            return bytes(out)
        return out_buf
