"""COSE_Encrypt0 sealing and opening: structure, nonce, AAD, and every tampering rejected."""

from binascii import unhexlify

from mpcheck import raises

from cccd import envelope, keys
from cccd.cbor import Tag, dumps, loads
from cccd.errors import EnvelopeError

K = keys.derive(bytes(range(32)))
TOPIC = "cccd/v1/38001/qr-0007/read"
KID = b"qr-0007"
PAYLOAD = dumps({"v": 1, "seq": 42, "doc": "cccd"})


def _seal(seq=42, topic=TOPIC, payload=PAYLOAD):
    return envelope.seal(K.up_key, K.up_iv, KID, seq, topic, payload)


OTHER = keys.derive(bytes(range(1, 33)))
FLEET = {("38001", b"qr-0007"): K, ("38001", b"qr-0008"): OTHER}


def _open(data, topic=TOPIC, down=False):
    """What a receiver does: the key found by the topic's facility and the kid."""

    def find(facility, kid):
        k = FLEET.get((facility, kid))
        if k is None:
            return None
        return (k.down_key, k.down_iv) if down else (k.up_key, k.up_iv)

    return envelope.open_on_topic(data, topic, find).plaintext


def test_round_trip():
    sealed = envelope.parse(_seal())
    assert sealed.kid == KID and sealed.seq == 42
    assert sealed.open(K.up_key, K.up_iv, TOPIC) == PAYLOAD


def test_structure_is_tag_16_with_the_contract_headers():
    obj = loads(_seal(seq=0x0102))
    assert isinstance(obj, Tag) and obj.tag == 16
    protected, unprotected, ciphertext = obj.value
    assert protected == unhexlify("a101181f")
    assert unprotected == {4: KID, 6: b"\x01\x02"}
    assert len(ciphertext) == len(PAYLOAD) + 16


def test_partial_iv_is_shortest_big_endian():
    assert envelope.partial_iv(0) == b"\x00"
    assert envelope.partial_iv(255) == b"\xff"
    assert envelope.partial_iv(256) == b"\x01\x00"
    assert envelope.partial_iv(envelope.MAX_SEQ) == b"\xff" * 5
    raises(EnvelopeError, envelope.partial_iv, envelope.MAX_SEQ + 1)
    raises(EnvelopeError, envelope.partial_iv, -1)


def test_nonce_is_base_iv_xor_left_padded_partial_iv():
    base = bytes(range(1, 14))
    n = envelope.nonce(base, b"\x01\x00")
    assert n[:11] == base[:11]
    assert n[11] == base[11] ^ 1 and n[12] == base[12]


def test_every_sequence_number_gives_another_ciphertext():
    seen = set()
    for seq in range(50):
        seen.add(loads(_seal(seq=seq)).value[2])
    assert len(seen) == 50


def test_changing_any_byte_makes_opening_fail():
    data = _seal()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        try:
            out = _open(bytes(bad))
        except EnvelopeError:
            continue
        raise AssertionError("byte %d changed and the envelope still opened to %r" % (i, out))


def test_another_topic_does_not_open():
    assert raises(EnvelopeError, _open, _seal(), "cccd/v1/38001/qr-0007/status").reason == "tag"
    assert raises(EnvelopeError, _open, _seal(), "cccd/v1/38001/qr-0008/read").reason == "kid"
    assert raises(EnvelopeError, _open, _seal(), "cccd/v1/38002/qr-0007/read").reason == "unknown_kid"


def test_the_other_direction_key_does_not_open():
    assert raises(EnvelopeError, _open, _seal(), TOPIC, True).reason == "tag"


def test_a_kid_swapped_to_another_known_device_does_not_open():
    forged = _rebuild(unprotected={4: b"qr-0008", 6: b"\x2a"})
    assert raises(EnvelopeError, _open, forged, "cccd/v1/38001/qr-0008/read").reason == "tag"


def _rebuild(protected=None, unprotected=None, ciphertext=None, tag=16):
    obj = loads(_seal()).value
    parts = [
        obj[0] if protected is None else protected,
        obj[1] if unprotected is None else unprotected,
        obj[2] if ciphertext is None else ciphertext,
    ]
    return dumps(Tag(tag, parts))


def test_header_substitutions_are_rejected_with_reasons():
    cases = (
        (_rebuild(unprotected={4: b"qr-0008", 6: b"\x2a"}), "kid"),
        (_rebuild(unprotected={4: KID, 6: b"\x2b"}), "tag"),
        (_rebuild(unprotected={4: KID, 6: b"\x00\x2a"}), "header"),
        (_rebuild(unprotected={4: KID}), "header"),
        (_rebuild(unprotected={6: b"\x2a"}), "header"),
        (_rebuild(unprotected={4: b"", 6: b"\x2a"}), "header"),
        (_rebuild(unprotected={4: KID, 6: b"\x01" * 6}), "header"),
        (_rebuild(unprotected={4: KID, 6: 42}), "header"),
        (_rebuild(unprotected={1: 31, 4: KID, 6: b"\x2a"}), "header"),
        (_rebuild(protected=dumps({1: 10})), "alg"),
        (_rebuild(protected=dumps({1: 31, 4: b"x"})), "header"),
        (_rebuild(protected=b"\xff"), "malformed"),
        (_rebuild(protected=b""), "alg"),
        (_rebuild(ciphertext=b"short"), "malformed"),
        (_rebuild(tag=96), "malformed"),
    )
    for data, reason in cases:
        exc = raises(EnvelopeError, _open, data)
        assert exc.reason == reason, (reason, exc.reason, str(exc))


def test_not_an_envelope():
    for data in (b"", b"\x00", dumps([1, 2, 3]), dumps(Tag(16, [1, 2])), dumps(Tag(16, "x")), b"\xd0"):
        assert raises(EnvelopeError, envelope.parse, data).reason == "malformed"


def test_oversized_envelope_is_refused_before_parsing():
    exc = raises(EnvelopeError, envelope.parse, bytes(envelope.MAX_ENVELOPE + 1))
    assert exc.reason == "too_large"


def test_every_truncation_is_rejected():
    data = _seal()
    for n in range(len(data)):
        raises(EnvelopeError, _open, data[:n])


def test_seal_refuses_bad_kid_and_seq():
    raises(EnvelopeError, envelope.seal, K.up_key, K.up_iv, b"", 1, TOPIC, PAYLOAD)
    raises(EnvelopeError, envelope.seal, K.up_key, K.up_iv, b"x" * 33, 1, TOPIC, PAYLOAD)
    raises(EnvelopeError, envelope.seal, K.up_key, K.up_iv, KID, -1, TOPIC, PAYLOAD)
