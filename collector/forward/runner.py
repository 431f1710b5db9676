"""The insurance check of every stored read, and its answer at the counter.

``InsuranceRunner.run_once`` takes the due jobs and checks them concurrently (at most
``concurrency`` at a time): it reads the read's personal fields (decrypted from the store), asks
the BHXH gateway with the personal ID (or the BHYT card number), name and date of birth, and
publishes the verdict as a Result on the device's result topic. When the gateway has not answered
within ``pending_after`` seconds the counter gets ``pending`` at once, then the final answer when
it comes; an answer that must be asked again later (``100``/``101``/``500``, no answer) leaves the
job queued with backoff, and the counter keeps its ``pending``.
"""

import asyncio
import datetime
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from collector.db import Database
from collector.forward import insurance, jobs, registration
from collector.forward.answer import Answers
from collector.forward.bhxh import BhxhClient, GatewayError, Officer
from collector.forward.breaker import CircuitBreaker
from collector.ingest import personal_fields
from collector.keystore import Keystore

log = logging.getLogger("cccd.collector.insurance")

HOLD_LOOK = 0.5  # seconds between looks at held jobs while the circuit's probe is out
MAX_AGE = 3 * 86400.0  # a check still failing after this long is a dead letter


def query_of(fields: dict[str, Any]) -> tuple[str, str, str] | None:
    """(maThe, hoTen, ngaySinh) from a read's identity; None when it lacks what BHXH needs."""
    ident = fields.get("id")
    if not isinstance(ident, dict):
        return None
    ma_the = ident.get("cccd") or ident.get("bhyt")
    name, dob = ident.get("name"), ident.get("dob")
    if not (isinstance(ma_the, str) and isinstance(name, str) and isinstance(dob, str)):
        return None
    if len(dob) == 4:
        return ma_the, name, dob
    try:
        day = datetime.date.fromisoformat(dob)
    except ValueError:
        return None
    return ma_the, name, day.strftime("%d/%m/%Y")


class InsuranceRunner:
    def __init__(
        self,
        db: Database,
        keystore: Keystore,
        client: BhxhClient,
        officer: Officer,
        answers: Answers,
        *,
        concurrency: int = 200,
        pending_after: float = 0.3,
        max_age: float = MAX_AGE,
        on_alert: Callable[[str], None] | None = None,
        register: bool = False,
        breaker: CircuitBreaker | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.keystore = keystore
        self.client = client
        self.officer = officer
        self.answers = answers
        self.pending_after = pending_after
        self.max_age = max_age
        self.on_alert = on_alert
        self.register = register  # queue each checked read's registration in the HIS
        self.breaker = breaker or CircuitBreaker("bhxh")
        self.on_done = on_done  # a check ended: its registration may be due (the forwarders' loop)
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: set[tuple[str, str, int]] = set()
        self.alerts: Counter[str] = Counter()  # codes that need IT (054/055/205): metrics, dashboard

    async def run_once(self, now: float | None = None) -> int:
        """Check every due job once and wait for them; returns how many were taken."""
        started = self.dispatch(now)
        await asyncio.gather(*started)
        return len(started)

    def dispatch(self, now: float | None = None) -> "list[asyncio.Task[None]]":
        """Start a check for every due job not already being checked; does not wait for them."""
        due = jobs.take(self.db, jobs.INSURANCE, time.time() if now is None else now, limit=1000)
        started = []
        for i, job in enumerate(due):
            key = (job.facility, job.device, job.seq)
            if key in self._inflight:
                continue
            if not self.breaker.allow():
                # the gateway keeps failing: no call, but the counter is told "pending" on time
                held = [j for j in due[i:] if (j.facility, j.device, j.seq) not in self._inflight]
                self._inflight.update((j.facility, j.device, j.seq) for j in held)
                started.append(asyncio.ensure_future(self._hold(held, now)))
                break
            self._inflight.add(key)
            task = asyncio.ensure_future(self._guarded(job, key))
            started.append(task)
        return started

    async def _hold(self, held: list[jobs.Job], now: float | None) -> None:
        """Jobs the open circuit keeps from the gateway: "pending" to the counter once it is due,
        then a look again when the circuit lets a probe through. No attempt is counted."""
        moment = time.time() if now is None else now
        reopen = moment + max(self.breaker.retry_at(), HOLD_LOOK)
        try:
            for job in held:
                try:
                    if not job.pending_sent and moment < job.created + self.pending_after:
                        jobs.defer(self.db, job, job.created + self.pending_after, moment)
                        continue
                    await self._pending(job)
                    jobs.defer(self.db, job, reopen, moment)
                except Exception as exc:  # the broker or the store: looked at again on the next round
                    log.warning("could not hold %s/%s seq %d: %s", job.facility, job.device, job.seq, exc)
        finally:
            for job in held:
                self._inflight.discard((job.facility, job.device, job.seq))

    async def _guarded(self, job: jobs.Job, key: tuple[str, str, int]) -> None:
        try:
            await self._one(job)
        except Exception as exc:  # the broker or the store failed mid-way: try this job again later
            self.breaker.release()
            log.warning("insurance check of %s/%s seq %d failed: %s", job.facility, job.device, job.seq, exc)
            if not jobs.retry(self.db, job, type(exc).__name__, time.time(), self.max_age, self._follow(job)):
                log.warning(
                    "insurance check of %s/%s seq %d is a dead letter", job.facility, job.device, job.seq
                )
        finally:
            self._inflight.discard(key)
            if self.on_done is not None:
                self.on_done()

    def _follow(
        self, job: jobs.Job, status: str = insurance.ERROR, coverage: dict[str, str] | None = None
    ) -> jobs.Follow | None:
        """The HIS registration after this check (a dead check: the visit without its insurance)."""
        if not self.register:
            return None
        return registration.follow(self.keystore, job, status, coverage)

    async def _one(self, job: jobs.Job) -> None:
        fields = personal_fields(self.db, self.keystore, job.facility, job.device, job.seq)
        query = query_of(fields) if fields is not None else None
        if query is None:
            self.breaker.release()
            await self._final(job, insurance.Verdict(insurance.REJECT, "", insurance.FALLBACK), {})
            return
        ask = asyncio.ensure_future(self._ask(query))
        # "pending" is due pending_after seconds after the read arrived, however long it queued here
        wait = max(0.0, job.created + self.pending_after - time.time())
        try:
            answer = await asyncio.wait_for(asyncio.shield(ask), wait)
        except TimeoutError:
            await self._pending(job)
            answer = await self._settle(ask)
        except GatewayError as exc:
            answer = {"error": type(exc).__name__}
        await self._decide(job, answer)

    async def _ask(self, query: tuple[str, str, str]) -> dict[str, Any]:
        async with self._slots:
            try:
                answer = await self.client.check(*query, self.officer)
            except GatewayError:
                self.breaker.failure()
                raise
        if insurance.verdict(answer).next == insurance.RETRY:  # 100/101/500: the gateway failed
            self.breaker.failure()
        else:
            self.breaker.success()
        return answer

    async def _settle(self, ask: "asyncio.Future[dict[str, Any]]") -> dict[str, Any]:
        try:
            return await ask
        except GatewayError as exc:
            return {"error": type(exc).__name__}

    async def _decide(self, job: jobs.Job, answer: dict[str, Any]) -> None:
        verdict = insurance.NO_ANSWER if "error" in answer else insurance.verdict(answer)
        if verdict.next in (insurance.DONE, insurance.ALERT):
            if verdict.next == insurance.ALERT:
                self.alerts[verdict.code] += 1
                if self.on_alert is not None:
                    self.on_alert(verdict.code)
                log.error(
                    "BHXH answered %s: the facility's officer or request is misconfigured", verdict.code
                )
            await self._final(job, verdict, answer)
            return
        await self._pending(job)
        why = answer.get("error") or f"maKetQua {verdict.code}"
        if not jobs.retry(self.db, job, str(why), time.time(), self.max_age, self._follow(job)):
            log.warning(
                "insurance check of %s/%s seq %d is a dead letter: %s", job.facility, job.device, job.seq, why
            )

    async def _pending(self, job: jobs.Job) -> None:
        if job.pending_sent:
            return
        await self.answers.send(job.facility, job.device, job.seq, insurance.PENDING, insurance.PENDING_TEXT)
        jobs.mark_pending_sent(self.db, job, time.time())

    async def _final(self, job: jobs.Job, verdict: insurance.Verdict, answer: dict[str, Any]) -> None:
        # What is kept of the answer: the code and the dates, not the names or address it repeats.
        # Sent first, then recorded: a crash in between sends the answer twice, never not at all.
        kept: dict[str, Any] = {}
        for k in ("maKetQua", "gtTheTu", "gtTheDen", "maDKBD", "maTheMoi"):
            if k in answer:
                kept[k] = answer[k]
        await self.answers.send(
            job.facility,
            job.device,
            job.seq,
            verdict.status,
            verdict.text,
            verdict.code or None,
            verdict.valid_to,
        )
        follow = self._follow(job, verdict.status, insurance.coverage_of(answer, verdict))
        jobs.finish(self.db, job, kept, time.time(), follow=follow)
