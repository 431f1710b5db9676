"""The keyed pseudonym: HMAC, truncated to 16 bytes, domain-separated."""

from binascii import hexlify

from mpcheck import raises

from cccd import keys, pseudonym

SECRET = bytes(range(100, 132))


def test_pid_is_truncated_hmac_of_the_prefixed_id():
    expected = keys.hmac_sha256(SECRET, b"cccd:001090000001")[:16]
    assert pseudonym.pid(SECRET, cccd="001090000001") == expected
    assert len(expected) == 16


def test_domains_are_separated():
    a = pseudonym.pid(SECRET, cccd="001090000001")
    b = pseudonym.pid(SECRET, bhxh="0109000000")
    c = keys.hmac_sha256(SECRET, b"bhxh:0109000000")[:16]
    assert b == c and a != b


def test_personal_id_wins_over_bhxh_number():
    assert pseudonym.pid(SECRET, cccd="001090000001", bhxh="0109000000") == pseudonym.pid(
        SECRET, cccd="001090000001"
    )


def test_another_facility_secret_gives_another_pid():
    other = bytes(range(1, 33))
    assert pseudonym.pid(SECRET, cccd="001090000001") != pseudonym.pid(other, cccd="001090000001")


def test_not_a_plain_hash():
    import hashlib

    plain = hashlib.sha256(b"cccd:001090000001").digest()[:16]
    assert pseudonym.pid(SECRET, cccd="001090000001") != plain
    assert hexlify(pseudonym.pid(SECRET, cccd="001090000001")) != hexlify(plain)


def test_bad_input_is_a_value_error():
    raises(ValueError, pseudonym.pid, SECRET)
    raises(ValueError, pseudonym.pid, SECRET, cccd="00109000000")
    raises(ValueError, pseudonym.pid, SECRET, cccd="00109000000x")
    raises(ValueError, pseudonym.pid, SECRET, bhxh="12345")
    raises(ValueError, pseudonym.pid, b"short", cccd="001090000001")
    raises(ValueError, pseudonym.pid, SECRET, cccd=1090000001)
