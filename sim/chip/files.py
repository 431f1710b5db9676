"""The files of a virtual CCCD chip, from a synthetic citizen of ``sim.citizens``.

EF.COM, DG1 (TD1 MRZ: ``IDVNM``, the 9-digit document number = the last 9 digits of the personal
ID, its check digit, the 12-digit ID in the optional data), DG13 (the Vietnamese data, fields by
number, PrintableString for numbers and UTF8String for text) and EF.SOD (CMS SignedData over the
LDS security object, signed by the test Document Signer).

The card's expiry follows the law it was issued under, art. 21 of each: renewal at 25, 40 and 60
(CCCD law 2014), and at 14 too (Căn cước law 2023, cards issued from 2024-07-01); a card issued within
2 years before a renewal age runs to the next one; one issued at 58 or later does not expire.
"""

from __future__ import annotations

import datetime
import hashlib
import random
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sim import citizens

from . import _der
from ._pace import card_access
from .pki import TestPki

SHA256 = "2.16.840.1.101.3.4.2.1"
LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
DG13_OID = "1.0.10646.1.0.8"
AA_INFO = "2.23.136.1.1.5"  # id-icao-mrtd-security-aaProtocolObject
ECDSA_PLAIN_SHA256 = "0.4.0.127.0.7.1.1.4.1.3"
_WEIGHTS = (7, 3, 1)


def check_digit(field: str) -> str:
    def value(ch: str) -> int:
        return int(ch) if ch.isdigit() else 0 if ch == "<" else ord(ch) - 55

    return str(sum(value(ch) * _WEIGHTS[i % 3] for i, ch in enumerate(field)) % 10)


def expiry(dob: datetime.date, issued: datetime.date) -> datetime.date | None:
    """The expiry date of a card issued on ``issued`` (None: no expiry)."""
    ages = (14, 25, 40, 60) if issued >= datetime.date(2024, 7, 1) else (25, 40, 60)
    for age in ages:
        milestone = _birthday(dob, age)
        if issued < _birthday(dob, age - 2):
            return milestone
    return None


def _birthday(dob: datetime.date, age: int) -> datetime.date:
    try:
        return dob.replace(year=dob.year + age)
    except ValueError:  # 29 February
        return dob.replace(year=dob.year + age, day=28)


@dataclass(frozen=True)
class ChipFiles:
    """File contents by file identifier; ``bac`` the chip's MRZ information as (document number,
    DOB, expiry), the key a reader must know."""

    files: dict[int, bytes]
    bac: tuple[str, str, str]
    aa_key: ec.EllipticCurvePrivateKey | None = None  # Active Authentication's key (DG15 has its public half)

    def with_file(self, fid: int, data: bytes) -> ChipFiles:
        return ChipFiles({**self.files, fid: data}, self.bac, self.aa_key)


def _yymmdd(day: datetime.date | None) -> str:
    return day.strftime("%y%m%d") if day else "<<<<<<"


def mrz(c: citizens.Citizen, expires: datetime.date | None) -> str:
    doc = c.cccd[3:]
    line1 = f"IDVNM{doc}{check_digit(doc)}{c.cccd}".ljust(30, "<")
    birth, end = _yymmdd(c.dob), _yymmdd(expires)
    line2 = f"{birth}{check_digit(birth)}{c.sex}{end}{check_digit(end)}VNM" + "<" * 11
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    line2 += check_digit(composite)
    family, _, rest = _ascii(c.name).partition(" ")
    line3 = (family + "<<" + rest.replace(" ", "<")).ljust(30, "<")[:30]
    return line1 + line2 + line3


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in plain if ch.isascii()).upper()


def _parents(c: citizens.Citizen) -> tuple[str, str]:
    rng = random.Random(c.cccd)
    family = c.name.split(" ")[0]
    return citizens._name(rng, "M", family), citizens._name(rng, "F")


def dg13(c: citizens.Citizen, expires: datetime.date | None) -> bytes:
    father, mother = _parents(c)
    province = c.address.rsplit(", ", 1)[-1]
    fields: list[tuple[int, bytes]] = [
        (1, _der.printable(c.cccd)),
        (2, _der.utf8(c.name)),
        (3, _der.printable(c.dob.strftime("%d/%m/%Y"))),
        (4, _der.utf8("Nam" if c.sex == "M" else "Nữ")),
        (5, _der.utf8("Việt Nam")),
        (6, _der.utf8("Kinh")),
        (7, _der.utf8("Không")),
        (8, _der.utf8(province)),
        (9, _der.utf8(c.address)),
        (10, _der.utf8("Nốt ruồi C:1cm trên trước mép trái")),
        (11, _der.printable(c.issued.strftime("%d/%m/%Y"))),
        (12, _der.printable(expires.strftime("%d/%m/%Y")) if expires else _der.utf8("Không thời hạn")),
        (13, _der.seq(_der.utf8(father), _der.utf8(mother))),
    ]
    if c.cmnd:
        fields.append((15, _der.printable(c.cmnd)))
    entries = [_der.seq(_der.integer(n), value) for n, value in fields]
    body = _der.seq(_der.integer(1), _der.oid(DG13_OID), _der.tlv(0x31, *entries))
    return _der.tlv(0x6D, body)


def ef_com(tags: bytes) -> bytes:
    return _der.tlv(0x60, _der.tlv(0x5F01, b"0107"), _der.tlv(0x5F36, b"040000"), _der.tlv(0x5C, tags))


def sod(groups: dict[int, bytes], pki: TestPki) -> bytes:
    """EF.SOD: CMS SignedData (RFC 5652) over the LDS security object, signed attributes, ECDSA."""
    alg = _der.seq(_der.oid(SHA256), b"\x05\x00")
    hashes = [
        _der.seq(_der.integer(n), _der.octets(hashlib.sha256(d).digest())) for n, d in sorted(groups.items())
    ]
    content = _der.seq(_der.integer(0), alg, _der.seq(*hashes))
    attrs = [
        _der.seq(_der.oid("1.2.840.113549.1.9.3"), _der.set_of(_der.oid(LDS_SECURITY_OBJECT))),
        _der.seq(
            _der.oid("1.2.840.113549.1.9.4"), _der.set_of(_der.octets(hashlib.sha256(content).digest()))
        ),
    ]
    signed_attrs = _der.set_of(*attrs)
    signer = _der.seq(
        _der.integer(1),
        _der.seq(pki.ds.issuer.public_bytes(), _der.integer(pki.ds.serial_number)),
        alg,
        b"\xa0" + signed_attrs[1:],
        _der.seq(_der.oid("1.2.840.10045.4.3.2")),
        _der.octets(pki.sign(signed_attrs)),
    )
    signed_data = _der.seq(
        _der.integer(3),
        _der.set_of(alg),
        _der.seq(_der.oid(LDS_SECURITY_OBJECT), _der.tlv(0xA0, _der.octets(content))),
        _der.tlv(0xA0, pki.ds.public_bytes(Encoding.DER)),
        _der.set_of(signer),
    )
    return _der.tlv(0x77, _der.seq(_der.oid("1.2.840.113549.1.7.2"), _der.tlv(0xA0, signed_data)))


def active_authentication(key: ec.EllipticCurvePrivateKey) -> dict[int, bytes]:
    """DG14 (an ActiveAuthenticationInfo naming ECDSA-plain-SHA256, BSI TR-03111) and DG15 (the
    public key) of a chip that does ECDSA Active Authentication."""
    info = _der.seq(_der.oid(AA_INFO), _der.integer(1), _der.oid(ECDSA_PLAIN_SHA256))
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {14: _der.tlv(0x6E, _der.set_of(info)), 15: _der.tlv(0x6F, spki)}


def chip_files(c: citizens.Citizen, pki: TestPki, *, pace: bool = True, aa: bool = True) -> ChipFiles:
    """The files of ``c``'s chip, signed by ``pki``'s Document Signer; with EF.CardAccess offering
    PACE (as CCCD chips do) unless ``pace`` is False (a BAC-only chip), and DG14/DG15 for Active
    Authentication unless ``aa`` is False."""
    expires = expiry(c.dob, c.issued)
    groups = {1: _der.tlv(0x61, _der.tlv(0x5F1F, mrz(c, expires).encode("ascii"))), 13: dg13(c, expires)}
    key = ec.generate_private_key(ec.SECP256R1()) if aa else None
    if key is not None:
        groups |= active_authentication(key)
    tags = bytes(0x60 + n if n > 4 else 0x61 for n in sorted(groups))
    files = {0x011E: ef_com(tags), 0x011D: sod(groups, pki)}
    if pace:
        files[0x011C] = card_access()
    files |= {0x0100 + n: data for n, data in groups.items()}
    return ChipFiles(files, (c.cccd[3:], _yymmdd(c.dob), _yymmdd(expires)), key)


def sample_citizen(seed: int, today: datetime.date = datetime.date(2026, 11, 1)) -> citizens.Citizen:
    """The first synthetic citizen of a population of 20 whose card expires: a test's usual card."""
    return next(c for c in citizens.population(20, seed=seed, today=today) if expiry(c.dob, c.issued))
