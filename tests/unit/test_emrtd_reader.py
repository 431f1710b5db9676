"""The agent's chip reader against the virtual CCCD chip, in-process through the ``transmit`` seam:
the whole read with passive authentication, an altered DG13, a wrong document number, a chip with a
small buffer, and the round-trip budget of issue 7 (at most 25 for DG1 + DG13 + SOD)."""

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.emrtd import AccessDeniedError, AccessKeys
from agent.emrtd.errors import CardError
from agent.emrtd.expiry import candidates
from agent.emrtd.message import read_message
from agent.emrtd.reader import ChipReader, read_chip
from agent.emrtd.sod import CscaStore
from cccd import pseudonym, schema
from sim import citizens
from sim.chip import AID, ChipFiles, TestPki, VirtualChip, chip_files, expiry

PKI = TestPki.generate()
PEOPLE = citizens.population(20, seed=3, today=datetime.date(2026, 11, 1))
PERSON = next(c for c in PEOPLE if c.cmnd and expiry(c.dob, c.issued))
FILES = chip_files(PERSON, PKI)
STORE = CscaStore([PKI.csca])


def _keys(files: ChipFiles = FILES) -> AccessKeys:
    return AccessKeys.from_mrz(*files.bac)


class Recorder:
    def __init__(self, chip: VirtualChip) -> None:
        self.chip, self.sent = chip, []

    def __call__(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.chip.transmit(apdu)


def test_a_full_read_authenticates() -> None:
    wire = Recorder(VirtualChip(FILES))
    read = read_chip(wire, _keys(), STORE)
    assert read.chip == "authenticated"
    assert read.summary() == {"dg": [1, 13, 14, 15], "pa": "authenticated", "aa": "passed"}
    assert read.mrz.personal_id == PERSON.cccd and read.identity is not None
    assert (read.identity.personal_id, read.identity.name) == (PERSON.cccd, PERSON.name)
    assert read.raw[13] == FILES.files[0x010D]
    # the budget of issue 7; 1 more than the minimum: the chip refused Le 256 once
    assert read.round_trips == len(wire.sent) <= 25
    assert wire.sent[0] == bytes.fromhex("00A4040C07") + AID
    assert not any(apdu[1] == 0xA4 and apdu[2] == 0x00 for apdu in wire.sent)  # never the MF


def test_an_altered_dg13_fails_passive_authentication() -> None:
    dg13 = FILES.files[0x010D]
    altered = FILES.with_file(0x010D, dg13.replace(b"Kinh", b"Kinx"))
    read = read_chip(VirtualChip(altered).transmit, _keys(), STORE)
    assert read.chip == "failed"
    assert read.summary()["pa_reason"] == "DG13 does not match its hash in the SOD"


def test_an_unknown_csca_is_no_trust_anchor() -> None:
    assert read_chip(VirtualChip(FILES).transmit, _keys(), CscaStore()).chip == "no_trust_anchor"


def test_a_wrong_document_number_is_a_clear_error() -> None:
    doc, birth, expiry = FILES.bac
    wrong = AccessKeys.from_mrz(doc[:-1] + str((int(doc[-1]) + 1) % 10), birth, expiry)
    with pytest.raises(AccessDeniedError, match="document number"):
        read_chip(VirtualChip(FILES).transmit, wrong, STORE)


def test_the_reader_finds_the_largest_le_the_chip_accepts() -> None:
    chip = VirtualChip(FILES, max_le=100)
    reader = ChipReader(chip.transmit, STORE)
    assert reader.read(_keys()).chip == "authenticated"
    assert reader._le == 64


def test_a_card_without_the_application_is_refused() -> None:
    chip = VirtualChip(FILES)
    with pytest.raises(CardError, match="no eMRTD application"):
        ChipReader(lambda apdu: chip.transmit(apdu[:-1] + b"\x02"), STORE).select_application()


def test_the_virtual_chip_guards_its_files() -> None:
    chip = VirtualChip(FILES)
    assert chip.transmit(bytes.fromhex("00A4000C023F00")) == bytes.fromhex("6D00")
    assert chip.transmit(bytes.fromhex("00A4040C07") + AID) == bytes.fromhex("9000")
    assert chip.transmit(bytes.fromhex("00B09E0004")) == bytes.fromhex("6982")
    reader = ChipReader(chip.transmit, STORE)
    reader.authenticate(_keys())
    tampered = bytearray(reader._sm.protect(bytes.fromhex("00B09E0004")))  # type: ignore[union-attr]
    tampered[-2] ^= 1
    assert chip.transmit(bytes(tampered)) == bytes.fromhex("6988")


def test_a_card_without_expiry_reads() -> None:
    elder = next(c for c in PEOPLE if expiry(c.dob, c.issued) is None)
    files = chip_files(elder, PKI)
    assert files.bac[2] == "<<<<<<"
    read = read_chip(VirtualChip(files).transmit, _keys(files), STORE)
    assert read.chip == "authenticated" and read.identity is not None and read.identity.expires is None


def test_expiry_candidates_from_the_qr_dates_open_the_chip() -> None:
    """Only the QR was read: the renewal rules give the expiry; a refused candidate costs 2 round trips."""
    doc, birth, _ = FILES.bac
    tries = [AccessKeys.from_mrz(doc, birth, e) for e in candidates(PERSON.dob, PERSON.issued)]
    first = read_chip(VirtualChip(FILES).transmit, tries, STORE)
    assert (first.attempts, first.chip) == (1, "authenticated")
    later = read_chip(VirtualChip(FILES).transmit, [AccessKeys.from_mrz(doc, birth, "991231"), *tries], STORE)
    assert (later.attempts, later.round_trips) == (2, first.round_trips + 2)
    with pytest.raises(AccessDeniedError):
        read_chip(VirtualChip(FILES).transmit, tries[1:], STORE)


def test_the_read_gives_the_id_map_of_the_wire_contract() -> None:
    ident = read_chip(VirtualChip(FILES).transmit, _keys(), STORE).ident()
    assert ident == {
        "cccd": PERSON.cccd,
        "cmnd": PERSON.cmnd,
        "name": PERSON.name,
        "dob": PERSON.dob.isoformat(),
        "sex": PERSON.sex,
        "address": PERSON.address,
        "issued": PERSON.issued.isoformat(),
        "expires": expiry(PERSON.dob, PERSON.issued).isoformat(),  # type: ignore[union-attr]
    }


@pytest.mark.parametrize(
    ("dob", "issued", "first"),
    [
        ("1990-05-17", "2021-03-01", "300517"),  # 2014 law: at 30, valid to 40
        ("1981-06-30", "2021-01-10", "410630"),  # at 39, within 2 years of 40: valid to 60
        ("1962-02-01", "2021-05-05", "<<<<<<"),  # at 59: no expiry
        ("2012-05-17", "2025-03-01", "370517"),  # 2023 law: at 12, within 2 years of 14: valid to 25
        ("2016-02-29", "2024-09-01", "300228"),  # 2023 law: valid to 14; born on 29 February
    ],
)
def test_expiry_candidates_follow_the_renewal_rules(dob: str, issued: str, first: str) -> None:
    got = candidates(datetime.date.fromisoformat(dob), datetime.date.fromisoformat(issued))
    assert got[0] == first and "<<<<<<" in got and len(set(got)) == len(got)


def test_expiry_candidates_cover_the_simulated_population() -> None:
    for c in citizens.population(300, seed=11, today=datetime.date(2026, 11, 1)):
        card = expiry(c.dob, c.issued)
        assert candidates(c.dob, c.issued)[0] == (card.strftime("%y%m%d") if card else "<<<<<<")


CAN = PERSON.cccd[-6:]


def test_pace_with_the_can_reads_the_chip() -> None:
    wire = Recorder(VirtualChip(FILES))
    read = read_chip(wire, (), STORE, can=CAN)
    assert (read.chip, read.attempts) == ("authenticated", 0)
    assert read.identity is not None and read.identity.personal_id == PERSON.cccd
    assert wire.sent[0] == bytes.fromhex("00A4020C02011C")  # EF.CardAccess selected directly
    assert read.round_trips == len(wire.sent) <= 25


def test_a_wrong_can_is_refused_then_bac_is_tried() -> None:
    wrong = f"{(int(CAN) + 1) % 1_000_000:06d}"
    with pytest.raises(AccessDeniedError, match="CAN"):
        read_chip(VirtualChip(FILES).transmit, (), STORE, can=wrong)
    read = read_chip(VirtualChip(FILES).transmit, _keys(), STORE, can=wrong)
    assert (read.chip, read.attempts) == ("authenticated", 1)


def test_a_chip_without_pace_is_read_with_bac() -> None:
    files = chip_files(PERSON, PKI, pace=False)
    read = read_chip(VirtualChip(files).transmit, _keys(files), STORE, can=CAN)
    assert (read.chip, read.attempts) == ("authenticated", 1)


def test_a_cloned_chip_fails_active_authentication() -> None:
    """Files copied to another chip: passive authentication passes, the clone lacks the AA key."""
    clone = ChipFiles(FILES.files, FILES.bac, ec.generate_private_key(ec.SECP256R1()))
    read = read_chip(VirtualChip(clone).transmit, _keys(), STORE)
    assert read.summary() == {"dg": [1, 13, 14, 15], "pa": "authenticated", "aa": "failed"}


def test_a_chip_without_dg15_has_no_active_authentication() -> None:
    files = chip_files(PERSON, PKI, aa=False)
    read = read_chip(VirtualChip(files).transmit, _keys(files), STORE)
    assert read.active is None and read.summary() == {"dg": [1, 13], "pa": "authenticated"}


def test_a_chip_read_becomes_a_read_of_the_wire_contract() -> None:
    secret = bytes(range(32))
    read = read_chip(VirtualChip(FILES).transmit, _keys(), STORE)
    msg = schema.decode(
        "read", schema.encode("read", read_message(read, 7, 1_700_000_000_000, "ntp", secret))
    )
    assert (msg["src"], msg["seq"], msg["pid"]) == ("nfc", 7, pseudonym.pid(secret, cccd=PERSON.cccd))
    assert msg["id"] == read.ident() and msg["chip"]["pa"] == "authenticated" and "warn" not in msg
    assert msg["doc"] == ("cancuoc" if PERSON.issued >= datetime.date(2024, 7, 1) else "cccd")
    altered = FILES.with_file(0x010D, FILES.files[0x010D].replace(b"Kinh", b"Kinx"))
    flagged = read_message(read_chip(VirtualChip(altered).transmit, _keys(), STORE), 8, 1, "ntp", secret)
    assert flagged["chip"]["pa"] == "failed" and flagged["warn"] == ["chip_failed"]
