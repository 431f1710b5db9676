"""Sequence numbers reserved ahead in flash (firmware/seqstore.py): never one twice, power cuts
included, and flash written once per reservation rather than once per read."""

from fwcheck import Scratch, raises, read, write

from firmware.seqstore import SeqStore


def test_numbers_never_repeat_across_restarts():
    with Scratch() as d:
        path = d + "/seq"
        seen = set()
        for _ in range(5):  # five boots, a few reads each, power cut without warning
            store = SeqStore(path, reserve=10)
            for _ in range(7):
                seq = store.next()
                assert seq not in seen
                assert int(read(path)) > seq  # the reservation is in flash before the number is used
                seen.add(seq)
        assert max(seen) < 5 * 10  # at most one reservation skipped per boot


def test_flash_written_once_per_reservation():
    with Scratch() as d:
        path = d + "/seq"
        store = SeqStore(path, reserve=100)
        assert store.next() == 0
        assert read(path) == b"100\n"
        for expected in range(1, 100):
            assert store.next() == expected
        assert read(path) == b"100\n"  # no write while inside the reservation
        assert store.next() == 100
        assert read(path) == b"200\n"


def test_power_cut_while_the_reservation_is_written():
    with Scratch() as d:
        path = d + "/seq"
        store = SeqStore(path, reserve=1000)
        for _ in range(1000):
            last = store.next()  # reservation 1000 in flash; 999 used
        new = b"2000\n"  # the next reservation, torn at every byte before its rename
        for cut in range(len(new) + 1):
            write(path + ".tmp", new[:cut])
            again = SeqStore(path, reserve=1000)
            assert again.next() > last, cut
        write(path + ".tmp", b"")
        write(path, b"")  # both gone (FAT, cut between remove and rename, and worse)
        assert SeqStore(path, floor=last + 1).next() == last + 1  # the outbox's last seq + 1


def test_floor_and_bad_settings():
    with Scratch() as d:
        store = SeqStore(d + "/seq", reserve=5)
        store.floor(42)
        assert store.next() == 42
        store.floor(10)  # never backwards
        assert store.next() == 43
        write(d + "/seq", b"12x\n")  # garbage reads as no reservation: start from the floor
        assert SeqStore(d + "/seq", floor=7).next() == 7
        raises(ValueError, SeqStore, d + "/seq", 0)
