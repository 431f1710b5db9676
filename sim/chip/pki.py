"""A test PKI for virtual chips: a Country Signing CA (CSCA) and a Document Signer (DS) under it,
generated on the spot (EC P-256, ECDSA with SHA-256). Test keys only; their names say so."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from . import _der


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cccd-edge simulator (TEST ONLY)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
    shift: datetime.timedelta = datetime.timedelta(0),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC) + shift
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class TestPki:
    """``csca`` is the trust anchor a reader is configured with; ``ds`` signs the chips' SODs."""

    __test__ = False  # not a pytest class

    csca: x509.Certificate
    ds: x509.Certificate
    ds_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, country: str = "Test CSCA", *, ds_expired: bool = False) -> TestPki:
        """A CSCA and a DS under it, valid from yesterday for 10 years (the DS ended yesterday
        when ``ds_expired``: its validity shifted 10 years back)."""
        csca_key = ec.generate_private_key(ec.SECP256R1())
        ds_key = ec.generate_private_key(ec.SECP256R1())
        csca_name = _name(country)
        csca = _certificate(csca_name, csca_name, csca_key, csca_key, ca=True)
        shift = -datetime.timedelta(days=3651) if ds_expired else datetime.timedelta(0)
        ds = _certificate(_name("Test Document Signer"), csca_name, ds_key, csca_key, ca=False, shift=shift)
        return cls(csca, ds, ds_key)

    def sign(self, data: bytes) -> bytes:
        return self.ds_key.sign(data, ec.ECDSA(hashes.SHA256()))


def master_list(pki: TestPki, *others: x509.Certificate) -> bytes:
    """An ICAO CSCA master list (CMS SignedData, id-icao-cscaMasterList) holding ``pki``'s CSCA and
    ``others``, signed by the DS key for want of a master list signer (readers do not check it)."""
    certs = [c.public_bytes(Encoding.DER) for c in (pki.csca, *others)]
    content = _der.seq(_der.integer(0), _der.set_of(*certs))
    sha256 = _der.seq(_der.oid("2.16.840.1.101.3.4.2.1"), b"\x05\x00")
    signer = _der.seq(
        _der.integer(1),
        _der.seq(pki.ds.issuer.public_bytes(), _der.integer(pki.ds.serial_number)),
        sha256,
        _der.seq(_der.oid("1.2.840.10045.4.3.2")),
        _der.octets(pki.sign(content)),
    )
    signed = _der.seq(
        _der.integer(3),
        _der.set_of(sha256),
        _der.seq(_der.oid("2.23.136.1.1.2"), _der.tlv(0xA0, _der.octets(content))),
        _der.tlv(0xA0, pki.ds.public_bytes(Encoding.DER)),
        _der.set_of(signer),
    )
    return _der.seq(_der.oid("1.2.840.113549.1.7.2"), _der.tlv(0xA0, signed))
