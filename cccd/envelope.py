"""The envelope of every encrypted message: COSE_Encrypt0 (RFC 9052), AES-CCM-16-128-256.

    16([ protected: bstr .cbor {1: 31},
         unprotected: {4: kid, 6: Partial IV},
         ciphertext: bstr ])

- ``kid`` is the sender's device id as bytes; the receiver finds the key by the topic's facility
  and the kid, and the kid must be the topic's device.
- ``Partial IV`` is the sender's sequence number, big-endian, shortest form (0 is one zero byte),
  at most 5 bytes as in OSCORE.
- nonce = base IV XOR the Partial IV left-padded with zeros to 13 bytes (RFC 9052 §3.1).
- AAD = the Enc_structure ["Encrypt0", protected, external_aad] with external_aad = the topic,
  UTF-8: a message moved to another topic does not open.

``seal`` writes one; ``parse`` reads the headers without a key (the receiver needs the kid to
find the key); ``Sealed.open`` authenticates and decrypts. The kid itself is not authenticated
(COSE leaves the unprotected header outside the AAD): it is bound by selecting the key, and by
``open_on_topic``, the receiver's whole procedure, which also requires kid == the topic's device.
Every failure is an ``EnvelopeError`` whose ``reason`` the collector counts: ``too_large``,
``malformed``, ``alg``, ``header``, ``kid`` (not the topic's device), ``unknown_kid``, ``tag``.
"""

from cccd import ccm
from cccd.cbor import Tag, dumps, loads
from cccd.errors import CBORError, EnvelopeError
from cccd.schema import parse_topic

try:  # annotations only
    from typing import Callable
except ImportError:
    pass

COSE_ENCRYPT0 = 16
ALG_AES_CCM_16_128_256 = 31
HDR_ALG = 1
HDR_KID = 4
HDR_PARTIAL_IV = 6
MAX_PARTIAL_IV = 5
MAX_SEQ = (1 << (8 * MAX_PARTIAL_IV)) - 1
MAX_ENVELOPE = 8192
MAX_KID = 32

PROTECTED = dumps({HDR_ALG: ALG_AES_CCM_16_128_256})  # a1 01 18 1f
_ENC_STRUCTURE_HEAD = b"\x83\x68Encrypt0" + dumps(PROTECTED)


def partial_iv(seq: int) -> bytes:
    """The sequence number as a Partial IV: big-endian, shortest form."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq > MAX_SEQ:
        raise EnvelopeError("sequence number out of range 0..%d" % MAX_SEQ, "header")
    n = 1
    while seq >> (8 * n):  # MicroPython's int has no bit_length()
        n += 1
    return seq.to_bytes(n, "big")


def nonce(base_iv: bytes, piv: bytes) -> bytes:
    """Base IV XOR the Partial IV left-padded to the IV's length."""
    if len(base_iv) != ccm.NONCE_LEN:
        raise ValueError("base IV must be %d bytes" % ccm.NONCE_LEN)
    n = int.from_bytes(base_iv, "big") ^ int.from_bytes(piv, "big")
    return n.to_bytes(ccm.NONCE_LEN, "big")


def _aad(topic: str) -> bytes:
    return _ENC_STRUCTURE_HEAD + dumps(topic.encode("utf-8"))


def seal(key: bytes, base_iv: bytes, kid: bytes, seq: int, topic: str, payload: bytes) -> bytes:
    """Encrypt ``payload`` (CBOR bytes) for ``topic`` as the ``seq``-th message of sender ``kid``."""
    if not kid or len(kid) > MAX_KID:
        raise EnvelopeError("kid must be 1..%d bytes" % MAX_KID, "header")
    piv = partial_iv(seq)
    ct = ccm.encrypt(key, nonce(base_iv, piv), payload, _aad(topic))
    return dumps(Tag(COSE_ENCRYPT0, [PROTECTED, {HDR_KID: bytes(kid), HDR_PARTIAL_IV: piv}, ct]))


class Sealed:
    """A parsed, not yet authenticated COSE_Encrypt0."""

    __slots__ = ("ciphertext", "kid", "piv", "plaintext", "protected", "seq")

    def __init__(self, protected: bytes, kid: bytes, piv: bytes, ciphertext: bytes) -> None:
        self.protected = protected
        self.kid = kid
        self.piv = piv
        self.seq = int.from_bytes(piv, "big")
        self.ciphertext = ciphertext
        self.plaintext = b""  # set by open_on_topic once authenticated

    def open(self, key: bytes, base_iv: bytes, topic: str) -> bytes:
        """The authenticated plaintext; ``EnvelopeError`` (reason ``tag``) if anything was changed."""
        # parse() admits only the contract's protected header, so the AAD is the sealing side's
        return ccm.decrypt(key, nonce(base_iv, self.piv), self.ciphertext, _aad(topic))


def parse(data: bytes) -> Sealed:
    """Check the structure and headers of an envelope; no key needed, nothing authenticated yet."""
    if len(data) > MAX_ENVELOPE:
        raise EnvelopeError("envelope of %d bytes exceeds %d" % (len(data), MAX_ENVELOPE), "too_large")
    try:
        obj = loads(data, MAX_ENVELOPE, 4)
    except CBORError as exc:
        raise EnvelopeError("not CBOR: %s" % exc, "malformed") from None
    if not isinstance(obj, Tag) or obj.tag != COSE_ENCRYPT0:
        raise EnvelopeError("not a COSE_Encrypt0 (tag 16)", "malformed")
    msg = obj.value
    if not isinstance(msg, list) or len(msg) != 3:
        raise EnvelopeError("COSE_Encrypt0 is not an array of 3", "malformed")
    protected, unprotected, ciphertext = msg
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise EnvelopeError("headers of the wrong type", "malformed")
    if not isinstance(ciphertext, bytes) or len(ciphertext) < ccm.TAG_LEN:
        raise EnvelopeError("ciphertext missing or shorter than the tag", "malformed")
    _check_protected(protected, unprotected)
    kid = unprotected.get(HDR_KID)
    piv = unprotected.get(HDR_PARTIAL_IV)
    if not isinstance(kid, bytes) or not 0 < len(kid) <= MAX_KID:
        raise EnvelopeError("kid missing or not 1..%d bytes" % MAX_KID, "header")
    if not isinstance(piv, bytes) or not 0 < len(piv) <= MAX_PARTIAL_IV:
        raise EnvelopeError("Partial IV missing or not 1..%d bytes" % MAX_PARTIAL_IV, "header")
    if len(piv) > 1 and piv[0] == 0:
        raise EnvelopeError("Partial IV not in shortest form", "header")
    return Sealed(protected, kid, piv, ciphertext)


def _check_protected(protected: bytes, unprotected: dict[object, object]) -> None:
    if protected != PROTECTED:
        try:
            hdr = loads(protected, 256, 2) if protected else {}  # empty: no protected headers
        except CBORError:
            raise EnvelopeError("protected header is not a CBOR map", "malformed") from None
        alg = hdr.get(HDR_ALG) if isinstance(hdr, dict) else None
        if alg != ALG_AES_CCM_16_128_256:
            raise EnvelopeError("algorithm is not AES-CCM-16-128-256 (31)", "alg")
        # Same algorithm, other encoding or extra parameters: not what any sender of ours writes.
        raise EnvelopeError("protected header is not the contract's {1: 31}", "header")
    if HDR_ALG in unprotected:
        raise EnvelopeError("algorithm in the unprotected header", "header")


def open_on_topic(
    data: bytes,
    topic: str,
    find_key: Callable[[str, bytes], tuple[bytes, bytes] | None],
    where: tuple[str, str] | None = None,
) -> Sealed:
    """The receiver's procedure: parse, require kid == the topic's device, find the key, open.

    ``find_key(facility, kid)`` returns (key, base IV) of the sending direction, or None for an
    unknown device. ``where``: the topic's (facility, device) when the caller has parsed it
    already. Returns the opened ``Sealed`` with ``plaintext`` set.
    """
    if where is None:
        facility, device, _kind = parse_topic(topic)
    else:
        facility, device = where
    sealed = parse(data)
    if sealed.kid != device.encode():
        raise EnvelopeError("kid is not the topic's device", "kid")
    found = find_key(facility, sealed.kid)
    if found is None:
        raise EnvelopeError("no key for this device", "unknown_kid")
    sealed.plaintext = sealed.open(found[0], found[1], topic)
    return sealed
