"""The cryptolib stand-in (tests/mpy/stubs/cryptolib.py) against FIPS-197 and SP 800-38A vectors,
and its device behaviour (the checks of MicroPython's extmod/modcryptolib.c).

Under MicroPython the tier puts the stand-in on sys.path as ``cryptolib``; under CPython it is
loaded from its file under another name, so that cccd keeps using the cryptography package there.
"""

import sys
from binascii import unhexlify

from mpcheck import raises

if sys.implementation.name == "micropython":
    import cryptolib
else:
    from mpytier import load_stub

    cryptolib = load_stub("cryptolib")

ECB = 1
CBC = 2
PLAIN = unhexlify("00112233445566778899aabbccddeeff")
# FIPS-197 appendix C: key length → (key, ciphertext of PLAIN).
FIPS197 = {
    16: ("000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"),
    24: ("000102030405060708090a0b0c0d0e0f1011121314151617", "dda97ca4864cdfe06eaf70a0ec0d7191"),
    32: (
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "8ea2b7ca516745bfeafc49904b496089",
    ),
}
# SP 800-38A F.2.1 / F.2.2: CBC-AES128.
CBC_KEY = unhexlify("2b7e151628aed2a6abf7158809cf4f3c")
CBC_IV = unhexlify("000102030405060708090a0b0c0d0e0f")
CBC_PLAIN = unhexlify(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
CBC_CIPHER = unhexlify(
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)


def test_fips197_ecb_128_and_256():
    for n in (16, 32):
        key, ct = FIPS197[n]
        assert cryptolib.aes(unhexlify(key), ECB).encrypt(PLAIN) == unhexlify(ct), n
        assert cryptolib.aes(unhexlify(key), ECB).decrypt(unhexlify(ct)) == PLAIN, n


def test_fips197_192_in_the_block_cipher():
    # The device's aes() refuses 24-byte keys; the stand-in's block cipher still does AES-192 right.
    key, ct = FIPS197[24]
    rk = cryptolib._expand_key(unhexlify(key))
    state = bytearray(PLAIN)
    scratch = bytearray(16)
    cryptolib._encrypt_block(rk, state, scratch)
    assert bytes(state) == unhexlify(ct)
    cryptolib._decrypt_block(rk, state, scratch)
    assert bytes(state) == PLAIN


def test_sp800_38a_cbc():
    assert cryptolib.aes(CBC_KEY, CBC, CBC_IV).encrypt(CBC_PLAIN) == CBC_CIPHER
    assert cryptolib.aes(CBC_KEY, CBC, CBC_IV).decrypt(CBC_CIPHER) == CBC_PLAIN


def test_cbc_chains_across_calls():
    enc = cryptolib.aes(CBC_KEY, CBC, CBC_IV)
    assert enc.encrypt(CBC_PLAIN[:16]) + enc.encrypt(CBC_PLAIN[16:]) == CBC_CIPHER
    dec = cryptolib.aes(CBC_KEY, CBC, CBC_IV)
    assert dec.decrypt(CBC_CIPHER[:32]) + dec.decrypt(CBC_CIPHER[32:]) == CBC_PLAIN


def test_out_buf_and_in_place():
    buf = bytearray(CBC_PLAIN)
    assert cryptolib.aes(CBC_KEY, CBC, CBC_IV).encrypt(buf, buf) is buf
    assert bytes(buf) == CBC_CIPHER
    assert cryptolib.aes(CBC_KEY, CBC, CBC_IV).decrypt(buf, buf) is buf
    assert bytes(buf) == CBC_PLAIN
    out = bytearray(80)
    cryptolib.aes(CBC_KEY, ECB).encrypt(CBC_PLAIN, out)
    assert out[:64] == cryptolib.aes(CBC_KEY, ECB).encrypt(CBC_PLAIN)
    assert out[64:] == bytes(16)


def test_device_checks():
    key = bytes(32)
    assert str(raises(ValueError, cryptolib.aes, bytes(24), ECB)) == "key"
    assert str(raises(ValueError, cryptolib.aes, bytes(15), ECB)) == "key"
    assert str(raises(ValueError, cryptolib.aes, key, 6, bytes(16))) == "mode"
    assert str(raises(ValueError, cryptolib.aes, key, CBC)) == "IV"
    assert str(raises(ValueError, cryptolib.aes, key, CBC, bytes(15))) == "IV"
    assert str(raises(ValueError, cryptolib.aes, key, ECB, bytes(8))) == "IV"
    assert str(raises(ValueError, cryptolib.aes(key, ECB).encrypt, bytes(17))) == "blksize % 16"
    assert str(raises(ValueError, cryptolib.aes(key, ECB).decrypt, bytes(8))) == "blksize % 16"
    assert str(raises(ValueError, cryptolib.aes(key, ECB).encrypt, bytes(32), bytearray(16))) == (
        "output too small"
    )
    assert cryptolib.aes(key, ECB).encrypt(b"") == b""


def test_one_direction_per_object():
    enc = cryptolib.aes(bytes(16), ECB)
    enc.encrypt(bytes(16))
    assert str(raises(ValueError, enc.decrypt, bytes(16))) == "can't encrypt & decrypt"
    dec = cryptolib.aes(bytes(16), ECB)
    dec.decrypt(bytes(16))
    assert str(raises(ValueError, dec.encrypt, bytes(16))) == "can't encrypt & decrypt"
