"""A hostile or broken card never crashes the reader: whatever it answers, a read ends with a
ChipRead or a ChipError (a clear reason for the counter), never another exception."""

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.emrtd import AccessKeys, ChipError, CscaStore, read_chip
from sim.chip import TestPki, VirtualChip, chip_files, sample_citizen

PKI = TestPki.generate()
PERSON = sample_citizen(12)
FILES = chip_files(PERSON, PKI)
KEYS = AccessKeys.from_mrz(*FILES.bac)
STORE = CscaStore([PKI.csca])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=40), st.booleans())
def test_random_answers_give_a_chip_error(answers: list[bytes], pace: bool) -> None:
    queue = list(answers)

    def transmit(apdu: bytes) -> bytes:
        return queue.pop(0) if queue else b"\x90\x00"

    with contextlib.suppress(ChipError):
        read_chip(transmit, KEYS, STORE, can=PERSON.cccd[-6:] if pace else None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0x011E, 0x0101, 0x010D, 0x010E, 0x010F, 0x011D, 0x011C]), st.binary(max_size=400))
def test_a_chip_with_garbage_files_is_refused_or_flagged(fid: int, garbage: bytes) -> None:
    chip = VirtualChip(FILES.with_file(fid, garbage))
    try:
        read = read_chip(chip.transmit, KEYS, STORE, can=PERSON.cccd[-6:])
    except ChipError:
        return
    assert read.chip == "failed" or fid == 0x011C or read.raw.get(fid - 0x0100) == FILES.files[fid]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 300), st.integers(0, 255))
def test_one_flipped_byte_on_the_wire_is_caught(index: int, position: int, value: int) -> None:
    chip = VirtualChip(FILES)
    count = 0

    def transmit(apdu: bytes) -> bytes:
        nonlocal count
        response = chip.transmit(apdu)
        count += 1
        if count == index and response:
            mutable = bytearray(response)
            mutable[position % len(mutable)] = value
            return bytes(mutable)
        return response

    try:
        read = read_chip(transmit, KEYS, STORE)
    except ChipError:
        return
    assert read.chip in ("authenticated", "failed")
