"""The LDS parsers and passive authentication, on the virtual chip's files and on hostile input:
random, torn, oversized and deeply nested data must give ``ChipDataError`` (or a failed passive
authentication), never another exception."""

import contextlib
import datetime
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.emrtd import lds, sod, tlv
from agent.emrtd.errors import ChipDataError
from sim import citizens
from sim.chip import TestPki, chip_files, master_list
from sim.chip import _der as der

PKI = TestPki.generate()
PEOPLE = [c for c in citizens.population(30, seed=7, today=datetime.date(2026, 11, 1)) if c.cmnd][:3]
FILES = [chip_files(c, PKI) for c in PEOPLE]
COM, DG1, DG13, SOD = 0x011E, 0x0101, 0x010D, 0x011D


def _dg13(*entries: bytes, oid: str = lds.DG13_OID) -> bytes:
    return der.tlv(0x6D, der.seq(der.integer(1), der.oid(oid), der.tlv(0x31, *entries)))


def _entry(n: int, *values: bytes) -> bytes:
    return der.seq(der.integer(n), *values)


@pytest.mark.parametrize("index", range(len(PEOPLE)))
def test_files_of_the_virtual_chip_parse(index: int) -> None:
    person, files = PEOPLE[index], FILES[index].files
    assert lds.parse_com(files[COM]).groups == (1, 13, 14, 15)
    mrz = lds.parse_dg1(files[DG1])
    assert (mrz.document_code, mrz.issuer, mrz.nationality) == ("ID", "VNM", "VNM")
    assert (mrz.document_number, mrz.personal_id, mrz.warn) == (person.cccd[3:], person.cccd, ())
    ident = lds.parse_dg13(files[DG13])
    assert (ident.personal_id, ident.name, ident.sex) == (person.cccd, person.name, person.sex)
    assert (ident.birth, ident.issued, ident.old_id) == (
        person.dob.isoformat(),
        person.issued.isoformat(),
        person.cmnd,
    )
    assert ident.warn == () and ident.father and ident.mother and ident.spouse is None
    assert person.name not in repr(ident) and person.cccd not in repr(mrz)


def test_dg13_is_parsed_by_number_not_position() -> None:
    name = unicodedata.normalize("NFD", "Trần Thị Mơ")
    data = _dg13(
        _entry(16, der.printable("opaque")),
        _entry(12, der.utf8("Không thời hạn")),
        _entry(2, der.utf8(name)),
        _entry(4, der.utf8("Nữ")),
        _entry(1, der.printable("001234567890")),
        _entry(1, der.printable("999999999999")),
        _entry(3, der.printable("1950")),
        _entry(11, der.printable("31/02/2021")),
        _entry(13, der.seq(der.utf8("Cha"))),
    )
    ident = lds.parse_dg13(data)
    assert ident.personal_id == "001234567890" and ident.name == unicodedata.normalize("NFC", name)
    assert (ident.sex, ident.birth, ident.expires, ident.issued) == ("F", "1950", None, "31/02/2021")
    assert (ident.father, ident.mother, ident.spouse, ident.residence) == ("Cha", None, None, None)
    assert ident.other == {16: "opaque"}
    assert set(ident.warn) == {"dg13_repeated_1", "dg13_date_11"}


def test_dg13_doubts_are_warned() -> None:
    data = _dg13(_entry(2, der.tlv(0x0C, b"\xff\xfe")), _entry(4, der.utf8("?")), oid="1.2.3")
    assert set(lds.parse_dg13(data).warn) == {"dg13_oid", "dg13_bad_text", "dg13_sex"}


def test_dg1_check_digits_are_warned() -> None:
    value = tlv.decode_one(FILES[0].files[DG1]).child(0x5F1F).value
    broken = value[:14] + (b"0" if value[14:15] != b"0" else b"1") + value[15:]
    mrz = lds.parse_dg1(der.tlv(0x61, der.tlv(0x5F1F, broken)))
    assert set(mrz.warn) == {"mrz_check_document_number", "mrz_check_composite"}
    with pytest.raises(ChipDataError):
        lds.parse_dg1(der.tlv(0x61, der.tlv(0x5F1F, value[:60])))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x60",
        b"\x60\x80\x00\x00",  # indefinite length
        b"\x60\x85\x01\x00\x00\x00\x00",  # 5-byte length
        b"\x60\x84\x7f\xff\xff\xff",  # 2 GiB promised
        b"\x5f\xff\xff\xff\x7f\x00",  # 5-byte tag
        b"\x60\x02\x5f",
        b"\x60\x00\x00",  # trailing bytes
    ],
)
def test_tlv_refuses_malformed_objects(data: bytes) -> None:
    with pytest.raises(ChipDataError):
        tlv.decode_one(data).children()


def test_tlv_refuses_deep_nesting() -> None:
    bomb = b""
    for _ in range(40):
        bomb = der.seq(bomb)
    obj = tlv.decode_one(bomb)
    with pytest.raises(ChipDataError, match="deep"):
        while True:
            obj = obj.children()[0]


def test_torn_files_are_refused() -> None:
    files = FILES[0].files
    for fid, parse in (
        (COM, lds.parse_com),
        (DG1, lds.parse_dg1),
        (DG13, lds.parse_dg13),
        (SOD, sod.parse_sod),
    ):
        data = files[fid]
        for cut in range(0, len(data), 7):
            with pytest.raises(ChipDataError):
                parse(data[:cut])


_PARSERS = [lds.parse_com, lds.parse_dg1, lds.parse_dg13, sod.parse_sod]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(_PARSERS))
def test_random_bytes_only_raise_chip_data_error(data: bytes, parse: object) -> None:
    with contextlib.suppress(ChipDataError):
        parse(data)  # type: ignore[operator]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from([DG13, SOD, DG1]))
def test_flipped_bytes_never_crash(position: int, value: int, fid: int) -> None:
    data = bytearray(FILES[0].files[fid])
    data[position % len(data)] = value
    with contextlib.suppress(ChipDataError):
        {DG13: lds.parse_dg13, DG1: lds.parse_dg1, SOD: sod.parse_sod}[fid](bytes(data))
    if fid == SOD:
        result = sod.passive_authentication(bytes(data), {1: FILES[0].files[DG1]}, sod.CscaStore([PKI.csca]))
        assert result.outcome in set(sod.Outcome)


def _groups(files: dict[int, bytes]) -> dict[int, bytes]:
    return {1: files[DG1], 13: files[DG13]}


def test_passive_authentication_outcomes() -> None:
    files = FILES[0].files
    store = sod.CscaStore([PKI.csca])
    ok = sod.passive_authentication(files[SOD], _groups(files), store)
    assert (ok.outcome, ok.groups) == (sod.Outcome.AUTHENTICATED, (1, 13))
    altered = {**_groups(files), 13: files[DG13].replace(b"Kinh", b"Kinx")}
    bad = sod.passive_authentication(files[SOD], altered, store)
    assert (bad.outcome, bad.reason) == (sod.Outcome.FAILED, "DG13 does not match its hash in the SOD")
    assert (
        sod.passive_authentication(files[SOD], _groups(files), sod.CscaStore()).outcome == "no_trust_anchor"
    )
    stranger = sod.CscaStore([TestPki.generate().csca])
    assert sod.passive_authentication(files[SOD], _groups(files), stranger).outcome == "failed"
    other_sod = FILES[1].files[SOD]
    assert sod.passive_authentication(other_sod, _groups(files), store).outcome == "failed"
    assert sod.passive_authentication(files[SOD], {2: b"x"}, store).reason == "DG2 is not in the SOD"


def test_a_forged_signature_fails() -> None:
    files = FILES[0].files
    parsed = sod.parse_sod(files[SOD])
    forged = files[SOD].replace(parsed.signature, bytes(len(parsed.signature)))
    result = sod.passive_authentication(forged, _groups(files), sod.CscaStore([PKI.csca]))
    assert result.outcome == sod.Outcome.FAILED


def test_a_master_list_gives_the_csca_store() -> None:
    other = TestPki.generate("Other test CSCA")
    store = sod.CscaStore.from_master_list(master_list(PKI, other.csca))
    assert set(store.certificates) == {PKI.csca, other.csca}
    files = FILES[0].files
    assert sod.passive_authentication(files[SOD], _groups(files), store).outcome == "authenticated"
    with pytest.raises(ChipDataError):
        sod.CscaStore.from_master_list(files[SOD][4:])  # a SignedData, but of an LDS security object
    with pytest.raises(ChipDataError):
        sod.CscaStore.from_master_list(master_list(PKI)[:-30])


def test_the_public_surface() -> None:
    import agent.emrtd  # noqa: PLC0415

    assert set(agent.emrtd.__all__) >= {"read_chip", "ChipReader", "CscaStore", "AccessKeys", "ChipError"}
    assert all(hasattr(agent.emrtd, name) for name in agent.emrtd.__all__)


def test_an_expired_document_signer_fails() -> None:
    old = TestPki.generate(ds_expired=True)
    files = chip_files(PEOPLE[0], old).files
    result = sod.passive_authentication(files[SOD], _groups(files), sod.CscaStore([old.csca]))
    assert (result.outcome, result.reason) == ("failed", "the Document Signer certificate is not valid today")
