"""The core against independent implementations: cbor2, cryptography's AESCCM, pycose, hmac."""

import contextlib
import hashlib
import hmac
import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.algorithms import AESCCM16128256
from pycose.headers import KID, Algorithm, PartialIV
from pycose.keys import SymmetricKey
from pycose.messages import Enc0Message

from cccd import cbor, ccm, envelope, keys
from cccd.errors import CBORError, EnvelopeError
from tools import vectors

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "contract-vectors.json").read_text("utf-8"))

# The contract's types: ints within 64 bits, bytes, text, arrays, maps, bools, null, tags.
scalars = (
    st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=40)
    | st.booleans()
    | st.none()
)
keys_st = st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=10) | st.binary(max_size=10)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys_st, children, max_size=5),
    max_leaves=30,
)


def _plain(obj: object) -> object:
    """cbor2 5.x decodes tags as CBORTag and arrays as lists; compare on plain values."""
    if isinstance(obj, cbor2.CBORTag):
        return cbor.Tag(obj.tag, _plain(obj.value))
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


map_free = st.recursive(scalars, lambda children: st.lists(children, max_size=5), max_leaves=30)


@given(map_free)
def test_cbor_matches_cbor2_canonical_encoding(value: object) -> None:
    assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


@given(st.dictionaries(keys_st, scalars, max_size=8))
def test_map_keys_in_bytewise_order(value: dict[object, object]) -> None:
    """RFC 8949 §4.2.1 sorts keys bytewise; cbor2's canonical mode uses RFC 7049's length-first
    order, which differs across major types (24 encodes as 1818, "" as 60): compare by decoding."""
    encoded = cbor.dumps(value)
    decoded = cbor2.loads(encoded)
    assert decoded == value
    order = [cbor2.dumps(k) for k in decoded]
    assert order == sorted(order)


@given(values)
def test_cbor2_output_decodes_with_cccd(value: object) -> None:
    assert cbor.loads(cbor2.dumps(value)) == _plain(cbor2.loads(cbor2.dumps(value)))


@given(values)
def test_cccd_output_decodes_with_cbor2(value: object) -> None:
    assert _plain(cbor2.loads(cbor.dumps(value))) == value


@given(st.floats(allow_nan=False))
def test_floats_match_cbor2_canonical(x: float) -> None:
    assert cbor.dumps(x) == cbor2.dumps(x, canonical=True)
    assert cbor.loads(cbor.dumps(x)) == x


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_another_exception(data: bytes) -> None:
    with contextlib.suppress(CBORError):
        cbor.loads(data)


@settings(max_examples=200)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=13, max_size=13),
    pt=st.binary(max_size=600),
    aad=st.binary(max_size=100),
)
def test_ccm_equals_cryptography_aesccm(key: bytes, nonce: bytes, pt: bytes, aad: bytes) -> None:
    ours = ccm.encrypt_blocks(key, nonce, pt, aad)
    assert ours == AESCCM(key, tag_length=16).encrypt(nonce, pt, aad)
    assert ccm.decrypt_blocks(key, nonce, ours, aad) == pt


def test_hmac_fallback_equals_hmac_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "_FAST", False)
    for key in (b"", b"k", bytes(64), bytes(range(65)), bytes(200)):
        for msg in (b"", b"m", bytes(1000)):
            assert keys.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def _pycose_key(key: bytes, base_iv: bytes) -> SymmetricKey:
    k = SymmetricKey(k=key)
    k.base_iv = base_iv
    return k


def test_pycose_opens_a_cccd_envelope() -> None:
    v = VECTORS["read"]
    k = keys.derive(bytes.fromhex(VECTORS["keys"]["secret"]))
    msg = Enc0Message.decode(bytes.fromhex(v["envelope"]))
    msg.key = _pycose_key(k.up_key, k.up_iv)
    msg.external_aad = v["topic"].encode()
    assert msg.decrypt() == bytes.fromhex(v["payload_cbor"])
    assert msg.get_attr(KID) == v["topic"].split("/")[3].encode()


@settings(max_examples=50)
@given(seq=st.integers(min_value=0, max_value=envelope.MAX_SEQ), payload=st.binary(max_size=300))
def test_cccd_opens_a_pycose_envelope(seq: int, payload: bytes) -> None:
    k = keys.derive(bytes.fromhex(VECTORS["keys"]["secret"]))
    topic = "cccd/v1/38001/qr-0007/read"
    msg = Enc0Message(
        phdr={Algorithm: AESCCM16128256},
        uhdr={KID: b"qr-0007", PartialIV: envelope.partial_iv(seq)},
        payload=payload,
        external_aad=topic.encode(),
    )
    msg.key = _pycose_key(k.up_key, k.up_iv)
    sealed = envelope.parse(msg.encode())
    assert sealed.seq == seq
    assert sealed.open(k.up_key, k.up_iv, topic) == payload
    # and the other way round, byte for byte the same message
    assert envelope.seal(k.up_key, k.up_iv, b"qr-0007", seq, topic, payload) == msg.encode()


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_opener(data: bytes) -> None:
    k = keys.derive(bytes(32))
    with contextlib.suppress(EnvelopeError):
        envelope.open_on_topic(data, "cccd/v1/38001/qr-0007/read", lambda f, kid: (k.up_key, k.up_iv))


def test_contract_vectors_file_is_current() -> None:
    assert vectors.render() == vectors.PATH.read_text("utf-8"), "run python -m tools.vectors"
