"""The fake BHXH gateway (sim/bhxh.py) over real HTTP: urllib against a started gateway."""

import datetime
import http.client
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim import bhxh, citizens
from sim.bhxh import CHECK_PATH, TOKEN_PATH, BhxhGateway, md5_hex
from sim.citizens import BhytCard, Citizen

ROOT = Path(__file__).resolve().parents[2]
USER = "79014_BV"
PASSWORD = "mật khẩu 1"
MD5 = md5_hex(PASSWORD)
OFFICER = ("Trần Thị Bình", "001190000001")
Y2025 = (datetime.date(2025, 1, 1), datetime.date(2025, 12, 31))
RESPONSE_FIELDS = {
    "maKetQua", "ghiChu", "maThe", "hoTen", "ngaySinh", "gioiTinh", "diaChi", "maDKBD", "cqBHXH", "gtTheTu",
    "gtTheDen", "maKV", "ngayDu5Nam", "maSoBHXH", "maTheCu", "maTheMoi", "gtTheTuMoi", "gtTheDenMoi",
    "maDKBDMoi", "tenDKBDMoi", "dsLichSuKCB2018", "dsLichSuKT2018",
}  # fmt: skip


def _card(number: str, period: tuple[datetime.date, datetime.date | None] = Y2025) -> BhytCard:
    return BhytCard(number=number, kcbbd="79014", valid_from=period[0], valid_to=period[1], issued=period[0])


def _person(
    n: int,
    name: str,
    insurance: str,
    *,
    card: str | None = None,
    old: str | None = None,
    dob: datetime.date = datetime.date(1990, 5, 17),
    year_only: bool = False,
    bhxh_number: str | None = None,
) -> Citizen:
    return Citizen(
        cccd=f"0791900000{n:02d}",
        cmnd=None,
        name=name,
        dob=dob,
        dob_year_only=year_only,
        sex="F",
        address="Số 1 đường Hoa Sen, Phường 1, Quận 3, Thành phố Hồ Chí Minh",
        issued=datetime.date(2021, 4, 12),
        doc="cccd",
        bhxh=bhxh_number if bhxh_number is not None else (None if card is None else card[5:]),
        card=None if card is None else _card(card),
        old_card=None
        if old is None
        else _card(old, (datetime.date(2024, 1, 1), datetime.date(2024, 12, 31))),
        insurance=insurance,
        vneid=True,
    )


# One person per state, plus the register's odd cases. BHXH number = the card's last 10 digits.
PEOPLE = {
    "valid": _person(1, "Nguyễn Văn An", "valid", card="DN4797900000001"),
    "defence": _person(2, "Phạm Quốc Bảo", "defence", card="QN1977900000002"),
    "police": _person(3, "Lê Công Chính", "police", card="CA1987900000003"),
    "replaced_expired": _person(
        4, "Đỗ Thị Dung", "replaced_expired", card="DN4797900000004", old="HS4797900000004"
    ),
    "replaced_valid": _person(
        5, "Vũ Thị Em", "replaced_valid", card="HT3797900000005", old="GD4797900000005"
    ),
    "expired": _person(6, "Hoàng Văn Giang", "expired", card="GD4797900000006"),
    "withdrawn": _person(7, "Bùi Thị Hạnh", "withdrawn", card="DN4797900000007"),
    "reduced": _person(8, "Đặng Văn Ích", "reduced", card="DN4797900000008"),
    "reduced121": _person(21, "Ngô Văn Khoa", "reduced", card="DN4797900000021"),
    "reduced122": _person(22, "Ngô Văn Lâm", "reduced", card="DN4797900000022"),
    "reduced123": _person(23, "Ngô Văn Minh", "reduced", card="DN4797900000023"),
    "reduced124": _person(24, "Ngô Văn Nam", "reduced", card="DN4797900000024"),
    "none": _person(10, "Trịnh Thị Oanh", "none"),
    "child": _person(
        11, "Lý Gia Phúc", "child_no_card", dob=datetime.date(2024, 3, 3), bhxh_number="7900000011"
    ),
    "no_card_data": _person(12, "Mai Văn Quang", "valid", bhxh_number="7900000012"),
    "year_only": _person(
        13, "Lò Văn Pá", "valid", card="HT3147900000013", dob=datetime.date(1950, 1, 1), year_only=True
    ),
}
REDUCED = {"7900000021": "121", "7900000022": "122", "7900000023": "123", "7900000024": "124"}


def _dob(person: Citizen) -> str:
    return str(person.dob.year) if person.dob_year_only else person.dob.strftime("%d/%m/%Y")


def _fields(key: str, **changes: str) -> dict[str, str]:
    person = PEOPLE[key]
    number = person.card.number if person.card is not None else person.cccd
    fields = {
        "maThe": number,
        "hoTen": person.name,
        "ngaySinh": _dob(person),
        "hoTenCb": OFFICER[0],
        "cccdCb": OFFICER[1],
    }
    fields.update(changes)
    return fields


# --- HTTP helpers -------------------------------------------------------------------------------


def post(
    url: str, body: bytes | None, content_type: str | None = "application/json", method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def post_json(url: str, obj: Any) -> tuple[int, dict[str, Any]]:
    return post(url, json.dumps(obj, ensure_ascii=False).encode("utf-8"))


def post_form(url: str, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return post(url, urllib.parse.urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded")


def take_token(gw: BhxhGateway, password_md5: str = MD5, username: str = USER) -> dict[str, Any]:
    status, body = post_json(gw.url + TOKEN_PATH, {"username": username, "password": password_md5})
    assert status == 200 and body["maKetQua"] == "200", body
    key: dict[str, Any] = body["APIKey"]
    return key


def check_url(gw: BhxhGateway, key: dict[str, Any], **changes: str) -> str:
    params = {"token": key["access_token"], "id_token": key["id_token"], "username": USER, "password": MD5}
    params.update(changes)
    return gw.url + CHECK_PATH + "?" + urllib.parse.urlencode(params)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway() -> Iterator[BhxhGateway]:
    """The shared gateway: never reconfigured by a test."""
    with BhxhGateway(
        PEOPLE.values(), username=USER, password=PASSWORD, officers=[OFFICER], reduced_codes=REDUCED, seed=1
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
def key(gateway: BhxhGateway) -> dict[str, Any]:
    return take_token(gateway)


@pytest.fixture
def fresh() -> Iterator[BhxhGateway]:
    """A gateway of its own, for a test that changes its settings."""
    with BhxhGateway(PEOPLE.values(), username=USER, password=PASSWORD, seed=2) as gw:
        yield gw


def ask(gateway: BhxhGateway, key: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    status, body = post_json(check_url(gateway, key), fields)
    assert status == 200, body
    assert set(body) == RESPONSE_FIELDS
    return body


# --- token --------------------------------------------------------------------------------------


def test_token_takes_the_md5_of_the_password_as_json_or_form_and_expires_at_an_absolute_utc_time(
    gateway: BhxhGateway,
) -> None:
    before = time.time()
    key = take_token(gateway)
    assert key["token_type"] == "Bearer" and key["username"] == USER
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key["access_token"])  # safe to paste into a URL as it is
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", key["id_token"]
    )
    # .NET's round-trip format, as the real gateway writes it: 2017-11-13T03:51:20.1047187Z
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", key["expires_in"])
    expires = datetime.datetime.fromisoformat(key["expires_in"].replace("Z", "+00:00")).timestamp()
    assert before + 3600 - 1 <= expires <= time.time() + 3600 + 1

    status, body = post_form(gateway.url + TOKEN_PATH, {"username": USER, "password": MD5.upper()})
    assert status == 200 and body["APIKey"]["access_token"] != key["access_token"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": USER, "password": md5_hex("wrong")},
        {"username": USER, "password": PASSWORD},  # the password itself, not its MD5
        {"username": "79015_BV", "password": MD5},
        {"username": USER},
        {"username": USER, "password": None},
        {},
        [USER, MD5],
    ],
)
def test_wrong_credentials_get_401(gateway: BhxhGateway, body: Any) -> None:
    status, answer = post_json(gateway.url + TOKEN_PATH, body)
    assert (status, answer["maKetQua"]) == (401, "401")
    status, answer = post(gateway.url + TOKEN_PATH, b"\xff\xfe not a body")
    assert (status, answer["maKetQua"]) == (401, "401")


@pytest.mark.parametrize(
    "changes",
    [
        {"token": "bm90IGEgdG9rZW4"},
        {"id_token": "d2c89470-5867-4f77-aa87-36db23baacd1"},
        {"username": "79015_BV"},
        {"password": md5_hex("wrong")},
        {"password": PASSWORD},
        {"token": ""},
    ],
)
def test_a_check_without_the_right_token_id_token_username_and_password_gets_401(
    gateway: BhxhGateway, key: dict[str, Any], changes: dict[str, str]
) -> None:
    status, body = post_json(check_url(gateway, key, **changes), _fields("valid"))
    assert (status, body["maKetQua"]) == (401, "401")
    status, body = post_json(gateway.url + CHECK_PATH, _fields("valid"))  # no query at all
    assert (status, body["maKetQua"]) == (401, "401")


def test_an_expired_token_gets_401_and_a_new_one_works() -> None:
    now = [1_800_000_000.0]
    with BhxhGateway(
        PEOPLE.values(), username=USER, password=PASSWORD, token_ttl=60, clock=lambda: now[0]
    ) as gw:
        key = take_token(gw)
        assert key["expires_in"] == "2027-01-15T08:01:00.0000000Z"
        assert post_json(check_url(gw, key), _fields("valid"))[1]["maKetQua"] == "000"
        now[0] += 60
        status, body = post_json(check_url(gw, key), _fields("valid"))
        assert (status, body["maKetQua"]) == (401, "401")
        fresh_key = take_token(gw)
        assert post_json(check_url(gw, fresh_key), _fields("valid"))[1]["maKetQua"] == "000"
        gw.revoke_tokens()  # as a gateway restart would
        assert post_json(check_url(gw, fresh_key), _fields("valid"))[0] == 401


# --- every maKetQua -----------------------------------------------------------------------------

CASES = [
    # (person, field changes, expected maKetQua)
    ("valid", {}, "000"),
    ("defence", {}, "001"),
    ("police", {}, "002"),
    ("replaced_expired", {"maThe": "HS4797900000004"}, "003"),
    ("replaced_valid", {"maThe": "GD4797900000005"}, "004"),
    ("expired", {}, "010"),
    ("none", {}, "050"),  # asked by CCCD: not in the register
    ("valid", {"maThe": "DN4797999999999"}, "050"),
    ("valid", {"maThe": "7999999999"}, "050"),
    ("valid", {"maThe": "079199999999"}, "050"),
    ("valid", {"maThe": "ZZ4797900000001"}, "051"),  # no such group
    ("valid", {"maThe": "HC4797900000001"}, "051"),  # a group, not theirs
    ("valid", {"maThe": "DN4007900000001"}, "052"),  # no province 00
    ("valid", {"maThe": "DN4017900000001"}, "052"),  # a province, not theirs
    ("valid", {"maThe": "DN0797900000001"}, "053"),  # no benefit level 0
    ("valid", {"maThe": "DN3797900000001"}, "053"),  # a level, not theirs
    ("valid", {"cccdCb": "001190000002"}, "054"),
    ("valid", {"hoTenCb": "Trần Thị Bình An"}, "055"),
    ("valid", {"hoTen": "Lê Văn An"}, "060"),
    ("valid", {"hoTen": "Nguyễn Văn Anh"}, "061"),
    ("valid", {"hoTen": "Nguyễn Văn Ân"}, "061"),  # a tone is a different name
    ("valid", {"ngaySinh": "18/05/1990"}, "070"),
    ("valid", {"ngaySinh": "1991"}, "070"),
    ("year_only", {"ngaySinh": "1951"}, "070"),
    ("no_card_data", {"maThe": "079190000012"}, "100"),
    ("withdrawn", {}, "110"),
    ("reduced", {}, "120"),
    ("reduced121", {}, "121"),
    ("reduced122", {}, "122"),
    ("reduced123", {}, "123"),
    ("reduced124", {}, "124"),
    ("child", {}, "130"),
]


@pytest.mark.parametrize(("who", "changes", "code"), CASES)
def test_each_state_and_mismatch_gets_its_code(
    gateway: BhxhGateway, key: dict[str, Any], who: str, changes: dict[str, str], code: str
) -> None:
    body = ask(gateway, key, _fields(who, **changes))
    assert body["maKetQua"] == code
    assert body["ghiChu"].startswith((bhxh.MESSAGES[code], "Thông báo: " + bhxh.MESSAGES[code]))


def test_every_code_is_reached_by_some_test() -> None:
    elsewhere = {"101", "500", "205", "401"}  # error rate, hostile input, tokens: tests of their own
    reached = {code for *_, code in CASES} | elsewhere
    assert reached == set(bhxh.MESSAGES)
    assert dict(citizens.BHXH_CODES) == bhxh.STATE_CODES


def test_a_valid_card_answers_the_card_and_the_person(gateway: BhxhGateway, key: dict[str, Any]) -> None:
    body = ask(gateway, key, _fields("valid"))
    assert body["ghiChu"].startswith("Thông báo: Thẻ còn giá trị sử dụng! Mã thẻ: DN4797900000001")
    assert {k: body[k] for k in ("maThe", "hoTen", "ngaySinh", "gioiTinh", "maDKBD", "maSoBHXH")} == {
        "maThe": "DN4797900000001",
        "hoTen": "Nguyễn Văn An",
        "ngaySinh": "17/05/1990",
        "gioiTinh": "Nữ",
        "maDKBD": "79014",
        "maSoBHXH": "7900000001",
    }
    assert (body["gtTheTu"], body["gtTheDen"]) == ("01/01/2025", "31/12/2025")
    assert body["cqBHXH"] == "Bảo hiểm xã hội thành phố Hồ Chí Minh"
    assert body["maTheMoi"] is None and isinstance(body["dsLichSuKCB2018"], list)
    again = ask(gateway, key, _fields("valid"))
    assert again["dsLichSuKT2018"][0]["maLoi"] == "000"  # the earlier check, in the check history
    assert again["dsLichSuKCB2018"] == body["dsLichSuKCB2018"]  # the same visits every time


def test_a_replaced_card_answers_the_old_and_the_new(gateway: BhxhGateway, key: dict[str, Any]) -> None:
    body = ask(gateway, key, _fields("replaced_expired", maThe="HS4797900000004"))
    assert (body["maThe"], body["gtTheDen"]) == ("HS4797900000004", "31/12/2024")
    assert (body["maTheMoi"], body["gtTheTuMoi"], body["gtTheDenMoi"]) == (
        "DN4797900000004",
        "01/01/2025",
        "31/12/2025",
    )
    assert body["maDKBDMoi"] == "79014" and body["tenDKBDMoi"]


def test_mismatches_answer_no_history(gateway: BhxhGateway, key: dict[str, Any]) -> None:
    body = ask(gateway, key, _fields("valid", ngaySinh="1991"))
    assert body["ngaySinh"] == "17/05/1990"  # as the real one: the register's DOB, to correct
    assert body["dsLichSuKCB2018"] == [] and body["dsLichSuKT2018"] == []
    body = ask(gateway, key, _fields("valid", maThe="HC4797900000001"))
    assert body["maThe"] is None and body["hoTen"] is None


@pytest.mark.parametrize(
    "name",
    [
        "NGUYỄN VĂN AN",
        "  nguyễn   văn\tan ",
        unicodedata.normalize("NFD", "Nguyễn Văn An"),
        "Nguyen Van An",  # many HIS send names without diacritics
        "NGUYEN VAN AN",
    ],
)
def test_names_compare_normalised(gateway: BhxhGateway, key: dict[str, Any], name: str) -> None:
    assert ask(gateway, key, _fields("valid", hoTen=name))["maKetQua"] == "000"


def test_an_unaccented_name_still_needs_the_right_letters(gateway: BhxhGateway, key: dict[str, Any]) -> None:
    assert ask(gateway, key, _fields("valid", hoTen="Nguyen Van Anh"))["maKetQua"] == "061"
    assert (
        ask(gateway, key, _fields("replaced_expired", maThe="079190000004", hoTen="Do Thi Dung"))["maKetQua"]
        == "003"
    )  # Đ → D


@pytest.mark.parametrize(
    ("who", "dob", "code"),
    [
        ("valid", "1990", "000"),
        ("valid", "17/05/1990", "000"),
        ("year_only", "1950", "000"),
        ("year_only", "23/08/1950", "000"),  # only the year is known: the year decides
    ],
)
def test_dates_of_birth(gateway: BhxhGateway, key: dict[str, Any], who: str, dob: str, code: str) -> None:
    body = ask(gateway, key, _fields(who, ngaySinh=dob))
    assert body["maKetQua"] == code
    if who == "year_only":
        assert body["ngaySinh"] == "1950"


@pytest.mark.parametrize("how", ["card", "bhxh", "cccd", "lower-case card"])
def test_mathe_may_be_the_card_the_bhxh_number_or_the_cccd(
    gateway: BhxhGateway, key: dict[str, Any], how: str
) -> None:
    person = PEOPLE["valid"]
    assert person.card is not None and person.bhxh is not None
    number = {"card": person.card.number, "bhxh": person.bhxh, "cccd": person.cccd}.get(
        how, person.card.number.lower()
    )
    body = ask(gateway, key, _fields("valid", maThe=number))
    assert (body["maKetQua"], body["maThe"]) == ("000", "DN4797900000001")


def test_json_and_form_bodies_give_the_same_answer(gateway: BhxhGateway, key: dict[str, Any]) -> None:
    for who in ("valid", "expired", "child"):
        as_json = post_json(check_url(gateway, key), _fields(who))
        as_form = post_form(check_url(gateway, key), _fields(who))
        for answer in (as_json, as_form):
            assert answer[0] == 200
            answer[1]["dsLichSuKT2018"] = []  # the check history grows with each check
        assert as_json == as_form
    # keys bind case-insensitively; an unknown key is ignored; a sloppy content type: sniffed
    loud = {k.upper(): v for k, v in _fields("valid").items()} | {"extra": {"nested": True}}
    assert post(check_url(gateway, key), json.dumps(loud).encode(), "text/plain")[1]["maKetQua"] == "000"


# --- hostile input ------------------------------------------------------------------------------

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _json(**changes: Any) -> bytes:
    fields: dict[str, Any] = _fields("valid")
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}, ensure_ascii=False).encode("utf-8")


HOSTILE: list[tuple[str, bytes, str]] = [
    *[
        (f"no {field}", _json(**{field: ...}), JSON)
        for field in ("maThe", "hoTen", "ngaySinh", "hoTenCb", "cccdCb")
    ],
    ("empty maThe", _json(maThe=""), JSON),
    ("blank name", _json(hoTen="   "), JSON),
    ("31 February", _json(ngaySinh="31/02/1990"), JSON),
    ("ISO date", _json(ngaySinh="1990-05-17"), JSON),
    ("one-digit month", _json(ngaySinh="17/5/1990"), JSON),
    ("two-digit year", _json(ngaySinh="90"), JSON),
    ("Arabic-Indic digits", _json(ngaySinh="١٩٩٠"), JSON),
    ("year 1800", _json(ngaySinh="1800"), JSON),
    ("14-character card", _json(maThe="DN479790000000"), JSON),
    ("16-character card", _json(maThe="DN47979000000012"), JSON),
    ("letter in the number", _json(maThe="DN479790000000A"), JSON),
    ("fullwidth digits", _json(maThe="０７９１９００００００１"), JSON),
    ("injection", _json(maThe="DN4797900000001' OR '1'='1"), JSON),
    ("short officer CCCD", _json(cccdCb="12345"), JSON),
    ("letter in officer CCCD", _json(cccdCb="00119000000A"), JSON),
    ("NUL in the name", _json(hoTen="Nguyễn\x00Văn An"), JSON),
    ("RTL override in the name", _json(hoTen="Nguyễn\u202eVăn An"), JSON),
    ("300-character name", _json(hoTen="A" * 300), JSON),
    ("number for a date", _json(ngaySinh=1990), JSON),
    ("null", _json(maThe=None), JSON),
    ("nested object", _json(maThe={"$ne": ""}), JSON),
    ("list for a name", _json(hoTen=["Nguyễn", "Văn", "An"]), JSON),
    ("key twice, cases differ", _json()[:-1] + b', "MATHE": "DN4797900000001"}', JSON),
    ("JSON array", b"[" + _json() + b"]", JSON),
    ("JSON string", b'"maThe"', JSON),
    ("truncated JSON", _json()[:-5], JSON),
    ("single quotes", _json().replace(b'"', b"'"), JSON),
    ("deep nesting", b"[" * 30_000 + b"]" * 30_000, JSON),
    ("not UTF-8", _json().replace("ễ".encode(), b"\xe1\xbb"), JSON),
    ("Latin-1", json.dumps(_fields("valid"), ensure_ascii=False).encode("latin-1", "replace"), JSON),
    ("UTF-16", json.dumps(_fields("valid")).encode("utf-16"), JSON),
    ("66 KiB", _json(pad="x" * 66_000), JSON),
    ("form: key twice", urllib.parse.urlencode(_fields("valid")).encode() + b"&maThe=X", FORM),
    ("form: bad percent-encoding", urllib.parse.urlencode(_fields("valid")).encode() + b"&x=%FF", FORM),
    ("form: field without =", urllib.parse.urlencode(_fields("valid")).encode() + b"&garbage", FORM),
    ("empty body", b"", FORM),
]


@pytest.mark.parametrize(("what", "body", "content_type"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_malformed_input_gets_205(
    gateway: BhxhGateway, key: dict[str, Any], what: str, body: bytes, content_type: str
) -> None:
    status, answer = post(check_url(gateway, key), body, content_type)
    assert (status, answer["maKetQua"]) == (200, "205"), what
    assert set(answer) == RESPONSE_FIELDS


def test_the_auth_check_comes_before_the_format_check(gateway: BhxhGateway, key: dict[str, Any]) -> None:
    status, answer = post(check_url(gateway, key, token="x"), b"{", JSON)
    assert (status, answer["maKetQua"]) == (401, "401")


def test_requests_that_break_http_get_json_and_the_gateway_carries_on(
    gateway: BhxhGateway, key: dict[str, Any]
) -> None:
    target = urllib.parse.urlsplit(check_url(gateway, key))
    path = target.path + "?" + target.query
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    try:  # a chunked body: not read, 205, the connection closed
        conn.request("POST", path, body=iter([_json()]), headers={"Content-Type": JSON}, encode_chunked=True)
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["maKetQua"]) == (200, "205")
    finally:
        conn.close()
    for raw in (
        b"GARBAGE\r\n\r\n",
        b"POST " + path.encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST " + path.encode() + b" HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    ):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(raw)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, payload = reply.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 400", b"HTTP/1.1 400")), reply
        assert json.loads(payload)["maKetQua"] == "205"
        assert b"Traceback" not in reply
    assert ask(gateway, key, _fields("valid"))["maKetQua"] == "000"


def test_unknown_paths_get_404_and_other_methods_405(gateway: BhxhGateway) -> None:
    status, body = post(gateway.url + "/api/egw/nhanHoSoKCBChiTiet", b"{}")
    assert (status, body["maKetQua"]) == (404, "404")
    assert post(gateway.url + "/", None, None, method="GET")[0] == 404
    for path in (TOKEN_PATH, CHECK_PATH):
        status, body = post(gateway.url + path, None, None, method="GET")
        assert (status, body["maKetQua"]) == (405, "405")


# --- latency, outage, errors --------------------------------------------------------------------


def test_latency_is_honoured(fresh: BhxhGateway) -> None:
    fresh.set_latency(0.2)
    started = time.monotonic()
    take_token(fresh)
    assert time.monotonic() - started >= 0.2
    assert fresh.latency == (0.2, 0.2)


def test_an_outage_resets_every_request_until_it_ends(fresh: BhxhGateway) -> None:
    key = take_token(fresh)
    fresh.set_outage(True)
    for url in (fresh.url + TOKEN_PATH, check_url(fresh, key), fresh.url + "/elsewhere"):
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            post_json(url, _fields("valid"))
    assert fresh.count("token", "reset") == fresh.count("check", "reset") == 1
    fresh.set_outage(False)
    assert post_json(check_url(fresh, key), _fields("valid"))[1]["maKetQua"] == "000"


def test_error_rate_one_answers_every_check_500_or_101(fresh: BhxhGateway) -> None:
    key = take_token(fresh)
    fresh.set_error_rate(1.0)
    answers: set[tuple[int, str]] = set()
    for _ in range(30):
        status, body = post_json(check_url(fresh, key), _fields("valid"))
        answers.add((status, body["maKetQua"]))
    assert answers == {(500, "500"), (200, "101")}
    take_token(fresh)  # the token endpoint is not affected
    fresh.set_error_rate(0.0)
    assert post_json(check_url(fresh, key), _fields("valid"))[1]["maKetQua"] == "000"


def test_counters_and_a_restart_on_the_same_url(fresh: BhxhGateway) -> None:
    key = take_token(fresh)
    post_json(check_url(fresh, key), _fields("valid"))
    post_json(check_url(fresh, key), _fields("valid", hoTen="Lê Văn An"))
    post(fresh.url + "/nowhere", b"{}")
    assert fresh.counters() == {
        ("token", "200"): 1,
        ("check", "000"): 1,
        ("check", "060"): 1,
        ("other", "404"): 1,
    }
    url = fresh.url
    fresh.stop()
    with pytest.raises(urllib.error.URLError):
        post_json(check_url(fresh, key), _fields("valid"))
    fresh.start()
    assert fresh.url == url
    assert post_json(check_url(fresh, key), _fields("valid"))[1]["maKetQua"] == "000"  # tokens kept


def test_the_log_never_shows_the_password_hash_or_the_token(
    fresh: BhxhGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cccd.sim.bhxh")
    key = take_token(fresh)
    post_json(check_url(fresh, key), _fields("valid"))
    post_json(check_url(fresh, key, id_token="wrong"), _fields("valid"))
    post(check_url(fresh, key), b"\xff", JSON)
    with socket.create_connection(("127.0.0.1", fresh.port), timeout=5) as sock:
        sock.sendall(b"BAD " + check_url(fresh, key).encode() + b" NONSENSE\r\n\r\n")
        while sock.recv(65536):
            pass
    text = caplog.text
    assert CHECK_PATH in text and "-> 401 401" in text
    for secret in (MD5, MD5.upper(), key["access_token"], key["id_token"], PASSWORD):
        assert secret not in text


# --- with sim.citizens' population ---------------------------------------------------------------


def test_the_synthetic_population_gets_the_code_of_its_state() -> None:
    people = citizens.population(150, seed=7)
    with BhxhGateway(people, username=USER, password=PASSWORD) as gw:
        key = take_token(gw)
        for person in people:
            expected = citizens.BHXH_CODES[person.insurance]
            card = person.old_card if expected in ("003", "004") else person.card
            for number in {person.cccd, card.number if card else person.cccd}:
                fields = _fields("valid", maThe=number, hoTen=person.name, ngaySinh=_dob(person))
                assert ask(gw, key, fields)["maKetQua"] == expected, (person.insurance, number)


# --- the command line ---------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_cli_help_and_bad_options() -> None:
    assert cli("sim", "bhxh", "--help").returncode == 0
    for bad in (["--latency", "3-1"], ["--error-rate", "2"], ["--officer", "Nobody=123"], []):
        out = cli("sim", "bhxh", *(["--username", "u", "--password", "p"] if bad else []), *bad)
        assert out.returncode == 64, out.stderr


def test_cli_serves_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tools.cli", "sim", "bhxh", "--username", USER, "--password", PASSWORD),
            *("--citizens", "40", "--officer", f"{OFFICER[0]}={OFFICER[1]}"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        samples = [proc.stdout.readline() for _ in range(6)]
        assert any(line.strip().startswith("000") for line in samples), samples
        status, body = post_json(url[0] + TOKEN_PATH, {"username": USER, "password": MD5})
        assert status == 200 and body["APIKey"]["username"] == USER
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
