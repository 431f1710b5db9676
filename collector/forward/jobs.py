"""The forwarders' persistent outbox: one job per stored read and destination.

A read's first job is queued in the same transaction that stores the read, so a stored read always
gets its insurance check, whatever crashes afterwards; the HIS registration is queued in the same
transaction that finishes the insurance check (``follow``), carrying the outcome in ``payload``.
A job is ``queued`` until it is ``done`` (final) or ``dead`` (it kept failing past its age limit,
or the destination refused it: counted, alerted, replayable by IT with ``replay``); between
attempts it waits until ``next_at`` (exponential backoff with jitter).
"""

import json
import random
from dataclasses import dataclass
from typing import Any

from collector.db import Database

INSURANCE = "insurance"
HIS = "his"
KINDS = (INSURANCE, HIS)
QUEUED = "queued"
DONE = "done"
DEAD = "dead"

REASON_MAX = 500  # characters of a failure's reason kept with the job
_CONTROLS = {c: " " for c in range(32) if c != 10} | {127: " "}

LEASE = 120.0  # a taken job is not due again for this long, unless its attempt ends first
BACKOFF_FIRST = 2.0  # seconds before the second attempt
BACKOFF_MAX = 300.0


def reason(why: str) -> str:
    """A failure's reason as it is kept: bounded, one text line per line, no control characters
    (PostgreSQL refuses NUL in text; a destination's message may contain anything)."""
    return why[:REASON_MAX].translate(_CONTROLS)


@dataclass
class Job:
    facility: str
    device: str
    seq: int
    kind: str
    attempts: int
    created: float
    pending_sent: bool
    payload: bytes | None = None


@dataclass(frozen=True)
class Follow:
    """The job that comes after this one, queued in the same transaction that ends it."""

    kind: str
    payload: bytes | None = None


@dataclass(frozen=True)
class DeadLetter:
    facility: str
    device: str
    seq: int
    kind: str
    attempts: int
    created: float
    died: float
    why: str


def enqueue(
    tx: Database, facility: str, device: str, seq: int, kind: str, now: float, payload: bytes | None = None
) -> None:
    """Queue a job; one that exists already is queued again with the new payload (a replayed
    insurance check gives the HIS the newer outcome: the registration is an update there)."""
    tx.execute(
        "INSERT INTO jobs (facility, device, seq, kind, state, attempts, next_at, created, updated,"
        " pending_sent, last_error, payload) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, 0, '', ?)"
        " ON CONFLICT (facility, device, seq, kind) DO UPDATE SET state = excluded.state,"
        " attempts = 0, next_at = excluded.next_at, updated = excluded.updated,"
        " last_error = '', payload = excluded.payload"
        " WHERE excluded.payload IS NOT NULL OR jobs.state = 'dead'",
        (facility, device, seq, kind, QUEUED, now, now, now, payload),
    )


def due(db: Database, kind: str, now: float, limit: int = 100) -> list[Job]:
    rows = db.query(
        "SELECT facility, device, seq, kind, attempts, created, pending_sent, payload FROM jobs"
        " WHERE state = ? AND kind = ? AND next_at <= ? ORDER BY next_at LIMIT ?",
        (QUEUED, kind, now, limit),
    )
    return [
        Job(
            r[0],
            r[1],
            int(r[2]),
            r[3],
            int(r[4]),
            float(r[5]),
            bool(r[6]),
            None if r[7] is None else bytes(r[7]),
        )
        for r in rows
    ]


def take(db: Database, kind: str, now: float, limit: int = 100) -> list[Job]:
    """The due jobs of ``kind``, leased for ``LEASE`` seconds: a job being attempted is not due
    again (so the next look finds only new work however many are in flight); after a crash of
    the collector it is due again when the lease ends, or at once when the forwarder starts again
    (``release_leases``). An attempt's end (finish, retry, defer, dead) sets the job's next time
    itself and ends the lease."""
    with db.transaction() as tx:
        found = due(tx, kind, now, limit)
        tx.executemany(
            "UPDATE jobs SET next_at = ?, leased = 1"
            " WHERE facility = ? AND device = ? AND seq = ? AND kind = ?",
            [(now + LEASE, j.facility, j.device, j.seq, kind) for j in found],
        )
    return found


def release_leases(db: Database, now: float) -> int:
    """Make every taken job due now: the forwarder starting is the only one (a collector that died
    left its leases behind). Returns how many. (With several collectors on one store, each would
    take the others' jobs again: duplicates the destinations absorb, being idempotent.)"""
    with db.transaction() as tx:
        cur = tx.execute(
            "UPDATE jobs SET next_at = ?, leased = 0 WHERE state = ? AND leased = 1", (now, QUEUED)
        )
        return int(cur.rowcount)


def _update(
    db: Database, job: Job, sql: str, params: tuple[Any, ...], follow: Follow | None = None, now: float = 0.0
) -> None:
    with db.transaction() as tx:
        tx.execute(
            "UPDATE jobs SET leased = 0, "
            + sql
            + " WHERE facility = ? AND device = ? AND seq = ? AND kind = ?",
            (*params, job.facility, job.device, job.seq, job.kind),
        )
        if follow is not None:
            enqueue(tx, job.facility, job.device, job.seq, follow.kind, now, follow.payload)


def finish(
    db: Database,
    job: Job,
    answer: dict[str, Any],
    now: float,
    *,
    ref: str | None = None,
    follow: Follow | None = None,
) -> None:
    """The job is done: ``answer`` is what is kept of the destination's answer (never personal
    data), ``ref`` the destination's reference for it."""
    _update(
        db,
        job,
        "state = ?, attempts = ?, updated = ?, answer = ?, ref = ?",
        (DONE, job.attempts + 1, now, json.dumps(answer), ref),
        follow,
        now,
    )


def defer(db: Database, job: Job, until: float, now: float) -> None:
    """Not attempted now (the destination's circuit is open): look again at ``until``; no attempt
    is counted."""
    _update(db, job, "next_at = ?, updated = ?", (until, now))


def dead(db: Database, job: Job, why: str, now: float, follow: Follow | None = None) -> None:
    """The destination refused the job, or it is past its age: a dead letter, for IT to replay."""
    _update(
        db,
        job,
        "state = ?, attempts = ?, updated = ?, last_error = ?",
        (DEAD, job.attempts + 1, now, reason(why)),
        follow,
        now,
    )


def mark_pending_sent(db: Database, job: Job, now: float) -> None:
    job.pending_sent = True
    _update(db, job, "pending_sent = 1, updated = ?", (now,))


def retry(db: Database, job: Job, why: str, now: float, max_age: float, follow: Follow | None = None) -> bool:
    """Another attempt later; False when the job is past ``max_age`` and now dead (then
    ``follow`` is queued: the visit is registered without the outcome that never came)."""
    attempts = job.attempts + 1
    if now - job.created > max_age:
        dead(db, job, why, now, follow)
        return False
    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
    _update(
        db,
        job,
        "attempts = ?, next_at = ?, updated = ?, last_error = ?",
        (attempts, now + delay, now, reason(why)),
    )
    return True


def count(db: Database, state: str, kind: str = INSURANCE) -> int:
    return int(db.query("SELECT COUNT(*) FROM jobs WHERE state = ? AND kind = ?", (state, kind))[0][0])


def counts(db: Database, kind: str) -> dict[str, int]:
    """Jobs of ``kind`` per state (every state present, zero when none)."""
    found = dict(db.query("SELECT state, COUNT(*) FROM jobs WHERE kind = ? GROUP BY state", (kind,)))
    return {state: int(found.get(state, 0)) for state in (QUEUED, DONE, DEAD)}


def dead_letters(
    db: Database, kind: str | None = None, facility: str | None = None, limit: int = 1000
) -> list[DeadLetter]:
    """The dead letters, oldest death first."""
    sql = (
        "SELECT facility, device, seq, kind, attempts, created, updated, last_error FROM jobs WHERE state = ?"
    )
    params: list[Any] = [DEAD]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    if facility is not None:
        sql += " AND facility = ?"
        params.append(facility)
    rows = db.query(sql + " ORDER BY updated LIMIT ?", (*params, limit))
    return [DeadLetter(r[0], r[1], int(r[2]), r[3], int(r[4]), float(r[5]), float(r[6]), r[7]) for r in rows]


def replay(
    db: Database,
    now: float,
    kind: str | None = None,
    facility: str | None = None,
    device: str | None = None,
    seq: int | None = None,
) -> int:
    """Queue the matching dead letters again, as new (their age counts from now); returns how many.
    IT runs it once the cause is fixed (``cccd-edge collector replay``)."""
    sql = "UPDATE jobs SET state = ?, attempts = 0, next_at = ?, created = ?, updated = ? WHERE state = ?"
    params: list[Any] = [QUEUED, now, now, now, DEAD]
    for column, value in (("kind", kind), ("facility", facility), ("device", device), ("seq", seq)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    with db.transaction() as tx:
        return int(tx.execute(sql, params).rowcount)
