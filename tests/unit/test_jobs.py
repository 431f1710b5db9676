"""The forwarders' outbox on both stores: follow-on jobs in the same transaction, dead letters,
replay."""

from collections.abc import Iterator

import pytest

from collector.db import Database, open_db
from collector.forward import jobs

FAC, DEV = "38001", "qr-0001"


@pytest.fixture
def opened(store_url: str) -> Iterator[list[Database]]:
    held: list[Database] = []
    yield held
    for db in held:
        db.close()


@pytest.fixture
def queue(store_url: str, opened: list[Database]):
    def make(n: int = 3) -> tuple[Database, list[jobs.Job]]:
        db = open_db(store_url)
        opened.append(db)
        with db.transaction() as tx:
            for seq in range(1, n + 1):
                jobs.enqueue(tx, FAC, DEV, seq, jobs.INSURANCE, 1000.0)
        return db, jobs.due(db, jobs.INSURANCE, 1000.0)

    return make


def test_finishing_a_check_queues_its_registration_with_the_payload(queue) -> None:
    db, (first, *_rest) = queue()
    jobs.finish(db, first, {"maKetQua": "000"}, 1001.0, follow=jobs.Follow(jobs.HIS, b"sealed"))
    (his,) = jobs.due(db, jobs.HIS, 1001.0)
    assert (his.seq, his.payload, his.attempts) == (first.seq, b"sealed", 0)
    assert jobs.counts(db, jobs.INSURANCE) == {"queued": 2, "done": 1, "dead": 0}


def test_a_newer_outcome_queues_a_done_registration_again(queue) -> None:
    db, (first, *_rest) = queue()
    jobs.finish(db, first, {}, 1001.0, follow=jobs.Follow(jobs.HIS, b"error"))
    (his,) = jobs.due(db, jobs.HIS, 1001.0)
    jobs.finish(db, his, {}, 1002.0, ref="Encounter/1")
    assert jobs.due(db, jobs.HIS, 2000.0) == []
    with db.transaction() as tx:
        jobs.enqueue(tx, FAC, DEV, first.seq, jobs.HIS, 1003.0, b"ok")
    (again,) = jobs.due(db, jobs.HIS, 1003.0)
    assert again.payload == b"ok" and again.attempts == 0


def test_queueing_the_same_first_job_twice_keeps_one(queue) -> None:
    db, due = queue(1)
    with db.transaction() as tx:
        jobs.enqueue(tx, FAC, DEV, 1, jobs.INSURANCE, 1500.0)
    assert len(jobs.due(db, jobs.INSURANCE, 2000.0)) == 1 == len(due)


def test_past_its_age_a_job_is_dead_and_its_follow_is_queued(queue) -> None:
    db, (first, second, _third) = queue()
    assert jobs.retry(db, first, "ConnectError", 1010.0, max_age=60)
    assert not jobs.retry(db, second, "ConnectError", 1061.0, 60, jobs.Follow(jobs.HIS, b"x"))
    (letter,) = jobs.dead_letters(db, jobs.INSURANCE)
    assert (letter.seq, letter.why, letter.attempts) == (second.seq, "ConnectError", 1)
    assert [j.seq for j in jobs.due(db, jobs.HIS, 2000.0)] == [second.seq]
    (later,) = [j for j in jobs.due(db, jobs.INSURANCE, 5000.0) if j.seq == first.seq]
    assert later.attempts == 1


def test_a_deferred_job_counts_no_attempt(queue) -> None:
    db, (first, *_rest) = queue()
    jobs.defer(db, first, 1030.0, 1000.0)
    assert first.seq not in [j.seq for j in jobs.due(db, jobs.INSURANCE, 1029.0)]
    (back,) = [j for j in jobs.due(db, jobs.INSURANCE, 1030.0) if j.seq == first.seq]
    assert back.attempts == 0


def test_replay_queues_the_chosen_dead_letters_as_new(queue) -> None:
    db, due = queue(3)
    for job in due:
        jobs.dead(db, job, "the HIS refused: gender invalid", 1100.0)
    with db.transaction() as tx:
        jobs.enqueue(tx, "38002", DEV, 1, jobs.HIS, 1000.0, b"p")
    (other,) = jobs.due(db, jobs.HIS, 1000.0)
    jobs.dead(db, other, "refused", 1100.0)
    assert len(jobs.dead_letters(db)) == 4
    assert [d.facility for d in jobs.dead_letters(db, jobs.HIS)] == ["38002"]
    assert jobs.replay(db, 2000.0, kind=jobs.INSURANCE, seq=2) == 1
    (replayed,) = jobs.due(db, jobs.INSURANCE, 2000.0)
    assert (replayed.seq, replayed.attempts, replayed.created) == (2, 0, 2000.0)
    assert jobs.replay(db, 2000.0, facility=FAC) == 2
    assert jobs.replay(db, 2000.0, facility=FAC) == 0
    assert jobs.counts(db, jobs.HIS)["dead"] == 1


@pytest.mark.parametrize(
    ("why", "kept"),
    [("x" * 5000, "x" * 500), ("Lỗi: không hợp lệ\n\x00\r\x1b[31m", "Lỗi: không hợp lệ\n   [31m")],
)
def test_any_reason_is_kept_bounded_and_clean(queue, why: str, kept: str) -> None:
    db, (first, *_rest) = queue(1)
    jobs.dead(db, first, why, 1100.0)
    (letter,) = jobs.dead_letters(db)
    assert letter.why == kept


def test_taken_jobs_are_leased_and_due_again_when_the_lease_ends(queue) -> None:
    db, _due = queue(3)
    first = jobs.take(db, jobs.INSURANCE, 1000.0, limit=2)
    assert [j.seq for j in first] == [1, 2]
    assert [j.seq for j in jobs.take(db, jobs.INSURANCE, 1001.0)] == [3]  # only what is new
    assert jobs.take(db, jobs.INSURANCE, 1002.0) == []
    jobs.retry(db, first[0], "timeout", 1003.0, max_age=3600)  # an attempt's end sets its own time
    assert [j.seq for j in jobs.take(db, jobs.INSURANCE, 1003.0 + jobs.BACKOFF_FIRST)] == [1]
    # the collector died with 2 and 3 taken: they are due again once their lease is over
    assert [j.seq for j in jobs.take(db, jobs.INSURANCE, 1001.0 + jobs.LEASE)] == [2, 3]


def test_a_restarted_forwarder_takes_back_what_a_dead_one_had_taken(queue) -> None:
    db, _due = queue(3)
    taken = jobs.take(db, jobs.INSURANCE, 1000.0, limit=2)
    jobs.retry(db, taken[0], "timeout", 1001.0, max_age=3600)  # its attempt ended: not leased
    assert jobs.release_leases(db, 1001.5) == 1
    assert sorted(j.seq for j in jobs.take(db, jobs.INSURANCE, 1001.5)) == [2, 3]  # 1 waits its backoff
