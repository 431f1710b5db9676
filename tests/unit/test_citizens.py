"""The simulator's synthetic citizens (sim.citizens): determinism, unique and well-formed numbers,
cards consistent with the insurance state, the mix, and every QR rendering -- clean, damaged, torn --
read by cccd.qr exactly as the ground truth says."""

import collections
import datetime
import hashlib
import itertools
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from cccd import qr
from sim import citizens as cz

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.date(2026, 3, 15)
NOW = (TODAY.year, TODAY.month, TODAY.day)

# Well-known Vietnamese full names (leaders, historical figures, artists, athletes, business people,
# and the people streets are named after): the name lists must not be able to make any of them.
FAMOUS = {
    "Hồ Chí Minh", "Võ Nguyên Giáp", "Phạm Văn Đồng", "Tôn Đức Thắng", "Lê Duẩn", "Trường Chinh",
    "Nguyễn Văn Linh", "Đỗ Mười", "Lê Khả Phiêu", "Nông Đức Mạnh", "Nguyễn Phú Trọng", "Tô Lâm",
    "Lê Đức Anh", "Trần Đức Lương", "Nguyễn Minh Triết", "Trương Tấn Sang", "Trần Đại Quang",
    "Nguyễn Xuân Phúc", "Võ Văn Thưởng", "Lương Cường", "Võ Văn Kiệt", "Phan Văn Khải",
    "Nguyễn Tấn Dũng", "Phạm Minh Chính", "Nguyễn Văn An", "Nguyễn Sinh Hùng", "Vương Đình Huệ",
    "Trần Thanh Mẫn", "Nguyễn Thị Bình", "Nguyễn Thị Doan", "Trương Thị Mai", "Nguyễn Văn Bình",
    "Nguyễn Thanh Long", "Lê Thành Long", "Bùi Thanh Sơn", "Nguyễn Văn Hùng", "Nguyễn Văn Thắng",
    "Nguyễn Đức Kiên", "Hồ Đức Việt", "Nguyễn Hòa Bình", "Phan Văn Giang", "Trần Hồng Hà",
    "Lê Minh Khái", "Đào Hồng Lan", "Nguyễn Thị Kim Ngân", "Nguyễn Bá Thanh", "Nguyễn Văn Thiệu",
    "Ngô Đình Diệm", "Trần Hưng Đạo", "Trần Quốc Tuấn", "Lê Lợi", "Nguyễn Trãi", "Quang Trung",
    "Nguyễn Huệ", "Lý Thường Kiệt", "Lý Công Uẩn", "Ngô Quyền", "Đinh Bộ Lĩnh", "Lê Thánh Tông",
    "Hai Bà Trưng", "Bà Triệu", "Hùng Vương", "Phan Bội Châu", "Phan Châu Trinh", "Lê Hồng Phong",
    "Nguyễn Thị Minh Khai", "Võ Thị Sáu", "Lê Văn Tám", "Nguyễn Văn Trỗi", "Nguyễn Thị Định",
    "Hoàng Văn Thụ", "Nguyễn Văn Cừ", "Huỳnh Tấn Phát", "Nguyễn Hữu Thọ", "Nguyễn Đình Chiểu",
    "Nguyễn Du", "Hồ Xuân Hương", "Đoàn Thị Điểm", "Nguyễn Bỉnh Khiêm", "Lê Quý Đôn",
    "Tôn Thất Tùng", "Phạm Ngọc Thạch", "Đặng Văn Ngữ", "Đặng Thùy Trâm", "Trịnh Công Sơn",
    "Văn Cao", "Phạm Duy", "Lê Minh Sơn", "Đặng Thái Sơn", "Ngô Bảo Châu", "Hồ Ngọc Hà",
    "Đỗ Mỹ Linh", "Đặng Thu Thảo", "Ngô Thanh Vân", "Hoàng Thùy Linh", "Đinh Ngọc Diệp",
    "Mai Phương Thúy", "Đỗ Thị Hà", "Bùi Bích Phương", "Đoàn Thị Hương", "Nguyễn Thị Oanh",
    "Nguyễn Thị Ánh Viên", "Hoàng Xuân Vinh", "Nguyễn Quang Hải", "Nguyễn Công Phượng",
    "Lê Công Vinh", "Đặng Văn Lâm", "Đoàn Văn Hậu", "Nguyễn Văn Toàn", "Nguyễn Văn Quyết",
    "Bùi Tiến Dũng", "Nguyễn Tiến Linh", "Phạm Đức Huy", "Nguyễn Hoàng Đức", "Quế Ngọc Hải",
    "Phạm Nhật Vượng", "Nguyễn Đức Tài", "Trương Gia Bình", "Trương Mỹ Lan",
    "Nguyễn Thị Phương Thảo", "Trịnh Văn Quyết", "Đặng Lê Nguyên Vũ", "Hà Anh Tuấn",
    "Sơn Tùng", "Mỹ Tâm", "Trấn Thành",
}  # fmt: skip

DAMAGES_REPAIRED = ("crlf", "bom", "mojibake", "doubled")


def parse(fmt: str, data: bytes) -> qr.Scan:
    return qr.parse(data, now=NOW, source="vneid" if fmt == "vneid" else None)


@pytest.fixture(scope="module")
def people() -> list[cz.Citizen]:
    return cz.population(500, seed=5, today=TODAY)


@pytest.fixture(scope="module")
def crowd() -> list[cz.Citizen]:
    return cz.population(2000, seed=11, today=TODAY)


def renderings(people: list[cz.Citizen]) -> list[tuple[cz.Citizen, str]]:
    return [(c, fmt) for c in people for fmt in cz.formats(c)]


# ---------------------------------------------------------------------------------------------------
# Determinism and numbers


def test_the_same_seed_gives_the_same_people() -> None:
    a = cz.population(300, seed=7, today=TODAY)
    assert a == cz.population(300, seed=7, today=TODAY)
    b = cz.population(300, seed=8, today=TODAY)
    assert len({c.cccd for c in a} & {c.cccd for c in b}) < 5
    assert [c.insurance for c in a] != [c.insurance for c in b]


def test_the_population_does_not_depend_on_hash_randomisation() -> None:
    code = (
        "import datetime, hashlib; from sim import citizens as cz; "
        "print(hashlib.sha256(repr(cz.population(200, seed=3, today=datetime.date(2026, 3, 15)))"
        ".encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    here = hashlib.sha256(repr(cz.population(200, seed=3, today=TODAY)).encode()).hexdigest()
    assert digests == {here}


def test_numbers_are_unique_and_well_formed(crowd: list[cz.Citizen]) -> None:
    assert len({c.cccd for c in crowd}) == len(crowd)
    cmnds = [c.cmnd for c in crowd if c.cmnd]
    assert len(set(cmnds)) == len(cmnds)
    bhxh = [c.bhxh for c in crowd if c.bhxh]
    assert len(set(bhxh)) == len(bhxh)
    for c in crowd:
        assert len(c.cccd) == 12 and c.cccd.isascii() and c.cccd.isdigit()
        assert qr.province_name(c.cccd[:3]) is not None
        assert int(c.cccd[3]) == 2 * (c.dob.year // 100 - 19) + (c.sex == "F")
        assert c.cccd[4:6] == f"{c.dob.year % 100:02d}"
        assert c.cmnd is None or (len(c.cmnd) == 9 and c.cmnd.isdigit())
        assert c.bhxh is None or (len(c.bhxh) == 10 and c.bhxh.isdigit())
        for card in (c.card, c.old_card):
            if card is None:
                continue
            assert len(card.number) == 15
            assert card.number[:2].isalpha() and card.number[:2].isupper()
            assert card.number[2] in "12345"
            assert card.number[3:].isdigit()
            assert card.number[5:] == c.bhxh == card.bhxh
            assert len(card.kcbbd) == 5 and card.kcbbd.isdigit()


def test_the_parser_checks_what_the_ids_encode(people: list[cz.Citizen]) -> None:
    """A structure-valid ID parses (below, for everyone); the same code with the sex or the birth
    year changed does not: the parse really checks the structure."""
    c = next(c for c in people if c.doc == "cccd")
    text = cz.qr_text(c, "cccd")
    other_sex = "Nữ" if c.sex == "M" else "Nam"
    swapped = text.replace("|" + ("Nam" if c.sex == "M" else "Nữ") + "|", "|" + other_sex + "|")
    with pytest.raises(qr.QRError) as err:
        qr.parse(swapped, now=NOW)
    assert err.value.reason == "id_mismatch"
    wrong_province = "003" + text[3:]
    with pytest.raises(qr.QRError) as err:
        qr.parse(wrong_province, now=NOW)
    assert err.value.reason == "bad_province"


# ---------------------------------------------------------------------------------------------------
# Every rendering, clean and damaged, against the ground truth


def test_every_format_parses_to_the_ground_truth(people: list[cz.Citizen]) -> None:
    seen: collections.Counter[str] = collections.Counter()
    for c, fmt in renderings(people):
        scan = parse(fmt, cz.qr_bytes(c, fmt))
        assert scan.doc == cz.expected_doc(fmt)
        assert scan.ident == cz.expected_ident(c, fmt), (c.cccd, fmt)
        assert scan.warn == cz.expected_warn(c, fmt, TODAY)
        assert scan.text == cz.qr_text(c, fmt)
        seen[fmt] += 1
    assert set(seen) == set(cz.FORMATS)


@pytest.mark.parametrize("damage", DAMAGES_REPAIRED)
def test_repairable_damage_gives_the_same_identity_and_its_warning(
    people: list[cz.Citizen], damage: str
) -> None:
    for c, fmt in renderings(people):
        data = cz.qr_bytes(c, fmt, damage)
        assert data != cz.qr_bytes(c, fmt) or (damage == "mojibake" and fmt.startswith("bhyt"))
        scan = parse(fmt, data)
        assert scan.doc == cz.expected_doc(fmt)
        assert scan.ident == cz.expected_ident(c, fmt), (c.cccd, fmt, damage)
        assert scan.warn == cz.expected_warn(c, fmt, TODAY, damage), (fmt, damage)
        if damage != "mojibake" or not fmt.startswith("bhyt"):
            assert cz.DAMAGE_WARNINGS[damage] in scan.warn


def test_doubled_reads_come_back_to_back_and_on_two_lines(people: list[cz.Citizen]) -> None:
    c = people[0]
    single = cz.qr_bytes(c, c.doc)
    joins = {cz.qr_bytes(c, c.doc, "doubled", random.Random(i)) for i in range(40)}
    assert joins == {single + sep + single for sep in (b"", b"\r\n", b"\n")}


def test_mojibake_is_what_a_keyboard_wedge_types(people: list[cz.Citizen]) -> None:
    c = next(c for c in people if "Đ" in c.address or "đ" in c.address)
    data = cz.qr_bytes(c, c.doc, "mojibake")
    text = data.decode("utf-8")
    assert "Ä\x90" in text or "Ä‘" in text  # Đ is C4 90 (0x90 undefined in 1252), đ is C4 91
    assert cz.mojibake("Nguyễn") == "Nguyá»…n"
    assert cz.qr_bytes(c, c.doc, "bom")[:3] == b"\xef\xbb\xbf"
    assert cz.qr_bytes(c, c.doc, "crlf").endswith(b"\r\n")


def torn_outcome(fmt: str, text: str, cut: int) -> tuple[str, str]:
    """What cccd.qr does with ``text`` cut to ``cut`` bytes: ("torn", ""), ("address", the address
    kept) for a personal ID code cut inside its address, or ("unknown_format", "") for a BHYT
    code cut within its first two letters (too little to tell it is a card)."""
    try:
        prefix = text.encode("utf-8")[:cut].decode("utf-8")
    except UnicodeDecodeError:
        return "torn", ""  # a character cut in two
    if fmt.startswith("bhyt"):
        if "|" not in prefix and len(prefix) < 3:
            return "unknown_format", ""
        return "torn", ""
    starts = [i + 1 for i, ch in enumerate(text) if ch == "|"]
    address_start = starts[4]  # both layouts put the address sixth
    address_end = text.index("|", address_start)
    k = len(prefix)
    if k == address_start:
        return "torn", ""  # neither an address nor an issue date
    if address_start < k <= address_end + 1:
        part = text[address_start : min(k, address_end)]
        if part.strip().isdigit():  # a house number alone looks like a date cut short
            return "torn", ""
        return "address", part
    return "torn", ""


def check_torn(c: cz.Citizen, fmt: str, data: bytes) -> str:
    text = cz.qr_text(c, fmt)
    assert text.encode("utf-8").startswith(data) and len(data) < len(text.encode("utf-8"))
    outcome, part = torn_outcome(fmt, text, len(data))
    if outcome in ("torn", "unknown_format"):
        with pytest.raises(qr.QRError) as err:
            parse(fmt, data)
        assert err.value.reason == outcome, (fmt, data[-20:])
        return outcome
    scan = parse(fmt, data)
    assert scan.doc == cz.expected_doc(fmt)
    want = cz.expected_ident(c, fmt)
    del want["issued"]
    warn = ["field_order"] if fmt == "cancuoc" else []
    want["address"] = part.strip()
    warn = (["trailing_ws"] if part != part.rstrip() else []) + warn + ["no_issue_date"]
    assert scan.ident == want
    assert scan.warn == warn
    return outcome


def test_torn_reads_are_rejected_or_kept_without_issue_date(people: list[cz.Citizen]) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    rng = random.Random(1)
    for c, fmt in renderings(people):
        outcomes[check_torn(c, fmt, cz.qr_bytes(c, fmt, "torn", rng))] += 1
    assert outcomes["torn"] > 0.5 * sum(outcomes.values())
    assert outcomes["address"] > 0


def test_every_cut_of_every_format(people: list[cz.Citizen]) -> None:
    chosen: dict[str, cz.Citizen] = {}
    for c, fmt in renderings(people):
        chosen.setdefault(fmt, c)
    outcomes: collections.Counter[str] = collections.Counter()
    for fmt, c in chosen.items():
        full = cz.qr_bytes(c, fmt)
        for cut in range(1, len(full)):
            outcomes[check_torn(c, fmt, full[:cut])] += 1
    assert set(outcomes) == {"torn", "address", "unknown_format"}


def test_the_default_torn_cut_is_fixed(people: list[cz.Citizen]) -> None:
    c = people[1]
    assert cz.qr_bytes(c, c.doc, "torn") == cz.qr_bytes(c, c.doc, "torn")


def test_a_bhyt_code_cut_inside_its_card_number_is_torn(people: list[cz.Citizen]) -> None:
    c = next(c for c in people if c.card is not None)
    with pytest.raises(qr.QRError) as err:
        parse("bhyt", cz.qr_bytes(c, "bhyt")[:9])  # "DN4791234"
    assert err.value.reason == "torn"


def test_a_cancuoc_code_cut_before_its_address_is_torn(people: list[cz.Citizen]) -> None:
    c = next(c for c in people if c.doc == "cancuoc")
    text = cz.qr_text(c, "cancuoc")
    cut = text[: [i for i, ch in enumerate(text) if ch == "|"][4] + 1]  # ...|sex|DOB|
    with pytest.raises(qr.QRError) as err:
        qr.parse(cut, now=NOW)
    assert err.value.reason == "torn"


# ---------------------------------------------------------------------------------------------------
# The renderings themselves


def test_what_the_renderings_look_like(crowd: list[cz.Citizen]) -> None:
    c = next(c for c in crowd if c.doc == "cccd" and c.cmnd)
    fields = cz.qr_text(c, "cccd").split("|")
    assert fields == [
        c.cccd,
        c.cmnd,
        c.name,
        c.dob.strftime("%d%m%Y"),
        "Nam" if c.sex == "M" else "Nữ",
        c.address,
        c.issued.strftime("%d%m%Y"),
    ]
    c = next(c for c in crowd if c.doc == "cancuoc" and not c.cmnd)
    fields = cz.qr_text(c, "cancuoc").split("|")
    assert fields[0] == c.cccd and fields[1] == "" and fields[2] == c.name
    assert fields[4] == c.dob.strftime("%d%m%Y") and fields[6] == c.issued.strftime("%d%m%Y")
    c = next(c for c in crowd if c.vneid and c.doc == "cancuoc")
    assert cz.qr_text(c, "vneid").split("|")[3:5] == [
        c.dob.strftime("%d%m%Y"),
        "Nam" if c.sex == "M" else "Nữ",
    ]

    c = next(c for c in crowd if c.card is not None and c.card.group == "TE")
    assert c.card is not None
    text = cz.qr_text(c, "bhyt")
    assert text.endswith("|$")
    fields = text[:-2].split("|")
    assert fields[0] == c.card.number
    assert bytes.fromhex(fields[1]).decode("utf-8") == c.name
    assert fields[1] == fields[1].lower()
    assert bytes.fromhex(fields[4]).decode("utf-8") == c.address
    assert fields[5] == f"{c.card.kcbbd[:2]} - {c.card.kcbbd[2:]}"
    assert bytes.fromhex(fields[10]).decode("utf-8") == c.card.guardian

    old = next(c for c in crowd if c.dob_year_only and c.card is not None)
    assert cz.qr_text(old, "bhyt").split("|")[2] == str(old.dob.year)
    assert old.dob == datetime.date(old.dob.year, 1, 1)
    assert parse("bhyt", cz.qr_bytes(old, "bhyt")).ident["dob"] == str(old.dob.year)
    assert "year_only" in cz.expected_warn(old, "bhyt", TODAY)

    open_ended = next(c for c in crowd if c.card is not None and c.card.valid_to is None)
    assert cz.qr_text(open_ended, "bhyt").split("|")[7] == "-"
    assert "bhyt_to" not in cz.expected_ident(open_ended, "bhyt")


def test_a_citizen_has_only_the_codes_of_their_documents(crowd: list[cz.Citizen]) -> None:
    for c in crowd[:300]:
        for fmt in cz.FORMATS:
            if fmt in cz.formats(c):
                cz.qr_text(c, fmt)
                continue
            with pytest.raises(ValueError):
                cz.qr_text(c, fmt)
            with pytest.raises(ValueError):
                cz.qr_bytes(c, fmt)
            with pytest.raises(ValueError):
                cz.expected_ident(c, fmt)
    c = crowd[0]
    for bad in ("qr", "", "BHYT"):
        with pytest.raises(ValueError):
            cz.qr_text(c, bad)
        with pytest.raises(ValueError):
            cz.expected_doc(bad)
    with pytest.raises(ValueError):
        cz.qr_bytes(c, c.doc, "smudge")
    with pytest.raises(ValueError):
        cz.expected_warn(c, c.doc, TODAY, "torn")
    assert cz.qr_bytes(c, c.doc, None) == cz.qr_text(c, c.doc).encode("utf-8")


# ---------------------------------------------------------------------------------------------------
# The population: mix, ages, cards, documents


def test_the_default_mix(crowd: list[cz.Citizen]) -> None:
    assert sum(cz.DEFAULT_MIX.values()) == pytest.approx(1.0)
    assert set(cz.DEFAULT_MIX) == set(cz.INSURANCE_STATES) == set(cz.BHXH_CODES)
    counts = collections.Counter(c.insurance for c in crowd)
    for state, share in cz.DEFAULT_MIX.items():
        assert abs(counts[state] / len(crowd) - share) <= 0.05
        assert abs(counts[state] - share * len(crowd)) <= 1  # allotted, not drawn


def test_a_mix_of_my_own() -> None:
    people = cz.population(101, seed=2, today=TODAY, mix={"valid": 1, "none": 1})
    counts = collections.Counter(c.insurance for c in people)
    assert set(counts) == {"valid", "none"} and abs(counts["valid"] - counts["none"]) == 1
    for bad in ({"valid": -1.0}, {"insured": 1.0}, {}, {"valid": 0.0}, {"valid": float("nan")}):
        with pytest.raises(ValueError):
            cz.population(10, today=TODAY, mix=bad)


def test_arguments() -> None:
    assert cz.population(0, today=TODAY) == []
    assert len(cz.population(3)) == 3  # today's date
    with pytest.raises(ValueError):
        cz.population(-1, today=TODAY)
    with pytest.raises(ValueError):
        cz.population(5, today=datetime.date(2024, 6, 30))


def test_cards_agree_with_the_insurance_state(crowd: list[cz.Citizen]) -> None:
    for c in crowd:
        age = c.age(TODAY)
        assert 0 <= age <= 95
        card, old = c.card, c.old_card
        for k in (card, old):
            if k is not None:
                assert c.dob <= k.valid_from and c.dob <= k.issued <= TODAY
                assert k.valid_to is None or k.valid_from <= k.valid_to
        state = c.insurance
        if state in ("none", "child_no_card"):
            assert card is None and old is None and c.bhxh is None
            assert state == "none" or age < 6
            continue
        assert card is not None and card.covers(TODAY) == (state != "expired")
        if state in ("replaced_expired", "replaced_valid"):
            assert old is not None and old.number != card.number
            assert old.covers(TODAY) == (state == "replaced_valid")
            assert state == "replaced_valid" or (old.valid_to is not None and old.valid_to < TODAY)
        else:
            assert old is None
        if state == "expired":
            assert card.valid_to is not None and card.valid_to < TODAY
        if state in ("defence", "police"):
            assert 18 <= age <= 55
            assert card.group == ("QN" if state == "defence" else "CA")
            assert card.province == (cz.DEFENCE_PROVINCE if state == "defence" else cz.POLICE_PROVINCE)
        else:
            assert card.province not in (cz.DEFENCE_PROVINCE, cz.POLICE_PROVINCE)
        if state in ("withdrawn", "reduced"):
            assert age >= 18
        if card.group == "TE":
            assert card.guardian and card.valid_to == cz._add_years(c.dob, 6) - datetime.timedelta(days=1)
        else:
            assert card.guardian is None
    children = [c for c in crowd if c.age(TODAY) < 6]
    with_te = [c for c in children if c.card is not None and c.card.group == "TE"]
    assert len(with_te) > 0.6 * len(children)
    assert {c.insurance for c in children} <= {"valid", "child_no_card"}


def test_identity_documents(crowd: list[cz.Citizen]) -> None:
    for c in crowd:
        assert c.dob <= c.issued <= TODAY
        if c.doc == "cccd":
            assert cz.CCCD_FIRST <= c.issued <= cz.CCCD_LAST
            assert c.issued >= cz._add_years(c.dob, 14)
        else:
            assert c.doc == "cancuoc" and c.issued >= cz.CANCUOC_FIRST
        assert c.cmnd is None or c.dob.year < 2000
    docs = collections.Counter(c.doc for c in crowd)
    assert docs["cccd"] > docs["cancuoc"] > 0.1 * len(crowd)
    before_2000 = [c for c in crowd if c.dob.year < 2000]
    assert sum(c.cmnd is not None for c in before_2000) > 0.5 * len(before_2000)
    adults = [c for c in crowd if c.age(TODAY) >= 14]
    assert 0.6 < sum(c.vneid for c in adults) / len(adults) < 0.9
    assert 0 < sum(c.dob_year_only for c in crowd) < 0.1 * len(crowd)
    assert all(c.age(TODAY) >= 65 and (c.dob.month, c.dob.day) == (1, 1) for c in crowd if c.dob_year_only)


def residence(c: cz.Citizen) -> str:
    codes = [code for code in cz.PROVINCE_CODES if c.address.endswith(", " + cz.province_label(code))]
    assert len(codes) == 1, c.address
    return codes[0]


def test_cards_are_issued_where_people_live(crowd: list[cz.Citizen]) -> None:
    cards = [(c, c.card) for c in crowd if c.card is not None]
    same = 0
    for c, card in cards:
        home = residence(c)
        assert card.kcbbd[:2] == home[1:]
        same += card.province == home[1:]
    civil = [c for c, card in cards if card.group not in ("QN", "CA")]
    assert same > 0.9 * len(civil)
    moved = sum(residence(c) != c.birth_province for c in crowd)
    assert 0.03 * len(crowd) < moved < 0.25 * len(crowd)


def test_names_and_addresses_are_nfc_from_the_lists(crowd: list[cz.Citizen]) -> None:
    for c in crowd:
        assert unicodedata.normalize("NFC", c.name) == c.name
        assert unicodedata.normalize("NFC", c.address) == c.address
        family, middle, given = c.name.split(" ")
        assert family in cz.FAMILY
        assert middle in (cz.MIDDLE_M if c.sex == "M" else cz.MIDDLE_F)
        assert given in (cz.GIVEN_M if c.sex == "M" else cz.GIVEN_F)
        assert "|" not in c.address and "$" not in c.address
    assert len(cz.FAMILY) == len(cz._FAMILY_WEIGHTS)


def test_no_list_makes_a_well_known_name() -> None:
    made = {
        f"{family} {middle} {given}"
        for family in cz.FAMILY
        for middle, given in itertools.chain(
            itertools.product(cz.MIDDLE_M, cz.GIVEN_M), itertools.product(cz.MIDDLE_F, cz.GIVEN_F)
        )
    }
    assert not made & FAMOUS
    places = {f"{a} {b}" for a in cz.PLACE_FIRST for b in cz.PLACE_SECOND}
    assert not (set(cz.STREETS) | places) & FAMOUS
    # streets are places, events and ideas: none is a family name followed by a given name
    for street in cz.STREETS:
        first, *rest = street.split(" ")
        assert not (first in cz.FAMILY and rest and rest[-1] in cz.GIVEN_M + cz.GIVEN_F), street
