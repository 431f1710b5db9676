"""The forwarders' persistent outbox: one job per stored read and destination.

A job is queued in the same transaction that stores its read, so a stored read always gets its
insurance check, whatever crashes afterwards. A job is ``queued`` until it is ``done`` (the
answer is final) or ``dead`` (it kept failing past its age limit: counted, alerted, replayable by
IT); between attempts it waits until ``next_at`` (exponential backoff with jitter).
"""

import json
import random
from dataclasses import dataclass
from typing import Any

from collector.db import Database

INSURANCE = "insurance"
QUEUED = "queued"
DONE = "done"
DEAD = "dead"

BACKOFF_FIRST = 2.0  # seconds before the second attempt
BACKOFF_MAX = 300.0


@dataclass
class Job:
    facility: str
    device: str
    seq: int
    kind: str
    attempts: int
    created: float
    pending_sent: bool


def enqueue(tx: Database, facility: str, device: str, seq: int, kind: str, now: float) -> None:
    tx.execute(
        "INSERT INTO jobs (facility, device, seq, kind, state, attempts, next_at, created, updated,"
        " pending_sent, last_error) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, 0, '')"
        " ON CONFLICT (facility, device, seq, kind) DO NOTHING",
        (facility, device, seq, kind, QUEUED, now, now, now),
    )


def due(db: Database, kind: str, now: float, limit: int = 100) -> list[Job]:
    rows = db.query(
        "SELECT facility, device, seq, kind, attempts, created, pending_sent FROM jobs"
        " WHERE state = ? AND kind = ? AND next_at <= ? ORDER BY next_at LIMIT ?",
        (QUEUED, kind, now, limit),
    )
    return [Job(r[0], r[1], int(r[2]), r[3], int(r[4]), float(r[5]), bool(r[6])) for r in rows]


def _update(db: Database, job: Job, sql: str, params: tuple[Any, ...]) -> None:
    with db.transaction() as tx:
        tx.execute(
            "UPDATE jobs SET " + sql + " WHERE facility = ? AND device = ? AND seq = ? AND kind = ?",
            (*params, job.facility, job.device, job.seq, job.kind),
        )


def finish(db: Database, job: Job, answer: dict[str, Any], now: float) -> None:
    _update(
        db,
        job,
        "state = ?, attempts = ?, updated = ?, answer = ?",
        (DONE, job.attempts + 1, now, json.dumps(answer)),
    )


def mark_pending_sent(db: Database, job: Job, now: float) -> None:
    job.pending_sent = True
    _update(db, job, "pending_sent = 1, updated = ?", (now,))


def retry(db: Database, job: Job, why: str, now: float, max_age: float) -> bool:
    """Another attempt later; False when the job is past ``max_age`` and now dead."""
    attempts = job.attempts + 1
    if now - job.created > max_age:
        _update(
            db, job, "state = ?, attempts = ?, updated = ?, last_error = ?", (DEAD, attempts, now, why[:200])
        )
        return False
    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
    _update(
        db,
        job,
        "attempts = ?, next_at = ?, updated = ?, last_error = ?",
        (attempts, now + delay, now, why[:200]),
    )
    return True


def count(db: Database, state: str, kind: str = INSURANCE) -> int:
    return int(db.query("SELECT COUNT(*) FROM jobs WHERE state = ? AND kind = ?", (state, kind))[0][0])


def counts(db: Database, kind: str) -> dict[str, int]:
    """Jobs of ``kind`` per state (every state present, zero when none)."""
    found = dict(db.query("SELECT state, COUNT(*) FROM jobs WHERE kind = ? GROUP BY state", (kind,)))
    return {state: int(found.get(state, 0)) for state in (QUEUED, DONE, DEAD)}
