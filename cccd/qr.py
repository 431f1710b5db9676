"""Parse what a QR scanner read from a CCCD / Căn cước card, the VNeID app or a BHYT card.

``parse(data, now=None, source=None)`` returns a ``Scan`` (``doc``, ``ident``, ``warn``, ``text``) or
raises ``QRError`` (``reason``, ``text`` for the node's display, ``detail`` for engineers). Neither an
error's message nor its detail ever holds the personal data read. Runs under CPython and MicroPython.

Formats
-------
CCCD, the 2021 chip card: ``ID|CMND|name|DOB|sex|address|issued``, where ID is the 12-digit personal ID,
CMND the old 9-digit ID card number (often empty), DOB and issued ``ddmmyyyy``, sex ``Nam`` / ``Nữ``.
Six fields are accepted (no issue date: warning ``no_issue_date``); fields after the seventh are
ignored with warning ``extra_fields``, except a second 12-digit number, kept as ``cccd_old``.

Căn cước, the 2024 card: per Thông tư 16/2024/TT-BCA its QR holds the personal ID, name, sex, DOB,
residence, issue date, old CMND (if any) and a cancelled personal ID (if any); the field order is not
published. The rule used here:

1. the first field is always the 12-digit personal ID;
2. when the fields follow the 2021 layout above, the card is ``cccd`` -- unless a later field holds a
   cancelled personal ID (a second 12-digit number, which the 2021 card has no field for): then it
   is ``cancuoc``;
3. otherwise the fields are recognised by content -- exactly one sex word, one or two ``ddmmyyyy``
   dates, at most one 9-digit CMND, at most one other 12-digit number (cancelled ID), one or two
   text fields (the name and the address: the one that cannot be a name -- digits, commas -- is the
   address; when both could be, the first is the name) -- the card is ``cancuoc`` and
   warning ``field_order`` records the guess. Of two dates, the date of birth is the one whose year
   the personal ID encodes (the earlier one when both do); the other is the issue date. Anything
   else is ``unknown_format``.

VNeID: the app's QR has the same content as the card. A scan cannot tell the two apart, so the caller
says where it came from: with ``source="vneid"``, a scan of either card layout is ``vneid`` and any
other content is rejected as ``not_cccd``.

BHYT (health insurance card): ``card|hex(name)|DOB|sex|hex(address)|KCBBĐ|from|to|...$``: the card
number is 15 characters (2-letter group, benefit level 1-5, 2-digit province, 10-digit BHXH number) or
the bare 10-digit BHXH number; name and address are UTF-8 written in hex; DOB ``dd/mm/yyyy`` or just
``yyyy`` (warning ``year_only``); sex ``1`` male / ``2`` female; the registration facility like
``01 - 043`` (kept as ``01043``); validity ``dd/mm/yyyy`` (``to`` may be empty, ``-`` or absent).
Later fields (issue date, management code, parent's name, checksum, ...) differ between card years:
they are kept as strings in ``ident["extra"]``. No final ``$`` means the read was cut: ``torn``.

Which format: by the first ``|``-separated field. 12 digits: a personal ID card (CCCD, Căn cước or
VNeID). A BHYT card number or a 10-digit BHXH number, 15 characters starting with two letters, or a
text ending in ``$``: BHYT. Another number before a ``|``: ``bad_id``. A bare number with no ``|`` at
all: ``torn``. A web address or an EMVCo payment code (VietQR): ``not_cccd``. Anything else, or more
than ``MAX_FIELDS`` separators: ``unknown_format``.

Checks
------
The personal ID: 12 ASCII digits; the first three a province code of Thông tư 07/2016/TT-BCA
(``bad_province``); the fourth the century and sex (0/1: 1900s male/female, 2/3: 2000s, 4/5: 2100s
...) and the fifth and sixth the last two digits of the birth year, both agreeing with the DOB and
sex fields, else ``id_mismatch``. Dates are real calendar dates from 1900 (``bad_date``); the DOB is
not in the future (``future_dob``), the issue date neither and not before the DOB (``bad_date``).
Names hold letters, spaces and ' - . only, at most 100 characters; addresses letters, digits and
punctuation, at most 300; a sex word is needed (``bad_field``). All text is NFC with white space runs
collapsed (warning ``spaces`` when that changed a field); an empty address gives ``no_address``. A
personal ID code is ``torn`` with fewer than six fields, with a last field that is a number of the
wrong length (a date cut short), with nothing after the sex word, or with neither an address nor
an issue date. A BHYT code cut inside its card number (the start of one, no ``|``) is ``torn``.
A code cut inside its address cannot be told from a six-field code: it is accepted with
``no_issue_date``. BHYT: a bad card number
or facility code is ``bad_card``, a card whose validity has ended gives ``expired``, a card number
in lower case (Caps Lock on a keyboard-wedge scanner) is upper-cased with ``case``.

What scanners send, and what the parser does with it
----------------------------------------------------
- more than ``MAX_LEN`` bytes of UTF-8 (the scan goes whole into the Read's ``raw``): ``too_long``,
  before any other work;
- a UTF-8 byte order mark (bytes or U+FEFF) at the start: removed, ``bom``;
- white space (the scanner's CR/LF suffix) around the text: removed, ``trailing_ws``; other control
  characters (NUL padding, STX/ETX framing) around the text: removed, ``control``;
- control characters inside the text (other than tab, CR, LF): ``bad_encoding``, never stripped,
  since taking a character out of a number could make another valid number;
- invisible format characters (zero-width, direction marks and overrides, BOM) inside: removed,
  ``invisible``;
- UTF-8 shown as Latin-1/Windows-1252 (keyboard-wedge mojibake): repaired, ``mojibake``; mojibake that
  cannot be repaired, bytes that are not UTF-8, surrogates and U+FFFD: ``bad_encoding``; bytes that
  are UTF-8 but for a character cut at the end: ``torn``;
- decomposed text (NFD): composed, ``nfd``;
- the same code twice in one read (back to back, or on separate lines): kept once, ``doubled``;
  different codes on separate lines: ``multiple``;
- the node's clock not set (year before 2024, only when ``now`` is not given): the "not in the
  future" checks are skipped, ``no_clock``.

Under MicroPython the NFC step composes the Vietnamese alphabet only (cccd.text.nfc_fallback).
"""

import time

from cccd.errors import CoreError
from cccd.text import (
    INVISIBLE,
    WHITESPACE,
    collapse,
    decode_utf8,
    fold,
    is_control,
    is_letter,
    looks_mojibake,
    nfc,
    repair_mojibake,
    strip_any,
    strip_ws,
    upper_vn,
    utf8_status,
)

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated there
    pass

MAX_LEN = 1024  # bytes of UTF-8; a card's QR text is 100-400 bytes, twice that when read doubled
MAX_FIELDS = 32  # more '|' separators than any format has
_MAX_NAME = 100  # characters, as the Read's schema allows
_MAX_ADDRESS = 300
_FIRST_YEAR = 1900
_CLOCK_SET_YEAR = 2024  # a node whose clock says an earlier year has no real time

# Reason code -> display text (two lines of at most 16 characters). The one table of them.
_REASONS = (
    ("empty", "Không có dữ liệu\nQuét lại"),
    ("too_long", "Mã QR quá dài\nQuét thẻ CCCD"),
    ("torn", "Mã QR bị rách\nQuét lại"),
    ("multiple", "Nhiều mã QR\nQuét lại từng mã"),
    ("unknown_format", "Không nhận ra mã\nQuét CCCD/BHYT"),
    ("not_cccd", "Không phải CCCD\nDùng CCCD/VNeID"),
    ("bad_encoding", "Mã QR lỗi ký tự\nKiểm tra máy đọc"),
    ("bad_id", "Số CCCD sai\nQuét lại"),
    ("bad_province", "Sai mã tỉnh CCCD\nQuét lại"),
    ("id_mismatch", "Số CCCD không\nkhớp thông tin"),
    ("bad_date", "Ngày tháng sai\nQuét lại"),
    ("future_dob", "Ngày sinh sau\nngày hôm nay"),
    ("bad_field", "Sai dữ liệu thẻ\nQuét lại"),
    ("bad_card", "Số thẻ BHYT sai\nQuét lại"),
)
REASONS = tuple([code for code, _ in _REASONS])
_GENERIC_TEXT = "Lỗi đọc mã QR\nQuét lại"

# What the parser repaired or doubted (Scan.warn).
WARNINGS = (
    "bom",
    "trailing_ws",
    "control",
    "invisible",
    "mojibake",
    "nfd",
    "doubled",
    "no_clock",
    "spaces",
    "no_issue_date",
    "no_address",
    "field_order",
    "extra_fields",
    "year_only",
    "case",
    "expired",
)

DOCS = ("cccd", "cancuoc", "bhyt", "vneid")

# Province codes of the personal ID (Thông tư 07/2016/TT-BCA), "|code name|...".
_PROVINCES = (
    "|001Hà Nội|002Hà Giang|004Cao Bằng|006Bắc Kạn|008Tuyên Quang|010Lào Cai|011Điện Biên|012Lai Châu"
    "|014Sơn La|015Yên Bái|017Hòa Bình|019Thái Nguyên|020Lạng Sơn|022Quảng Ninh|024Bắc Giang"
    "|025Phú Thọ|026Vĩnh Phúc|027Bắc Ninh|030Hải Dương|031Hải Phòng|033Hưng Yên|034Thái Bình"
    "|035Hà Nam|036Nam Định|037Ninh Bình|038Thanh Hóa|040Nghệ An|042Hà Tĩnh|044Quảng Bình"
    "|045Quảng Trị|046Thừa Thiên Huế|048Đà Nẵng|049Quảng Nam|051Quảng Ngãi|052Bình Định|054Phú Yên"
    "|056Khánh Hòa|058Ninh Thuận|060Bình Thuận|062Kon Tum|064Gia Lai|066Đắk Lắk|067Đắk Nông"
    "|068Lâm Đồng|070Bình Phước|072Tây Ninh|074Bình Dương|075Đồng Nai|077Bà Rịa – Vũng Tàu"
    "|079TP Hồ Chí Minh|080Long An|082Tiền Giang|083Bến Tre|084Trà Vinh|086Vĩnh Long|087Đồng Tháp"
    "|089An Giang|091Kiên Giang|092Cần Thơ|093Hậu Giang|094Sóc Trăng|095Bạc Liêu|096Cà Mau|"
)

_C0 = "".join([chr(i) for i in range(32)]) + "\x7f"
_JUNK = WHITESPACE + _C0 + INVISIBLE  # what may surround the text
# The same less NEL, no-break space and soft hyphen, which mojibake makes of UTF-8 continuation bytes
# (0x85, 0xA0, 0xAD): before repair they may be the end of a letter ("Hà" -> "HÃ\xa0").
_JUNK_RAW = "".join([c for c in _JUNK if c not in "\x85\xa0\xad"])
_NAME_MARKS = " '-.\u2019\u02bc"  # besides letters: space, apostrophes (H'Hen), hyphen, dot
_TEXT_MARKS = "\u2013\u2014\u2018\u2019\u201c\u201d\u02bc"  # besides ASCII and letters: dashes, quotes

# Field kinds of the personal ID card layouts.
_EMPTY = "empty"
_DATE = "date"
_ID9 = "id9"
_ID12 = "id12"
_DIGITS = "digits"
_SEX = "sex"
_TEXT = "text"


def reason_text(reason: str) -> str:
    """The Vietnamese display text (two lines of at most 16 characters) for a reason code."""
    for code, text in _REASONS:
        if code == reason:
            return text
    return _GENERIC_TEXT


def province_name(code: str) -> str | None:
    """The province of a 3-digit personal ID province code, or None when there is none."""
    if len(code) != 3 or not _is_digits(code):
        return None
    i = _PROVINCES.find("|" + code)
    if i < 0:
        return None
    return _PROVINCES[i + 4 : _PROVINCES.find("|", i + 1)]


class QRError(CoreError):
    """A rejected scan: ``reason`` (a code of REASONS), ``text`` (for the display), ``detail`` (for
    engineers, never the data read). A ValueError, like every error of the core (cccd.errors)."""

    reason: str
    text: str
    detail: str

    def __init__(self, reason: str, text: str | None = None, detail: str = "") -> None:
        super().__init__(reason + ": " + detail if detail else reason, reason)
        self.reason = reason
        self.text = reason_text(reason) if text is None else text
        self.detail = detail


class Scan:
    """An accepted scan: ``doc`` (DOCS), ``ident`` (the Read's ``id`` map), ``warn``, ``text``."""

    doc: str
    ident: "dict[str, Any]"
    warn: list[str]
    text: str

    def __init__(self, doc: str, ident: "dict[str, Any]", warn: list[str], text: str) -> None:
        self.doc = doc
        self.ident = ident
        self.warn = warn
        self.text = text

    def __repr__(self) -> str:
        # Field names only: a Scan's repr must not put personal data into logs.
        keys = sorted(self.ident)
        return "Scan(doc=%r, fields=%r, warn=%r)" % (self.doc, keys, self.warn)


def parse(
    data: "bytes | bytearray | memoryview | str",
    now: "tuple[int, ...] | None" = None,
    source: str | None = None,
) -> Scan:
    """Parse one scan. ``now``: (year, month, day, ...) for the "not in the future" checks (default:
    the clock); ``source``: None, or "vneid" for the VNeID app's QR. Raises QRError."""
    if source is not None and source != "vneid":
        raise ValueError("unknown source")
    warn: list[str] = []
    text = _to_text(data, warn)
    text = _clean(text, warn)
    text = _undouble(text, warn)
    today = _today(now, warn)
    doc, ident = _dispatch(text, today, warn, source)
    return Scan(doc, ident, warn, text)


# ---------------------------------------------------------------------------------------------------
# Helpers


def _warn(warn: list[str], code: str) -> None:
    if code not in warn:
        warn.append(code)


def _is_digits(s: str) -> bool:
    """Whether ``s`` is one or more ASCII digits (str.isdigit also takes other scripts' digits)."""
    for c in s:  # a loop: no generator object on MicroPython's heap
        if c < "0" or c > "9":
            return False
    return bool(s)


def _today(now: "tuple[int, ...] | None", warn: list[str]) -> int:
    """Today as yyyymmdd, or 0 when the node's clock is not set."""
    if now is None:
        t = time.localtime()
        if t[0] < _CLOCK_SET_YEAR:
            _warn(warn, "no_clock")
            return 0
        return t[0] * 10000 + t[1] * 100 + t[2]
    return now[0] * 10000 + now[1] * 100 + now[2]


# ---------------------------------------------------------------------------------------------------
# From the scanner's bytes to clean text


def _to_text(data: "bytes | bytearray | memoryview | str", warn: list[str]) -> str:
    if isinstance(data, str):
        if len(data) > MAX_LEN or _utf8_len(data) > MAX_LEN:
            raise QRError("too_long", detail="more than %d bytes" % MAX_LEN)
        if not data:
            raise QRError("empty")
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse() takes bytes or str")
    if len(data) > MAX_LEN:
        raise QRError("too_long", detail="more than %d bytes" % MAX_LEN)
    raw = bytes(data)
    if not raw:
        raise QRError("empty")
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
        _warn(warn, "bom")
    status = utf8_status(raw)
    if status == 1 or (status == 2 and utf8_status(raw.rstrip(b" \t\r\n\x00")) == 1):
        raise QRError("torn", detail="last UTF-8 character cut off")
    if status:
        raise QRError("bad_encoding", detail="not UTF-8")
    return raw.decode("utf-8")


def _utf8_len(s: str) -> int:
    """Bytes of ``s`` in UTF-8, without encoding it."""
    n = 0
    for c in s:
        n += 1 if c < "\x80" else 2 if c < "\u0800" else 3 if c < "\U00010000" else 4
    return n


def _clean(s: str, warn: list[str]) -> str:
    """Surrounding junk off, mojibake repaired, controls refused, invisibles dropped, NFC."""
    s = _strip_ends(s, _JUNK_RAW, warn)
    fixed, repaired = repair_mojibake(s)
    if repaired:
        _warn(warn, "mojibake")
        s = fixed
    elif looks_mojibake(s.replace("\xa0", " ")):  # "Hà\xa0Nội" is not mojibake
        raise QRError("bad_encoding", detail="wrong code page, cannot repair")
    s = _strip_ends(s, _JUNK, warn)
    s = _scrub(s, warn)
    composed = nfc(s)
    if composed != s:
        _warn(warn, "nfd")
    if not composed:
        raise QRError("empty", detail="nothing but white space or control characters")
    return composed


def _strip_ends(s: str, junk: str, warn: list[str]) -> str:
    """``s`` without the characters of ``junk`` at either end, with a warning for what went."""
    kept = strip_any(s, junk)
    if len(kept) == len(s):
        return s
    # kept starts with a character that is not junk, so its first occurrence is where it starts
    lead = s.find(kept) if kept else len(s)
    for c in s[:lead] + s[lead + len(kept) :]:
        if c == "\ufeff":
            _warn(warn, "bom")
        elif c in WHITESPACE:
            _warn(warn, "trailing_ws")
        elif c in INVISIBLE:
            _warn(warn, "invisible")
        else:
            _warn(warn, "control")
    return kept


def _scrub(s: str, warn: list[str]) -> str:
    """Refuse controls, surrogates and U+FFFD inside the text; drop invisible format characters."""
    invisible = False
    for c in s:
        if c in INVISIBLE:
            invisible = True
        elif "\ud800" <= c <= "\udfff" or c in "\ufffd\ufffe\uffff":
            raise QRError("bad_encoding", detail="surrogate or replacement character")
        elif is_control(c) and c not in "\t\r\n":
            raise QRError("bad_encoding", detail="control character U+%04X inside the text" % ord(c))
    if not invisible:
        return s
    _warn(warn, "invisible")
    return "".join([c for c in s if c not in INVISIBLE])


def _undouble(s: str, warn: list[str]) -> str:
    """One copy of a code the scanner sent twice in one read."""
    if "\n" in s or "\r" in s:
        lines = s.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        lines = [strip_ws(line) for line in lines]
        lines = [line for line in lines if line]
        for line in lines[1:]:
            if line != lines[0]:
                raise QRError("multiple", detail="%d different lines" % len(lines))
        if len(lines) > 1:
            _warn(warn, "doubled")
        return lines[0]
    n = len(s)
    half = n // 2
    if n >= 2 and n % 2 == 0 and s[:half] == s[half:]:
        _warn(warn, "doubled")
        return s[:half]
    if n >= 3 and n % 2 == 1 and s[half] in WHITESPACE and s[:half] == s[half + 1 :]:
        _warn(warn, "doubled")
        return s[:half]
    return s


# ---------------------------------------------------------------------------------------------------
# Which format


def _dispatch(s: str, today: int, warn: list[str], source: str | None) -> "tuple[str, dict[str, Any]]":
    if s.count("|") >= MAX_FIELDS:
        raise QRError("unknown_format", detail="too many fields")
    piped = "|" in s
    head = strip_ws(s.split("|", 1)[0])
    numeric = _is_digits(head)
    if numeric and len(head) == 12 and piped:
        ident, doc = _parse_citizen(s, today, warn)
        return ("vneid" if source == "vneid" else doc), ident
    bhyt_head = _is_bhyt_number(upper_vn(head))
    if not piped and ((numeric and len(head) <= 15) or bhyt_head or _bhyt_prefix(upper_vn(head))):
        raise QRError("torn", detail="a bare number, the rest is missing")
    if source == "vneid":
        raise QRError("not_cccd", detail="VNeID scan without the personal ID layout")
    if piped and (bhyt_head or s.endswith("$") or _bhyt_like(head)):
        return "bhyt", _parse_bhyt(s, today, warn)
    if piped and numeric:
        raise QRError("bad_id", detail="first field: %d digits" % len(head))
    if _is_other_qr(head):
        raise QRError("not_cccd", detail="a web address or payment code")
    raise QRError("unknown_format")


def _is_other_qr(head: str) -> bool:
    """Common QR codes that are not cards: web addresses and EMVCo payment codes (VietQR)."""
    lower = head.lower()
    return lower.startswith("http://") or lower.startswith("https://") or head.startswith("000201")


def _bhyt_like(head: str) -> bool:
    """15 characters starting with two letters: meant to be a BHYT card number."""
    return len(head) == 15 and is_letter(head[0]) and is_letter(head[1])


def _bhyt_prefix(s: str) -> bool:
    """The start of a BHYT card number (AA, level 1-5, digits), 3 to 14 characters: a torn card."""
    if not 3 <= len(s) <= 14:
        return False
    return (
        "A" <= s[0] <= "Z"
        and "A" <= s[1] <= "Z"
        and "1" <= s[2] <= "5"
        and (len(s) == 3 or _is_digits(s[3:]))
    )


def _is_bhyt_number(s: str) -> bool:
    """A 15-character BHYT card number (AA + level 1-5 + 12 digits) or a 10-digit BHXH number."""
    if len(s) == 10:
        return _is_digits(s)
    if len(s) != 15:
        return False
    return "A" <= s[0] <= "Z" and "A" <= s[1] <= "Z" and "1" <= s[2] <= "5" and _is_digits(s[3:])


# ---------------------------------------------------------------------------------------------------
# Personal ID cards: CCCD (2021), Căn cước (2024), VNeID


def _parse_citizen(s: str, today: int, warn: list[str]) -> "tuple[dict[str, Any], str]":
    fields = [strip_ws(f) for f in s.split("|")]
    if len(fields) < 6:
        raise QRError("torn", detail="%d fields" % len(fields))
    last = fields[-1]
    if _is_digits(last) and len(last) not in (8, 9, 12):
        raise QRError("torn", detail="last field cut off")
    pid = fields[0]
    if province_name(pid[:3]) is None:
        raise QRError("bad_province", detail="unknown province code")
    if _is_2021(fields):
        if len(fields) == 6 and not fields[5]:
            raise QRError("torn", detail="no address and no issue date")
        raw, doc = _layout_2021(fields, warn)
    else:
        raw = _layout_by_content(fields, warn)
        doc = "cancuoc"
        _warn(warn, "field_order")
    return _citizen_ident(pid, raw, today, warn), doc


def _kind(f: str) -> str:
    if not f:
        return _EMPTY
    if _is_digits(f):
        n = len(f)
        return _DATE if n == 8 else _ID9 if n == 9 else _ID12 if n == 12 else _DIGITS
    if _sex_of(f):
        return _SEX
    return _TEXT


def _sex_of(f: str) -> str:
    """ "M" for Nam, "F" for Nữ (any case), else ""."""
    word = fold(f)
    if word == "NAM":
        return "M"
    if word == "NỮ":
        return "F"
    return ""


def _is_2021(fields: list[str]) -> bool:
    """Whether the fields have the 2021 CCCD shape (number fields by position, not yet checked)."""
    kinds = [_kind(f) for f in fields[1:7]]
    numeric = (_EMPTY, _DATE, _ID9, _ID12, _DIGITS)
    return (
        kinds[0] in numeric
        and kinds[1] == _TEXT
        and kinds[2] in numeric[1:]
        and kinds[3] == _SEX
        and kinds[4] in (_TEXT, _EMPTY)
        and (len(kinds) == 5 or kinds[5] in numeric)
    )


def _layout_2021(fields: list[str], warn: list[str]) -> "tuple[tuple[str, ...], str]":
    issued = fields[6] if len(fields) > 6 else ""
    old = ""
    for f in fields[7:]:
        if _kind(f) == _ID12 and not old and f != fields[0]:
            old = f
        elif f:
            _warn(warn, "extra_fields")
    raw = (fields[1], fields[2], fields[3], fields[4], fields[5], issued, old)
    return raw, ("cancuoc" if old else "cccd")


def _layout_by_content(fields: list[str], warn: list[str]) -> "tuple[str, ...]":
    found: dict[str, list[str]] = {_SEX: [], _DATE: [], _ID9: [], _ID12: [], _TEXT: []}
    for f in fields[1:]:
        kind = _kind(f)
        if kind == _DIGITS:
            raise QRError("unknown_format", detail="a number field of unexpected length")
        if kind == _ID12 and f == fields[0]:
            _warn(warn, "extra_fields")
        elif kind != _EMPTY:
            found[kind].append(f)
    counts = [len(found[k]) for k in (_SEX, _DATE, _ID9, _ID12, _TEXT)]
    if counts[0] != 1 or not 1 <= counts[1] <= 2 or counts[2] > 1 or counts[3] > 1 or not 1 <= counts[4] <= 2:
        raise QRError("unknown_format", detail="fields not recognised")
    dob, issued = _pick_dob(fields[0], found[_DATE])
    texts = found[_TEXT] + [""]
    if texts[1] and not _name_like(texts[0]) and _name_like(texts[1]):
        texts = [texts[1], texts[0]]  # an address has digits or commas; a name never
    cmnd = found[_ID9][0] if found[_ID9] else ""
    old = found[_ID12][0] if found[_ID12] else ""
    return (cmnd, texts[0], dob, found[_SEX][0], texts[1], issued, old)


def _pick_dob(pid: str, dates: list[str]) -> tuple[str, str]:
    """(DOB, issue date) of one or two dates of unknown order: the DOB is the date whose year the
    personal ID encodes, the earlier one when both do."""
    if len(dates) == 1:
        return dates[0], ""
    first, second = _ddmmyyyy(dates[0]), _ddmmyyyy(dates[1])
    if not first or not second:
        raise QRError("bad_date", detail="not a calendar date")
    first_ok, second_ok = _pid_year_ok(pid, first), _pid_year_ok(pid, second)
    if second_ok and (not first_ok or second < first):
        return dates[1], dates[0]
    return dates[0], dates[1]


def _pid_year_ok(pid: str, date: int) -> bool:
    """Whether the personal ID's century digit and year digits encode the year of ``date``."""
    year = date // 10000
    century = 19 + (ord(pid[3]) - 48) // 2
    return year // 100 == century and year % 100 == int(pid[4:6])


def _citizen_ident(pid: str, raw: "tuple[str, ...]", today: int, warn: list[str]) -> "dict[str, Any]":
    cmnd, name, dob_text, sex_text, address, issued_text, old = raw
    ident: dict[str, Any] = {"cccd": pid}
    if cmnd:
        if not _is_digits(cmnd) or len(cmnd) != 9:
            raise QRError("bad_id", detail="old ID card number is not 9 digits")
        ident["cmnd"] = cmnd
    ident["name"] = _name(name, warn)
    dob = _ddmmyyyy(dob_text)
    if not dob:
        raise QRError("bad_date", detail="date of birth")
    if today and dob > today:
        raise QRError("future_dob")
    ident["dob"] = _iso(dob)
    sex = _sex_of(sex_text)
    ident["sex"] = sex
    code = ord(pid[3]) - 48
    if not _pid_year_ok(pid, dob) or ("F" if code % 2 else "M") != sex:
        raise QRError("id_mismatch", detail="personal ID digits 4-6 disagree with DOB or sex")
    _put_address(ident, address, warn)
    if "address" not in ident and not issued_text:  # every card has a residence
        raise QRError("torn", detail="no address and no issue date: the code was cut short")
    if issued_text:
        ident["issued"] = _iso(_issue_date(issued_text, dob, today))
    else:
        _warn(warn, "no_issue_date")
    if old:
        if province_name(old[:3]) is None:
            raise QRError("bad_province", detail="cancelled personal ID")
        ident["cccd_old"] = old
    return ident


def _issue_date(text: str, dob: int, today: int) -> int:
    issued = _ddmmyyyy(text)
    if not issued:
        raise QRError("bad_date", detail="issue date")
    if issued < dob:
        raise QRError("bad_date", detail="issue date before date of birth")
    if today and issued > today:
        raise QRError("bad_date", detail="issue date in the future")
    return issued


# ---------------------------------------------------------------------------------------------------
# BHYT


def _parse_bhyt(s: str, today: int, warn: list[str]) -> "dict[str, Any]":
    if not s.endswith("$"):
        raise QRError("torn", detail="BHYT code without its final '$'")
    body = s[:-1]
    if "$" in body:
        raise QRError("bad_card", detail="'$' inside a BHYT code")
    fields = [strip_ws(f) for f in body.split("|")]
    if len(fields) > 1 and not fields[-1]:
        fields.pop()
    if len(fields) < 7:
        raise QRError("bad_card", detail="%d fields" % len(fields))
    ident: dict[str, Any] = {"bhyt": _bhyt_number(fields[0], warn)}
    ident["name"] = _name(_hex_text(fields[1], warn), warn)
    dob = _bhyt_dob(fields[2], warn)
    if today and dob > today:  # a year-only yyyy0000 is after today only in a later year
        raise QRError("future_dob")
    ident["dob"] = _iso(dob)
    ident["sex"] = _bhyt_sex(fields[3])
    _put_address(ident, _hex_text(fields[4], warn), warn)
    ident["kcbbd"] = _kcbbd(fields[5])
    _put_validity(ident, fields, today, warn)
    if len(fields) > 8:
        ident["extra"] = fields[8:]
    return ident


def _bhyt_number(f: str, warn: list[str]) -> str:
    number = upper_vn(f)
    if number != f:
        _warn(warn, "case")
    if not _is_bhyt_number(number):
        raise QRError("bad_card", detail="card number")
    return number


def _bhyt_dob(f: str, warn: list[str]) -> int:
    if len(f) == 4 and _is_digits(f):
        year = int(f)
        if year < _FIRST_YEAR:
            raise QRError("bad_date", detail="year of birth")
        _warn(warn, "year_only")
        return year * 10000
    dob = _dd_mm_yyyy(f)
    if not dob:
        raise QRError("bad_date", detail="date of birth")
    return dob


def _bhyt_sex(f: str) -> str:
    if f == "1":
        return "M"
    if f == "2":
        return "F"
    raise QRError("bad_field", detail="sex code")


def _kcbbd(f: str) -> str:
    code = f.replace(" ", "").replace("-", "")
    if len(code) != 5 or not _is_digits(code):
        raise QRError("bad_card", detail="registration facility code")
    return code


def _put_validity(ident: "dict[str, Any]", fields: list[str], today: int, warn: list[str]) -> None:
    start = _dd_mm_yyyy(fields[6])
    if not start:
        raise QRError("bad_date", detail="validity start")
    ident["bhyt_from"] = _iso(start)
    end_text = fields[7] if len(fields) > 7 else ""
    if end_text in ("", "-"):
        return
    end = _dd_mm_yyyy(end_text)
    if not end or end < start:
        raise QRError("bad_date", detail="validity end")
    ident["bhyt_to"] = _iso(end)
    if today and end < today:
        _warn(warn, "expired")


def _hex_text(f: str, warn: list[str]) -> str:
    """A BHYT text field: UTF-8 written in hex."""
    if len(f) % 2:
        raise QRError("bad_encoding", detail="hex field of odd length")
    for c in f:
        if not ("0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"):
            raise QRError("bad_encoding", detail="not a hex field")
    text = decode_utf8(bytes.fromhex(f))
    if text is None:
        raise QRError("bad_encoding", detail="hex field is not UTF-8")
    fixed, repaired = repair_mojibake(text)
    if repaired:
        _warn(warn, "mojibake")
    composed = nfc(_scrub(fixed, warn))
    if composed != fixed:
        _warn(warn, "nfd")
    return composed


# ---------------------------------------------------------------------------------------------------
# Fields


def _name(raw: str, warn: list[str]) -> str:
    name = collapse(raw)
    if name != raw:
        _warn(warn, "spaces")
    if not name or len(name) > _MAX_NAME:
        raise QRError("bad_field", detail="name length")
    if not _name_like(name):
        raise QRError("bad_field", detail="name has a character that is not a letter, or no letter")
    return name


def _name_like(s: str) -> bool:
    """Whether ``s`` could be a name: letters, with spaces, apostrophes, hyphens and dots."""
    letters = 0
    for c in s:
        if is_letter(c) or "\u0300" <= c <= "\u036f":
            letters += 1
        elif c not in _NAME_MARKS:
            return False
    return letters > 0


def _put_address(ident: "dict[str, Any]", raw: str, warn: list[str]) -> None:
    address = collapse(raw)
    if address != raw:
        _warn(warn, "spaces")
    if not address:
        _warn(warn, "no_address")
        return
    if len(address) > _MAX_ADDRESS:
        raise QRError("bad_field", detail="address length")
    for c in address:
        if not (" " <= c <= "~" or is_letter(c) or c in _TEXT_MARKS or "\u0300" <= c <= "\u036f"):
            raise QRError("bad_field", detail="address has a character outside the alphabet")
    ident["address"] = address


def _ddmmyyyy(f: str) -> int:
    """yyyymmdd of a ``ddmmyyyy`` date, or 0."""
    if len(f) != 8 or not _is_digits(f):
        return 0
    return _date(int(f[4:]), int(f[2:4]), int(f[:2]))


def _dd_mm_yyyy(f: str) -> int:
    """yyyymmdd of a ``dd/mm/yyyy`` date, or 0."""
    if len(f) != 10 or f[2] != "/" or f[5] != "/":
        return 0
    digits = f[:2] + f[3:5] + f[6:]
    return _ddmmyyyy(digits)


def _date(year: int, month: int, day: int) -> int:
    """yyyymmdd when the date is real (and not before 1900), else 0."""
    if year < _FIRST_YEAR or not 1 <= month <= 12 or day < 1:
        return 0
    days = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        days = 29
    if day > days:
        return 0
    return year * 10000 + month * 100 + day


def _iso(date: int) -> str:
    """``YYYY-MM-DD`` of yyyymmdd; ``YYYY`` when month and day are 0."""
    if not date % 10000:
        return "%04d" % (date // 10000)
    return "%04d-%02d-%02d" % (date // 10000, date // 100 % 100, date % 100)
