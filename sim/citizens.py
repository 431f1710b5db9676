"""Synthetic citizens: identities, BHYT cards and the QR codes a reception counter scans.

Never a real person's data: names and addresses are built from generic lists (the name lists avoid
every well-known full name we know of; streets, wards and districts are named after places, ideas
and flowers, never people), numbers are random within their structure. Everything is deterministic
from ``seed`` (and ``today``): the same arguments give the same population, on any machine.

The people
----------
``population(n, seed, today, mix)`` draws ``n`` citizens. The insurance state of each -- what the
BHXH gateway answers for them (``INSURANCE_STATES``, with the gateway's ``maKetQua`` in
``BHXH_CODES``) -- is allotted by ``mix`` exactly (largest remainders), then shuffled. The default
mix, ``DEFAULT_MIX``:

==================  ====  =====  ==========================================================
state               code  share  the citizen's cards
==================  ====  =====  ==========================================================
valid               000   80 %   a card valid today (children under 6: a TE card to age 6)
expired             010    5 %   a card whose validity ended before today
replaced_expired    003    3 %   ``old_card`` ended before today; ``card``, a new one, valid
replaced_valid      004    2 %   ``old_card`` still valid; ``card`` issued since, valid
defence             001    1 %   a QN card managed by BHXH of the Ministry of Defence ("97")
police              002    1 %   a CA card managed by the Ministry of Public Security ("98")
withdrawn           110    1 %   a card valid on its face, withdrawn by BHXH
reduced             120    1 %   a card valid on its face, its holder reported gone (báo giảm)
none                050    5 %   no card at all (``card``, ``bhxh`` None)
child_no_card       130    1 %   a child under 6 with no card yet
==================  ====  =====  ==========================================================

Ages run from 0 to 95 (fewer after 60). ``child_no_card`` is always a child under 6, ``defence`` and
``police`` people of 18 to 55, ``withdrawn`` and ``reduced`` adults, ``expired``, ``replaced_*`` and
``none`` at least 6 years old; a valid card of a child under 6 is a TE card. The personal ID
(``cccd``) follows Thông tư 07/2016/TT-BCA as ``cccd.qr`` checks it: the birth province's code, the
century/sex digit, the last two digits of the birth year, six random digits. Most people live in
their birth province (the address's province), some moved to the big cities. The BHYT card is
issued in the province of residence (its digits 4-5 are the 2-digit province code; one in twenty
still hold the card of their birth province), its registration facility (KCBBĐ) is always there; the
10-digit BHXH number starts with the birth province's code. Addresses use the 63 provinces and the
district level of before 2025.

Identity documents: a 2021 CCCD (issued 2021-01-01 .. 2024-06-30, at 14 or older) for most adults,
the 2024 Căn cước (issued from 2024-07-01) for the others, for everyone who turned 14 later and for
children. The old 9-digit CMND for most people born before 2000. A VNeID level-2 account for three
adults in four and one child in four. Some people of 65 or more have only a year of birth on their
BHYT card (``dob_year_only``; their ID card says 1 January).

The QR codes
------------
``qr_text(c, fmt)`` for the formats of ``FORMATS`` the citizen has (``formats(c)``), ``qr_bytes``
the same with a scanner's damage (``DAMAGES``), ``expected_doc`` / ``expected_ident`` /
``expected_warn`` what ``cccd.qr.parse`` should make of them: the ground truth of the simulator.

- ``cccd``: the 2021 layout ``ID|CMND|name|DOB|sex|address|issued`` (DOB and issued ``ddmmyyyy``, sex
  ``Nam``/``Nữ``, CMND empty when there is none);
- ``cancuoc``: the 2024 card, whose field order is not published; cccd.qr recognises its fields by
  content (warning ``field_order``). Ours: ``ID|CMND|name|sex|DOB|address|issued``. The issue date
  stays last, as in the 2021 layout, so that a cut-short read shows as a short number (``torn``);
- ``vneid``: the VNeID app's QR, the 2021 layout with the current card's issue date (parse with
  ``source="vneid"``);
- ``bhyt``: the QR of ``card``, ``number|hex(name)|DOB|sex|hex(address)|PP - NNN|from|to|issued|
  management code|hex(guardian) or -|checksum|$`` (name and address UTF-8 in lower-case hex; DOB
  ``dd/mm/yyyy`` or ``yyyy``; sex 1/2; ``to`` ``-`` when open-ended; the guardian on TE cards);
- ``bhyt_old``: the same for ``old_card`` (a patient who brings the card that was replaced).

Damage, as scanners send it: ``crlf`` (the CR LF suffix), ``bom`` (a UTF-8 byte order mark first),
``mojibake`` (UTF-8 shown as Windows-1252 by a keyboard wedge, sent on as UTF-8; a BHYT code is
ASCII and comes through unchanged), ``doubled`` (the code twice in one read, back to back or on two
lines), ``torn`` (cut short at a random byte).
"""

from __future__ import annotations

import datetime
import hashlib
import random
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cccd.qr import province_name

INSURANCE_STATES = (
    "valid",
    "defence",
    "police",
    "replaced_expired",
    "replaced_valid",
    "expired",
    "withdrawn",
    "reduced",
    "none",
    "child_no_card",
)

# What KQNhanLichSuKCB2024 answers (maKetQua) for each state.
BHXH_CODES: Mapping[str, str] = {
    "valid": "000",
    "defence": "001",
    "police": "002",
    "replaced_expired": "003",
    "replaced_valid": "004",
    "expired": "010",
    "withdrawn": "110",
    "reduced": "120",
    "none": "050",
    "child_no_card": "130",
}

DEFAULT_MIX: Mapping[str, float] = {
    "valid": 0.80,
    "expired": 0.05,
    "replaced_expired": 0.03,
    "replaced_valid": 0.02,
    "defence": 0.01,
    "police": 0.01,
    "withdrawn": 0.01,
    "reduced": 0.01,
    "none": 0.05,
    "child_no_card": 0.01,
}

FORMATS = ("cccd", "cancuoc", "vneid", "bhyt", "bhyt_old")
DAMAGES = ("crlf", "bom", "mojibake", "doubled", "torn")

# The warning cccd.qr gives for each repairable damage.
DAMAGE_WARNINGS: Mapping[str, str] = {
    "crlf": "trailing_ws",
    "bom": "bom",
    "mojibake": "mojibake",
    "doubled": "doubled",
}

# BHYT province codes of the cards the armed forces' own insurance funds manage (maKetQua 001, 002).
DEFENCE_PROVINCE = "97"
POLICE_PROVINCE = "98"

CCCD_FIRST = datetime.date(2021, 1, 1)  # chip CCCD cards from
CCCD_LAST = datetime.date(2024, 6, 30)  # the Law on Identification takes effect the next day
CANCUOC_FIRST = datetime.date(2024, 7, 1)

# ---------------------------------------------------------------------------------------------------
# Lists. Generic on purpose: family, middle and given names are common ones, combined at random;
# the lists leave out the parts that would make a well-known person's full name (see the tests).

FAMILY = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Đinh",
    "Mai",
    "Cao",
    "Lâm",
    "Tạ",
)
# Rough shares of the family names, in per cent.
_FAMILY_WEIGHTS = (38, 11, 9.5, 7, 4, 3, 4.5, 2, 2, 2.1, 2, 1.4, 1.3, 1.3, 1, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3)
MIDDLE_M = ("Văn", "Hữu", "Đức", "Minh", "Thành", "Công", "Gia", "Trung", "Bá", "Đình")
GIVEN_M = (
    "Bảo",
    "Cường",
    "Duy",
    "Hiếu",
    "Khang",
    "Khoa",
    "Lộc",
    "Nam",
    "Nghĩa",
    "Phong",
    "Quân",
    "Thịnh",
    "Trí",
    "Tuấn",
    "Đạt",
    "Hào",
    "Nhân",
    "Tùng",
    "Phát",
    "Tín",
    "Thuận",
    "Kha",
)
MIDDLE_F = ("Thị", "Ngọc", "Thu", "Kim", "Bích", "Diệu", "Hồng", "Khánh", "Phương", "Minh")
GIVEN_F = (
    "Anh",
    "Chi",
    "Dung",
    "Giang",
    "Hạnh",
    "Hằng",
    "Hoa",
    "Hương",
    "Lan",
    "Linh",
    "Mai",
    "My",
    "Ngân",
    "Quỳnh",
    "Trang",
    "Uyên",
    "Yến",
    "Loan",
    "Tâm",
    "Nga",
    "Thư",
    "Xuyến",
)
STREETS = (
    "Hòa Bình",
    "Độc Lập",
    "Thống Nhất",
    "Tự Do",
    "Hạnh Phúc",
    "Giải Phóng",
    "Hoa Sữa",
    "Hoa Phượng",
    "Hoa Mai",
    "Hoa Lan",
    "Bạch Đằng",
    "Hồng Hà",
    "Trường Sơn",
    "Hoàng Sa",
    "Trường Sa",
    "Đồng Khởi",
    "Cách Mạng Tháng Tám",
    "Ba Tháng Hai",
    "Kim Mã",
    "Láng Hạ",
    "Hàng Bông",
    "Hàng Gai",
    "Cầu Giấy",
    "Chợ Cũ",
    "Bến Đò",
    "Sông Cầu",
)
# Two syllables from these make a ward, commune or district name ("Tân Phú", "Hòa An", ...).
PLACE_FIRST = (
    "Tân",
    "Hòa",
    "Phú",
    "Vĩnh",
    "Long",
    "Mỹ",
    "An",
    "Bình",
    "Thạnh",
    "Phước",
    "Đông",
    "Tây",
    "Hiệp",
)
PLACE_SECOND = ("An", "Phú", "Lợi", "Hưng", "Thuận", "Lộc", "Hải", "Trung", "Khánh", "Thịnh", "Thạnh", "Xuân")

# The five centrally-run cities (their address reads "Thành phố ...").
_CITIES = ("001", "031", "048", "079", "092")
# Where people are born and live, roughly (weight 1 for the other provinces).
_BIRTH_WEIGHTS = {"001": 8, "079": 9, "031": 2, "038": 3, "040": 3, "075": 3, "074": 2, "036": 2, "034": 2}
_MOVE_WEIGHTS = {"001": 30, "079": 40, "074": 12, "075": 10, "048": 4, "092": 4}
_MOVED = 0.15  # share of adults living outside their birth province

_BOM = b"\xef\xbb\xbf"


def _provinces() -> tuple[str, ...]:
    return tuple(code for code in (f"{i:03d}" for i in range(1000)) if province_name(code) is not None)


PROVINCE_CODES = _provinces()  # the 3-digit personal ID province codes cccd.qr accepts


# ---------------------------------------------------------------------------------------------------
# The data model (shared with the fake BHXH gateway: add fields, never rename)


@dataclass(frozen=True)
class BhytCard:
    """A BHYT card. ``number``: 15 characters, group code + benefit level + 2-digit province + the
    10-digit BHXH number; ``kcbbd``: the 5-digit initial-registration facility."""

    number: str
    kcbbd: str
    valid_from: datetime.date
    valid_to: datetime.date | None  # None: open-ended
    issued: datetime.date
    guardian: str | None = None  # TE cards: the parent's or guardian's name

    @property
    def group(self) -> str:
        return self.number[:2]

    @property
    def benefit(self) -> int:
        return int(self.number[2])

    @property
    def province(self) -> str:
        return self.number[3:5]

    @property
    def bhxh(self) -> str:
        return self.number[5:]

    def covers(self, day: datetime.date) -> bool:
        """Whether the card is valid on ``day`` by its dates."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class Citizen:
    cccd: str  # 12-digit personal ID
    cmnd: str | None  # old 9-digit ID card number
    name: str  # NFC
    dob: datetime.date
    dob_year_only: bool  # the BHYT card carries only the year
    sex: str  # "M" | "F"
    address: str  # NFC: house, street, ward/commune, district, province
    issued: datetime.date  # of the ID card
    doc: str  # "cccd" | "cancuoc"
    bhxh: str | None  # 10-digit BHXH number
    card: BhytCard | None  # the current BHYT card
    old_card: BhytCard | None  # a replaced card (replaced_expired, replaced_valid)
    insurance: str  # INSURANCE_STATES
    vneid: bool  # a level-2 VNeID account

    @property
    def birth_province(self) -> str:
        """The 3-digit province code of the personal ID."""
        return self.cccd[:3]

    def age(self, today: datetime.date) -> int:
        """Full years on ``today``."""
        return today.year - self.dob.year - ((today.month, today.day) < (self.dob.month, self.dob.day))


# ---------------------------------------------------------------------------------------------------
# Population


def population(
    n: int,
    seed: int = 0,
    today: datetime.date | None = None,
    mix: Mapping[str, float] | None = None,
) -> list[Citizen]:
    """``n`` synthetic citizens, the same for the same arguments. ``today`` (default: the date today)
    is when the population is observed: ages, card validity and issue dates are relative to it, and it
    must be 2024-07-01 or later. ``mix``: share of each insurance state (normalised; states left out
    get none), default ``DEFAULT_MIX``."""
    if n < 0:
        raise ValueError("n must not be negative")
    if today is None:
        today = datetime.date.today()
    if today < CANCUOC_FIRST:
        raise ValueError("today must be 2024-07-01 or later (children hold a Căn cước)")
    states = _allot(n, DEFAULT_MIX if mix is None else mix)
    rng = random.Random(seed)
    rng.shuffle(states)
    taken = _Taken()
    return [_citizen(rng, state, today, taken) for state in states]


def _allot(n: int, mix: Mapping[str, float]) -> list[str]:
    """Exactly ``n`` states in the proportions of ``mix`` (largest remainders, ties by state order)."""
    for state, share in mix.items():
        if state not in INSURANCE_STATES:
            raise ValueError(f"unknown insurance state {state!r}")
        if not share >= 0:  # also NaN
            raise ValueError(f"share of {state!r} must be >= 0")
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("the mix is empty")
    quotas = [(n * mix.get(s, 0.0) / total, i, s) for i, s in enumerate(INSURANCE_STATES)]
    counts = {s: int(q) for q, _, s in quotas}
    left = n - sum(counts.values())
    for _, _, s in sorted(quotas, key=lambda t: (-(t[0] - int(t[0])), t[1]))[:left]:
        counts[s] += 1
    return [s for s in INSURANCE_STATES for _ in range(counts[s])]


class _Taken:
    """Numbers already given out: every personal ID, CMND and BHXH number is unique."""

    def __init__(self) -> None:
        self.cccd: set[str] = set()
        self.cmnd: set[str] = set()
        self.bhxh: set[str] = set()

    @staticmethod
    def draw(rng: random.Random, used: set[str], prefix: str, digits: int) -> str:
        while True:
            number = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
            if number not in used:
                used.add(number)
                return number


def _citizen(rng: random.Random, state: str, today: datetime.date, taken: _Taken) -> Citizen:
    age = _age(rng, state)
    sex = ("M" if rng.random() < 0.85 else "F") if state in ("defence", "police") else rng.choice("MF")
    dob = _dob(rng, today, age)
    year_only = age >= 65 and rng.random() < 0.25
    if year_only:
        dob = datetime.date(today.year - age, 1, 1)  # what the ID card says when only the year is known
    birth = _weighted(rng, PROVINCE_CODES, _BIRTH_WEIGHTS)
    home = birth
    if age >= 18 and rng.random() < _MOVED:
        home = _weighted(rng, PROVINCE_CODES, _MOVE_WEIGHTS)
    century = dob.year // 100 - 19
    pid = taken.draw(rng, taken.cccd, f"{birth}{2 * century + (sex == 'F')}{dob.year % 100:02d}", 6)
    cmnd = None
    if dob.year < 2000 and rng.random() < 0.7:
        cmnd = taken.draw(rng, taken.cmnd, rng.choice("0123"), 8)
    doc, issued = _id_card(rng, dob, today)
    name = _name(rng, sex)
    card, old = _cards(rng, state, dob, age, name.split()[0], today, home, birth, taken)
    return Citizen(
        cccd=pid,
        cmnd=cmnd,
        name=name,
        dob=dob,
        dob_year_only=year_only,
        sex=sex,
        address=_address(rng, home),
        issued=issued,
        doc=doc,
        bhxh=card.bhxh if card else None,
        card=card,
        old_card=old,
        insurance=state,
        vneid=rng.random() < (0.75 if age >= 14 else 0.25),
    )


def _age(rng: random.Random, state: str) -> int:
    if state == "child_no_card":
        return 0 if rng.random() < 0.5 else rng.randint(0, 5)
    if state in ("defence", "police"):
        return rng.randint(18, 55)
    low = 18 if state in ("withdrawn", "reduced") else 0 if state == "valid" else 6
    ages = range(low, 96)
    weights = [1.0 if a < 60 else 0.8 if a < 70 else 0.5 if a < 80 else 0.2 if a < 90 else 0.07 for a in ages]
    return rng.choices(ages, weights)[0]


def _add_years(day: datetime.date, years: int) -> datetime.date:
    """The same day ``years`` later (29 February becomes the 28th)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _days(n: int) -> datetime.timedelta:
    return datetime.timedelta(days=n)


def _between(rng: random.Random, first: datetime.date, last: datetime.date) -> datetime.date:
    return datetime.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))


def _dob(rng: random.Random, today: datetime.date, age: int) -> datetime.date:
    """A date of birth that makes the person exactly ``age`` on ``today``."""
    return _between(rng, _add_years(today, -age - 1) + _days(1), _add_years(today, -age))


def _weighted(rng: random.Random, items: Sequence[str], weights: Mapping[str, float]) -> str:
    return rng.choices(items, [weights.get(item, 1.0) for item in items])[0]


def _id_card(rng: random.Random, dob: datetime.date, today: datetime.date) -> tuple[str, datetime.date]:
    """("cccd", issued 2021-01-01 .. 2024-06-30 at 14 or older) for three in four who could have one,
    else ("cancuoc", issued from 2024-07-01)."""
    first = max(CCCD_FIRST, _add_years(dob, 14))
    last = min(CCCD_LAST, today)
    if first <= last and rng.random() < 0.75:
        return "cccd", _between(rng, first, last)
    return "cancuoc", _between(rng, max(CANCUOC_FIRST, dob), today)


def _name(rng: random.Random, sex: str, family: str = "") -> str:
    family = family or rng.choices(FAMILY, _FAMILY_WEIGHTS)[0]
    middle = rng.choice(MIDDLE_M if sex == "M" else MIDDLE_F)
    given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
    return unicodedata.normalize("NFC", f"{family} {middle} {given}")


def _place(rng: random.Random) -> str:
    first = rng.choice(PLACE_FIRST)
    second = rng.choice([p for p in PLACE_SECOND if p != first])
    return f"{first} {second}"


def province_label(code: str) -> str:
    """The province as an address writes it: "Thành phố Hà Nội", "Tỉnh Nghệ An"."""
    name = province_name(code)
    if name is None:
        raise ValueError("not a province code")
    if code in _CITIES:
        return "Thành phố " + name.removeprefix("TP ")
    return "Tỉnh " + name


def _address(rng: random.Random, province: str) -> str:
    city = province in _CITIES
    urban = rng.random() < (0.85 if city else 0.35)
    if urban:
        house = rng.choice(
            (
                str(rng.randint(1, 399)),
                f"{rng.randint(1, 199)}/{rng.randint(1, 40)}",
                f"{rng.randint(1, 150)}{rng.choice('ABC')}",
                f"Số {rng.randint(1, 99)} ngõ {rng.randint(2, 200)}",
            )
        )
        street = rng.choice((*STREETS, f"Đường số {rng.randint(1, 30)}"))
        ward = f"Phường {rng.randint(1, 15)}" if city and rng.random() < 0.3 else f"Phường {_place(rng)}"
        if city:
            district = f"Quận {rng.randint(1, 12)}" if rng.random() < 0.3 else f"Quận {_place(rng)}"
        else:
            district = f"{rng.choice(('Thành phố', 'Thị xã'))} {_place(rng)}"
        parts = [f"{house} {street}", ward, district]
    else:
        hamlet = rng.choice(
            (
                f"Thôn {rng.randint(1, 12)}",
                f"Ấp {_place(rng)}",
                f"Tổ {rng.randint(1, 30)}",
                f"Xóm {_place(rng)}",
            )
        )
        commune = f"Thị trấn {_place(rng)}" if rng.random() < 0.15 else f"Xã {_place(rng)}"
        parts = [hamlet, commune, f"Huyện {_place(rng)}"]
    parts.append(province_label(province))
    return unicodedata.normalize("NFC", ", ".join(parts))


# ---------------------------------------------------------------------------------------------------
# BHYT cards

# Group codes by age, with weights; the benefit level (1-5) of each group.
_GROUPS_BY_AGE: tuple[tuple[int, dict[str, float]], ...] = (
    (6, {"TE": 1}),
    (18, {"HS": 7, "GD": 2, "HN": 0.5, "CN": 0.5}),
    (23, {"SV": 5, "DN": 2, "GD": 3}),
    (60, {"DN": 45, "HC": 10, "GD": 25, "NN": 5, "HN": 5, "CN": 5, "CC": 1, "HD": 4}),
    (96, {"HT": 50, "GD": 20, "BT": 15, "CC": 5, "HN": 5, "CN": 5}),
)
_BENEFIT = {
    "TE": 1,
    "QN": 1,
    "CA": 1,
    "CC": 1,
    "HN": 2,
    "BT": 2,
    "HT": 3,
    "CN": 3,
    "NN": 3,
    "DN": 4,
    "HC": 4,
    "GD": 4,
    "HS": 4,
    "SV": 4,
    "HD": 4,
}
_OPEN_ENDED = ("HT", "CC", "BT")  # groups whose card may carry no end date


def _groups(age: int) -> dict[str, float]:
    for limit, groups in _GROUPS_BY_AGE:
        if age < limit:
            return groups
    return _GROUPS_BY_AGE[-1][1]


def _group(rng: random.Random, age: int, besides: str = "") -> str:
    groups = {g: w for g, w in _groups(age).items() if g != besides}
    if not groups:  # a child of 6 whose TE card was replaced: a pupil's card
        groups = {"HS": 1}
    return rng.choices(list(groups), list(groups.values()))[0]


def _bhxh_number(rng: random.Random, taken: _Taken, province: str) -> str:
    return taken.draw(rng, taken.bhxh, province, 8)


def _card(
    rng: random.Random,
    group: str,
    province: str,
    home: str,
    bhxh: str,
    period: tuple[datetime.date, datetime.date | None],
    dob: datetime.date,
    today: datetime.date,
    guardian: str | None = None,
) -> BhytCard:
    valid_from, valid_to = period
    facility = rng.choice((rng.randint(1, 20), rng.randint(1, 199)))
    issued = min(today, max(dob, valid_from - _days(rng.randint(0, 25))))
    return BhytCard(
        number=f"{group}{_BENEFIT[group]}{province}{bhxh}",
        kcbbd=f"{home[1:]}{facility:03d}",
        valid_from=valid_from,
        valid_to=valid_to,
        issued=issued,
        guardian=guardian,
    )


def _covering(
    rng: random.Random, today: datetime.date, group: str, after: datetime.date | None = None
) -> tuple[datetime.date, datetime.date | None]:
    """A validity period that includes ``today``: twelve months from a start in the last 330 days
    (after ``after`` when given), or open-ended for some groups."""
    first = today - _days(330)
    if after is not None:
        first = max(first, after + _days(1))
    start = _between(rng, first, today)
    if group in _OPEN_ENDED and rng.random() < 0.5:
        return start, None
    return start, _add_years(start, 1) - _days(1)


def _ended(rng: random.Random, today: datetime.date, days: int) -> tuple[datetime.date, datetime.date]:
    """Twelve months that ended 1 to ``days`` days before ``today``."""
    end = today - _days(rng.randint(1, days))
    return _add_years(end + _days(1), -1), end


def _te_period(
    rng: random.Random, dob: datetime.date, today: datetime.date
) -> tuple[datetime.date, datetime.date]:
    """A TE card: from just after birth to the day before the sixth birthday."""
    return min(today, dob + _days(rng.randint(0, 20))), _add_years(dob, 6) - _days(1)


def _cards(
    rng: random.Random,
    state: str,
    dob: datetime.date,
    age: int,
    family: str,
    today: datetime.date,
    home: str,
    birth: str,
    taken: _Taken,
) -> tuple[BhytCard | None, BhytCard | None]:
    """(card, old_card) for an insurance state, consistent with it on ``today``."""
    if state in ("none", "child_no_card"):
        return None, None
    province = home[1:]
    if state in ("defence", "police"):
        fund = DEFENCE_PROVINCE if state == "defence" else POLICE_PROVINCE
        bhxh = _bhxh_number(rng, taken, fund)
        group = "QN" if state == "defence" else "CA"
        return _card(rng, group, fund, home, bhxh, _covering(rng, today, group), dob, today), None
    if rng.random() < 0.05:
        province = birth[1:]  # still the card of the province they came from
    bhxh = _bhxh_number(rng, taken, birth[1:])
    group = _group(rng, age)
    guardian = _guardian(rng, family)
    if state in ("valid", "withdrawn", "reduced"):
        if state == "reduced":
            group = rng.choice(("DN", "DN", "DN", "HC"))
        if group == "TE":
            return _card(
                rng, group, province, home, bhxh, _te_period(rng, dob, today), dob, today, guardian
            ), None
        return _card(rng, group, province, home, bhxh, _covering(rng, today, group), dob, today), None
    if state == "expired":
        if age == 6 and _add_years(dob, 6) > today - _days(300):
            # the TE card ended on the sixth birthday
            return _card(
                rng, "TE", province, home, bhxh, _te_period(rng, dob, today), dob, today, guardian
            ), None
        return _card(rng, group, province, home, bhxh, _ended(rng, today, 400), dob, today), None
    # replaced: the old card of another group (or another province), a new card valid today
    old_province = birth[1:] if rng.random() < 0.3 else province
    if state == "replaced_expired":
        old_group = _group(rng, age - 1)  # a TE card when the child turned 6 this year
        old_guardian = guardian if old_group == "TE" else None
        new_group = _group(rng, age, besides=old_group if old_province == province else "")
        if old_group == "TE":
            ended: tuple[datetime.date, datetime.date] = _te_period(rng, dob, today)
        else:
            ended = _ended(rng, today, 300)
        old = _card(rng, old_group, old_province, home, bhxh, ended, dob, today, old_guardian)
        # the new card follows the old one; twelve months from its end reach past today
        start = ended[1] + _days(1)
        end = None if new_group in _OPEN_ENDED and rng.random() < 0.5 else _add_years(start, 1) - _days(1)
        return _card(rng, new_group, province, home, bhxh, (start, end), dob, today), old
    # replaced_valid: the old card covers today too
    old_group = _group(rng, age)
    new_group = _group(rng, age, besides=old_group if old_province == province else "")
    old = _card(
        rng, old_group, old_province, home, bhxh, _covering(rng, today - _days(1), old_group), dob, today
    )
    period = _covering(rng, today, new_group, after=old.valid_from)
    return _card(rng, new_group, province, home, bhxh, period, dob, today), old


def _guardian(rng: random.Random, family: str) -> str:
    """The parent a TE card names, the father (same family name) or the mother; drawn for every card
    holder, used on TE cards."""
    if rng.random() < 0.7:
        return _name(rng, "M", family)
    return _name(rng, "F")


# ---------------------------------------------------------------------------------------------------
# QR codes


def formats(c: Citizen) -> tuple[str, ...]:
    """The formats of ``FORMATS`` this citizen can show at the counter."""
    out = [c.doc]
    if c.vneid:
        out.append("vneid")
    if c.card is not None:
        out.append("bhyt")
    if c.old_card is not None:
        out.append("bhyt_old")
    return tuple(out)


def _check_format(c: Citizen, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown QR format {fmt!r}")
    if fmt not in formats(c):
        raise ValueError(f"this citizen has no {fmt!r} code")


def _ddmmyyyy(day: datetime.date) -> str:
    return f"{day.day:02d}{day.month:02d}{day.year:04d}"


def _dd_mm_yyyy(day: datetime.date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"


def _sex_word(c: Citizen) -> str:
    return "Nam" if c.sex == "M" else "Nữ"


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def _bhyt_fields(c: Citizen, card: BhytCard) -> list[str]:
    """The fields of a BHYT card's QR, without the final ``$``."""
    fields = [
        card.number,
        _hex(c.name),
        f"{c.dob.year:04d}" if c.dob_year_only else _dd_mm_yyyy(c.dob),
        "1" if c.sex == "M" else "2",
        _hex(c.address),
        f"{card.kcbbd[:2]} - {card.kcbbd[2:]}",
        _dd_mm_yyyy(card.valid_from),
        _dd_mm_yyyy(card.valid_to) if card.valid_to else "-",
        _dd_mm_yyyy(card.issued),
    ]
    digest = hashlib.sha256(card.number.encode("ascii")).hexdigest()
    fields.append(f"{card.province}-{card.kcbbd}-{int(digest[:8], 16) % 100000:05d}")  # management code
    fields.append(_hex(card.guardian) if card.guardian else "-")
    checksum = hashlib.sha256("|".join(fields).encode("ascii")).hexdigest()
    fields.append(f"{checksum[:16]}-{checksum[16:20]}")
    return fields


def qr_text(c: Citizen, fmt: str) -> str:
    """The text of the citizen's QR code in ``fmt`` (see the module's documentation). ValueError for
    a format the citizen has no code in."""
    _check_format(c, fmt)
    if fmt in ("cccd", "vneid"):
        fields = [
            c.cccd,
            c.cmnd or "",
            c.name,
            _ddmmyyyy(c.dob),
            _sex_word(c),
            c.address,
            _ddmmyyyy(c.issued),
        ]
        return "|".join(fields)
    if fmt == "cancuoc":
        fields = [
            c.cccd,
            c.cmnd or "",
            c.name,
            _sex_word(c),
            _ddmmyyyy(c.dob),
            c.address,
            _ddmmyyyy(c.issued),
        ]
        return "|".join(fields)
    card = c.card if fmt == "bhyt" else c.old_card
    assert card is not None  # _check_format
    return "|".join(_bhyt_fields(c, card)) + "|$"


def mojibake(text: str) -> str:
    """``text``'s UTF-8 bytes shown as Windows-1252 (undefined bytes as their Latin-1 characters), as a
    keyboard-wedge scanner types them into a host set to another code page."""
    out = []
    for b in text.encode("utf-8"):
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


def qr_bytes(c: Citizen, fmt: str, damage: str | None = None, rng: random.Random | None = None) -> bytes:
    """The bytes a scanner sends for the citizen's code in ``fmt``, with ``damage`` (one of
    ``DAMAGES``, or None). ``rng`` chooses how (where a torn read ends, how a doubled one is joined);
    without it the choice is a fixed function of the code."""
    text = qr_text(c, fmt)
    data = text.encode("utf-8")
    if damage is None:
        return data
    if damage not in DAMAGES:
        raise ValueError(f"unknown damage {damage!r}")
    if rng is None:
        rng = random.Random(f"{damage}|{text}")
    if damage == "crlf":
        return data + b"\r\n"
    if damage == "bom":
        return _BOM + data
    if damage == "mojibake":
        return mojibake(text).encode("utf-8")
    if damage == "doubled":
        return data + rng.choice((b"", b"\r\n", b"\n")) + data
    return data[: rng.randrange(1, len(data))]  # torn


def expected_doc(fmt: str) -> str:
    """The ``doc`` cccd.qr gives a code of ``fmt`` (VNeID: when parsed with ``source="vneid"``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown QR format {fmt!r}")
    return "bhyt" if fmt.startswith("bhyt") else fmt


def expected_ident(c: Citizen, fmt: str) -> dict[str, object]:
    """The ``ident`` cccd.qr should give the undamaged code: ISO dates (a year alone for a year-only
    BHYT date of birth), sex M/F, NFC text."""
    _check_format(c, fmt)
    if not fmt.startswith("bhyt"):
        ident: dict[str, object] = {"cccd": c.cccd}
        if c.cmnd:
            ident["cmnd"] = c.cmnd
        ident.update(
            name=c.name,
            dob=c.dob.isoformat(),
            sex=c.sex,
            address=c.address,
            issued=c.issued.isoformat(),
        )
        return ident
    card = c.card if fmt == "bhyt" else c.old_card
    assert card is not None
    ident = {
        "bhyt": card.number,
        "name": c.name,
        "dob": f"{c.dob.year:04d}" if c.dob_year_only else c.dob.isoformat(),
        "sex": c.sex,
        "address": c.address,
        "kcbbd": card.kcbbd,
        "bhyt_from": card.valid_from.isoformat(),
    }
    if card.valid_to is not None:
        ident["bhyt_to"] = card.valid_to.isoformat()
    ident["extra"] = _bhyt_fields(c, card)[8:]
    return ident


def expected_warn(
    c: Citizen, fmt: str, today: datetime.date | None = None, damage: str | None = None
) -> list[str]:
    """The warnings cccd.qr should give the code with ``damage`` (not ``torn``: where a torn read
    ends decides), in the parser's order, on ``today`` (default: the date today)."""
    _check_format(c, fmt)
    if today is None:
        today = datetime.date.today()
    warn: list[str] = []
    if damage is not None:
        if damage not in DAMAGE_WARNINGS:
            raise ValueError(f"no fixed warnings for damage {damage!r}")
        if damage != "mojibake" or not qr_text(c, fmt).isascii():
            warn.append(DAMAGE_WARNINGS[damage])
    if fmt == "cancuoc":
        warn.append("field_order")
    if fmt.startswith("bhyt"):
        card = c.card if fmt == "bhyt" else c.old_card
        assert card is not None
        if c.dob_year_only:
            warn.append("year_only")
        if card.valid_to is not None and card.valid_to < today:
            warn.append("expired")
    return warn
