"""A test PKI for virtual chips: a Country Signing CA (CSCA) and a Document Signer (DS) under it,
generated on the spot (EC P-256, ECDSA with SHA-256). Test keys only; their names say so."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
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
    def generate(cls, country: str = "Test CSCA") -> TestPki:
        csca_key = ec.generate_private_key(ec.SECP256R1())
        ds_key = ec.generate_private_key(ec.SECP256R1())
        csca_name = _name(country)
        csca = _certificate(csca_name, csca_name, csca_key, csca_key, ca=True)
        ds = _certificate(_name("Test Document Signer"), csca_name, ds_key, csca_key, ca=False)
        return cls(csca, ds, ds_key)

    def sign(self, data: bytes) -> bytes:
        return self.ds_key.sign(data, ec.ECDSA(hashes.SHA256()))
