"""AES-CCM against RFC 3610's 24 packet vectors, and what a tampered message does."""

from binascii import unhexlify

from mpcheck import raises
from rfc3610 import VECTORS

from cccd import ccm
from cccd.errors import EnvelopeError

KEY = bytes(range(32))
NONCE = bytes(range(100, 113))


# Both the platform's CCM (OpenSSL on CPython) and the block construction the device runs.
ENCRYPTS = (ccm.encrypt, ccm.encrypt_blocks)
DECRYPTS = (ccm.decrypt, ccm.decrypt_blocks)


def test_rfc3610_packet_vectors_encrypt():
    for encrypt in ENCRYPTS:
        for aad, pt, ct, tag, key, nonce in VECTORS:
            out = encrypt(unhexlify(key), unhexlify(nonce), unhexlify(pt), unhexlify(aad), len(tag) // 2)
            assert out == unhexlify(ct + tag), nonce


def test_rfc3610_packet_vectors_decrypt():
    for decrypt in DECRYPTS:
        for aad, pt, ct, tag, key, nonce in VECTORS:
            sealed = unhexlify(ct + tag)
            out = decrypt(unhexlify(key), unhexlify(nonce), sealed, unhexlify(aad), len(tag) // 2)
            assert out == unhexlify(pt), nonce


def test_the_construction_equals_the_platform_ccm():
    for n in (0, 1, 15, 16, 17, 300):
        msg = bytes([(7 * i) & 0xFF for i in range(n)])
        sealed = ccm.encrypt_blocks(KEY, NONCE, msg, b"aad")
        assert sealed == ccm.encrypt(KEY, NONCE, msg, b"aad")
        assert ccm.decrypt(KEY, NONCE, sealed, b"aad") == msg
        assert ccm.decrypt_blocks(KEY, NONCE, sealed, b"aad") == msg


def test_round_trip_at_block_edges():
    for n in (0, 1, 15, 16, 17, 31, 32, 33, 255, 1000):
        msg = bytes([i & 0xFF for i in range(n)])
        sealed = ccm.encrypt(KEY, NONCE, msg, b"topic")
        assert len(sealed) == n + ccm.TAG_LEN
        assert ccm.decrypt(KEY, NONCE, sealed, b"topic") == msg


def test_round_trip_without_aad():
    sealed = ccm.encrypt(KEY, NONCE, b"payload")
    assert ccm.decrypt(KEY, NONCE, sealed) == b"payload"


def test_every_flipped_bit_of_ciphertext_or_tag_is_rejected():
    sealed = ccm.encrypt(KEY, NONCE, b"a read of twenty bytes", b"aad")
    for decrypt in DECRYPTS:
        for i in range(len(sealed)):
            for bit in (0x01, 0x80):
                bad = bytearray(sealed)
                bad[i] ^= bit
                exc = raises(EnvelopeError, decrypt, KEY, NONCE, bytes(bad), b"aad")
                assert exc.reason == "tag"


def test_other_aad_nonce_or_key_is_rejected():
    sealed = ccm.encrypt(KEY, NONCE, b"payload", b"aad")
    raises(EnvelopeError, ccm.decrypt, KEY, NONCE, sealed, b"aae")
    raises(EnvelopeError, ccm.decrypt, KEY, NONCE, sealed, b"")
    raises(EnvelopeError, ccm.decrypt, KEY, bytes(13), sealed, b"aad")
    raises(EnvelopeError, ccm.decrypt, bytes(32), NONCE, sealed, b"aad")


def test_truncated_input_is_rejected_not_crashed():
    sealed = ccm.encrypt(KEY, NONCE, b"payload")
    for decrypt in DECRYPTS:
        for n in range(len(sealed)):
            raises(EnvelopeError, decrypt, KEY, NONCE, sealed[:n])


def test_bad_parameters_are_value_errors():
    for encrypt in ENCRYPTS:
        raises(ValueError, encrypt, bytes(15), NONCE, b"x")
        raises(ValueError, encrypt, KEY, bytes(12), b"x")
        raises(ValueError, encrypt, KEY, NONCE, b"x", b"", 5)
        raises(ValueError, encrypt, KEY, NONCE, bytes(ccm.MAX_PLAINTEXT + 1))
