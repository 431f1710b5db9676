"""Every documented maKetQua maps to what the counter shows and what the collector does next."""

import pytest

from collector.forward import insurance as ins

DOCUMENTED = [
    "000",
    "001",
    "002",
    "003",
    "004",
    "010",
    "050",
    "051",
    "052",
    "053",
    "054",
    "055",
    "060",
    "061",
    "070",
    "100",
    "101",
    "110",
    "120",
    "121",
    "122",
    "123",
    "124",
    "130",
    "205",
    "401",
    "500",
]


def test_every_documented_code_is_mapped_and_fits_the_display() -> None:
    assert set(ins.CODES) == set(DOCUMENTED)
    for code in DOCUMENTED:
        v = ins.verdict({"maKetQua": code, "gtTheDen": "31/12/2026", "gtTheDenMoi": "30/06/2027"})
        assert v.code == code
        lines = v.text.split("\n")
        assert len(lines) == 2 and all(0 < len(line) <= 16 for line in lines), (code, v.text)


@pytest.mark.parametrize(
    ("code", "status", "nxt"),
    [
        ("000", "ok", "done"),
        ("001", "ok", "done"),
        ("002", "ok", "done"),
        ("003", "warn", "done"),
        ("004", "warn", "done"),
        ("010", "reject", "done"),
        ("110", "reject", "done"),
        ("123", "reject", "done"),
        ("050", "reject", "done"),
        ("060", "reject", "done"),
        ("070", "reject", "done"),
        ("130", "warn", "done"),
        ("054", "error", "alert"),
        ("055", "error", "alert"),
        ("205", "error", "alert"),
        ("100", "pending", "retry"),
        ("101", "pending", "retry"),
        ("500", "pending", "retry"),
        ("401", "pending", "refresh"),
    ],
)
def test_status_and_next_step(code: str, status: str, nxt: str) -> None:
    v = ins.verdict({"maKetQua": code})
    assert (v.status, v.next) == (status, nxt)


def test_valid_card_shows_its_end_date() -> None:
    v = ins.verdict({"maKetQua": "000", "gtTheDen": "31/12/2026"})
    assert v.text == "Thẻ BHYT hợp lệ\nĐến 31/12/2026" and v.valid_to == "2026-12-31"


def test_new_card_uses_the_new_dates_and_number() -> None:
    v = ins.verdict(
        {"maKetQua": "004", "gtTheDen": "31/12/2025", "gtTheDenMoi": "31/12/2027", "maTheMoi": "DN4"}
    )
    assert v.valid_to == "2027-12-31" and v.new_card == "DN4" and "31/12/2027" in v.text


def test_mismatch_falls_back_to_the_bhyt_card_and_photo_id() -> None:
    for code in ("050", "060", "061", "070", "010"):
        assert ins.verdict({"maKetQua": code}).text.endswith("BHYT + giấy tờ")


def test_missing_or_odd_dates_and_unknown_codes() -> None:
    assert ins.verdict({"maKetQua": "000"}).text == "Thẻ BHYT hợp lệ\nCòn giá trị"
    assert ins.verdict({"maKetQua": "000", "gtTheDen": "2026-12-31"}).valid_to is None
    dates = {
        " 31/12/2026 ": "2026-12-31",
        "1/2/2026": "2026-02-01",
        "29/02/2028": "2028-02-29",
        "29/02/2026": None,  # not a leap year
        "00/12/2026": None,
        "31/13/2026": None,
        "31/12/0000": None,
        "31/12/20266": None,
        "31/12/26": None,
        "٣١/١٢/٢٠٢٦": None,  # digits, but not ASCII ones
        "31/12/2026\n31/12/2027": None,
        "9" * 10_000: None,
        None: None,
        20261231: None,
    }
    for given, expected in dates.items():
        assert ins.verdict({"maKetQua": "000", "gtTheDen": given}).valid_to == expected, given
    for odd in ({"maKetQua": "999"}, {}, {"maKetQua": None}, {"maKetQua": "<script>"}):
        v = ins.verdict(odd)
        assert (v.status, v.next) == ("pending", "retry")
        assert v.code in ("", "999")
