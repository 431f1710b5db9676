"""The LDS files a CCCD read uses (ICAO Doc 9303 Part 10): EF.COM, DG1 (the TD1 MRZ) and DG13 (the
Vietnamese personal data). Each parser takes the file's bytes as read and returns plain values;
malformed structure raises ``ChipDataError``, doubtful content (a check digit, a date) is kept and
named in ``warn``.
"""

from __future__ import annotations

import datetime
import unicodedata
from dataclasses import dataclass, field

from . import tlv
from .bac import check_digit
from .errors import ChipDataError

# Data group number -> LDS tag (Part 10, 4.6.2): DG1 61, DG2 75, DG3 63, DG4 76, DG5..DG16 65..70.
DG_TAGS = {1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76} | {n: 0x60 + n for n in range(5, 17)}
TAG_DG = {t: n for n, t in DG_TAGS.items()}
EF_COM_FID, EF_SOD_FID = 0x011E, 0x011D


def dg_fid(n: int) -> int:
    """The file identifier of DG n: 0101 .. 0110."""
    return 0x0100 + n


@dataclass(frozen=True)
class Com:
    """EF.COM: the LDS and Unicode versions and the data groups the chip says it holds."""

    lds_version: str
    unicode_version: str
    groups: tuple[int, ...]


def parse_com(data: bytes) -> Com:
    com = tlv.decode_one(data, 0x60)
    tags = com.child(0x5C).value
    unknown = [t for t in tags if t not in TAG_DG]
    if unknown:
        raise ChipDataError(f"EF.COM lists unknown data group tags {bytes(unknown).hex()}")
    return Com(
        _ascii(com.child(0x5F01).value), _ascii(com.child(0x5F36).value), tuple(TAG_DG[t] for t in tags)
    )


def _ascii(value: bytes) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ChipDataError("expected ASCII text") from exc


@dataclass(frozen=True)
class Mrz:
    """DG1 of a TD1 card. ``personal_id`` is the 12-digit ID from the optional data of line 1
    (None when absent); dates ``YYMMDD`` as printed; ``warn`` names failed check digits."""

    document_code: str
    issuer: str
    document_number: str
    personal_id: str | None
    birth: str
    sex: str
    expiry: str
    nationality: str
    name: str
    warn: tuple[str, ...] = ()

    def __repr__(self) -> str:  # personal fields never in logs
        return f"Mrz(document_code={self.document_code!r}, issuer={self.issuer!r}, ...)"


def parse_dg1(data: bytes) -> Mrz:
    mrz = _ascii(tlv.decode_one(data, 0x61).child(0x5F1F).value)
    if len(mrz) != 90:
        raise ChipDataError(f"DG1: a TD1 MRZ has 90 characters, this one {len(mrz)}")
    l1, l2, l3 = mrz[:30], mrz[30:60], mrz[60:]
    warn = []
    checks = {
        "document_number": (l1[5:14], l1[14]),
        "birth": (l2[0:6], l2[6]),
        "expiry": (l2[8:14], l2[14]),
        "composite": (l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29]),
    }
    for name, (value, digit) in checks.items():
        try:
            ok = check_digit(value) == digit
        except ValueError:
            ok = False
        if not ok:
            warn.append(f"mrz_check_{name}")
    optional = l1[15:30]
    pid = optional[:12] if optional[:12].isdigit() else None
    surname, _, given = l3.rstrip("<").partition("<<")
    name = " ".join(part.replace("<", " ").strip() for part in (surname, given) if part)
    return Mrz(
        document_code=l1[0:2].rstrip("<"),
        issuer=l1[2:5],
        document_number=l1[5:14].rstrip("<"),
        personal_id=pid,
        birth=l2[0:6],
        sex={"M": "M", "F": "F"}.get(l2[7], ""),
        expiry=l2[8:14],
        nationality=l2[15:18],
        name=name,
        warn=tuple(warn),
    )


DG13_OID = "1.0.10646.1.0.8"
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}
_FIELDS = {
    1: "personal_id", 2: "name", 3: "birth", 4: "sex", 5: "nationality", 6: "ethnicity",
    7: "religion", 8: "hometown", 9: "residence", 10: "marks", 11: "issued", 12: "expires",
    15: "old_id",
}  # fmt: skip
_DATES = {3, 11, 12}


@dataclass(frozen=True)
class VnIdentity:
    """DG13 of a CCCD: every field None when the chip does not have it. Dates ISO ``YYYY-MM-DD`` (as
    written when not a dd/mm/yyyy date, warned); ``sex`` ``M``/``F`` (or as written, warned);
    ``expires`` None also for a card without expiry; text NFC-normalised. ``other`` holds the
    numbers we do not know (16 is not publicly documented) as text."""

    personal_id: str | None = None
    name: str | None = None
    birth: str | None = None
    sex: str | None = None
    nationality: str | None = None
    ethnicity: str | None = None
    religion: str | None = None
    hometown: str | None = None
    residence: str | None = None
    marks: str | None = None
    issued: str | None = None
    expires: str | None = None
    father: str | None = None
    mother: str | None = None
    spouse: str | None = None
    old_id: str | None = None
    other: dict[int, str] = field(default_factory=dict)
    warn: tuple[str, ...] = ()

    def __repr__(self) -> str:  # personal fields never in logs
        return f"VnIdentity(<{sum(v is not None for v in vars(self).values())} fields>)"


def _text(obj: tlv.Tlv, warn: list[str]) -> str | None:
    codec = _STRINGS.get(obj.tag)
    if codec is None:
        warn.append(f"dg13_string_tag_{obj.tag:x}")
        codec = "utf-8"
    text = obj.value.decode(codec, errors="replace")
    if "\ufffd" in text:
        warn.append("dg13_bad_text")
    text = unicodedata.normalize("NFC", text).strip()
    return text or None


def _date(text: str | None, n: int, warn: list[str]) -> str | None:
    if text is None:
        return None
    try:
        return datetime.datetime.strptime(text, "%d/%m/%Y").date().isoformat()
    except ValueError:
        if n == 12 and not any(ch.isdigit() for ch in text):
            return None  # "Không thời hạn": no expiry
        if n == 3 and len(text) == 4 and text.isdigit():
            return text  # year of birth only
        warn.append(f"dg13_date_{n}")
        return text


def _sex(text: str | None, warn: list[str]) -> str | None:
    if text is None:
        return None
    key = text.casefold()
    if key in ("nam", "m", "male"):
        return "M"
    if key in ("nữ", "nu", "f", "female"):
        return "F"
    warn.append("dg13_sex")
    return text


def _entries(top: tlv.Tlv) -> list[tlv.Tlv]:
    """The numbered SEQUENCEs: in the SET of the structure, or (tolerated) straight in the SEQUENCE."""
    out = []
    for c in top.children():
        if c.tag == 0x31:
            out += [e for e in c.children() if e.tag == 0x30]
        elif c.tag == 0x30:
            out.append(c)
    return out


def parse_dg13(data: bytes) -> VnIdentity:
    """DG13, by field number, never by position: missing numbers stay None, unknown ones go to
    ``other``, a repeated number keeps its first value (warned)."""
    top = tlv.decode_one(data, 0x6D).child(0x30)
    warn: list[str] = []
    oids = [tlv.oid(c) for c in top.children() if c.tag == 0x06]
    if oids and oids[0] != DG13_OID:
        warn.append("dg13_oid")
    values: dict[str, str | None] = {}
    other: dict[int, str] = {}
    seen: set[int] = set()
    for entry in _entries(top):
        parts = entry.children()
        if not parts or parts[0].tag != 0x02:
            warn.append("dg13_entry")
            continue
        n = tlv.integer(parts[0])
        if n in seen:
            warn.append(f"dg13_repeated_{n}")
            continue
        seen.add(n)
        rest = parts[1:]
        if n == 13:
            parents = rest[0].children() if rest and rest[0].tag == 0x30 else rest
            texts = [_text(p, warn) for p in parents]
            values["father"], values["mother"] = [*texts, None, None][:2]
        elif n == 14:
            values["spouse"] = _text(rest[0], warn) if rest else None
        elif n in _FIELDS:
            text = _text(rest[0], warn) if rest else None
            if n in _DATES:
                text = _date(text, n, warn)
            elif n == 4:
                text = _sex(text, warn)
            values[_FIELDS[n]] = text
        elif rest and not rest[0].constructed:
            other[n] = _text(rest[0], warn) or ""
    return VnIdentity(**values, other=other, warn=tuple(warn))
