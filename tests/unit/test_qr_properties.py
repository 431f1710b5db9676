"""Property tests of cccd.qr and cccd.text (CPython only: hypothesis, unicodedata, codecs).

Every identity is synthetic: names drawn from common Vietnamese name parts, personal IDs that only
follow the structure rules.
"""

import datetime
import importlib.util
import itertools
import unicodedata
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cccd import qr, text
from cccd._vntable import VN_LOWER, VN_UPPER

ROOT = Path(__file__).resolve().parents[2]
NOW = (2025, 6, 1)
TODAY = datetime.date(*NOW)
PROVINCES = [c for c in (f"{i:03d}" for i in range(1000)) if qr.province_name(c)]
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ"]
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Ngọc", "Minh", "Thanh", "Xuân", "Quốc", "Bảo"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Hà", "Hải", "Hương", "Khánh", "Lộc", "Quỳnh", "Ánh", "Ổn", "Ước", "Ý"]
STREETS = ["Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Hùng Vương", "Điện Biên Phủ", "Ỷ Lan"]
WARDS = ["Phường Bến Nghé", "Xã Hưng Mỹ", "Phường Láng Thượng", "Thị trấn Ea Kar", "Xã Ia Kí"]

LETTERS = VN_LOWER + VN_UPPER


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_vn_table", ROOT / "tools" / "gen_vn_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nfc(s):
    return unicodedata.normalize("NFC", s)


def equivalent_forms(letter):
    """Every spelling of ``letter`` as a base plus marks, in any order and any partial composition
    (not all canonically equivalent to it: two marks of class 230 swapped are another text)."""
    decomposed = unicodedata.normalize("NFD", letter)
    base, marks = decomposed[0], decomposed[1:]
    forms = set()
    for order in itertools.permutations(marks):
        for k in range(len(order) + 1):
            forms.add(nfc(base + "".join(order[:k])) + "".join(order[k:]))
    return sorted(forms)


def cp1252_mojibake(s):
    """UTF-8 bytes shown in Windows-1252, the five undefined bytes as their Latin-1 characters."""
    out = []
    for b in s.encode("utf-8"):
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# NFC fallback and the generated table


def test_generated_table_is_current():
    gen = load_generator()
    assert gen.render() == (ROOT / "cccd" / "_vntable.py").read_text(encoding="utf-8")


def test_the_alphabet_has_134_letters():
    assert len(LETTERS) == 134
    assert len(set(LETTERS)) == 134
    assert "đ" in LETTERS
    assert "Đ" in LETTERS


def test_nfc_fallback_agrees_with_unicodedata_for_every_letter():
    checked = 0
    for letter in LETTERS:
        full = unicodedata.normalize("NFD", letter)
        assert text.nfc_fallback(full) == nfc(full) == letter
        for form in equivalent_forms(letter):
            for context in (form, "x" + form + "y", form + form, form + " " + letter):
                assert text.nfc_fallback(context) == nfc(context), ascii(context)
                checked += 1
    assert checked > 134 * 4


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LETTERS + "bcdghklmnpqrstvx "), max_size=30), st.randoms())
def test_nfc_fallback_agrees_on_words(letters, rnd):
    word = "".join(letters)
    spelled = "".join(rnd.choice(equivalent_forms(c)) if c in LETTERS else c for c in letters)
    assert text.nfc_fallback(spelled) == nfc(spelled)
    assert text.nfc_fallback(unicodedata.normalize("NFD", word)) == word


def test_cp1252_table_matches_the_codec():
    for i, c in enumerate(text.CP1252_HIGH):
        try:
            want = bytes([0x80 + i]).decode("cp1252")
        except UnicodeDecodeError:
            want = chr(0x80 + i)
        assert c == want


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_utf8_status_agrees_with_cpython(data):
    try:
        data.decode("utf-8")
        ok = True
    except UnicodeDecodeError:
        ok = False
    assert (text.utf8_status(data) == 0) == ok
    assert text.decode_utf8(data) == (data.decode("utf-8") if ok else None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=LETTERS + "abcdeghiklmnopqrstuvxy ,.-0123456789", min_size=1, max_size=60))
def test_mojibake_repairs_back(s):
    assume(any(ord(c) > 0x7F for c in s))
    assert text.repair_mojibake(cp1252_mojibake(s)) == (s, True)
    assert text.repair_mojibake(s) == (s, False)


# ---------------------------------------------------------------------------------------------------
# parse() never fails in any other way


def check_error(err):
    assert err.reason in qr.REASONS
    lines = err.text.split("\n")
    assert 1 <= len(lines) <= 2
    assert all(0 < len(line) <= 16 for line in lines)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=1200), st.text(max_size=1200)), st.sampled_from([None, "vneid"]))
def test_parse_only_raises_qrerror(data, source):
    try:
        scan = qr.parse(data, now=NOW, source=source)
    except qr.QRError as err:
        check_error(err)
        return
    assert scan.doc in qr.DOCS
    assert all(w in qr.WARNINGS for w in scan.warn)


ALPHABET = "0123456789|$/-  \r\n\x00Nam Nữ" + LETTERS[:20] + "abcdef\ufeff\u200bÃ»…"


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=300))
def test_parse_only_raises_qrerror_near_the_formats(data):
    try:
        qr.parse(data, now=NOW)
    except qr.QRError as err:
        check_error(err)


def test_lone_surrogates_are_bad_encoding():
    for data in ("\ud800", "001090012345|\udc00|x"):
        try:
            qr.parse(data, now=NOW)
        except qr.QRError as err:
            assert err.reason == "bad_encoding"
        else:
            raise AssertionError("accepted")


# ---------------------------------------------------------------------------------------------------
# Round trips of synthetic identities


@st.composite
def identities(draw):
    sex = draw(st.sampled_from("MF"))
    dob = draw(st.dates(min_value=datetime.date(1900, 1, 1), max_value=TODAY))
    code = (dob.year // 100 - 19) * 2 + (1 if sex == "F" else 0)
    pid = draw(st.sampled_from(PROVINCES)) + str(code) + f"{dob.year % 100:02d}"
    pid += draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    middle = draw(st.lists(st.sampled_from(MIDDLE), max_size=2))
    name = " ".join([draw(st.sampled_from(FAMILY)), *middle, draw(st.sampled_from(GIVEN))])
    number = draw(st.integers(1, 999))
    street = draw(st.sampled_from(STREETS))
    ward = draw(st.sampled_from(WARDS))
    address = f"Số {number} {street}, {ward}, {qr.province_name(pid[:3])}"
    issued = draw(st.one_of(st.none(), st.dates(min_value=dob, max_value=TODAY)))
    cmnd = draw(st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=9, max_size=9)))
    ident = {"cccd": pid, "name": name, "dob": dob.isoformat(), "sex": sex, "address": address}
    if cmnd:
        ident["cmnd"] = cmnd
    if issued:
        ident["issued"] = issued.isoformat()
    return ident


def ddmmyyyy(iso):
    return iso[8:10] + iso[5:7] + iso[:4]


def render_cccd(ident):
    fields = [
        ident["cccd"],
        ident.get("cmnd", ""),
        ident["name"],
        ddmmyyyy(ident["dob"]),
        "Nữ" if ident["sex"] == "F" else "Nam",
        ident["address"],
    ]
    if "issued" in ident:
        fields.append(ddmmyyyy(ident["issued"]))
    return "|".join(fields)


@settings(max_examples=300, deadline=None)
@given(identities())
def test_cccd_round_trip(ident):
    qr_text = render_cccd(ident)
    scan = qr.parse(qr_text, now=NOW)
    assert scan.doc == "cccd"
    assert scan.ident == ident
    assert scan.text == qr_text
    assert scan.warn == ([] if "issued" in ident else ["no_issue_date"])
    assert qr.parse(qr_text.encode("utf-8"), now=NOW).ident == ident
    assert qr.parse(qr_text, now=NOW, source="vneid").doc == "vneid"


@settings(max_examples=300, deadline=None)
@given(identities(), st.sampled_from(["", "\r\n", "\n"]), st.booleans())
def test_scanner_artefacts_round_trip(ident, separator, bom):
    qr_text = render_cccd(ident)
    data = ("\ufeff" if bom else "") + qr_text + separator + qr_text + "\r\n"
    scan = qr.parse(data, now=NOW)
    assert scan.ident == ident
    assert "doubled" in scan.warn
    assert ("bom" in scan.warn) == bom


@settings(max_examples=300, deadline=None)
@given(identities())
def test_mojibake_round_trip(ident):
    qr_text = render_cccd(ident)
    scan = qr.parse(cp1252_mojibake(qr_text), now=NOW)
    assert scan.ident == ident
    assert scan.warn[0] == "mojibake"
    scan = qr.parse(unicodedata.normalize("NFD", qr_text), now=NOW)
    assert scan.ident == ident
    assert scan.warn[0] == "nfd"


@settings(max_examples=300, deadline=None)
@given(identities(), st.randoms(), st.booleans())
def test_cancuoc_round_trip(ident, rnd, with_old):
    assume("issued" in ident)
    ident = dict(ident)
    fields = [
        ident["name"],
        "Nữ" if ident["sex"] == "F" else "Nam",
        ddmmyyyy(ident["dob"]),
        ident["address"],
        ddmmyyyy(ident["issued"]),
        ident.get("cmnd", ""),
    ]
    if with_old:
        old = "001195000001" if ident["cccd"] != "001195000001" else "001195000002"
        ident["cccd_old"] = old
        fields.append(old)
    rnd.shuffle(fields)
    # A sex word fifth is the 2021 layout, read by position (test_cccd_round_trip).
    assume(fields[3] not in ("Nam", "Nữ"))
    qr_text = "|".join([ident["cccd"], *fields])
    scan = qr.parse(qr_text, now=NOW)
    assert scan.ident == ident
    assert scan.doc == "cancuoc"
    assert scan.warn == ["field_order"]


@settings(max_examples=200, deadline=None)
@given(identities())
def test_prefixes_are_rejected_or_flagged(ident):
    qr_text = render_cccd(ident)
    for n in range(1, len(qr_text)):
        try:
            scan = qr.parse(qr_text[:n], now=NOW)
        except qr.QRError as err:
            check_error(err)
            continue
        assert "no_issue_date" in scan.warn


def render_bhyt(ident, card, kcb, start, end):
    fields = [
        card,
        ident["name"].encode("utf-8").hex(),
        ident["dob"][8:10] + "/" + ident["dob"][5:7] + "/" + ident["dob"][:4],
        "2" if ident["sex"] == "F" else "1",
        ident["address"].encode("utf-8").hex(),
        kcb[:2] + " - " + kcb[2:],
        start.strftime("%d/%m/%Y"),
        end.strftime("%d/%m/%Y") if end else "",
    ]
    return "|".join(fields) + "|$"


@settings(max_examples=300, deadline=None)
@given(
    identities(),
    st.from_regex(r"\A(?:[A-Z]{2}[1-5][0-9]{12}|[0-9]{10})\Z"),
    st.from_regex(r"\A[0-9]{5}\Z"),
    st.dates(min_value=datetime.date(2015, 1, 1), max_value=datetime.date(2026, 12, 31)),
    st.one_of(st.none(), st.integers(0, 800)),
)
def test_bhyt_round_trip(ident, card, kcb, start, days):
    end = start + datetime.timedelta(days=days) if days is not None else None
    scan = qr.parse(render_bhyt(ident, card, kcb, start, end), now=NOW)
    assert scan.doc == "bhyt"
    want = {
        "bhyt": card,
        "name": ident["name"],
        "dob": ident["dob"],
        "sex": ident["sex"],
        "address": ident["address"],
        "kcbbd": kcb,
        "bhyt_from": start.isoformat(),
    }
    if end:
        want["bhyt_to"] = end.isoformat()
    assert scan.ident == want
    assert scan.warn == (["expired"] if end and end < TODAY else [])
