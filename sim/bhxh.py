"""A fake of the BHXH assessment gateway (cổng tiếp nhận) that speaks the real API's shape.

Two endpoints, as the real gateway (https://egw.baohiemxahoi.gov.vn) has them:

``POST /api/token/take``
    Body (JSON or form): ``username``, ``password`` = the MD5 hex of the password (either case:
    .NET clients send it upper-case). Answer ``{"maKetQua": "200", "APIKey": {"access_token",
    "id_token", "token_type": "Bearer", "username", "expires_in"}}``. ``expires_in`` is an
    ABSOLUTE UTC time in .NET's round-trip format, seven fractional digits and ``Z``:
    ``"2017-11-13T03:51:20.1047187Z"`` — the form a captured answer of the real gateway shows
    (quoted in a VNPT HIS client's source, ServiceBHYT.cs). The access token is opaque
    (base64url here, so that clients that paste it into the URL unescaped still work), the
    id_token a UUID. Wrong or missing credentials, or a body that cannot be read: HTTP 401,
    ``{"maKetQua": "401"}``. A new token does not revoke the older ones; each lives its TTL.

``POST /api/egw/KQNhanLichSuKCB2024?token=…&id_token=…&username=…&password=…``
    Body (JSON or form): ``maThe`` (15-character card number, 10-digit BHXH number or 12-digit
    CCCD), ``hoTen``, ``ngaySinh`` (``dd/MM/yyyy`` or ``yyyy``), ``hoTenCb``, ``cccdCb`` (the
    checking officer). Keys match case-insensitively (as ASP.NET binds them); values are strings.
    The answer always carries every field of the real one (``null`` / ``[]`` when not known).

Order of the checks (the first that fails answers):

1. authentication: token known, not expired, issued with this id_token and username, and the
   password hash right → else HTTP 401, ``maKetQua`` 401;
2. injected failure (``error_rate``): ``maKetQua`` 500 (HTTP 500) or 101 (HTTP 200);
3. parameter format → 205: a body that is not one JSON object of strings or a well-formed form
   (bad UTF-8, bad percent-encoding, repeated field, nesting), larger than 64 KiB, chunked, a
   missing or empty field, a control character, ``maThe`` not ``[A-Z]{2}`` + 13 digits / 10
   digits / 12 digits, ``ngaySinh`` not a real ``dd/MM/yyyy`` date or a ``yyyy`` year
   (1900–2100), ``cccdCb`` not 12 digits;
4. officer: ``cccdCb`` not among the configured officers → 054; their name differs → 055
   (``officers=None``, the default, accepts any well-formed officer);
5. card shape (15 characters): group code unknown → 051, benefit digit not 1–5 → 053,
   province code unknown → 052;
6. lookup: nobody with that card's BHXH number / BHXH number / CCCD (citizens whose
   ``insurance`` is ``none`` are not in the register) → 050; a card number whose BHXH number is
   known but which is none of that person's cards → 051 / 053 / 052 for the first part that
   differs from their card (group, benefit, province), 051 otherwise;
7. name → 060, or 061 when the first letter is right. Names compare NFC-normalised,
   case-folded, whitespace collapsed; a name sent without any diacritic (pure ASCII, as many
   HIS send) is compared with the register's name stripped of its diacritics (đ → d);
8. date of birth → 070: a ``yyyy`` query matches any DOB in that year; a full date matches the
   same date, or the year when the register knows only the year;
9. the person's insurance state → 000 valid, 001 defence, 002 police, 003 / 004 old card
   expired / still valid with a new card issued, 010 expired, 110 withdrawn, 120 reduced (121–124
   for the people listed in ``reduced_codes``), 130 child without a card; 100 when the register
   lacks what the state needs (no card, or no old card for 003/004) or the state is unknown.

What a found person's answer carries: for 000–004, 010, 110 and 12x the card (for 003/004 the
old card as ``maThe``, the new one in ``maTheMoi``, ``gtTheTuMoi``…), the person, a ``ghiChu`` in
the real gateway's long form (``Thông báo: Thẻ còn giá trị sử dụng! Mã thẻ: …, Họ tên: …`` — so
``ghiChu`` is personal data), a few synthetic visits (``dsLichSuKCB2018``, the same every time)
and this gateway's earlier checks of the person (``dsLichSuKT2018``, newest first, ten at most).
For 060/061/070 the register's card and person, as the real one does (so the counter can
correct a typo), without the histories; for 130 the person without a card. Every other answer
carries only ``maKetQua`` and ``ghiChu``.

Latency (``latency``, uniform in [min, max] seconds) delays every answer of both endpoints.

HTTP status: 200 for every ``maKetQua`` except 401 (HTTP 401) and 500 (HTTP 500). Unknown paths:
404 JSON; another method than POST on an endpoint: 405 JSON. A request that breaks HTTP itself
gets a JSON 400. Nothing ever answers with a stack trace.

Outage: while on, every request (both endpoints, any path) is answered by a TCP reset and
nothing else — what a client sees when a gateway or its load balancer dies: ``ConnectionResetError``
(or a broken pipe while sending). A request already waiting out its latency when the outage
starts is reset too.

Logs (logger ``cccd.sim.bhxh``, DEBUG): method, path without the query string, status and
``maKetQua``. The query string (token, password hash), the bodies and exception texts are never
logged.
"""

import base64
import collections
import contextlib
import datetime
import hashlib
import hmac
import json
import logging
import random
import re
import socket
import struct
import threading
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sim import httpd
from sim.citizens import BHXH_CODES

log = logging.getLogger("cccd.sim.bhxh")

TOKEN_PATH = "/api/token/take"
CHECK_PATH = "/api/egw/KQNhanLichSuKCB2024"
MAX_BODY = 64 * 1024
_VN = datetime.timezone(datetime.timedelta(hours=7))

MESSAGES: dict[str, str] = {
    "000": "Thẻ còn giá trị sử dụng",
    "001": "Thẻ do BHXH Bộ Quốc phòng quản lý, đề nghị kiểm tra thẻ và thông tin giấy tờ tùy thân",
    "002": "Thẻ do BHXH Bộ Công an quản lý, đề nghị kiểm tra thẻ và thông tin giấy tờ tùy thân",
    "003": "Thẻ cũ hết giá trị sử dụng nhưng đã được cấp thẻ mới",
    "004": "Thẻ cũ còn giá trị sử dụng nhưng đã được cấp thẻ mới",
    "010": "Thẻ hết giá trị sử dụng",
    "050": "Không thấy thông tin thẻ BHYT",
    "051": "Mã thẻ không đúng",
    "052": "Mã tỉnh cấp thẻ (ký tự thứ 4, 5 của mã thẻ) không đúng",
    "053": "Mã quyền lợi thẻ (ký tự thứ 3 của mã thẻ) không đúng",
    "054": "CCCD của cán bộ tra cứu chưa được đăng ký với cơ sở KCB",
    "055": "Họ tên cán bộ tra cứu không khớp với số CCCD đã đăng ký",
    "060": "Thẻ sai họ tên",
    "061": "Thẻ sai họ tên (đúng ký tự đầu)",
    "070": "Thẻ sai ngày sinh",
    "100": "Lỗi khi lấy dữ liệu sổ thẻ",
    "101": "Lỗi server",
    "110": "Thẻ đã thu hồi",
    "120": "Thẻ đã báo giảm",
    "121": "Thẻ đã báo giảm. Giảm chuyển ngoại tỉnh",
    "122": "Thẻ đã báo giảm. Giảm chuyển nội tỉnh",
    "123": "Thẻ đã báo giảm. Thu hồi do tăng lại cùng đơn vị",
    "124": "Thẻ đã báo giảm. Ngừng tham gia",
    "130": "Trẻ em không xuất trình thẻ",
    "205": "Lỗi sai định dạng tham số",
    "401": "Lỗi xác thực tài khoản",
    "500": "Lỗi hệ thống",
}

# Citizen.insurance → maKetQua: the citizens' own table.
STATE_CODES: dict[str, str] = dict(BHXH_CODES)

# Province codes of the card's 4th-5th characters (the GSO codes), 97/98 for the Defence and
# Public Security social insurance.
PROVINCES: dict[str, str] = {
    "01": "thành phố Hà Nội", "02": "tỉnh Hà Giang", "04": "tỉnh Cao Bằng", "06": "tỉnh Bắc Kạn",
    "08": "tỉnh Tuyên Quang", "10": "tỉnh Lào Cai", "11": "tỉnh Điện Biên", "12": "tỉnh Lai Châu",
    "14": "tỉnh Sơn La", "15": "tỉnh Yên Bái", "17": "tỉnh Hòa Bình", "19": "tỉnh Thái Nguyên",
    "20": "tỉnh Lạng Sơn", "22": "tỉnh Quảng Ninh", "24": "tỉnh Bắc Giang", "25": "tỉnh Phú Thọ",
    "26": "tỉnh Vĩnh Phúc", "27": "tỉnh Bắc Ninh", "30": "tỉnh Hải Dương", "31": "thành phố Hải Phòng",
    "33": "tỉnh Hưng Yên", "34": "tỉnh Thái Bình", "35": "tỉnh Hà Nam", "36": "tỉnh Nam Định",
    "37": "tỉnh Ninh Bình", "38": "tỉnh Thanh Hóa", "40": "tỉnh Nghệ An", "42": "tỉnh Hà Tĩnh",
    "44": "tỉnh Quảng Bình", "45": "tỉnh Quảng Trị", "46": "tỉnh Thừa Thiên Huế",
    "48": "thành phố Đà Nẵng", "49": "tỉnh Quảng Nam", "51": "tỉnh Quảng Ngãi", "52": "tỉnh Bình Định",
    "54": "tỉnh Phú Yên", "56": "tỉnh Khánh Hòa", "58": "tỉnh Ninh Thuận", "60": "tỉnh Bình Thuận",
    "62": "tỉnh Kon Tum", "64": "tỉnh Gia Lai", "66": "tỉnh Đắk Lắk", "67": "tỉnh Đắk Nông",
    "68": "tỉnh Lâm Đồng", "70": "tỉnh Bình Phước", "72": "tỉnh Tây Ninh", "74": "tỉnh Bình Dương",
    "75": "tỉnh Đồng Nai", "77": "tỉnh Bà Rịa - Vũng Tàu", "79": "thành phố Hồ Chí Minh",
    "80": "tỉnh Long An", "82": "tỉnh Tiền Giang", "83": "tỉnh Bến Tre", "84": "tỉnh Trà Vinh",
    "86": "tỉnh Vĩnh Long", "87": "tỉnh Đồng Tháp", "89": "tỉnh An Giang", "91": "tỉnh Kiên Giang",
    "92": "thành phố Cần Thơ", "93": "tỉnh Hậu Giang", "94": "tỉnh Sóc Trăng", "95": "tỉnh Bạc Liêu",
    "96": "tỉnh Cà Mau", "97": "Bộ Quốc phòng", "98": "Bộ Công an",
}  # fmt: skip

# Participant group codes (the card's first two letters).
GROUP_CODES = frozenset(
    {
        "DN", "HX", "CH", "NN", "TK", "HC", "XK", "CA", "HT", "TB", "NO", "CT", "XB", "TN", "CS", "XN", "MS",
        "XV", "QN", "CC", "CK", "CB", "KC", "HD", "TE", "BT", "HN", "DT", "DK", "XD", "TS", "TC", "TQ", "TA",
        "TY", "HG", "LS", "PV", "CN", "HS", "SV", "GB", "GD",
    }
)  # fmt: skip

_FIELDS = ("mathe", "hoten", "ngaysinh", "hotencb", "cccdcb")
_MAX_FIELD = 200
_QUERY_RE = re.compile(r"[A-Z]{2}[0-9]{13}|[0-9]{10}|[0-9]{12}")
_DATE_RE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
_YEAR_RE = re.compile(r"[0-9]{4}")
_CCCD_RE = re.compile(r"[0-9]{12}")
_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")
_CARD_INFO = frozenset({"000", "001", "002", "003", "004", "010", "110", "120", "121", "122", "123", "124"})
_DISEASES = (
    "J00 - Viêm mũi họng cấp [cảm thường]",
    "I10 - Bệnh lý tăng huyết áp vô căn (nguyên phát)",
    "E11 - Bệnh đái tháo đường không phụ thuộc insulin",
    "K29 - Viêm dạ dày và tá tràng",
    "M54 - Đau lưng",
    "J20 - Viêm phế quản cấp",
)


class CardLike(Protocol):
    """What the gateway reads of a BHYT card (sim.citizens.BhytCard has it)."""

    @property
    def number(self) -> str: ...
    @property
    def kcbbd(self) -> str: ...
    @property
    def valid_from(self) -> datetime.date: ...
    @property
    def valid_to(self) -> datetime.date | None: ...
    @property
    def issued(self) -> datetime.date: ...


class CitizenLike(Protocol):
    """What the gateway reads of a person (sim.citizens.Citizen has it)."""

    @property
    def cccd(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def dob(self) -> datetime.date: ...
    @property
    def dob_year_only(self) -> bool: ...
    @property
    def sex(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def bhxh(self) -> str | None: ...
    @property
    def card(self) -> CardLike | None: ...
    @property
    def old_card(self) -> CardLike | None: ...
    @property
    def insurance(self) -> str: ...


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class _Token:
    id_token: str
    username: str
    expires_at: float


@dataclass(frozen=True)
class _Query:
    ma_the: str
    name: str
    dob: datetime.date | None  # None: only the year was sent
    year: int
    officer_name: str
    officer_cccd: str


def md5_hex(password: str) -> str:
    """The password as the gateway wants it: MD5 of its UTF-8 bytes, lower-case hex."""
    return hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest()


def format_expiry(moment: float) -> str:
    """A Unix time as the gateway writes ``expires_in``: ``2017-11-13T03:51:20.1047187Z``."""
    utc = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _dmy(day: datetime.date | None) -> str | None:
    return None if day is None else day.strftime("%d/%m/%Y")


def _norm_name(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def name_match(sent: str, registered: str) -> str:
    """``"match"``, ``"first"`` (wrong, but the first letter is right) or ``"wrong"``."""
    query = _norm_name(sent)
    known = _norm_name(registered)
    if query.isascii():
        known = _strip_marks(known)
    if query == known:
        return "match"
    if query and known and query[0] == known[0]:
        return "first"
    return "wrong"


def _add_years(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _clean(value: str) -> str | None:
    """A field's value stripped, or None when it is empty, too long or has a control character."""
    text = value.strip()
    if not text or len(text) > _MAX_FIELD:
        return None
    if any(unicodedata.category(c).startswith("C") and not c.isspace() for c in text):
        return None
    return text


def parse_fields(body: bytes, content_type: str) -> dict[str, str] | None:
    """A request body (JSON object of strings, or a form) as lower-cased keys → values; None when
    it is not one. Only the keys the gateway knows must be strings; others are ignored."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    if not is_json and media != "application/x-www-form-urlencoded":
        is_json = text.lstrip().startswith(("{", "["))  # no or a sloppy content type: sniff
    if is_json:
        return _json_fields(text)
    return _form_fields(text)


def _json_fields(text: str) -> dict[str, str] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    out: dict[str, str] = {}
    for key, value in data.items():
        low = key.lower()
        if low not in _FIELDS and low not in ("username", "password"):
            continue
        if not isinstance(value, str) or low in out:
            return None
        out[low] = value
    return out


def _form_fields(text: str) -> dict[str, str] | None:
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=64
        )
    except ValueError:  # UnicodeDecodeError too
        return None
    out: dict[str, str] = {}
    for key, value in pairs:
        low = key.lower()
        if low in out:
            return None
        out[low] = value
    return out


def _parse_query(fields: Mapping[str, str]) -> _Query | None:
    values: dict[str, str] = {}
    for key in _FIELDS:
        raw = fields.get(key)
        value = None if raw is None else _clean(raw)
        if value is None:
            return None
        values[key] = value
    ma_the = values["mathe"].upper()
    if not _QUERY_RE.fullmatch(ma_the) or not _CCCD_RE.fullmatch(values["cccdcb"]):
        return None
    dob: datetime.date | None = None
    sent = values["ngaysinh"]
    full = _DATE_RE.fullmatch(sent)
    if full:
        try:
            dob = datetime.date(int(full[3]), int(full[2]), int(full[1]))
        except ValueError:
            return None
        year = dob.year
    elif _YEAR_RE.fullmatch(sent):
        year = int(sent)
    else:
        return None
    if not 1900 <= year <= 2100:
        return None
    return _Query(ma_the, values["hoten"], dob, year, values["hotencb"], values["cccdcb"])


def _dob_match(query: _Query, person: CitizenLike) -> bool:
    if query.dob is None or person.dob_year_only:
        return query.year == person.dob.year
    return query.dob == person.dob


def _empty(code: str) -> dict[str, Any]:
    return {
        "maKetQua": code,
        "ghiChu": MESSAGES.get(code, "Không xác định") + "!",
        "maThe": None,
        "hoTen": None,
        "ngaySinh": None,
        "gioiTinh": None,
        "diaChi": None,
        "maDKBD": None,
        "cqBHXH": None,
        "gtTheTu": None,
        "gtTheDen": None,
        "maKV": None,
        "ngayDu5Nam": None,
        "maSoBHXH": None,
        "maTheCu": None,
        "maTheMoi": None,
        "gtTheTuMoi": None,
        "gtTheDenMoi": None,
        "maDKBDMoi": None,
        "tenDKBDMoi": None,
        "dsLichSuKCB2018": [],
        "dsLichSuKT2018": [],
    }


def _answer(code: str) -> _Answer:
    status = {"401": 401, "500": 500}.get(code, 200)
    return _Answer(status, _empty(code))


class BhxhGateway(httpd.Service):
    """The fake gateway: ``start()`` serves it on ``url`` from a daemon thread; ``stop()`` ends it.

    Every setting can change while it runs (thread-safe setters). ``officers`` is a list of
    ``(hoTenCb, cccdCb)``; None accepts any well-formed officer. ``reduced_codes`` maps a BHXH
    number or CCCD of a person in state ``reduced`` to 121–124 (default 120). ``error_codes``
    are the answers of injected failures, picked at random. ``clock`` gives Unix time (token
    expiry, the check history's times). ``stop()`` then ``start()`` serves again on the same port.
    """

    def __init__(
        self,
        citizens: Iterable[CitizenLike] = (),
        *,
        username: str = "cccd-edge",
        password: str = "cccd-edge",
        officers: Iterable[tuple[str, str]] | None = None,
        latency: tuple[float, float] = (0.0, 0.0),
        error_rate: float = 0.0,
        error_codes: Sequence[str] = ("500", "101"),
        token_ttl: float = 3600.0,
        outage: bool = False,
        reduced_codes: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not error_codes or any(c not in ("500", "101") for c in error_codes):
            raise ValueError("error_codes must be a non-empty list of '500' and '101'")
        for code in (reduced_codes or {}).values():
            if code not in ("120", "121", "122", "123", "124"):
                raise ValueError(f"reduced code {code!r} is not one of 120-124")
        self._username = username
        self._password_md5 = md5_hex(password)
        self._officers = None if officers is None else {cccd: name for name, cccd in officers}
        self._error_codes = tuple(error_codes)
        self._reduced = dict(reduced_codes or {})
        super().__init__(host, port, lambda address: _Server(address, self), "bhxh-gateway", latency, seed)
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._tokens: dict[str, _Token] = {}
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._checks: dict[str, collections.deque[dict[str, Any]]] = {}
        self._error_rate = 0.0
        self._token_ttl = 3600.0
        self._outage = outage
        self.set_error_rate(error_rate)
        self.set_token_ttl(token_ttl)
        self._by_bhxh: dict[str, CitizenLike] = {}
        self._by_cccd: dict[str, CitizenLike] = {}
        self._groups = set(GROUP_CODES)
        self._provinces = set(PROVINCES)
        for person in citizens:
            self._register(person)

    def _register(self, person: CitizenLike) -> None:
        if person.insurance == "none":
            return  # not in the register: 050 however it is asked for
        self._by_cccd[person.cccd] = person
        if person.bhxh:
            self._by_bhxh[person.bhxh] = person
        for card in (person.card, person.old_card):
            if card is not None:
                number = card.number.upper()
                self._by_bhxh.setdefault(number[5:], person)
                self._groups.add(number[:2])
                self._provinces.add(number[3:5])

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> "BhxhGateway":
        """Serve on ``host:port`` (port 0: a free one, kept for later restarts). Returns self.
        ``stop()`` shuts the open connections and keeps tokens and counters."""
        super().start()
        log.info("fake BHXH gateway on %s", self.url)
        return self

    @property
    def url(self) -> str:
        """``http://host:port``, no trailing slash."""
        return self.origin

    # --- settings (thread-safe) ---------------------------------------------------------------

    def set_error_rate(self, rate: float) -> None:
        """The fraction of authenticated checks answered by an injected 500 or 101."""
        if not 0 <= rate <= 1:
            raise ValueError("error_rate is a fraction between 0 and 1")
        with self._lock:
            self._error_rate = float(rate)

    def set_outage(self, on: bool) -> None:
        """While on, every request is answered by a TCP reset."""
        with self._lock:
            self._outage = bool(on)

    def set_token_ttl(self, seconds: float) -> None:
        """The lifetime of tokens issued from now on."""
        if not seconds > 0:
            raise ValueError("token_ttl must be positive")
        with self._lock:
            self._token_ttl = float(seconds)

    def revoke_tokens(self) -> None:
        """Forget every token issued (as a gateway restart would): the next checks get 401."""
        with self._lock:
            self._tokens.clear()

    @property
    def error_rate(self) -> float:
        with self._lock:
            return self._error_rate

    @property
    def outage(self) -> bool:
        with self._lock:
            return self._outage

    @property
    def token_ttl(self) -> float:
        with self._lock:
            return self._token_ttl

    # --- counters ---------------------------------------------------------------------------

    def counters(self) -> dict[tuple[str, str], int]:
        """Requests answered, by (endpoint, code): endpoint ``token``, ``check`` or ``other``;
        code the ``maKetQua`` (``"404"``/``"405"``/``"400"`` for ``other``), or ``"reset"`` for
        a request an outage reset."""
        with self._lock:
            return dict(self._counts)

    def count(self, endpoint: str, code: str | None = None) -> int:
        """How many requests to ``endpoint`` were answered (with ``code``, when given)."""
        with self._lock:
            return sum(n for (e, c), n in self._counts.items() if e == endpoint and code in (None, c))

    def _count(self, endpoint: str, code: str) -> None:
        with self._lock:
            self._counts[(endpoint, code)] += 1

    # --- what the handler asks ----------------------------------------------------------------

    def _now(self) -> float:
        return self._clock()

    def _take_token(self, fields: Mapping[str, str] | None) -> _Answer:
        if fields is None:
            return _Answer(401, {"maKetQua": "401", "APIKey": None})
        user = fields.get("username", "")
        password = fields.get("password", "")
        if not (
            hmac.compare_digest(user.encode("utf-8"), self._username.encode("utf-8"))
            and _MD5_RE.fullmatch(password)
            and hmac.compare_digest(password.lower().encode("ascii"), self._password_md5.encode("ascii"))
        ):
            return _Answer(401, {"maKetQua": "401", "APIKey": None})
        now = self._now()
        with self._lock:
            expires_at = now + self._token_ttl
            for key in [k for k, t in self._tokens.items() if t.expires_at <= now]:
                del self._tokens[key]
            inner = base64.b64encode(self._rng.randbytes(32)).decode("ascii")
            ticks = int(now * 10_000_000) + 621_355_968_000_000_000  # .NET ticks, as the real one
            raw = f"{inner}:{user}:{ticks}".encode()
            access = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
            id_token = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            self._tokens[access] = _Token(id_token, user, expires_at)
        api_key = {
            "access_token": access,
            "id_token": id_token,
            "token_type": "Bearer",
            "username": user,
            "expires_in": format_expiry(expires_at),
        }
        return _Answer(200, {"maKetQua": "200", "APIKey": api_key})

    def _authenticated(self, query: str) -> bool:
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=64)
        except ValueError:
            return False
        params: dict[str, str] = {}
        for key, value in pairs:
            params.setdefault(key.lower(), value)
        access = params.get("token", "")
        with self._lock:
            token = self._tokens.get(access)
        if token is None or self._now() >= token.expires_at:
            return False
        password = params.get("password", "")
        return (
            hmac.compare_digest(params.get("id_token", "").encode("utf-8"), token.id_token.encode("utf-8"))
            and hmac.compare_digest(
                params.get("username", "").encode("utf-8"), token.username.encode("utf-8")
            )
            and bool(_MD5_RE.fullmatch(password))
            and hmac.compare_digest(password.lower().encode("ascii"), self._password_md5.encode("ascii"))
        )

    def _injected(self) -> str | None:
        with self._lock:
            if self._error_rate > 0 and self._rng.random() < self._error_rate:
                return self._rng.choice(self._error_codes)
        return None

    def _check(self, query_string: str, fields: Mapping[str, str] | None) -> _Answer:
        """One KQNhanLichSuKCB2024 request, in the documented order of checks."""
        if not self._authenticated(query_string):
            return _answer("401")
        injected = self._injected()
        if injected is not None:
            return _answer(injected)
        query = None if fields is None else _parse_query(fields)
        if query is None:
            return _answer("205")
        if self._officers is not None:
            registered = self._officers.get(query.officer_cccd)
            if registered is None:
                return _answer("054")
            if name_match(query.officer_name, registered) != "match":
                return _answer("055")
        return self._assess(query)

    def _assess(self, query: _Query) -> _Answer:
        ma = query.ma_the
        if len(ma) == 15:
            if ma[:2] not in self._groups:
                return _answer("051")
            if ma[2] not in "12345":
                return _answer("053")
            if ma[3:5] not in self._provinces:
                return _answer("052")
            person = self._by_bhxh.get(ma[5:])
        elif len(ma) == 10:
            person = self._by_bhxh.get(ma)
        else:
            person = self._by_cccd.get(ma)
        if person is None:
            return _answer("050")
        if len(ma) == 15:
            wrong = _card_mismatch(person, ma)
            if wrong is not None:
                return _answer(wrong)
        match = name_match(query.name, person.name)
        if match != "match":
            return self._found(person, "060" if match == "wrong" else "061")
        if not _dob_match(query, person):
            return self._found(person, "070")
        code = STATE_CODES.get(person.insurance, "100")
        if code == "120":
            code = self._reduced.get(person.bhxh or "", self._reduced.get(person.cccd, "120"))
        if code != "130" and person.card is None:
            code = "100"  # the register lacks the card the state speaks of
        if code in ("003", "004") and person.old_card is None:
            code = "100"
        return self._found(person, code)

    def _found(self, person: CitizenLike, code: str) -> _Answer:
        """The answer about a person found in the register."""
        body = _empty(code)
        if code == "100":
            self._record(person, code)
            return _Answer(200, body)
        card, old = person.card, person.old_card
        shown, new = (old, card) if code in ("003", "004") else (card, None)
        dob = str(person.dob.year) if person.dob_year_only else _dmy(person.dob)
        body.update(
            hoTen=person.name,
            ngaySinh=dob,
            gioiTinh="Nam" if person.sex == "M" else "Nữ",
            diaChi=person.address,
            maSoBHXH=person.bhxh,
            maTheCu=None if old is None else old.number,
        )
        if shown is not None:
            first = old.valid_from if old is not None else shown.valid_from
            body.update(
                maThe=shown.number,
                maDKBD=shown.kcbbd,
                cqBHXH=_agency(shown.number),
                gtTheTu=_dmy(shown.valid_from),
                gtTheDen=_dmy(shown.valid_to),
                maKV="",
                ngayDu5Nam=_dmy(_add_years(first, 5)),
            )
        if new is not None:
            body.update(
                maTheMoi=new.number,
                gtTheTuMoi=_dmy(new.valid_from),
                gtTheDenMoi=_dmy(new.valid_to),
                maDKBDMoi=new.kcbbd,
                tenDKBDMoi=f"Cơ sở khám chữa bệnh {new.kcbbd}",
            )
        if code in _CARD_INFO and shown is not None:
            body["ghiChu"] = (
                f"Thông báo: {MESSAGES[code]}! Mã thẻ: {shown.number}, Họ tên: {person.name}, "
                f"Ngày sinh: {dob}, Giới tính : {body['gioiTinh']}! (ĐC: {person.address}; "
                f"Nơi KCBBĐ: {shown.kcbbd}; Hạn thẻ: {body['gtTheTu']} - {body['gtTheDen'] or ''}; "
                f"Thời điểm đủ 5 năm liên tục: {body['ngayDu5Nam']})."
            )
            body["dsLichSuKCB2018"] = self._visits(person, shown)
            body["dsLichSuKT2018"] = self._history(person)
        self._record(person, code)
        return _Answer(200, body)

    def _today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self._now(), _VN).date()

    def _visits(self, person: CitizenLike, card: CardLike) -> list[dict[str, Any]]:
        """A few past visits, the same for a person every time (seeded by their card number)."""
        rng = random.Random(f"kcb:{card.number}")
        end = min(self._today(), card.valid_to or self._today())
        span = (end - card.valid_from).days
        visits: list[dict[str, Any]] = []
        if span < 1:
            return visits
        for _ in range(rng.randint(0, 3)):
            day = card.valid_from + datetime.timedelta(days=rng.randrange(span))
            start = datetime.datetime.combine(day, datetime.time(rng.randint(7, 11), rng.randrange(60)))
            visits.append(
                {
                    "maHoSo": rng.randint(100_000_000, 999_999_999),
                    "maCSKCB": card.kcbbd,
                    "tenCSKCB": f"Cơ sở khám chữa bệnh {card.kcbbd}",
                    "ngayVao": start.strftime("%Y%m%d%H%M"),
                    "ngayRa": (start + datetime.timedelta(hours=2)).strftime("%Y%m%d%H%M"),
                    "tenBenh": rng.choice(_DISEASES),
                    "tinhTrang": "1",
                    "kqDieuTri": rng.choice(("1", "2")),
                }
            )
        visits.sort(key=lambda v: str(v["ngayVao"]), reverse=True)
        return visits

    def _history(self, person: CitizenLike) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._checks.get(person.cccd, ()))

    def _record(self, person: CitizenLike, code: str) -> None:
        moment = datetime.datetime.fromtimestamp(self._now(), _VN)
        facility = self._username.split("_", 1)[0]
        entry = {
            "userKT": self._username,
            "maCSKCB": facility if re.fullmatch(r"[0-9]{5}", facility) else "",
            "thoiGianKT": moment.strftime("%Y%m%d%H%M%S"),
            "thongBao": MESSAGES.get(code, ""),
            "maLoi": code,
        }
        with self._lock:
            self._checks.setdefault(person.cccd, collections.deque(maxlen=10)).appendleft(entry)


def _card_mismatch(person: CitizenLike, sent: str) -> str | None:
    """None when ``sent`` is one of the person's cards; else the code of the first wrong part."""
    cards = [c.number.upper() for c in (person.card, person.old_card) if c is not None]
    if not cards:
        return "050"
    if sent in cards:
        return None
    ref = cards[0]
    if sent[:2] != ref[:2]:
        return "051"
    if sent[2] != ref[2]:
        return "053"
    if sent[3:5] != ref[3:5]:
        return "052"
    return "051"


def _agency(number: str) -> str:
    province = number[3:5]
    if province == "97" or number[:2] == "QN":
        return "BHXH Bộ Quốc phòng"
    if province == "98" or number[:2] == "CA":
        return "BHXH Công an nhân dân"
    return f"Bảo hiểm xã hội {PROVINCES.get(province, 'tỉnh')}"


# --- HTTP ---------------------------------------------------------------------------------------


class _Server(httpd.Server):
    def __init__(self, address: tuple[str, int], gateway: BhxhGateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)


class _Handler(httpd.Handler):
    server: _Server
    server_version = "cccd-edge-fake-bhxh"

    def dispatch(self, method: str) -> None:
        gw = self.server.gateway
        path, _, query = self.path.partition("?")
        endpoint = {TOKEN_PATH.lower(): "token", CHECK_PATH.lower(): "check"}.get(
            path.rstrip("/").lower(), "other"
        )
        try:
            if gw.outage:
                self._reset(endpoint)
                return
            try:
                body, readable = self.read_body(MAX_BODY), True
            except httpd.BodyError:
                body, readable = b"", False
            if endpoint == "other":
                self._reply(endpoint, method, 404, {"maKetQua": "404", "ghiChu": "Không tìm thấy địa chỉ"})
                return
            if method != "POST":
                self._reply(
                    endpoint, method, 405, {"maKetQua": "405", "ghiChu": "Phương thức không được hỗ trợ"}
                )
                return
            gw._delay()
            if gw.outage:
                self._reset(endpoint)
                return
            fields = parse_fields(body, self.headers.get("Content-Type", "")) if readable else None
            answer = gw._take_token(fields) if endpoint == "token" else gw._check(query, fields)
            self._reply(endpoint, method, answer.status, answer.body)
        except (httpd.GoneError, OSError):
            self.close_connection = True
        except Exception as exc:  # never a stack trace to the client, never a secret in the log
            log.warning("%s %s failed: %s", method, path, type(exc).__name__)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._reply(endpoint, method, 500, _empty("500"))

    def _reset(self, endpoint: str) -> None:
        self.server.gateway._count(endpoint, "reset")
        log.debug("%s reset (outage)", endpoint)
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _reply(
        self, endpoint: str, method: str, status: int, body: dict[str, Any], count: bool = True
    ) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        code = str(body.get("maKetQua"))
        if count:
            self.server.gateway._count(endpoint, code)
        log.debug("%s %s -> %d %s", method, getattr(self, "path", "").partition("?")[0][:100], status, code)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == 405:
            self.send_header("Allow", "POST")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the base class sends for a request that breaks HTTP: JSON, like everything else."""
        self.close_connection = self.unread = True
        body = {"maKetQua": "205" if code in (400, 414, 431) else str(code), "ghiChu": MESSAGES["205"] + "!"}
        with contextlib.suppress(OSError):
            self._reply("other", self.command or "-", code, body, count=code != 408)


def banner(gateway: BhxhGateway, citizens: Sequence[CitizenLike], username: str) -> str:
    """What ``cccd-edge sim bhxh`` prints: where it listens, how to ask, and one synthetic
    person per insurance state to ask about (with the ``maKetQua`` they should get)."""
    lines = [
        f"fake BHXH gateway on {gateway.url} — {len(citizens)} synthetic citizens, user {username}",
        f"  POST {TOKEN_PATH}  username, password = MD5 hex of the password",
        f"  POST {CHECK_PATH}?token=…&id_token=…&username=…&password=…",
        "       maThe (card, BHXH number or CCCD), hoTen, ngaySinh (dd/MM/yyyy or yyyy), hoTenCb, cccdCb",
        "sample citizens (expected maKetQua, state, maThe, CCCD, name, date of birth):",
    ]
    for state, code in STATE_CODES.items():
        person = next((c for c in citizens if c.insurance == state), None)
        if person is None:
            continue
        card = person.old_card if code in ("003", "004") else person.card
        number = card.number if card is not None else (person.bhxh or "-")
        dob = str(person.dob.year) if person.dob_year_only else _dmy(person.dob)
        lines.append(f"  {code}  {state:16} {number:15}  {person.cccd}  {person.name}  {dob}")
    return "\n".join(lines) + "\n"
