"""A stored read's insurance check and its answer at the counter, against the fake BHXH gateway
over real HTTP: the Result is sealed for the device and opens with its down key."""

import asyncio
import multiprocessing
from pathlib import Path

from collector.forward import jobs
from collector.forward.answer import RESERVE, Answers
from collector.forward.bhxh import BhxhClient, Officer
from collector.forward.breaker import OPEN, CircuitBreaker
from collector.forward.runner import InsuranceRunner
from collector.forward.service import NewWork, _next_round, listen
from collector.metrics import Metrics
from sim.bhxh import BhxhGateway

from .desk import DEV, FAC, OFFICER, Counter


def run(counter: Counter, gw: BhxhGateway, pending_after: float = 5.0, now: float | None = None) -> int:
    async def go() -> int:
        client = BhxhClient(gw.url, "bv", "pw", timeout=3.0, attempts=1)
        try:
            runner = InsuranceRunner(
                counter.db, counter.keystore, client, OFFICER, counter.answers, pending_after=pending_after
            )
            return await runner.run_once(now)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_an_insured_patient_gets_ok_at_the_counter(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    person = next(c for c in people if c.insurance == "valid")
    seq = counter.scan(person)
    assert run(counter, gateway) == 1
    ((_piv, result),) = counter.results()
    assert result["seq"] == seq and result["status"] == "ok" and result["code"] == "000"
    assert str(result["text"]).startswith("Thẻ BHYT hợp lệ")
    assert jobs.count(counter.db, jobs.DONE) == 1
    assert run(counter, gateway) == 0  # done is done: nothing is checked or sent twice


def test_each_insurance_state_reaches_the_counter(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    expected = {
        "valid": "ok",
        "expired": "reject",
        "none": "reject",
        "replaced_valid": "warn",
        "withdrawn": "reject",
    }
    seqs = {}
    for state in expected:
        person = next((c for c in people if c.insurance == state), None)
        if person is not None:
            seqs[counter.scan(person)] = state
    run(counter, gateway)
    got = {r["seq"]: r["status"] for _p, r in counter.results()}
    assert {seq: expected[state] for seq, state in seqs.items()} == got


def test_a_slow_gateway_gives_pending_first_then_the_answer(
    tmp_path: Path, gateway: BhxhGateway, people
) -> None:
    counter = Counter(tmp_path)
    counter.scan(next(c for c in people if c.insurance == "valid"))
    gateway.set_latency(0.4)
    run(counter, gateway, pending_after=0.1)
    (p1, first), (p2, second) = counter.results()
    assert first["status"] == "pending" and second["status"] == "ok" and p2 > p1


def test_an_outage_leaves_pending_and_the_answer_comes_later(
    tmp_path: Path, gateway: BhxhGateway, people
) -> None:
    counter = Counter(tmp_path)
    counter.scan(next(c for c in people if c.insurance == "valid"))
    gateway.set_outage(True)
    run(counter, gateway)
    assert [r["status"] for _p, r in counter.results()] == ["pending"]
    assert jobs.count(counter.db, jobs.QUEUED) == 1
    gateway.set_outage(False)
    assert run(counter, gateway) == 0  # not due yet: backoff
    run(counter, gateway, now=10**10)
    assert [r["status"] for _p, r in counter.results()] == ["pending", "ok"]
    assert jobs.count(counter.db, jobs.DONE) == 1


def test_downlink_sequence_numbers_are_never_reused_across_restarts(tmp_path: Path) -> None:
    counter = Counter(tmp_path)
    for _ in range(3):
        asyncio.run(counter.answers.send(FAC, DEV, 1, "ok", "a"))
    again = Answers(counter.db, counter.registry, counter.publish)
    asyncio.run(again.send(FAC, DEV, 1, "ok", "b"))
    pivs = [p for p, _r in counter.results()]
    assert pivs[:3] == [0, 1, 2] and pivs[3] == RESERVE


def test_a_check_failing_past_its_age_is_a_dead_letter(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    counter.scan(next(c for c in people if c.insurance == "valid"))
    gateway.set_outage(True)

    async def go() -> None:
        client = BhxhClient(gateway.url, "bv", "pw", timeout=3.0, attempts=1)
        try:
            runner = InsuranceRunner(
                counter.db, counter.keystore, client, OFFICER, counter.answers, max_age=0.0
            )
            await runner.run_once()
        finally:
            await client.aclose()

    asyncio.run(go())
    assert jobs.count(counter.db, jobs.DEAD) == 1
    assert [r["status"] for _p, r in counter.results()] == ["pending"]


def test_a_wrong_officer_is_an_alert_for_it_and_an_error_at_the_counter(
    tmp_path: Path, gateway: BhxhGateway, people
) -> None:
    counter = Counter(tmp_path)
    counter.scan(next(c for c in people if c.insurance == "valid"))
    alerts: list[str] = []
    metrics = Metrics()

    async def go() -> None:
        client = BhxhClient(gateway.url, "bv", "pw", timeout=3.0, attempts=1)
        try:
            stranger = Officer("Phạm Thị Hoa", "001185000999")  # not registered for the facility
            runner = InsuranceRunner(
                counter.db,
                counter.keystore,
                client,
                stranger,
                counter.answers,
                on_alert=lambda code: (alerts.append(code), metrics.alert(code)),
            )
            await runner.run_once()
        finally:
            await client.aclose()

    asyncio.run(go())
    assert alerts == ["054"]
    assert [(r["status"], r["code"]) for _p, r in counter.results()] == [("error", "054")]
    metrics.jobs(jobs.INSURANCE, jobs.counts(counter.db, jobs.INSURANCE))
    text = metrics.render().decode()
    assert 'cccd_bhxh_alerts_total{code="054"} 1.0' in text
    assert 'cccd_jobs{kind="insurance",state="done"} 1.0' in text
    assert 'cccd_jobs{kind="insurance",state="dead"} 0.0' in text


def test_an_open_circuit_answers_pending_at_once_without_asking_the_gateway(
    tmp_path: Path, gateway: BhxhGateway, people
) -> None:
    counter = Counter(tmp_path)
    insured = [c for c in people if c.insurance == "valid"]
    counter.scan(insured[0])
    gateway.set_outage(True)
    breaker = CircuitBreaker("bhxh", failures=1, cooldown=3600)

    async def go() -> None:
        client = BhxhClient(gateway.url, "bv", "pw", timeout=3.0, attempts=1)
        try:
            runner = InsuranceRunner(
                counter.db,
                counter.keystore,
                client,
                OFFICER,
                counter.answers,
                pending_after=0.0,
                breaker=breaker,
            )
            await runner.run_once()
            assert breaker.state == OPEN
            gateway.set_outage(False)  # up again, but the circuit does not know yet
            counter.scan(insured[1])
            counter.scan(insured[2])
            await runner.run_once()
        finally:
            await client.aclose()

    asyncio.run(go())
    assert [(p, r["status"]) for p, r in counter.results()] == [
        (0, "pending"),
        (1, "pending"),
        (2, "pending"),
    ]
    assert sorted(j.attempts for j in jobs.due(counter.db, jobs.INSURANCE, 10**10)) == [0, 0, 1]
    assert gateway.count("check") == 0  # nothing reached the gateway while the circuit was open


def test_the_forwarders_look_again_as_soon_as_an_attempt_ends(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("collector.forward.service.IDLE", 3600.0)  # never, unless woken

    async def go() -> bool:
        ended = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, ended.set)  # an attempt ends meanwhile
        await asyncio.wait_for(_next_round(ended), 30)
        return ended.is_set()

    assert asyncio.run(go()) is False  # woken, and ready for the next end


def test_the_worker_tells_the_forwarders_of_new_reads_without_ever_waiting() -> None:
    told, teller = multiprocessing.Pipe(duplex=False)
    new_work = NewWork(teller)
    for _ in range(200_000):  # far more than the pipe holds: never blocks, never raises
        new_work.tell()

    async def go() -> tuple[int, int]:
        heard: list[int] = []
        stop = listen(told, lambda: heard.append(1))
        await asyncio.sleep(0.05)
        before = len(heard)  # all the words waiting: heard, a few times at most
        new_work.tell()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(heard) > before:
                break
        after = len(heard)
        new_work.close()  # the worker's end closes: no more calls, no busy loop on EOF
        await asyncio.sleep(0.05)
        assert len(heard) == after
        stop()
        return before, after

    before, after = asyncio.run(go())
    assert 1 <= before <= 5 and after == before + 1
    told.close()
    new_work.tell()  # the reader gone: nothing raised either
