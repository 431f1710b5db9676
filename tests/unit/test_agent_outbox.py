"""The agent's SQLite outbox: reads survive a restart until acknowledged, sequence numbers are never
repeated across restarts, a full outbox drops the oldest and counts it, a crash in the middle of a
write loses nothing committed."""

import multiprocessing
import os
from pathlib import Path

from agent.outbox import Outbox


def test_reads_wait_for_their_ack_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        for _ in range(3):
            seq = box.next_seq()
            box.append(seq, f"read {seq}".encode())
        box.ack(1)
    with Outbox(path) as box:
        assert box.pending() == [(0, b"read 0"), (2, b"read 2")]
        box.ack(0)
        box.ack(2)
        assert len(box) == 0


def test_sequence_numbers_are_never_repeated(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    seen: list[int] = []
    for _ in range(4):  # four boots, each taking a few numbers
        with Outbox(path, reserve=5) as box:
            seen += [box.next_seq() for _ in range(7)]
    assert len(set(seen)) == len(seen) and seen == sorted(seen)
    assert seen[-1] < 4 * (7 + 5)  # at most `reserve` skipped per boot


def test_a_full_outbox_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, capacity=3) as box:
        for seq in range(5):
            box.append(seq, b"x")
        assert [s for s, _ in box.pending()] == [2, 3, 4]
        assert (box.dropped, box.dropped_since_boot) == (2, 2)
    with Outbox(path, capacity=3) as box:
        assert (box.dropped, box.dropped_since_boot) == (2, 0)


def _write_then_die(path: str, n: int) -> None:
    box = Outbox(path)
    for _ in range(n):
        seq = box.next_seq()
        box.append(seq, b"sealed")
    os._exit(0)  # no close, no cleanup: as a power cut would leave it


def test_a_process_killed_without_closing_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "outbox.db")
    for _ in range(2):
        proc = multiprocessing.get_context("spawn").Process(target=_write_then_die, args=(path, 10))
        proc.start()
        proc.join(30)
    with Outbox(path) as box:
        seqs = [s for s, _ in box.pending(100)]
    assert len(seqs) == 20 and len(set(seqs)) == 20
