"""The flash outbox (firmware/outbox.py): in order, removed only after PUBACK, bounded with the
drops counted, and never losing a complete record to a power cut or to garbage in flash."""

import struct

from fwcheck import Scratch, copy_tree, raises, read, segments, write

from firmware.outbox import HEADER_SIZE, Outbox

SMALL = {"segment_size": 512, "capacity": 4096, "max_record": 128}  # 8 segments of 512 bytes


def _payload(seq, n=40):
    return bytes([(seq * 7 + i) & 0xFF for i in range(n)])


def _seqs(ob):
    """The unacknowledged sequence numbers, checking every payload on the way."""
    out = []
    for seq, payload in ob.pending(100000):
        assert payload == _payload(seq, len(payload)), seq
        out.append(seq)
    return out


def test_delivered_in_order_and_removed_only_after_ack():
    with Scratch() as d:
        ob = Outbox(d, **SMALL)
        for seq in range(30):  # 30 x 56 bytes: four segments
            ob.append(seq, _payload(seq))
        assert len(ob) == 30 and ob.peek()[0] == 0
        assert [s for s, _ in ob.pending(3)] == [0, 1, 2]
        ob.ack(1)  # PUBACKs out of order: nothing removed until the oldest is acknowledged
        assert ob.peek()[0] == 0 and len(ob) == 30
        assert [s for s, _ in ob.pending(3)] == [0, 2, 3]
        ob.ack(0)
        assert ob.peek()[0] == 2 and len(ob) == 28
        for seq in range(2, 20):
            ob.ack(seq)
        assert _seqs(ob) == list(range(20, 30))
        ob.close()
        again = Outbox(d, **SMALL)  # after a restart: acknowledged records are gone, order kept
        assert _seqs(again) == list(range(20, 30))
        assert again.last_seq == 29 and again.corrupt == 0
        assert len(segments(d)) == 2  # the segments wholly acknowledged are deleted
        again.append(30, _payload(30))
        assert _seqs(again) == list(range(20, 31))
        for seq in range(20, 31):
            again.ack(seq)
        assert again.peek() is None and len(again) == 0
        again.close()
        again = Outbox(d, **SMALL)
        assert again.peek() is None
        again.close()


def test_power_cut_at_every_byte_of_the_last_record_keeps_every_complete_record():
    from firmware.seqstore import SeqStore

    with Scratch() as d:
        live, snap = d + "/live", d + "/snap"
        ob = Outbox(live, **SMALL)
        seqs = SeqStore(live + "/seq", reserve=4)
        for _ in range(12):  # two segments and a bit, the first three acknowledged
            seq = seqs.next()
            ob.append(seq, _payload(seq))
        for seq in range(3):
            ob.ack(seq)
        handed = seqs.next()  # the record being written when the power fails
        ob.close()
        copy_tree(live, snap)
        last = live + "/" + segments(live)[-1]
        before = len(read(last))
        ob = Outbox(live, **SMALL)
        ob.append(handed, _payload(handed))
        ob.close()
        after = len(read(last))
        assert after == before + HEADER_SIZE + 40
        full = read(last)
        for cut in range(before, after + 1):
            copy_tree(snap, live)
            write(last, full[:cut])
            ob = Outbox(live, **SMALL)
            complete = cut == after
            assert _seqs(ob) == list(range(3, 12)) + ([handed] if complete else []), cut
            assert ob.corrupt == (0 if complete or cut == before else 1), cut
            store = SeqStore(live + "/seq", reserve=4, floor=ob.last_seq + 1)
            fresh = store.next()
            assert fresh > handed, (cut, fresh)  # a nonce is never used twice
            ob.append(fresh, _payload(fresh))  # appended after a torn record: nothing lost
            ob.close()
            ob = Outbox(live, **SMALL)
            assert _seqs(ob) == list(range(3, 12)) + ([handed] if complete else []) + [fresh], cut
            assert len(set(_seqs(ob))) == len(ob)
            ob.close()


def test_power_cut_while_the_ack_pointer_is_written_loses_nothing():
    with Scratch() as d:
        live, snap = d + "/live", d + "/snap"
        ob = Outbox(live, **SMALL)
        for seq in range(6):
            ob.append(seq, _payload(seq))
        ob.ack(0)
        ob.close()
        copy_tree(live, snap)
        new = b"%d %d 0\n" % (int(segments(live)[0][:8]), 2 * (HEADER_SIZE + 40))
        for cut in range(len(new) + 1):
            copy_tree(snap, live)
            write(live + "/ack.tmp", new[:cut])  # torn before the rename
            ob = Outbox(live, **SMALL)
            got = _seqs(ob)
            assert got == (list(range(2, 6)) if cut == len(new) else list(range(1, 6))), cut
            ob.close()


def test_full_outbox_drops_the_oldest_and_counts_them():
    with Scratch() as d:
        ob = Outbox(d, **SMALL)
        per_segment = 512 // (HEADER_SIZE + 40)  # 9
        total = 8 * per_segment  # eight segments: full, nothing dropped yet
        for seq in range(total):
            ob.append(seq, _payload(seq))
        assert ob.dropped == 0 and len(ob) == total
        ob.append(total, _payload(total))  # a ninth segment: the oldest goes, counted
        assert ob.dropped == per_segment and ob.dropped_since_boot == per_segment
        assert _seqs(ob) == list(range(per_segment, total + 1))
        ob.ack(per_segment)
        for seq in range(total + 1, total + 40):
            ob.append(seq, _payload(seq))
        assert len(segments(d)) == 8
        kept = _seqs(ob)
        assert kept == list(range(kept[0], total + 40))
        assert ob.dropped + 1 + len(kept) == total + 40  # every read delivered, kept or counted
        dropped = ob.dropped
        ob.close()
        again = Outbox(d, **SMALL)
        assert again.dropped == dropped and again.dropped_since_boot == 0
        assert _seqs(again) == kept
        again.close()


def test_capacity_of_one_megabyte_with_typical_reads():
    with Scratch() as d:
        ob = Outbox(d)  # the defaults: 1 MiB in 16 KiB segments
        n = 0
        while ob.dropped == 0:
            ob.append(n, _payload(n, 314))  # a typical sealed Read: 314 bytes (docs/BENCHMARKS.md)
            n += 1
        assert n - 1 == 3136  # before the first drop (documented in firmware/outbox.py)
        assert len(ob) == 3136 - 49 + 1 >= 2000
        ob.close()


def test_garbage_and_hostile_records_are_skipped_and_counted():
    with Scratch() as d:
        ob = Outbox(d, **SMALL)
        for seq in range(12):
            ob.append(seq, _payload(seq))
        ob.close()
        names = segments(d)
        first = d + "/" + names[0]
        data = read(first)
        rec = HEADER_SIZE + 40
        # A huge length field in the third record of the first segment: the rest of it is skipped.
        bad = bytearray(data)
        struct.pack_into(">H", bad, 2 * rec + 2, 0xFFFF)
        write(first, bytes(bad))
        write(d + "/00000090.seg", b"\xff" * 300)  # erased flash
        write(d + "/00000091.seg", b"OB" + b"\x00" * 5)  # a torn header
        write(d + "/notes.seg", b"junk")  # not a segment name: ignored
        write(d + "/ack", b"\xff\xfe garbage")  # a pointer that is not one: start from the oldest
        ob = Outbox(d, **SMALL)
        assert _seqs(ob) == [0, 1] + list(range(9, 12))
        assert ob.corrupt == 3
        ob.append(12, _payload(12))
        ob.close()
        ob = Outbox(d, **SMALL)
        assert _seqs(ob) == [0, 1, 9, 10, 11, 12]
        # A payload changed in flash after recovery: found on delivery, skipped, no crash.
        second = d + "/" + segments(d)[1]
        bad = bytearray(read(second))
        bad[HEADER_SIZE + 3] ^= 0x40
        write(second, bytes(bad))
        assert _seqs(ob) == [0, 1]  # 12 went into the same segment, after the damaged record
        assert ob.corrupt == 2  # the huge length at recovery, this one on delivery
        ob.ack(0)
        ob.ack(1)
        assert len(ob) == 0
        ob.close()


def test_records_out_of_bounds_are_refused():
    with Scratch() as d:
        ob = Outbox(d, **SMALL)
        raises(ValueError, ob.append, 1, b"")
        raises(ValueError, ob.append, 1, bytes(129))
        ob.close()
        raises(ValueError, Outbox, d, 512, 4096, 600)


def test_power_cut_between_the_pointer_and_a_segment_delete():
    with Scratch() as d:
        live, snap = d + "/live", d + "/snap"
        ob = Outbox(live, **SMALL)
        for seq in range(20):  # three segments: 9 + 9 + 2
            ob.append(seq, _payload(seq))
        ob.close()
        copy_tree(live, snap)
        ob = Outbox(live, **SMALL)
        for seq in range(10):  # the first segment wholly acknowledged: deleted after the pointer
            ob.ack(seq)
        ob.close()
        first = segments(snap)[0]
        assert first not in segments(live)
        write(live + "/" + first, read(snap + "/" + first))  # the cut came before the delete
        ob = Outbox(live, **SMALL)
        assert _seqs(ob) == list(range(10, 20))  # nothing acknowledged comes back
        assert first not in segments(live) and ob.corrupt == 0
        ob.close()


def test_power_cut_while_the_oldest_segment_is_dropped():
    with Scratch() as d:
        live = d + "/live"
        ob = Outbox(live, **SMALL)
        for seq in range(72):  # eight full segments of 9
            ob.append(seq, _payload(seq))
        ob.close()
        oldest = segments(live)[0]
        kept = read(live + "/" + oldest)
        ob = Outbox(live, **SMALL)
        ob.append(72, _payload(72))  # drops the oldest: pointer first, then the delete
        ob.close()
        write(live + "/" + oldest, kept)  # the cut came before the delete
        ob = Outbox(live, **SMALL)
        assert ob.dropped == 9 and _seqs(ob) == list(range(9, 73))
        ob.close()


def test_a_pointer_between_records_or_past_the_end_loses_nothing_unacknowledged():
    with Scratch() as d:
        ob = Outbox(d, **SMALL)
        for seq in range(5):
            ob.append(seq, _payload(seq))
        ob.close()
        seg = int(segments(d)[0][:8])
        write(d + "/ack", b"%d %d 0\n" % (seg, HEADER_SIZE + 40 + 3))  # inside record 1
        ob = Outbox(d, **SMALL)
        assert _seqs(ob) == [2, 3, 4]  # snapped to the next record boundary
        ob.append(5, _payload(5))
        assert _seqs(ob) == [2, 3, 4, 5]
        ob.close()
        write(d + "/ack", b"%d 999999 0\n" % seg)  # past the end of the segment
        ob = Outbox(d, **SMALL)
        assert _seqs(ob) == []
        ob.append(6, _payload(6))  # a new read after it is still delivered
        assert _seqs(ob) == [6]
        ob.close()
        ob = Outbox(d, **SMALL)
        assert _seqs(ob) == [6]
        ob.close()


def test_random_appends_acks_restarts_and_torn_writes_against_a_model():
    from firmware.seqstore import SeqStore

    state = [12345]

    def rand(n):  # a small LCG: the same sequence under CPython and MicroPython
        state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return state[0] % n

    with Scratch() as d:
        ob = Outbox(d + "/ob", **SMALL)
        seqs = SeqStore(d + "/seq", reserve=7)
        model = []  # unacknowledged sequence numbers, oldest first
        used = set()
        dropped = 0
        for step in range(600):
            op = rand(10)
            if op < 5:  # a read
                seq = seqs.next()
                assert seq not in used, (step, seq)
                used.add(seq)
                ob.append(seq, _payload(seq, 20 + rand(60)))
                model.append(seq)
            elif op < 7 and model:  # PUBACKs, sometimes out of order
                k = 1 + rand(min(3, len(model)))
                for seq in reversed(model[:k]) if rand(2) else model[:k]:
                    ob.ack(seq)
                model = model[k:]
            elif op == 7:  # restart
                ob.close()
                ob = Outbox(d + "/ob", **SMALL)
                seqs = SeqStore(d + "/seq", reserve=7, floor=ob.last_seq + 1)
            elif op == 8:  # power cut in the middle of a read's write
                seq = seqs.next()
                used.add(seq)
                n = 20 + rand(60)
                ob.append(seq, _payload(seq, n))
                ob.close()
                last = d + "/ob/" + segments(d + "/ob")[-1]
                data = read(last)
                write(last, data[: len(data) - 1 - rand(HEADER_SIZE + n - 1)])
                ob = Outbox(d + "/ob", **SMALL)
                seqs = SeqStore(d + "/seq", reserve=7, floor=ob.last_seq + 1)
            got = [s for s, _ in ob.pending(1000)]
            lost = ob.dropped - dropped
            assert lost >= 0 and got == model[lost:], (step, op, got[:5], model[:5], lost)
            model = got
            dropped = ob.dropped
        ob.close()
        assert len(used) > 300 and dropped > 0  # the run went through drops too
