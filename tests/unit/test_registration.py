"""The HIS registration after the insurance check: what the connector is given, and what the
outbox does with each kind of failure. The connector here is a recording stand-in at the seam;
the connectors themselves are tested over real HTTP and MLLP against the fakes of sim/."""

import asyncio
import datetime
from pathlib import Path
from typing import Any

from collector.forward import fhir, hl7v2, jobs
from collector.forward.bhxh import BhxhClient
from collector.forward.breaker import OPEN, CircuitBreaker
from collector.forward.his import HisRejectedError, HisUnavailableError, Visit
from collector.forward.registration import RegistrationRunner, visit_of
from collector.forward.runner import InsuranceRunner
from collector.ingest import purge_personal
from sim.bhxh import BhxhGateway

from .desk import DEV, FAC, OFFICER, Counter


class Recording:
    """A HIS connector that records visits, or fails as told."""

    name = "fhir"

    def __init__(self) -> None:
        self.visits: list[Visit] = []
        self.fail: Exception | None = None
        self.calls = 0

    async def register(self, visit: Visit) -> str:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        self.visits.append(visit)
        return f"Encounter/{len(self.visits)}"

    async def aclose(self) -> None:
        pass


def check(counter: Counter, gw: BhxhGateway, max_age: float = 3600.0, **runner_kw: Any) -> None:
    async def go() -> None:
        client = BhxhClient(gw.url, "bv", "pw", timeout=3.0, attempts=1)
        try:
            runner = InsuranceRunner(
                counter.db,
                counter.keystore,
                client,
                OFFICER,
                counter.answers,
                register=True,
                max_age=max_age,
                **runner_kw,
            )
            await runner.run_once()
        finally:
            await client.aclose()

    asyncio.run(go())


def register(counter: Counter, runner: RegistrationRunner, now: float | None = None) -> int:
    return asyncio.run(runner.run_once(now))


def test_an_insured_visit_reaches_the_his_with_its_card(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    person = next(c for c in people if c.insurance == "valid" and not c.dob_year_only)
    seq = counter.scan(person)
    assert jobs.due(counter.db, jobs.HIS, 10**10) == []  # only once the check is final
    check(counter, gateway)
    his = Recording()
    runner = RegistrationRunner(counter.db, counter.keystore, his)
    assert register(counter, runner) == 1
    (visit,) = his.visits
    assert (visit.facility, visit.device, visit.seq, visit.key) == (FAC, DEV, seq, f"{FAC}/{DEV}/{seq}")
    assert (visit.name, visit.dob, visit.cccd, visit.sex) == (
        person.name,
        person.dob.isoformat(),
        person.cccd,
        person.sex,
    )
    assert person.card is not None and visit.coverage is not None
    assert visit.coverage.card == person.card.number and visit.coverage.code == "000"
    assert visit.coverage.kcbbd == person.card.kcbbd
    assert visit.coverage.valid_from == person.card.valid_from.isoformat()
    assert visit.insurance == "ok" and visit.arrived.utcoffset() is not None
    assert jobs.counts(counter.db, jobs.HIS) == {"queued": 0, "done": 1, "dead": 0}
    assert counter.db.query("SELECT ref FROM jobs WHERE kind = 'his'") == [("Encounter/1",)]
    assert register(counter, runner) == 0  # done is done


def test_a_replaced_card_registers_the_new_card(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    person = next(c for c in people if c.insurance == "replaced_valid")
    counter.scan(person)
    check(counter, gateway)
    his = Recording()
    register(counter, RegistrationRunner(counter.db, counter.keystore, his))
    (visit,) = his.visits
    assert person.card is not None and visit.coverage is not None
    assert visit.coverage.card == person.card.number and visit.coverage.code in ("003", "004")


def test_an_uninsured_visit_is_registered_without_coverage(
    tmp_path: Path, gateway: BhxhGateway, people
) -> None:
    counter = Counter(tmp_path)
    counter.scan(next(c for c in people if c.insurance == "expired"))
    check(counter, gateway)
    his = Recording()
    register(counter, RegistrationRunner(counter.db, counter.keystore, his))
    (visit,) = his.visits
    assert visit.coverage is None and visit.insurance == "reject"


def test_a_dead_check_still_registers_the_visit(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    counter.scan(next(c for c in people if c.insurance == "valid"))
    gateway.set_outage(True)
    check(counter, gateway, max_age=0.0)
    assert jobs.counts(counter.db, jobs.INSURANCE)["dead"] == 1
    his = Recording()
    register(counter, RegistrationRunner(counter.db, counter.keystore, his))
    (visit,) = his.visits
    assert visit.coverage is None and visit.insurance == "error"


def test_without_a_bhxh_check_the_read_goes_straight_to_the_his(tmp_path: Path, people) -> None:
    counter = Counter(tmp_path, first_job=jobs.HIS)
    counter.scan(people[0])
    his = Recording()
    register(counter, RegistrationRunner(counter.db, counter.keystore, his))
    (visit,) = his.visits
    assert visit.coverage is None and visit.insurance == "" and visit.name == people[0].name


def test_every_ended_attempt_tells_the_forwarders_loop(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    """A check or a registration that ends calls ``on_done`` (the loop then looks for work at once,
    not after its idle sleep): registered, failed, refused alike."""
    counter = Counter(tmp_path)
    for person in people[:3]:
        counter.scan(person)
    ended: list[str] = []
    check(counter, gateway, on_done=lambda: ended.append("check"))
    assert ended == ["check"] * 3
    his = Recording()
    runner = RegistrationRunner(counter.db, counter.keystore, his, on_done=lambda: ended.append("his"))
    his.fail = HisUnavailableError("connection refused")
    assert register(counter, runner) == 3
    his.fail = HisRejectedError("no")
    assert register(counter, runner, now=10**10) == 3
    assert ended == ["check"] * 3 + ["his"] * 6


def test_an_unavailable_his_opens_the_circuit_and_the_visits_wait(tmp_path: Path, people) -> None:
    counter = Counter(tmp_path, first_job=jobs.HIS)
    for person in people[:6]:
        counter.scan(person)
    his = Recording()
    his.fail = HisUnavailableError("connection refused")
    breaker = CircuitBreaker("fhir", failures=3, cooldown=3600)
    runner = RegistrationRunner(counter.db, counter.keystore, his, concurrency=1, breaker=breaker)
    for _ in range(5):
        register(counter, runner, now=10**10)
    assert his.calls == 3 and breaker.state == OPEN  # then nothing is sent while it is open
    attempts = sorted(j.attempts for j in jobs.due(counter.db, jobs.HIS, 10**10))
    assert attempts == [0, 0, 0, 1, 1, 1]
    assert counter.db.query("SELECT DISTINCT last_error FROM jobs WHERE attempts = 1") == [
        ("connection refused",)
    ]
    his.fail = None
    breaker.cooldown = 0
    breaker.failure()  # re-open with no cooldown left: the next look sends one probe
    assert register(counter, runner, now=10**10) == 1  # the probe
    while register(counter, runner, now=10**10):
        pass
    assert sorted(v.seq for v in his.visits) == list(range(1, 7))
    assert jobs.counts(counter.db, jobs.HIS)["done"] == 6


def test_a_refused_registration_is_a_dead_letter_at_once(tmp_path: Path, people) -> None:
    counter = Counter(tmp_path, first_job=jobs.HIS)
    counter.scan(people[0])
    his = Recording()
    his.fail = HisRejectedError("Patient.gender: value is not a valid enumeration member")
    dead: list[str] = []
    runner = RegistrationRunner(counter.db, counter.keystore, his, on_dead=dead.append)
    register(counter, runner)
    (letter,) = jobs.dead_letters(counter.db, jobs.HIS)
    assert letter.why.endswith("Patient.gender: value is not a valid enumeration member")
    assert dead == ["fhir"] and runner.breaker.state != OPEN  # the HIS is up: it answered
    assert jobs.replay(counter.db, 0.0, kind=jobs.HIS) == 1
    his.fail = None
    register(counter, runner)
    assert len(his.visits) == 1


def test_a_read_whose_personal_fields_are_purged_is_a_dead_letter(tmp_path: Path, people) -> None:
    counter = Counter(tmp_path, first_job=jobs.HIS)
    counter.scan(people[0])
    assert purge_personal(counter.db, retention_days=0, now=10**10) == 1
    his = Recording()
    register(counter, RegistrationRunner(counter.db, counter.keystore, his))
    assert his.calls == 0 and "retention" in jobs.dead_letters(counter.db)[0].why


def test_the_outcome_a_job_carries_is_sealed(tmp_path: Path, gateway: BhxhGateway, people) -> None:
    counter = Counter(tmp_path)
    person = next(c for c in people if c.insurance == "valid")
    counter.scan(person)
    check(counter, gateway)
    assert person.card is not None
    (payload,) = counter.db.query("SELECT payload FROM jobs WHERE kind = 'his'")[0]
    assert person.card.number.encode() not in bytes(payload)
    dump = b"".join(str(row).encode() for row in counter.db.query("SELECT * FROM jobs"))
    assert person.card.number.encode() not in dump and person.cccd.encode() not in dump


def test_a_bhyt_card_read_identifies_the_patient_even_without_coverage() -> None:
    job = jobs.Job(FAC, DEV, 9, jobs.HIS, 0, 0.0, False)
    fields = {"id": {"bhyt": "DN4797924000001", "name": "Lê Thị Hồng", "dob": "1988", "sex": "F"}}
    visit = visit_of(job, fields, 1_764_000_000_000, {"insurance": "reject", "coverage": None})
    assert visit is not None and visit.coverage is None
    assert (visit.bhyt, visit.card, visit.dob) == ("DN4797924000001", "DN4797924000001", "1988")
    ids = {(i["system"], i["value"]) for i in fhir.patient(visit)["identifier"]}
    assert ids == {("http://fhir.ehealth.gov.vn/core/sid/insurance_number", "DN4797924000001")}
    message = hl7v2.adt_a04(visit, now=datetime.datetime(2026, 11, 22, 8, 0, tzinfo=datetime.UTC))
    assert "DN4797924000001" in message.split("\rPID|")[1].split("\r")[0]
