"""cccd.qr: every format, every warning, every rejection, and hostile input.

Runs under CPython (pytest) and MicroPython alike; see conftest.py. Every identity here is invented:
the personal IDs only follow the structure rules (province, century/sex digit, year of birth).
"""

from mpcheck import raises

from cccd import qr, text
from cccd.errors import CoreError
from cccd.qr import MAX_LEN, REASONS, WARNINGS, QRError, Scan, parse, province_name, reason_text

NOW = (2025, 6, 1)
PID = "001090012345"  # Hà Nội, 1900s male, born (19)90
CMND = "012345678"
NAME = "Nguyễn Văn An"
ADDR = "Số 12 Đường Láng, Phường Láng Thượng, Quận Đống Đa, Hà Nội"
DOB = "15031990"
ISSUED = "10082021"
GOOD = {
    "cccd": PID,
    "cmnd": CMND,
    "name": NAME,
    "dob": "1990-03-15",
    "sex": "M",
    "address": ADDR,
    "issued": "2021-08-10",
}
PID_F = "079305001234"  # TP Hồ Chí Minh, 2000s female, born (20)05
NAME_F = "Trần Thị Bích Ngọc"
ADDR_F = "Ấp Mỹ Hòa, Xã Hưng Mỹ, Huyện Cái Nước, Cà Mau"
OLD = "096195001111"  # a cancelled personal ID (Cà Mau, 1900s female, 95)


def cccd(pid=PID, cmnd=CMND, name=NAME, dob=DOB, sex="Nam", addr=ADDR, issued=ISSUED):
    """A 2021 CCCD QR text."""
    return "|".join([pid, cmnd, name, dob, sex, addr, issued])


def hexu(s):
    return s.encode("utf-8").hex() if s else ""  # MicroPython: b"".hex() is b""


def bhyt(
    card="DN4790123456789",
    name=NAME,
    dob="15/03/1990",
    sex="1",
    addr=ADDR,
    kcb="79 - 034",
    start="01/01/2025",
    end="31/12/2025",
    rest=("01/01/2025", "79034ABC123", "-", "4", "01/01/2020", "9a3f"),
):
    """A BHYT card QR text."""
    fields = [card, hexu(name), dob, sex, hexu(addr), kcb, start]
    if end is not None:
        fields.append(end)
    return "|".join(fields + list(rest)) + "|$"


def mojibake(s):
    """What a keyboard wedge / Windows-1252 display makes of ``s``'s UTF-8 bytes."""
    out = []
    for b in s.encode("utf-8"):
        out.append(text.CP1252_HIGH[b - 0x80] if 0x80 <= b <= 0x9F else chr(b))
    return "".join(out)


def rejected(data, reason, **kw):
    """Parse ``data``, expect the rejection ``reason``, and check the error's form."""
    kw.setdefault("now", NOW)
    err = raises(QRError, parse, data, **kw)
    assert err.reason == reason, (err.reason, err.detail)
    check_error(err)
    return err


def check_error(err):
    assert err.reason in REASONS
    lines = err.text.split("\n")
    assert 1 <= len(lines) <= 2
    for line in lines:
        assert 0 < len(line) <= 16, line
    # Never the personal data in the message or the detail.
    for secret in (PID, PID_F, CMND, NAME, NAME_F, "Nguyễn", DOB, "1990", ADDR, OLD):
        assert secret not in err.detail
        assert secret not in str(err)


def accepted(data, **kw):
    kw.setdefault("now", NOW)
    scan = parse(data, **kw)
    assert isinstance(scan, Scan)
    for code in scan.warn:
        assert code in WARNINGS, code
    assert len(scan.warn) == len(set(scan.warn))
    return scan


# ---------------------------------------------------------------------------------------------------
# The API


def test_reason_texts_fit_the_display():
    assert len(REASONS) == len(set(REASONS))
    for reason in REASONS:
        t = reason_text(reason)
        assert t == text.nfc(t)
        lines = t.split("\n")
        assert len(lines) == 2
        for line in lines:
            assert 0 < len(line) <= 16, (reason, line)
        assert QRError(reason).text == t
    assert reason_text("no such reason")
    assert reason_text("torn") == "Mã QR bị rách\nQuét lại"


def test_qr_error():
    err = QRError("torn")
    assert isinstance(err, ValueError)
    assert isinstance(err, CoreError)
    assert err.reason == "torn"
    assert err.text == reason_text("torn")
    assert err.detail == ""
    err = QRError("bad_id", "Số sai\nThử lại", "twelve digits expected")
    assert err.text == "Số sai\nThử lại"
    assert err.detail == "twelve digits expected"
    assert "twelve digits expected" in str(err)


PROVINCE_CODES = (
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036 "
    "037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075 "
    "077 079 080 082 083 084 086 087 089 091 092 093 094 095 096"
)


def test_province_table_is_thong_tu_07_2016():
    codes = PROVINCE_CODES.split()
    assert len(codes) == 63
    found = [c for c in ["%03d" % i for i in range(1000)] if province_name(c) is not None]
    assert found == codes
    assert province_name("001") == "Hà Nội"
    assert province_name("079") == "TP Hồ Chí Minh"
    assert province_name("096") == "Cà Mau"
    assert province_name("046") == "Thừa Thiên Huế"
    for bad in ("", "1", "0001", "abc", "|00", "00|"):
        assert province_name(bad) is None


def test_scan_repr_hides_personal_data():
    scan = accepted(cccd())
    r = repr(scan)
    assert "cccd" in r
    for secret in (PID, NAME, DOB, "1990", ADDR):
        assert secret not in r


def test_unknown_source_is_a_programming_error():
    raises(ValueError, parse, cccd(), NOW, "nfc")


def test_other_types_are_a_programming_error():
    raises(TypeError, parse, 12345)
    raises(TypeError, parse, None)


# ---------------------------------------------------------------------------------------------------
# CCCD (2021)


def test_cccd_full():
    scan = accepted(cccd())
    assert scan.doc == "cccd"
    assert scan.ident == GOOD
    assert scan.warn == []
    assert scan.text == cccd()


def test_cccd_bytes_bytearray_memoryview():
    for data in (cccd().encode("utf-8"), bytearray(cccd().encode("utf-8")), memoryview(cccd().encode())):
        scan = accepted(data)
        assert scan.ident == GOOD
        assert scan.warn == []


def test_cccd_female_2000s_without_cmnd_leap_day():
    pid = "079304001234"  # TP Hồ Chí Minh, 2000s female, born (20)04
    scan = accepted(cccd(pid=pid, cmnd="", name=NAME_F, dob="29022004", sex="Nữ", addr=ADDR_F))
    assert scan.doc == "cccd"
    assert scan.ident == {
        "cccd": pid,
        "name": NAME_F,
        "dob": "2004-02-29",
        "sex": "F",
        "address": ADDR_F,
        "issued": "2021-08-10",
    }


def test_cccd_female_2000s():
    scan = accepted(cccd(pid=PID_F, cmnd="", name=NAME_F, dob="01012005", sex="Nữ", addr=ADDR_F))
    assert scan.ident == {
        "cccd": PID_F,
        "name": NAME_F,
        "dob": "2005-01-01",
        "sex": "F",
        "address": ADDR_F,
        "issued": "2021-08-10",
    }


def test_cccd_century_codes():
    # 1900s female, 2000s male.
    scan = accepted(cccd(pid="001185000001", dob="01011985", sex="Nữ", issued="01012020"))
    assert scan.ident["sex"] == "F"
    scan = accepted(cccd(pid="001210000001", dob="31122010", sex="Nam", issued="01012025"))
    assert scan.ident["dob"] == "2010-12-31"


def test_cccd_leap_day():
    scan = accepted(cccd(pid="001200000001", cmnd="", dob="29022000", issued="01032021"))
    assert scan.ident["dob"] == "2000-02-29"


def test_cccd_sex_words_any_case():
    for word in ("Nam", "NAM", "nam", " Nam "):
        assert accepted(cccd(sex=word)).ident["sex"] == "M"
    for word in ("Nữ", "NỮ", "nữ", "nu\u031b\u0303"):
        assert accepted(cccd(pid="001190012345", sex=word)).ident["sex"] == "F"


def test_cccd_without_issue_date():
    scan = accepted("|".join([PID, CMND, NAME, DOB, "Nam", ADDR]))
    assert scan.doc == "cccd"
    assert "issued" not in scan.ident
    assert scan.warn == ["no_issue_date"]
    scan = accepted(cccd(issued=""))
    assert scan.warn == ["no_issue_date"]


def test_cccd_without_address():
    scan = accepted(cccd(addr=""))
    assert "address" not in scan.ident
    assert scan.warn == ["no_address"]


def test_cccd_extra_fields_ignored():
    scan = accepted(cccd() + "|something|")
    assert scan.doc == "cccd"
    assert scan.ident == GOOD
    assert scan.warn == ["extra_fields"]
    scan = accepted(cccd() + "||")
    assert scan.warn == []


def test_cccd_layout_with_cancelled_id_is_cancuoc():
    scan = accepted(cccd() + "|" + OLD)
    assert scan.doc == "cancuoc"
    assert scan.ident["cccd_old"] == OLD
    assert scan.warn == []


def test_cccd_spaces_collapsed():
    scan = accepted(cccd(name="  Nguyễn  Văn\tAn ", addr="Số 12  Đường Láng,\u00a0Hà Nội "))
    assert scan.ident["name"] == NAME
    assert scan.ident["address"] == "Số 12 Đường Láng, Hà Nội"
    assert scan.warn == ["spaces"]


def test_cccd_minority_names():
    for name in ("H'Hen Niê", "Y Bih Êban", "Ksor H’Bia", "Lò Văn Páo-Thào", "Giàng A. Sử"):
        assert accepted(cccd(name=name)).ident["name"] == name


# ---------------------------------------------------------------------------------------------------
# Căn cước (2024), fields by content


def cancuoc(fields):
    return "|".join(fields)


def test_cancuoc_by_content():
    fields = [PID_F, NAME_F, "Nữ", "01012005", ADDR_F, "15072024", CMND, OLD]
    scan = accepted(cancuoc(fields))
    assert scan.doc == "cancuoc"
    assert scan.ident == {
        "cccd": PID_F,
        "cmnd": CMND,
        "name": NAME_F,
        "dob": "2005-01-01",
        "sex": "F",
        "address": ADDR_F,
        "issued": "2024-07-15",
        "cccd_old": OLD,
    }
    assert scan.warn == ["field_order"]


def test_cancuoc_dates_in_either_order():
    fields = [PID_F, NAME_F, "Nữ", "15072024", "01012005", ADDR_F, "", ""]
    scan = accepted(cancuoc(fields))
    assert scan.ident["dob"] == "2005-01-01"
    assert scan.ident["issued"] == "2024-07-15"
    assert "cmnd" not in scan.ident
    assert "cccd_old" not in scan.ident


def test_cancuoc_newborn_card_same_year():
    pid = "001324000007"  # 2000s female, born (20)24
    fields = [pid, "Lê Ngọc Hà", "Nữ", "20112024", "03032024", "Hà Nội"]
    scan = accepted(cancuoc(fields))
    assert scan.ident["dob"] == "2024-03-03"
    assert scan.ident["issued"] == "2024-11-20"


def test_cancuoc_one_date_no_address_is_torn():
    # Every card has a residence: with neither an address nor an issue date the code was cut short.
    rejected(cancuoc([PID, NAME, "Nam", DOB, "", ""]), "torn")


def test_cancuoc_no_address_but_an_issue_date_is_kept():
    scan = accepted(cancuoc([PID, NAME, "Nam", DOB, "", ISSUED]))
    assert "address" not in scan.ident and "no_address" in scan.warn


def test_bhyt_cut_inside_its_card_number_is_torn():
    for cut in ("DN4", "DN4791", "DN479123456789"):
        rejected(cut, "torn")
    rejected("DN", "unknown_format")


def test_cancuoc_repeated_own_id_ignored():
    scan = accepted(cancuoc([PID, NAME, "Nam", DOB, ADDR, ISSUED, PID]))
    assert "cccd_old" not in scan.ident
    assert "extra_fields" in scan.warn


def test_cancuoc_unrecognised_layouts():
    rejected(cancuoc([PID, NAME, DOB, ADDR, ISSUED, "x"]), "unknown_format")  # no sex
    rejected(cancuoc([PID, NAME, "Nam", "Nữ", DOB, ADDR]), "unknown_format")  # two sexes
    rejected(cancuoc([PID, NAME, "Nam", DOB, ADDR, ISSUED, "01012022"]), "unknown_format")  # 3 dates
    rejected(cancuoc([PID, NAME, "Nam", DOB, ADDR, CMND, "123456780"]), "unknown_format")  # 2 CMND
    rejected(cancuoc([PID, NAME, "Nam", DOB, ADDR, OLD, "001195000002"]), "unknown_format")  # 2 old
    rejected(cancuoc([PID, NAME, "Nam", DOB, ADDR, "12345", ISSUED]), "unknown_format")  # odd number
    rejected(cancuoc([PID, "Nguyễn", "Văn An", "Nam", DOB, ADDR, ISSUED]), "unknown_format")  # 3 texts


def test_cancuoc_bad_cancelled_id():
    rejected(cccd() + "|003195000001", "bad_province")


def test_cancuoc_dates_checked():
    rejected(cancuoc([PID, NAME, "Nam", "31021990", ADDR, ISSUED]), "bad_date")
    rejected(cancuoc([PID, NAME, "Nam", DOB, ADDR, "32012021"]), "bad_date")
    rejected(cancuoc([PID, NAME, "Nam", "15031991", ADDR, ISSUED]), "id_mismatch")


# ---------------------------------------------------------------------------------------------------
# VNeID


def test_vneid_needs_the_callers_word():
    scan = accepted(cccd(), source="vneid")
    assert scan.doc == "vneid"
    assert scan.ident == GOOD
    scan = accepted(cancuoc([PID_F, NAME_F, "Nữ", "01012005", ADDR_F, "15072024"]), source="vneid")
    assert scan.doc == "vneid"
    assert scan.warn == ["field_order"]


def test_vneid_rejects_what_is_not_a_personal_id():
    rejected(bhyt(), "not_cccd", source="vneid")
    rejected("hello", "not_cccd", source="vneid")
    rejected("https://vneid.gov.vn/x", "not_cccd", source="vneid")
    rejected("0010900", "torn", source="vneid")


# ---------------------------------------------------------------------------------------------------
# BHYT


def test_bhyt_full():
    scan = accepted(bhyt())
    assert scan.doc == "bhyt"
    assert scan.ident == {
        "bhyt": "DN4790123456789",
        "name": NAME,
        "dob": "1990-03-15",
        "sex": "M",
        "address": ADDR,
        "kcbbd": "79034",
        "bhyt_from": "2025-01-01",
        "bhyt_to": "2025-12-31",
        "extra": ["01/01/2025", "79034ABC123", "-", "4", "01/01/2020", "9a3f"],
    }
    assert scan.warn == []


def test_bhyt_short_number_female_no_end_no_extra():
    scan = accepted(bhyt(card="7901234567", sex="2", name=NAME_F, addr=ADDR_F, end="", rest=()))
    assert scan.ident == {
        "bhyt": "7901234567",
        "name": NAME_F,
        "dob": "1990-03-15",
        "sex": "F",
        "address": ADDR_F,
        "kcbbd": "79034",
        "bhyt_from": "2025-01-01",
    }


def test_bhyt_end_dash_or_absent():
    assert "bhyt_to" not in accepted(bhyt(end="-")).ident
    scan = accepted(bhyt(end=None, rest=()))
    assert "bhyt_to" not in scan.ident
    assert "extra" not in scan.ident
    assert accepted(bhyt(end=None, rest=())[:-2] + "$").ident["kcbbd"] == "79034"


def test_bhyt_year_only():
    scan = accepted(bhyt(dob="1990"))
    assert scan.ident["dob"] == "1990"
    assert scan.warn == ["year_only"]
    rejected(bhyt(dob="2026"), "future_dob")
    assert accepted(bhyt(dob="2025")).ident["dob"] == "2025"


def test_bhyt_lower_case_card_number():
    scan = accepted(bhyt(card="dn4790123456789"))
    assert scan.ident["bhyt"] == "DN4790123456789"
    assert scan.warn == ["case"]


def test_bhyt_expired():
    scan = accepted(bhyt(start="01/01/2024", end="31/12/2024"))
    assert scan.warn == ["expired"]


def test_bhyt_kcbbd_forms():
    for kcb in ("01 - 043", "01-043", "01043"):
        assert accepted(bhyt(kcb=kcb)).ident["kcbbd"] == "01043"


def test_bhyt_mojibake_and_nfd_in_hex_fields():
    scan = accepted(bhyt(name=mojibake(NAME)))
    assert scan.ident["name"] == NAME
    assert scan.warn == ["mojibake"]
    scan = accepted(bhyt(name="Nguye\u0302\u0303n Va\u0306n An"))
    assert scan.ident["name"] == NAME
    assert scan.warn == ["nfd"]


def test_bhyt_upper_case_hex():
    scan = accepted(bhyt().replace(hexu(NAME), hexu(NAME).upper()))
    assert scan.ident["name"] == NAME


def test_bhyt_rejections():
    rejected(bhyt()[:-1], "torn")
    rejected(bhyt()[:-30], "torn")
    rejected("DN4790123456789", "torn")
    rejected(bhyt(card="DN6790123456789"), "bad_card")
    rejected(bhyt(card="DN47901234567"), "bad_card")  # 13 characters, not a BHYT number
    rejected(bhyt(kcb="79 - 03"), "bad_card")
    rejected(bhyt(kcb="ab - 034"), "bad_card")
    rejected("DN4790123456789|" + hexu(NAME) + "|15/03/1990|1|$", "bad_card")
    rejected(bhyt().replace("|4|", "|$|"), "bad_card")
    rejected(bhyt(dob="31/02/1990"), "bad_date")
    rejected(bhyt(dob="15-03-1990"), "bad_date")
    rejected(bhyt(dob="1899"), "bad_date")
    rejected(bhyt(dob="15/03/2030"), "future_dob")
    rejected(bhyt(start="01/13/2025"), "bad_date")
    rejected(bhyt(end="31/12/2024"), "bad_date")  # ends before it starts
    rejected(bhyt(sex="3"), "bad_field")
    rejected(bhyt(sex="Nam"), "bad_field")
    rejected(bhyt(name="Nguyễn 2"), "bad_field")
    rejected(bhyt(name=""), "bad_field")


def test_bhyt_bad_hex():
    good = bhyt()
    name_hex = hexu(NAME)
    rejected(good.replace(name_hex, name_hex[:-1]), "bad_encoding")  # odd length
    rejected(good.replace(name_hex, "zz" + name_hex), "bad_encoding")
    rejected(good.replace(name_hex, "ff" + name_hex), "bad_encoding")  # not UTF-8
    rejected(good.replace(name_hex, hexu("Nguyễn\x00An")), "bad_encoding")  # NUL inside


# ---------------------------------------------------------------------------------------------------
# What scanners send


def test_trailing_crlf():
    for suffix in ("\r\n", "\n", "\r", " ", "\t\r\n"):
        scan = accepted(cccd() + suffix)
        assert scan.ident == GOOD
        assert scan.warn == ["trailing_ws"]
        assert scan.text == cccd()
    assert accepted(bhyt() + "\r\n").warn == ["trailing_ws"]


def test_bom():
    for data in (b"\xef\xbb\xbf" + cccd().encode("utf-8"), "\ufeff" + cccd()):
        scan = accepted(data)
        assert scan.ident == GOOD
        assert scan.warn == ["bom"]
    scan = accepted(b"\xef\xbb\xbf" + cccd().encode("utf-8") + b"\r\n")
    assert scan.warn == ["bom", "trailing_ws"]


def test_framing_controls_stripped():
    for data in (cccd() + "\x00\x00", "\x02" + cccd() + "\x03", cccd() + "\x04"):
        scan = accepted(data)
        assert scan.ident == GOOD
        assert scan.warn == ["control"]


def test_controls_inside_refused():
    for c in ("\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f", "\x1d"):
        rejected(cccd(name="Nguyễn" + c + "Văn An"), "bad_encoding")
    rejected(cccd(pid="0010900" + "\x00" + "12345"), "bad_encoding")


def test_invisible_characters_dropped():
    for c in ("\u200b", "\u200e", "\u200f", "\u202e", "\u2066", "\ufeff", "\u00ad"):
        scan = accepted(cccd(name="Nguyễn Văn" + c + " An"))
        assert scan.ident["name"] == NAME
        assert scan.warn == ["invisible"]
    scan = accepted("\u200f" + cccd() + "\u200e")
    assert scan.warn == ["invisible"]


def test_mojibake_repaired():
    scan = accepted(mojibake(cccd()))
    assert scan.ident == GOOD
    assert scan.warn == ["mojibake"]
    assert scan.text == cccd()
    scan = accepted(mojibake(mojibake(cccd())) + "\r\n")
    assert scan.ident == GOOD
    assert "mojibake" in scan.warn
    # A mojibake'd BOM too.
    scan = accepted(mojibake("\ufeff" + cccd()))
    assert scan.ident == GOOD
    assert "bom" in scan.warn
    # Sent as UTF-8 bytes of the mojibake.
    assert accepted(mojibake(cccd()).encode("utf-8")).ident == GOOD


def test_mojibake_ending_in_a_continuation_byte():
    # "à" is C3 A0 and "í" C3 AD: mojibake ends in a no-break space / soft hyphen, not to be stripped.
    for addr in ("Thôn Hà", "Xã Ia Kí"):
        scan = accepted(mojibake(cccd(addr=addr, issued="")) + "\r\n")
        assert scan.ident["address"] == addr
        assert scan.warn == ["trailing_ws", "mojibake", "no_issue_date"]


def test_no_break_space_around_correct_text():
    scan = accepted("\u00a0" + cccd() + "\u00a0\u00ad")
    assert scan.ident == GOOD
    assert scan.warn == ["trailing_ws", "invisible"]


def test_no_break_space_inside_correct_text():
    scan = accepted(cccd(addr="Thôn Hà\u00a0Nội, Xã Ô\u00a0Môn"))
    assert scan.ident["address"] == "Thôn Hà Nội, Xã Ô Môn"
    assert scan.warn == ["spaces"]


def test_mojibake_that_cannot_be_repaired():
    broken = mojibake(cccd()).replace("\x90", "")  # Đ's second byte lost on the way
    rejected(broken, "bad_encoding")


def test_nfd_composed():
    scan = accepted(cccd(name="Nguye\u0302\u0303n Va\u0306n An", addr=ADDR))
    assert scan.ident["name"] == NAME
    assert scan.warn == ["nfd"]


def test_doubled_reads():
    one = cccd()
    for data in (one + one, one + "\r\n" + one, one + "\n" + one + "\n", one + " " + one, one + "\r" + one):
        scan = accepted(data)
        assert scan.ident == GOOD
        assert "doubled" in scan.warn
        assert scan.text == one
    scan = accepted(one + "\r\n" + one + "\r\n" + one + "\r\n")
    assert scan.warn == ["trailing_ws", "doubled"]
    scan = accepted(bhyt() + bhyt())
    assert scan.doc == "bhyt"
    assert scan.warn == ["doubled"]
    scan = accepted((one + one).encode("utf-8"))
    assert scan.warn == ["doubled"]


def test_different_codes_in_one_read():
    rejected(cccd() + "\r\n" + cccd(pid=PID_F, name=NAME_F, dob="01012005", sex="Nữ"), "multiple")
    rejected(cccd() + "\r\n" + cccd()[:40], "multiple")


def test_clock_not_set():
    class FakeTime:
        @staticmethod
        def localtime():
            return (2000, 1, 1, 0, 0, 0, 5, 1)

    real = qr.time
    qr.time = FakeTime
    try:
        scan = parse(cccd(dob="01012030", pid="001230000001", issued="01012031"))
        assert scan.warn == ["no_clock"]
    finally:
        qr.time = real


def test_now_as_a_time_tuple():
    scan = parse(cccd(), (2025, 6, 1, 12, 0, 0, 6, 152))
    assert scan.ident == GOOD
    rejected(cccd(issued="02062025"), "bad_date", now=(2025, 6, 1, 23, 59, 59, 6, 152))


def test_clock_default():
    scan = parse(cccd())
    assert scan.ident == GOOD
    assert "no_clock" not in scan.warn


# ---------------------------------------------------------------------------------------------------
# Rejections


def test_empty():
    for data in ("", b"", "\r\n", b"\r\n", "\x00", "\ufeff", b"\xef\xbb\xbf", "   ", "\u200b"):
        rejected(data, "empty")


def test_too_long():
    rejected("|" * 10000, "too_long")
    rejected(b"|" * 10000, "too_long")
    rejected("1" * (MAX_LEN + 1), "too_long")
    rejected(cccd() + "|" + "x" * MAX_LEN, "too_long")
    rejected(bytes(MAX_LEN + 1), "too_long")
    # The limit is in bytes of UTF-8, for str too: 400 letters of 3 bytes each are too long.
    rejected("ễ" * 400, "too_long")
    rejected("😀" * 300, "too_long")
    rejected(cccd(addr="Số 1 Đường Ỷ Lan, " + "Ỷ" * 330), "too_long")


def test_torn():
    full = cccd()
    rejected(full[:5], "torn")
    rejected(PID, "torn")
    rejected(PID + "|" + CMND + "|" + NAME, "torn")
    rejected(full[: full.index("|Nam|") + 3], "torn")  # cut inside the sex field
    rejected(full[:-3], "torn")  # cut inside the issue date
    rejected("|".join([PID, CMND, NAME, DOB, "Nam", ""]), "torn")  # cut right after the sex
    data = full.encode("utf-8")
    cut = data[: data.index("ễ".encode("utf-8")) + 2]  # cut inside a character
    rejected(cut, "torn")
    rejected(cut + b"\r\n", "torn")


def test_every_prefix_is_rejected_or_flagged():
    full = cccd()
    for n in range(1, len(full)):
        try:
            scan = parse(full[:n], now=NOW)
        except QRError as err:
            check_error(err)
            continue
        assert "no_issue_date" in scan.warn, n


def test_bad_encoding():
    for data in (
        b"\xff\xfe0\x000\x001\x00",  # UTF-16 with its byte order mark
        b"\xc0\x80" + cccd().encode(),
        cccd().encode().replace(b"\xe1\xbb\x85", b"\xed\xa0\x80"),  # a surrogate
        cccd().encode("utf-8").replace(b"\xe1\xbb\x85", b"\xe1\xbb"),  # a character cut inside
        "Nguy\u1ec5".encode("utf-8")[:-1] + b"|x",
    ):
        rejected(data, "bad_encoding")
    rejected(cccd(name="Nguy\ufffdn Văn An"), "bad_encoding")


def test_unknown_format():
    for data in ("hello", "a|b|c|d|e|f|g", "|" * 20, '{"id": 1}', "Nguyễn Văn An", "😀😀😀"):
        rejected(data, "unknown_format")
    rejected("|" * 31 + PID, "unknown_format")
    rejected(PID + "|" * 40, "unknown_format")
    # Full-width digits look like digits to str.isdigit, not to the parser.
    wide = "".join([chr(0xFF10 + int(d)) for d in PID])
    rejected(cccd(pid=wide), "unknown_format")


def test_not_a_card():
    for data in ("https://example.vn/a?b=c", "HTTP://EXAMPLE.VN", "00020101021238570010A000000727"):
        rejected(data, "not_cccd")


def test_bad_id():
    rejected(cccd(pid="00109001234"), "bad_id")  # 11 digits
    rejected(cccd(pid="0010900123456"), "bad_id")  # 13 digits
    rejected(cccd(cmnd="01234567"), "bad_id")
    rejected(cccd(cmnd="0123456789"), "bad_id")
    rejected(cccd(cmnd=PID_F), "bad_id")


def test_bad_province():
    for code in ("000", "003", "097", "099", "100", "999"):
        rejected(cccd(pid=code + PID[3:]), "bad_province")


def test_id_mismatch():
    rejected(cccd(dob="15031991"), "id_mismatch")  # year digits
    rejected(cccd(dob="15031890"), "bad_date")  # before 1900
    rejected(cccd(pid="001290012345"), "id_mismatch")  # century: 2000s for a 1990 birth
    rejected(cccd(sex="Nữ"), "id_mismatch")  # sex digit says male
    rejected(cccd(pid=PID_F, name=NAME_F, dob="01012005", sex="Nam"), "id_mismatch")


def test_bad_dates():
    for dob in ("31021990", "29021990", "00011990", "01001990", "01131990", "32011990"):
        rejected(cccd(dob=dob), "bad_date")
    rejected(cccd(pid="001100000001", dob="29021900", issued="01012020"), "bad_date")  # 1900: no leap day
    rejected(cccd(dob="1503199"), "bad_date")  # a number field of the wrong length, not the last
    rejected(cccd(issued="01011989"), "bad_date")  # issued before birth
    rejected(cccd(issued="02062025"), "bad_date")  # issued in the future
    rejected(cccd(issued="31042021"), "bad_date")
    assert accepted(cccd(issued="01062025")).ident["issued"] == "2025-06-01"


def test_future_dob():
    rejected(cccd(pid="001225000001", dob="02062025", issued=""), "future_dob")
    rejected(cccd(pid="001230000001", dob="01012030", issued="01012031"), "future_dob")
    assert accepted(cccd(pid="001225000001", dob="01062025", issued="")).ident["dob"] == "2025-06-01"


def test_bad_fields():
    rejected(cccd(name="Nguyễn Văn 2"), "bad_field")
    rejected(cccd(name="Nguyễn 😀 An"), "bad_field")
    rejected(cccd(name="Nguyễn <b>An</b>"), "bad_field")
    rejected(cccd(name="-'."), "bad_field")
    rejected(cccd(name="A" * 101), "bad_field")
    rejected(cccd(addr="Số 1 😀 Hà Nội"), "bad_field")
    rejected(cccd(addr="Số 1 " + "B" * 300), "bad_field")  # longer than the Read allows
    rejected(cccd(addr="\u0645\u0631\u062d\u0628\u0627"), "bad_field")


# ---------------------------------------------------------------------------------------------------
# Hostile input


def test_separators_injected():
    rejected(cccd(name="Nguyễn|Văn An"), "unknown_format")
    rejected(cccd(addr="Số 1|Hà Nội"), "unknown_format")
    # A 12-digit number slipped in reads as a Căn cước's cancelled ID: flagged, not trusted silently.
    scan = accepted(cccd(name="Nguyễn Văn An|" + OLD))
    assert scan.doc == "cancuoc"
    assert scan.warn == ["field_order"]
    rejected(cccd(name="Nguyễn Văn An$"), "bad_field")
    rejected(bhyt().replace("|79 - 034|", "|79 - 034|79 - 035|"), "bad_date")


def test_many_pipes_and_huge_fields():
    rejected("|" * 1000, "unknown_format")
    rejected(PID + "|" * 1000, "unknown_format")
    rejected(cccd(name="A" * 850), "bad_field")
    rejected(cccd(addr="B" * 2000), "too_long")
    rejected("9" * 1000, "unknown_format")
    rejected("9" * 1000 + "|x", "bad_id")


def test_emoji_and_rtl():
    rejected("😀|" * 100, "unknown_format")
    rejected(cccd(name="\u202eNguyễn Văn An\u202c") + "😀", "unknown_format")
    scan = accepted(cccd(name="\u202bNguyễn Văn An\u202c"))
    assert scan.ident["name"] == NAME
    assert scan.warn == ["invisible"]


def test_nul_flood():
    rejected("\x00" * 500, "empty")
    rejected(cccd() + "\x00" * 2000, "too_long")
    rejected(cccd().replace("|", "\x00"), "bad_encoding")


def test_every_reason_is_reachable():
    samples = {
        "empty": "",
        "too_long": "x" * (MAX_LEN + 1),
        "torn": PID,
        "multiple": cccd() + "\n" + bhyt(),
        "unknown_format": "hello",
        "not_cccd": "https://example.vn",
        "bad_encoding": b"\xff",
        "bad_id": cccd(pid="12345"),
        "bad_province": cccd(pid="000" + PID[3:]),
        "id_mismatch": cccd(dob="15031991"),
        "bad_date": cccd(dob="31021990"),
        "future_dob": cccd(pid="001230000001", dob="01012030", issued=""),
        "bad_field": cccd(name="A1"),
        "bad_card": bhyt(kcb="x"),
    }
    assert sorted(samples) == sorted(REASONS)
    for reason in REASONS:
        rejected(samples[reason], reason)


def test_every_warning_is_reachable():
    seen = set()
    for data in (
        b"\xef\xbb\xbf" + cccd().encode(),
        cccd() + "\r\n",
        cccd() + "\x00",
        cccd(name=NAME + "\u200b"),
        mojibake(cccd()),
        cccd(name="Nguye\u0302\u0303n Va\u0306n An"),
        cccd() + cccd(),
        cccd(name="Nguyễn  Văn An"),
        cccd(issued=""),
        cccd(addr=""),
        cancuoc([PID, NAME, "Nam", DOB, ADDR, ISSUED, CMND]),
        cccd() + "|x",
        bhyt(dob="1990"),
        bhyt(card="dn4790123456789"),
        bhyt(end="31/12/2024", start="01/01/2024"),
    ):
        seen.update(accepted(data).warn)
    seen.add("no_clock")  # test_clock_not_set
    assert sorted(seen) == sorted(WARNINGS)
