"""The core against the contract vectors that every side of the project is tested with."""

from binascii import hexlify, unhexlify

from contract import load
from mpcheck import raises

from cccd import envelope, keys, pseudonym, schema
from cccd.cbor import dumps, loads
from cccd.errors import EnvelopeError

V = load()


def _h(s):
    return unhexlify(s)


def test_key_schedule():
    k = keys.derive(_h(V["keys"]["secret"]))
    assert hexlify(k.up_key).decode() == V["keys"]["up_key"]
    assert hexlify(k.up_iv).decode() == V["keys"]["up_iv"]
    assert hexlify(k.down_key).decode() == V["keys"]["down_key"]
    assert hexlify(k.down_iv).decode() == V["keys"]["down_iv"]


def test_pseudonyms():
    p = V["pseudonym"]
    assert hexlify(pseudonym.pid(_h(p["secret"]), cccd=p["cccd"])).decode() == p["pid"]
    assert hexlify(pseudonym.pid(_h(p["secret"]), bhxh=p["bhxh"])).decode() == p["pid_bhxh"]


def _check_message(name, kind, key, iv):
    m = V[name]
    payload = _h(m["payload_cbor"])
    msg = schema.decode(kind, payload)
    assert dumps(msg) == payload  # deterministic: decoding and encoding again is the identity
    assert hexlify(envelope.partial_iv(m["seq"])).decode() == m["partial_iv"]
    assert hexlify(envelope.nonce(iv, envelope.partial_iv(m["seq"]))).decode() == m["nonce"]
    sealed = envelope.seal(key, iv, _h(m["kid"]), m["seq"], m["topic"], payload)
    assert hexlify(sealed).decode() == m["envelope"]
    opened = envelope.open_on_topic(_h(m["envelope"]), m["topic"], lambda f, kid: (key, iv))
    assert opened.plaintext == payload and opened.seq == m["seq"]
    return msg


def test_read_vector():
    k = keys.derive(_h(V["keys"]["secret"]))
    msg = _check_message("read", "read", k.up_key, k.up_iv)
    assert msg["pid"] == _h(V["pseudonym"]["pid"])
    assert msg["id"]["name"] == V["read"]["payload_json"]["id"]["name"]


def test_result_vector():
    k = keys.derive(_h(V["keys"]["secret"]))
    msg = _check_message("result", "result", k.down_key, k.down_iv)
    assert msg["seq"] == V["read"]["seq"]


def test_vectors_do_not_open_in_the_wrong_direction():
    k = keys.derive(_h(V["keys"]["secret"]))
    sealed = envelope.parse(_h(V["read"]["envelope"]))
    raises(EnvelopeError, sealed.open, k.down_key, k.down_iv, V["read"]["topic"])
    assert loads(_h(V["read"]["envelope"])).tag == 16
