"""HMAC-SHA256 and HKDF against their RFCs, and the contract's key schedule."""

from binascii import hexlify, unhexlify

from mpcheck import raises

from cccd import keys


def test_hmac_sha256_rfc4231_case_2():
    mac = keys.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert hexlify(mac) == b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hmac_sha256_rfc4231_case_6_long_key():
    mac = keys.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert hexlify(mac) == b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_hkdf_rfc5869_case_1():
    okm = keys.hkdf(
        b"\x0b" * 22, unhexlify("f0f1f2f3f4f5f6f7f8f9"), 42, unhexlify("000102030405060708090a0b0c")
    )
    assert hexlify(okm) == (
        b"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_rfc5869_case_3_empty_salt_and_info():
    okm = keys.hkdf(b"\x0b" * 22, b"", 42)
    assert hexlify(okm) == (
        b"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_derive_gives_four_distinct_values_of_the_right_size():
    k = keys.derive(bytes(range(32)))
    assert len(k.up_key) == 32 and len(k.down_key) == 32
    assert len(k.up_iv) == 13 and len(k.down_iv) == 13
    assert k.up_key != k.down_key and k.up_iv != k.down_iv
    assert k.up_key == keys.hkdf(bytes(range(32)), b"cccd/v1/up/key", 32)


def test_derive_rejects_a_secret_of_the_wrong_size():
    raises(ValueError, keys.derive, bytes(31))
    raises(ValueError, keys.derive, "0" * 32)
