"""Registration of every visit in the HIS, after its insurance check.

``RegistrationRunner.dispatch`` takes the due ``his`` jobs and registers them through the
facility's connector (FHIR or HL7 v2), at most ``concurrency`` at a time, behind the HIS's
circuit breaker. The visit is built from the read's personal fields (decrypted from the store)
and the insurance outcome the job carries (sealed with the same personal-data key). Outcomes:

- registered: the job is done, with the HIS's reference (an Encounter, a message control ID);
- the HIS is unavailable: backoff with jitter, the breaker counts it; past ``max_age`` a dead
  letter;
- the HIS refused the content: a dead letter at once with the HIS's explanation (trying again
  would fail the same way); IT replays it once the cause is fixed.

A connector is idempotent on the visit's key, so a job that is sent again after a crash (the HIS
acted, the collector never recorded it) leaves one visit in the HIS.
"""

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from collector.db import Database
from collector.fleet import FACILITY_TZ
from collector.forward import jobs
from collector.forward.breaker import CLOSED, CircuitBreaker
from collector.forward.his import Coverage, HisConnector, HisRejectedError, HisUnavailableError, Visit
from collector.ingest import personal_fields
from collector.keystore import Keystore

log = logging.getLogger("cccd.collector.his")

MAX_AGE = 86400.0  # a visit still not registered after a day is a dead letter


def _where(facility: str, device: str, seq: int) -> str:
    return f"job/his/{facility}/{device}/{seq}"


def seal_outcome(
    keystore: Keystore,
    facility: str,
    device: str,
    seq: int,
    status: str,
    coverage: dict[str, str] | None,
) -> bytes:
    """The insurance outcome a HIS job carries: sealed, because the card number is personal."""
    plain = json.dumps({"insurance": status, "coverage": coverage}, ensure_ascii=False).encode()
    return keystore.seal_personal(plain, _where(facility, device, seq))


def follow(
    keystore: Keystore, job: jobs.Job, status: str, coverage: dict[str, str] | None = None
) -> jobs.Follow:
    """The HIS job that follows an insurance check ending with ``status``."""
    return jobs.Follow(jobs.HIS, seal_outcome(keystore, job.facility, job.device, job.seq, status, coverage))


def visit_of(job: jobs.Job, fields: dict[str, Any], ts_ms: int, outcome: dict[str, Any]) -> Visit | None:
    """The visit of one read; None when the read lacks what a HIS needs (a name, a birth date)."""
    ident = fields.get("id")
    if not isinstance(ident, dict):
        return None

    def text(key: str) -> str | None:
        value = ident.get(key)
        return value if isinstance(value, str) and value else None

    name, dob = text("name"), text("dob")
    if name is None or dob is None:
        return None
    cov = outcome.get("coverage")
    coverage = None
    if isinstance(cov, dict) and isinstance(cov.get("card"), str):
        coverage = Coverage(
            card=cov["card"],
            code=str(cov.get("code", "")),
            valid_from=cov.get("valid_from"),
            valid_to=cov.get("valid_to"),
            kcbbd=cov.get("kcbbd"),
        )
    return Visit(
        facility=job.facility,
        device=job.device,
        seq=job.seq,
        arrived=datetime.datetime.fromtimestamp(ts_ms / 1000, FACILITY_TZ),
        name=name,
        dob=dob,
        sex=text("sex"),
        address=text("address"),
        cccd=text("cccd"),
        cmnd=text("cmnd"),
        bhyt=text("bhyt"),
        coverage=coverage,
        insurance=str(outcome.get("insurance", "")),
    )


class RegistrationRunner:
    def __init__(
        self,
        db: Database,
        keystore: Keystore,
        connector: HisConnector,
        *,
        concurrency: int = 20,
        max_age: float = MAX_AGE,
        breaker: CircuitBreaker | None = None,
        on_dead: Callable[[str], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.keystore = keystore
        self.connector = connector
        self.max_age = max_age
        self.breaker = breaker or CircuitBreaker(connector.name)
        self.on_dead = on_dead
        self.on_done = on_done  # a registration ended: a slot is free (the forwarders' loop)
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._inflight: set[tuple[str, str, int]] = set()

    async def run_once(self, now: float | None = None) -> int:
        """Register every due visit once and wait for them; returns how many were taken."""
        started = self.dispatch(now)
        await asyncio.gather(*started)
        return len(started)

    def dispatch(self, now: float | None = None) -> "list[asyncio.Task[None]]":
        """Start a registration for every due job the breaker lets through; does not wait."""
        room = self._concurrency - len(self._inflight)
        if self.breaker.state != CLOSED:  # open: nothing goes; after the cooldown, one probe
            room = min(room, self.breaker.ready())
        if room <= 0:
            return []
        started = []
        for job in jobs.take(self.db, jobs.HIS, time.time() if now is None else now, limit=room):
            key = (job.facility, job.device, job.seq)
            if key in self._inflight or not self.breaker.allow():
                continue  # (cannot happen: taken jobs are leased, and room counted the probe)
            self._inflight.add(key)
            started.append(asyncio.ensure_future(self._guarded(job, key)))
        return started

    async def _guarded(self, job: jobs.Job, key: tuple[str, str, int]) -> None:
        try:
            async with self._slots:
                await self._one(job)
        except Exception as exc:  # the store failed mid-way, or a bug: try this job again later
            self.breaker.release()
            log.warning("registration of %s/%s seq %d failed: %s", job.facility, job.device, job.seq, exc)
            jobs.retry(self.db, job, type(exc).__name__, time.time(), self.max_age)
        finally:
            self._inflight.discard(key)
            if self.on_done is not None:
                self.on_done()

    async def _one(self, job: jobs.Job) -> None:
        visit = self._visit(job)
        if visit is None:
            self.breaker.release()
            self._dead(job, "the read's personal fields are gone (retention) or lack a name or birth date")
            return
        try:
            ref = await self.connector.register(visit)
        except HisRejectedError as exc:
            self.breaker.success()  # the HIS answered: it is up, the content is wrong
            self._dead(job, f"the HIS refused the registration: {exc}")
            return
        except HisUnavailableError as exc:
            self.breaker.failure()
            if not jobs.retry(self.db, job, str(exc), time.time(), self.max_age):
                self._died(job, str(exc))
            return
        self.breaker.success()
        jobs.finish(self.db, job, {"insurance": visit.insurance}, time.time(), ref=ref)

    def _visit(self, job: jobs.Job) -> Visit | None:
        fields = personal_fields(self.db, self.keystore, job.facility, job.device, job.seq)
        rows = self.db.query(
            "SELECT ts FROM reads WHERE facility = ? AND device = ? AND seq = ?",
            (job.facility, job.device, job.seq),
        )
        if fields is None or not rows:
            return None
        outcome: dict[str, Any] = {}
        if job.payload is not None:
            where = _where(job.facility, job.device, job.seq)
            outcome = json.loads(self.keystore.open_personal(job.payload, where))
        return visit_of(job, fields, int(rows[0][0]), outcome)

    def _dead(self, job: jobs.Job, why: str) -> None:
        jobs.dead(self.db, job, why, time.time())
        self._died(job, why)

    def _died(self, job: jobs.Job, why: str) -> None:
        log.warning(
            "registration of %s/%s seq %d is a dead letter: %s", job.facility, job.device, job.seq, why
        )
        if self.on_dead is not None:
            self.on_dead(self.connector.name)
