"""EF.SOD and passive authentication (ICAO Doc 9303 Part 10, 4.6.2; Part 11, 5.1; RFC 5652).

EF.SOD (tag 77) is a CMS SignedData whose content is the LDS security object: the hash of every data
group. Passive authentication checks, in order:

1. each data group read hashes to the value in the security object;
2. the SignerInfo's signed attributes carry that content's digest, and their signature verifies
   with the Document Signer (DS) certificate inside the SOD;
3. the DS certificate is valid today and was issued by a CSCA of the configured store
   (``CscaStore``).

The outcome (``Outcome``): ``authenticated`` when all three hold, ``failed`` when any check fails
(the chip's data must not be trusted), ``no_trust_anchor`` when 1 and 2 hold but no CSCA of the
store issued the DS (an empty store, or a country we hold no CSCA of).
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from . import tlv
from .errors import ChipDataError

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
_CSCA_MASTER_LIST = "2.23.136.1.1.2"
_CONTENT_TYPE, _MESSAGE_DIGEST = "1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4"
_HASHES = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_RSA_PSS = "1.2.840.113549.1.1.10"


class Outcome(enum.StrEnum):
    AUTHENTICATED = "authenticated"
    FAILED = "failed"
    NO_TRUST_ANCHOR = "no_trust_anchor"


@dataclass(frozen=True)
class Sod:
    """What passive authentication needs of EF.SOD."""

    hash_name: str  # of the data groups
    dg_hashes: Mapping[int, bytes]
    content: bytes  # the DER of the LDS security object (eContent)
    signed_attrs: bytes | None  # DER of the signed attributes, retagged as the SET that was signed
    message_digest: bytes | None
    digest_name: str  # the SignerInfo's digest algorithm
    signature_oid: str
    signature: bytes
    certificate: x509.Certificate


def _hash_name(alg: tlv.Tlv) -> str:
    name = _HASHES.get(tlv.oid(alg.children()[0]))
    if name is None:
        raise ChipDataError("SOD: unsupported hash algorithm")
    return name


def _lds_security_object(content: bytes) -> tuple[str, dict[int, bytes]]:
    parts = tlv.decode_one(content, 0x30).children()
    if len(parts) < 3 or parts[0].tag != 0x02 or parts[2].tag != 0x30:
        raise ChipDataError("SOD: malformed LDS security object")
    out: dict[int, bytes] = {}
    for item in parts[2].children():
        number, value = item.children()[:2]
        if value.tag != 0x04:
            raise ChipDataError("SOD: a data group hash is not an OCTET STRING")
        out[tlv.integer(number)] = value.value
    return _hash_name(parts[1]), out


def _signed_attributes(attrs: tlv.Tlv) -> tuple[bytes, bytes | None]:
    digest = None
    for attr in attrs.children():
        kind, values = attr.children()[:2]
        if tlv.oid(kind) == _MESSAGE_DIGEST:
            digest = values.children()[0].value
        elif tlv.oid(kind) == _CONTENT_TYPE and tlv.oid(values.children()[0]) != _LDS_SECURITY_OBJECT:
            raise ChipDataError("SOD: signed content type is not the LDS security object")
    return b"\x31" + attrs.raw[1:], digest


def parse_sod(data: bytes) -> Sod:
    """The security object, signature and DS certificate of EF.SOD; ``ChipDataError`` when malformed."""
    try:
        return _parse_sod(data)
    except ChipDataError:
        raise
    except (IndexError, StopIteration, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ChipDataError(f"SOD: malformed ({type(exc).__name__})") from exc


def _parse_sod(data: bytes) -> Sod:
    try:
        info = tlv.decode_one(data, 0x77).child(0x30).children()
        if tlv.oid(info[0]) != _SIGNED_DATA:
            raise ChipDataError("SOD: not a CMS SignedData")
        signed = info[1].child(0x30).children()
        encap = next(c for c in signed if c.tag == 0x30 and c.children()[0].tag == 0x06).children()
        if tlv.oid(encap[0]) != _LDS_SECURITY_OBJECT:
            raise ChipDataError("SOD: content is not an LDS security object")
        content = encap[1].child(0x04).value
        certs = next(c for c in signed if c.tag == 0xA0).children()
        signer = [c for c in signed if c.tag == 0x31][-1].children()[0].children()
    except (IndexError, StopIteration) as exc:
        raise ChipDataError("SOD: malformed SignedData") from exc
    hash_name, dg_hashes = _lds_security_object(content)
    attrs = next((c for c in signer if c.tag == 0xA0), None)
    signed_attrs, digest = _signed_attributes(attrs) if attrs else (None, None)
    algs = [c for c in signer if c.tag == 0x30]
    # SignerInfo: version, sid (a SEQUENCE, or [0]), digestAlgorithm, [0] attrs, signatureAlgorithm, ...
    if len(algs) < 2 or signer[-1].tag not in (0x04, 0xA1):
        raise ChipDataError("SOD: malformed SignerInfo")
    signature = next(c for c in reversed(signer) if c.tag == 0x04).value
    try:
        with warnings.catch_warnings():
            # Some countries' DS certificates have negative serial numbers: RFC 5280 forbids them,
            # the library warns, and 9303 readers accept them.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificate = x509.load_der_x509_certificate(certs[0].raw)
        certificate.issuer, certificate.subject, certificate.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise ChipDataError("SOD: the Document Signer certificate does not parse") from exc
    return Sod(
        hash_name,
        dg_hashes,
        content,
        signed_attrs,
        digest,
        _hash_name(algs[-2]),
        tlv.oid(algs[-1].children()[0]),
        signature,
        certificate,
    )


class CscaStore:
    """The trusted Country Signing CA certificates (from a master list or PEM/DER files)."""

    def __init__(self, certificates: Iterable[x509.Certificate] = ()) -> None:
        self.certificates = list(certificates)

    @classmethod
    def from_pem(cls, pem: bytes) -> CscaStore:
        return cls(x509.load_pem_x509_certificates(pem))

    @classmethod
    def from_master_list(cls, data: bytes) -> CscaStore:
        """The CSCA certificates of an ICAO master list (9303 Part 12, 9: a CMS SignedData whose
        content, id-icao-cscaMasterList, is SEQUENCE { version, SET OF Certificate }).

        The master list's own signature is not checked here: trust comes from where the file was
        obtained (the ICAO PKD or the issuing state), as with a PEM bundle."""
        try:
            signed = tlv.decode_one(data, 0x30).children()
            if tlv.oid(signed[0]) != _SIGNED_DATA:
                raise ChipDataError("master list: not a CMS SignedData")
            encap = next(
                c for c in signed[1].child(0x30).children() if c.tag == 0x30 and c.children()[0].tag == 0x06
            )
            parts = encap.children()
            if tlv.oid(parts[0]) != _CSCA_MASTER_LIST:
                raise ChipDataError("master list: content is not a CSCA master list")
            content = tlv.decode_one(parts[1].child(0x04).value, 0x30).children()
            certificates = [x509.load_der_x509_certificate(c.raw) for c in content[1].children()]
        except ChipDataError:
            raise
        except (IndexError, StopIteration, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ChipDataError(f"master list: malformed ({type(exc).__name__})") from exc
        return cls(certificates)

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The CSCA that signed ``cert``, or None."""
        for ca in self.certificates:
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return ca
        return None

    def has_issuer_named(self, cert: x509.Certificate) -> bool:
        return any(ca.subject == cert.issuer for ca in self.certificates)


@dataclass(frozen=True)
class PassiveAuthentication:
    outcome: Outcome
    reason: str  # for a person: what failed, or why there is no trust anchor
    groups: tuple[int, ...]  # the data groups whose hashes were checked


def _verify_signature(sod: Sod) -> None:
    signed = sod.signed_attrs if sod.signed_attrs is not None else sod.content
    algorithm = _CRYPTO_HASHES[sod.digest_name]()
    key = sod.certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(sod.signature, signed, ec.ECDSA(algorithm))
    elif isinstance(key, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO)
            if sod.signature_oid == _RSA_PSS
            else padding.PKCS1v15()
        )
        key.verify(sod.signature, signed, pad, algorithm)
    else:
        raise InvalidSignature("unsupported Document Signer key type")


def passive_authentication(
    sod_data: bytes, groups: Mapping[int, bytes], store: CscaStore
) -> PassiveAuthentication:
    """Check the data groups read (number -> file bytes) against EF.SOD and the CSCA store."""
    numbers = tuple(sorted(groups))

    def failed(reason: str) -> PassiveAuthentication:
        return PassiveAuthentication(Outcome.FAILED, reason, numbers)

    try:
        sod = parse_sod(sod_data)
    except ChipDataError as exc:
        return failed(str(exc))
    for n, data in sorted(groups.items()):
        expected = sod.dg_hashes.get(n)
        if expected is None:
            return failed(f"DG{n} is not in the SOD")
        if not hmac.compare_digest(hashlib.new(sod.hash_name, data).digest(), expected):
            return failed(f"DG{n} does not match its hash in the SOD")
    if sod.signed_attrs is not None:
        content_digest = hashlib.new(sod.digest_name, sod.content).digest()
        if sod.message_digest is None or not hmac.compare_digest(content_digest, sod.message_digest):
            return failed("the SOD's signed digest does not match its content")
    try:
        _verify_signature(sod)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return failed("the SOD's signature does not verify with its Document Signer certificate")
    now = datetime.datetime.now(datetime.UTC)
    if not sod.certificate.not_valid_before_utc <= now <= sod.certificate.not_valid_after_utc:
        # 9303 Part 12: a DS certificate is valid for its key's use plus the documents' lifetime
        return failed("the Document Signer certificate is not valid today")
    if store.issuer_of(sod.certificate) is not None:
        return PassiveAuthentication(Outcome.AUTHENTICATED, "", numbers)
    if store.has_issuer_named(sod.certificate):
        return failed("the Document Signer certificate's signature does not verify with its CSCA")
    return PassiveAuthentication(
        Outcome.NO_TRUST_ANCHOR, "no CSCA of the store issued the Document Signer", numbers
    )
