"""The FHIR connector (collector/forward/fhir.py) against the fake HIS (sim/his.py) over real HTTP."""

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from fhir.resources.R4B.coverage import Coverage as FhirCoverage
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.patient import Patient as FhirPatient

from collector.config import ConfigError, from_dict
from collector.forward import fhir
from collector.forward.fhir import FhirConnector
from collector.forward.his import (
    SID_INSURANCE_NUMBER,
    SID_NATIONAL_ID,
    HisConnector,
    HisError,
    HisRejectedError,
    HisUnavailableError,
    Visit,
    connect,
)
from sim.his import FhirHis

from .his_visits import population_visits

T = TypeVar("T")
VISITS = population_visits(60, seed=5)
INSURED = next(v for v in VISITS if v.coverage is not None and v.cmnd)
UNINSURED = next(v for v in VISITS if v.coverage is None)


@pytest.fixture
def his() -> Iterator[FhirHis]:
    with FhirHis() as server:
        yield server


def run(his: FhirHis, work: Callable[[FhirConnector], Awaitable[T]], **kw: Any) -> T:
    """``work(connector)`` with a connector to ``his``, closed afterwards."""

    async def go() -> T:
        connector = FhirConnector(his.url, timeout=kw.pop("timeout", 5.0), **kw)
        try:
            return await work(connector)
        finally:
            await connector.aclose()

    return asyncio.run(go())


def register(his: FhirHis, *visits: Visit, **kw: Any) -> list[str]:
    async def work(connector: FhirConnector) -> list[str]:
        return [await connector.register(v) for v in visits]

    return run(his, work, **kw)


def failure(his: FhirHis, visit: Visit, **kw: Any) -> HisError:
    async def work(connector: FhirConnector) -> HisError:
        with pytest.raises(HisError) as caught:
            await connector.register(visit)
        return caught.value

    return run(his, work, **kw)


def holdings(his: FhirHis) -> tuple[int, int, int]:
    return his.count("Patient"), his.count("Coverage"), his.count("Encounter")


def assert_no_personal_data(text: str, visit: Visit) -> None:
    values = [visit.name, visit.cccd, visit.cmnd, visit.address, visit.dob]
    if visit.coverage is not None:
        values.append(visit.coverage.card)
    for value in values:
        if value:
            assert value not in text, value


def test_it_is_a_his_connector() -> None:
    connector: HisConnector = FhirConnector("http://127.0.0.1:9/fhir")
    assert connector.name == "fhir"
    asyncio.run(connector.aclose())


def test_a_population_is_registered_once_each(his: FhirHis) -> None:
    refs = register(his, *VISITS)
    insured = sum(v.coverage is not None for v in VISITS)
    assert holdings(his) == (len(VISITS), insured, len(VISITS))
    assert len(set(refs)) == len(VISITS)
    for visit, ref in zip(VISITS, refs, strict=True):
        encounter = his.read("Encounter", ref.removeprefix("Encounter/"))
        assert encounter is not None and ref.startswith("Encounter/")
        FhirEncounter.model_validate(encounter)
        assert encounter["identifier"][0]["value"] == visit.key
        patient_id = encounter["subject"]["reference"].removeprefix("Patient/")
        patient = his.read("Patient", patient_id)
        assert patient is not None
        FhirPatient.model_validate(patient)
        assert {"system": SID_NATIONAL_ID, "value": visit.cccd, "use": "official"} in patient["identifier"]
        covers = his.find("Coverage", SID_INSURANCE_NUMBER, visit.coverage.card) if visit.coverage else []
        assert len(covers) == (visit.coverage is not None)
        for cover in covers:
            FhirCoverage.model_validate(cover)
            assert cover["beneficiary"] == {"reference": f"Patient/{patient_id}"}


def test_the_same_visit_twice_is_one_visit(his: FhirHis) -> None:
    first, second = register(his, INSURED, INSURED)
    assert first == second
    assert holdings(his) == (1, 1, 1)
    assert all(r["meta"]["versionId"] == "1" for r in his.resources("Patient") + his.encounters())
    assert register(his, INSURED) == [first]  # another connector, later
    assert holdings(his) == (1, 1, 1)


def test_a_second_visit_of_the_same_person(his: FhirHis) -> None:
    register(his, INSURED, dataclasses.replace(INSURED, seq=INSURED.seq + 1000), UNINSURED)
    assert holdings(his) == (2, 1, 3)


def test_after_a_crash_between_steps_the_retry_completes_without_duplicates(his: FhirHis) -> None:
    with httpx.Client(base_url=his.url) as client:  # the crashed run did the Patient step only
        response = client.put(
            "Patient",
            params={"identifier": fhir.patient_criteria(INSURED)},
            content=json.dumps(fhir.patient(INSURED)),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 201
        patient_ref = f"Patient/{response.json()['id']}"
        cover = fhir.coverage(INSURED, patient_ref)
        assert cover is not None  # and the next one did the Coverage too
        response = client.put(
            "Coverage",
            params={"identifier": fhir.token(SID_INSURANCE_NUMBER, cover["subscriberId"])},
            content=json.dumps(cover),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 201
    assert holdings(his) == (1, 1, 0)
    (ref,) = register(his, INSURED)
    assert holdings(his) == (1, 1, 1)
    encounter = his.read("Encounter", ref.removeprefix("Encounter/"))
    assert encounter is not None and encounter["subject"]["reference"] == patient_ref


def test_lost_answers_are_retried_into_one_of_each(his: FhirHis) -> None:
    his.set_error_rate(1.0, after=True)  # the HIS writes, the answer is lost
    for _ in range(3):
        assert isinstance(failure(his, INSURED), HisUnavailableError)
    his.set_error_rate(0)
    register(his, INSURED)
    assert holdings(his) == (1, 1, 1)


def test_a_card_patient_gains_the_personal_id(his: FhirHis) -> None:
    card_only = dataclasses.replace(INSURED, cccd=None, cmnd=None, seq=INSURED.seq + 500)
    register(his, card_only, INSURED)
    assert holdings(his) == (1, 1, 2)
    (patient,) = his.resources("Patient")
    systems = {i["system"] for i in patient["identifier"]}
    assert SID_NATIONAL_ID in systems and SID_INSURANCE_NUMBER in systems


def test_duplicates_in_the_his_are_a_dead_letter(his: FhirHis) -> None:
    with httpx.Client(base_url=his.url) as client:
        for _ in range(2):
            body = json.dumps(fhir.patient(INSURED))
            client.post("Patient", content=body, headers={"Content-Type": "application/fhir+json"})
    error = failure(his, INSURED)
    assert isinstance(error, HisRejectedError)
    assert "412" in str(error) and "merge" in str(error)
    assert_no_personal_data(str(error), INSURED)
    assert holdings(his) == (2, 0, 0)


def test_an_invalid_resource_is_rejected_with_the_his_reason(his: FhirHis) -> None:
    wrong = dataclasses.replace(INSURED, dob="1990-02-30")
    error = failure(his, wrong)
    assert isinstance(error, HisRejectedError)
    assert "HTTP 400" in str(error) and "Patient.birthDate" in str(error)
    assert_no_personal_data(str(error), wrong)
    assert holdings(his) == (0, 0, 0)


def test_a_business_rule_is_rejected_with_its_text(his: FhirHis) -> None:
    his.set_reject("Encounter", "Chưa khai báo khoa khám cho quầy này")
    error = failure(his, INSURED)
    assert isinstance(error, HisRejectedError)
    assert str(error) == "Encounter: HTTP 422: business-rule: Chưa khai báo khoa khám cho quầy này"
    assert holdings(his) == (1, 1, 0)
    his.set_reject("Encounter", None)
    register(his, INSURED)
    assert holdings(his) == (1, 1, 1)


def test_what_the_his_echoes_is_masked(his: FhirHis) -> None:
    card = INSURED.coverage.card if INSURED.coverage else ""
    his.set_reject("Patient", f"Bệnh nhân {INSURED.name} (CCCD {INSURED.cccd}, thẻ {card}) bị khóa hồ sơ")
    error = failure(his, INSURED)
    assert isinstance(error, HisRejectedError)
    assert_no_personal_data(str(error), INSURED)
    assert str(error).endswith("bị khóa hồ sơ")


def test_a_long_reason_is_cut(his: FhirHis) -> None:
    his.set_reject("Patient", "Lỗi " * 1000)
    error = failure(his, INSURED)
    assert len(str(error)) < fhir.MAX_REASON + 40 and str(error).endswith("…")


def test_a_visit_without_identifiers_is_rejected_before_sending(his: FhirHis) -> None:
    bare = dataclasses.replace(UNINSURED, cccd=None, cmnd=None)
    assert isinstance(failure(his, bare), HisRejectedError)
    assert his.requests() == 0


@pytest.mark.parametrize("mode", ["refuse", "503"])
def test_an_outage_is_unavailable(his: FhirHis, mode: str) -> None:
    his.set_outage(mode)
    error = failure(his, INSURED)
    assert isinstance(error, HisUnavailableError)
    assert_no_personal_data(str(error), INSURED)
    his.set_outage(False)
    register(his, INSURED)
    assert holdings(his) == (1, 1, 1)


def test_stopped_and_slow_and_failing_his_are_unavailable(his: FhirHis) -> None:
    his.set_latency(0.5)
    error = failure(his, INSURED, timeout=0.1)
    assert isinstance(error, HisUnavailableError) and "in time" in str(error)
    his.set_latency(0)
    his.set_error_rate(1.0)
    error = failure(his, INSURED)
    assert isinstance(error, HisUnavailableError) and "HTTP 500" in str(error)
    his.stop()
    assert isinstance(failure(his, INSURED), HisUnavailableError)


def test_a_wrong_base_url_is_unavailable_not_a_dead_letter(his: FhirHis) -> None:
    async def go() -> None:
        connector = FhirConnector(his.origin + "/not-fhir", timeout=5)
        try:
            with pytest.raises(HisUnavailableError, match="HTTP 404"):
                await connector.register(INSURED)
        finally:
            await connector.aclose()

    asyncio.run(go())
    assert holdings(his) == (0, 0, 0)


def test_the_bearer_token() -> None:
    with FhirHis(token="s3cret") as his:
        error = failure(his, INSURED, token="wrong")
        assert isinstance(error, HisUnavailableError) and "401" in str(error)
        assert "s3cret" not in str(error) and "wrong" not in str(error)
        register(his, INSURED, token="s3cret")
        register(his, UNINSURED, headers={"Authorization": "Bearer s3cret"})
        assert holdings(his) == (2, 1, 2)


def test_a_his_that_answers_without_a_body() -> None:
    with FhirHis(minimal=True) as his:
        (ref,) = register(his, INSURED)
        assert his.read("Encounter", ref.removeprefix("Encounter/")) is not None
        assert holdings(his) == (1, 1, 1)


def test_no_personal_data_in_the_logs(his: FhirHis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    register(his, INSURED)
    his.set_outage("503")
    failure(his, INSURED)
    assert "Encounter" in caplog.text
    assert_no_personal_data(caplog.text, INSURED)


# --- one transaction Bundle a visit ([his] transaction = true) ------------------------------------


def test_in_one_transaction_a_population_is_registered_once_each_in_a_request_each(his: FhirHis) -> None:
    refs = register(his, *VISITS, transaction=True)
    insured = sum(v.coverage is not None for v in VISITS)
    assert holdings(his) == (len(VISITS), insured, len(VISITS))
    assert his.requests("POST") == len(VISITS) and his.requests("PUT") == 0
    for visit, ref in zip(VISITS, refs, strict=True):
        encounter = his.read("Encounter", ref.removeprefix("Encounter/"))
        assert encounter is not None and encounter["identifier"][0]["value"] == visit.key
        FhirEncounter.model_validate(encounter)
        patient_ref = encounter["subject"]["reference"]  # the entry's urn:uuid, resolved by the HIS
        patient = his.read("Patient", patient_ref.removeprefix("Patient/"))
        assert patient is not None
        assert {"system": SID_NATIONAL_ID, "value": visit.cccd, "use": "official"} in patient["identifier"]
        covers = his.find("Coverage", SID_INSURANCE_NUMBER, visit.coverage.card) if visit.coverage else []
        assert [c["beneficiary"] for c in covers] == [{"reference": patient_ref}] * len(covers)
    assert register(his, *VISITS[:5], transaction=True) == refs[:5]  # again: the same visits
    assert register(his, *VISITS[:5]) == refs[:5]  # and by three updates: the same too
    assert holdings(his) == (len(VISITS), insured, len(VISITS))


def test_in_one_transaction_lost_answers_are_retried_into_one_of_each(his: FhirHis) -> None:
    his.set_error_rate(1.0, after=True)
    for _ in range(3):
        assert isinstance(failure(his, INSURED, transaction=True), HisUnavailableError)
    his.set_error_rate(0)
    register(his, INSURED, transaction=True)
    assert holdings(his) == (1, 1, 1)


def test_in_one_transaction_duplicates_in_the_his_are_a_dead_letter(his: FhirHis) -> None:
    with httpx.Client(base_url=his.url) as client:
        for _ in range(2):
            body = json.dumps(fhir.patient(INSURED))
            client.post("Patient", content=body, headers={"Content-Type": "application/fhir+json"})
    error = failure(his, INSURED, transaction=True)
    assert isinstance(error, HisRejectedError)
    assert str(error).startswith("transaction: ") and "HTTP 412" in str(error) and "merge" in str(error)
    assert_no_personal_data(str(error), INSURED)
    assert holdings(his) == (2, 0, 0)


@pytest.mark.parametrize(
    ("bundle", "reason"),
    [
        ({"resourceType": "Bundle", "type": "batch", "entry": []}, "Bundle of type transaction"),
        ({"resourceType": "Bundle", "type": "transaction", "entry": []}, "1 to 100 entries"),
        ({"resourceType": "Patient"}, "Bundle of type transaction"),
        (
            {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE"}}]},
            "conditional updates",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {"resourceType": "Coverage"},
                        "request": {"method": "PUT", "url": "Patient?identifier=x"},
                    }
                ],
            },
            "is not a Patient",
        ),
    ],
)
def test_the_fake_his_refuses_a_transaction_it_does_not_take(his: FhirHis, bundle: Any, reason: str) -> None:
    with httpx.Client(base_url=his.url) as client:
        response = client.post(
            "", content=json.dumps(bundle), headers={"Content-Type": "application/fhir+json"}
        )
    assert response.status_code == 400
    assert reason in response.json()["issue"][0]["diagnostics"]
    assert holdings(his) == (0, 0, 0)


def test_the_his_settings_choose_the_transaction() -> None:
    base = {"collector": {"facilities": ["38001"]}}
    for given, expected in (
        ({}, None),
        ({"transaction": "auto"}, None),
        ({"transaction": True}, True),
        ({"transaction": False}, False),
    ):
        cfg = from_dict({**base, "his": {"protocol": "fhir", "url": "http://his.example/fhir", **given}})
        assert cfg.his is not None
        connector = connect(cfg.his)
        assert isinstance(connector, FhirConnector) and connector.transaction is expected
        asyncio.run(connector.aclose())
    for wrong in ("yes", "Auto", 2):
        with pytest.raises(ConfigError, match=r'his.transaction is .*: use true, false or "auto"'):
            from_dict(
                {**base, "his": {"protocol": "fhir", "url": "http://his.example/fhir", "transaction": wrong}}
            )


# --- transaction = "auto": as the CapabilityStatement declares -----------------------------------


def test_auto_takes_transactions_when_the_his_declares_them(his: FhirHis) -> None:
    register(his, *VISITS[:10], transaction=None)
    assert his.requests("GET", "metadata") == 1  # read once for all the visits
    assert his.requests("POST") == 10 and his.requests("PUT") == 0
    assert holdings(his)[2] == 10


def test_auto_keeps_to_three_updates_when_the_his_does_not_declare_them() -> None:
    with FhirHis(transactions=False) as his:
        refs = register(his, INSURED, UNINSURED, transaction=None)
        assert his.requests("GET", "metadata") == 1
        assert his.requests("POST") == 0 and his.requests("PUT") == 5  # 3 + 2 (no card, no Coverage)
        assert len(refs) == 2 and holdings(his) == (2, 1, 2)
        forced = failure(his, INSURED, transaction=True)  # forced on: every visit would fail alike
        assert isinstance(forced, HisUnavailableError) and "HTTP 405" in str(forced)


def test_auto_looks_again_when_the_statement_could_not_be_read(
    his: FhirHis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def work(connector: FhirConnector) -> None:
        his.set_outage("503")
        with pytest.raises(HisUnavailableError):
            await connector.register(INSURED)  # the look failed, then the updates
        his.set_outage(None)
        await connector.register(INSURED)  # within LOOK_AGAIN_FAILED: three updates, no look
        assert his.requests("PUT") == 1 + 3 and his.requests("POST") == 0  # one answered 503, then 3
        monkeypatch.setattr(fhir, "LOOK_AGAIN_FAILED", 0.0)
        monkeypatch.setattr(connector, "_look_at", 0.0)
        await connector.register(UNINSURED)  # looked again: declared, one transaction
        assert his.requests("POST") == 1 and connector.declared is True

    caplog.set_level(logging.INFO, "cccd.collector.fhir")
    run(his, work, transaction=None)
    assert "could not be read (" in caplog.text or "without a CapabilityStatement" in caplog.text
    assert "declares transactions: one transaction Bundle a visit" in caplog.text
    assert holdings(his) == (2, 1, 2)


@pytest.mark.parametrize(
    "statement, expected",
    [
        (None, None),
        ([], None),
        ({"resourceType": "Patient"}, None),
        ({"resourceType": "CapabilityStatement"}, False),
        ({"resourceType": "CapabilityStatement", "rest": "server"}, False),
        ({"resourceType": "CapabilityStatement", "rest": [None, 1, "x"]}, False),
        (
            {
                "resourceType": "CapabilityStatement",
                "rest": [{"mode": "server", "interaction": "transaction"}],
            },
            False,
        ),
    ],
)
def test_a_hostile_or_empty_statement_declares_nothing(statement: Any, expected: bool | None) -> None:
    assert fhir.takes_transactions(statement) is expected


def _statement(
    mode: str = "server",
    codes: tuple[str, ...] = ("transaction",),
    types: tuple[str, ...] = ("Patient", "Coverage", "Encounter"),
    conditional: Any = True,
) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": mode,
                "interaction": [{"code": c} for c in codes],
                "resource": [{"type": t, "conditionalUpdate": conditional} for t in types],
            }
        ],
    }


def test_a_statement_declares_transactions_only_with_all_that_they_need() -> None:
    assert fhir.takes_transactions(_statement()) is True
    assert fhir.takes_transactions(_statement(mode="client")) is False
    assert fhir.takes_transactions(_statement(codes=("batch", "history-system"))) is False
    assert fhir.takes_transactions(_statement(types=("Patient", "Encounter"))) is False
    assert fhir.takes_transactions(_statement(conditional="true")) is False  # a string is not true
