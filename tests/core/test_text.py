"""cccd.text: NFC without unicodedata, white space, case, strict UTF-8, mojibake repair.

Runs under CPython (pytest) and MicroPython alike; see conftest.py.
"""

from cccd import text
from cccd.text import (
    collapse,
    decode_utf8,
    fold,
    is_letter,
    is_space,
    looks_mojibake,
    lower_vn,
    nfc,
    nfc_fallback,
    repair_mojibake,
    strip_any,
    strip_ws,
    upper_vn,
    utf8_status,
)

GRAVE, ACUTE, CIRC, TILDE, BREVE, HOOK, HORN, DOT = (
    "\u0300",
    "\u0301",
    "\u0302",
    "\u0303",
    "\u0306",
    "\u0309",
    "\u031b",
    "\u0323",
)
TONES = ("", GRAVE, ACUTE, HOOK, TILDE, DOT)
# The 12 vowels: (letter, base + vowel mark), and each one's six tone forms, written out by hand.
VOWELS = (
    ("a", "a", "aàáảãạ"),
    ("ă", "a" + BREVE, "ăằắẳẵặ"),
    ("â", "a" + CIRC, "âầấẩẫậ"),
    ("e", "e", "eèéẻẽẹ"),
    ("ê", "e" + CIRC, "êềếểễệ"),
    ("i", "i", "iìíỉĩị"),
    ("o", "o", "oòóỏõọ"),
    ("ô", "o" + CIRC, "ôồốổỗộ"),
    ("ơ", "o" + HORN, "ơờớởỡợ"),
    ("u", "u", "uùúủũụ"),
    ("ư", "u" + HORN, "ưừứửữự"),
    ("y", "y", "yỳýỷỹỵ"),
)
LOWER = "".join([row[2][1:] if row[0] == row[1] else row[2] for row in VOWELS]) + "đ"
UPPER = "ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴĐ"  # same order as LOWER


def _cases():
    """(input, expected NFC) for every tone of every vowel in every state of composition, and with
    the marks in every order that NFC puts back (dot below and horn sort before the other marks)."""
    plain = {row[0]: row[2] for row in VOWELS if row[0] == row[1]}
    out = []
    for vowel, decomposed, forms in VOWELS:
        base = decomposed[0]
        marks = decomposed[1:]
        for i in range(6):
            tone = TONES[i]
            want = forms[i]
            out.append((decomposed + tone, want))
            out.append((vowel + tone, want))
            if marks and tone and (tone == DOT or marks == HORN):
                out.append((base + tone + marks, want))  # tone first: NFC reorders
                out.append((plain[base][i] + marks, want))  # toned base + vowel mark
    return out


def test_counts_of_the_alphabet():
    assert len(LOWER) == 67
    assert len(UPPER) == 67
    assert upper_vn(LOWER) == UPPER
    assert lower_vn(UPPER) == LOWER


def test_nfc_fallback_composes_every_vietnamese_letter():
    for source, want in _cases():
        assert nfc_fallback(source) == want, source
        assert nfc(source) == want, source
        assert nfc_fallback(upper_vn(source)) == upper_vn(want)
        assert nfc_fallback("x" + source + " " + source + "y") == "x" + want + " " + want + "y"


def test_nfc_fallback_partial_forms():
    assert nfc_fallback("ê" + ACUTE) == "ế"
    assert nfc_fallback("e" + CIRC + ACUTE) == "ế"
    assert nfc_fallback("ư" + GRAVE) == "ừ"
    assert nfc_fallback("u" + HORN + GRAVE) == "ừ"
    assert nfc_fallback("o" + DOT + CIRC) == "ộ"
    assert nfc_fallback("o" + CIRC + DOT) == "ộ"
    assert nfc_fallback("ô" + DOT) == "ộ"
    assert nfc_fallback("ọ" + CIRC) == "ộ"
    assert nfc_fallback("a" + BREVE + DOT) == "ặ"
    assert nfc_fallback("o" + DOT + HORN) == "ợ"  # horn (216) goes before dot below (220)
    assert nfc_fallback("ơ" + DOT) == "ợ"
    assert nfc_fallback("ế" + DOT) == "ệ" + ACUTE  # as NFC: the dot joins first, the acute stays
    assert nfc_fallback("E" + CIRC + ACUTE) == "Ế"
    assert nfc_fallback("Nguye" + CIRC + TILDE + "n") == "Nguyễn"


def test_nfc_fallback_same_class_order_is_kept():
    # Both marks have class 230: NFC composes the first and leaves the second.
    assert nfc_fallback("e" + ACUTE + CIRC) == "é" + CIRC


def test_nfc_fallback_tone_mark_aliases():
    assert nfc_fallback("a\u0341") == "á"
    assert nfc_fallback("e\u0302\u0340") == "ề"


def test_nfc_fallback_leaves_other_text_alone():
    # Outside the Vietnamese alphabet nothing is composed (NFC would make "n" + tilde into "ñ").
    for s in ("", "abc", "Nguyễn Văn An", "n" + TILDE, TILDE + "a", "😀" + ACUTE, "đ" + ACUTE):
        assert nfc_fallback(s) == s, s


def test_nfc_fallback_orders_marks_without_a_base():
    assert nfc_fallback(ACUTE + DOT) == DOT + ACUTE


def test_collapse():
    assert collapse("  Nguyễn \t Văn\u00a0\u3000An \r\n") == "Nguyễn Văn An"
    assert collapse("") == ""
    assert collapse(" \t\r\n") == ""
    assert collapse("a") == "a"


def test_strip():
    # MicroPython's str.strip(chars) can cut a multi-byte character: these must not.
    assert strip_ws("\u00a0 Nguyễn\u3000\r\n") == "Nguyễn"
    assert strip_ws("ễ\u00a0") == "ễ"
    assert strip_ws("\u00a0á\u00bb") == "á\u00bb"
    assert strip_ws("") == ""
    assert strip_ws(" \u00a0 ") == ""
    assert strip_ws("a b") == "a b"
    assert strip_any("\u200bxế\u200b", "\u200b") == "xế"
    assert strip_any("ếxế", "ế") == "x"


def test_is_space():
    for c in " \t\r\n\u00a0\u2003\u3000":
        assert is_space(c)
    for c in "a\x00\u200bđ":
        assert not is_space(c)


def test_upper_and_fold():
    assert upper_vn("nữ") == "NỮ"
    assert upper_vn("Đặng Thị Ánh") == "ĐẶNG THỊ ÁNH"
    assert lower_vn("ĐẶNG THỊ ÁNH") == "đặng thị ánh"
    assert upper_vn("😀x") == "😀X"
    assert fold(" Nữ ") == fold("NỮ") == fold("nữ") == fold("nu\u031b\u0303")
    assert fold("Nam") == fold("NAM") == fold("nam")
    assert fold("Nữ") != fold("Nu")


def test_is_letter():
    for c in "aZđĐếỰñ":
        assert is_letter(c), c
    for c in "1 -'×÷😀\u0301":
        assert not is_letter(c), c


def test_utf8_status():
    assert utf8_status(b"") == 0
    assert utf8_status("Nguyễn 😀".encode("utf-8")) == 0
    assert utf8_status(b"Nguy\xe1\xbb") == 1  # cut inside a character
    assert utf8_status(b"\xf0\x9f\x98") == 1
    assert utf8_status(b"\xc3") == 1
    for bad in (
        b"\x80",  # lone continuation
        b"\xc0\x80",  # overlong NUL
        b"\xc1\xbf",  # overlong
        b"\xe0\x80\x80",  # overlong
        b"\xed\xa0\x80",  # surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xf5\x80\x80\x80",
        b"\xff",
        b"\xe1\xbb\x41",  # bad continuation
        b"\xe1\xbb\r\n",
    ):
        assert utf8_status(bad) == 2, bad


def test_decode_utf8():
    assert decode_utf8("Hồ Chí Minh".encode("utf-8")) == "Hồ Chí Minh"
    assert decode_utf8(b"\xed\xa0\x80") is None
    assert decode_utf8(b"\xe1") is None


def mojibake(s):
    """What a keyboard wedge / Windows-1252 display makes of ``s``'s UTF-8 bytes."""
    out = []
    for b in s.encode("utf-8"):
        out.append(text.CP1252_HIGH[b - 0x80] if 0x80 <= b <= 0x9F else chr(b))
    return "".join(out)


def test_cp1252_table():
    assert len(text.CP1252_HIGH) == 32
    assert len([c for c in text.CP1252_HIGH if ord(c) > 0xFF]) == 27
    assert text.byte_of("\u20ac") == 0x80
    assert text.byte_of("\u2026") == 0x85
    assert text.byte_of("\u0178") == 0x9F
    assert text.byte_of("é") == 0xE9
    assert text.byte_of("ế") == -1


def test_repair_mojibake_examples():
    assert repair_mojibake("Nguyá»…n VÄƒn A") == ("Nguyễn Văn A", True)
    assert repair_mojibake("NÆ°á»›c") == ("Nước", True)
    assert repair_mojibake("Ä\x90áº·ng Thá»‹ Ã\x81nh") == ("Đặng Thị Ánh", True)
    # The same with the two bytes Windows-1252 leaves undefined lost: not repairable.
    assert repair_mojibake("Äáº·ng Thá»‹ Ãnh")[1] is False


def test_repair_mojibake_round_trip():
    for s in (
        "Nguyễn Văn An",
        "Trần Thị Bích Ngọc",
        "Đặng Hữu Phước",
        "Số 7 ngõ 12 Phố Huế, Phường Phố Huế, Quận Hai Bà Trưng, Hà Nội",
        "Ánh Ổn Ờ Ở Ừ Ứ",
        "079090001234|123456789|Lê Ánh Dương|01011990|Nam|Ấp Mỹ Hòa, Xã Hưng Mỹ|10082021",
    ):
        assert looks_mojibake(mojibake(s))
        assert repair_mojibake(mojibake(s)) == (s, True)
        assert repair_mojibake(mojibake(mojibake(s))) == (s, True)


def test_repair_mojibake_no_break_space_as_continuation():
    # "à" is C3 A0: its mojibake ends in a no-break space.
    assert looks_mojibake("Ã\u00a0")
    assert repair_mojibake("HÃ\u00a0 Ná»™i") == ("Hà Nội", True)


def test_repair_mojibake_never_touches_correct_text():
    for s in (
        "",
        "abc",
        "Nguyễn Văn An",
        "Võ Hà",
        "Hà Nội",
        "ÂU Ê Ô",
        "Ô\u00a0Môn",
        "Cần Thơ…",
        "Đà Nẵng – Việt Nam",
        "ÉÈ",
        "Trần Thị Bình",
    ):
        assert repair_mojibake(s) == (s, False), s


def test_repair_mojibake_refuses_what_it_cannot_repair():
    broken = mojibake("Nguyễn Văn An")[:-9] + "ế"  # a character without a byte
    assert looks_mojibake(broken)
    assert repair_mojibake(broken) == (broken, False)
    assert repair_mojibake("Ã") == ("Ã", False)
    # Decodes, but into a C1 control: not a repair.
    assert repair_mojibake("Â\u0085") == ("Â\u0085", False)
