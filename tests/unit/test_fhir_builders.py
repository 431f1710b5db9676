"""The FHIR resources the connector sends (collector/forward/fhir.py), validated with the R4B models."""

import dataclasses
import datetime
from typing import Any

import pytest
from fhir.resources.R4B.coverage import Coverage as FhirCoverage
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.patient import Patient as FhirPatient

from collector.forward import fhir, his
from collector.forward.his import SID_CITIZEN_ID, SID_INSURANCE_NUMBER, SID_NATIONAL_ID, Coverage, Visit

from .his_visits import ARRIVED, population_visits

VISITS = population_visits(200)
CARD = Coverage(
    card="DN4797900000001", code="000", valid_from="2025-01-01", valid_to="2025-12-31", kcbbd="79014"
)
ONE = Visit(
    facility="79014",
    device="quay-2",
    seq=41,
    arrived=ARRIVED,
    name="Nguyễn Thị Minh Khai",
    dob="1990-05-17",
    sex="F",
    address="Số 1 đường Hoa Sen, Phường 1, Quận 3, Thành phố Hồ Chí Minh",
    cccd="079190000001",
    cmnd="123456789",
    coverage=CARD,
    insurance="ok",
)


def _systems(resource: dict[str, Any]) -> dict[str, str]:
    return {i["system"]: i["value"] for i in resource["identifier"]}


@pytest.mark.parametrize("visit", VISITS, ids=lambda v: f"{v.seq}-{v.insurance}")
def test_every_resource_of_the_synthetic_population_validates(visit: Visit) -> None:
    patient = fhir.patient(visit)
    FhirPatient.model_validate(patient)
    FhirEncounter.model_validate(fhir.encounter(visit, "Patient/7"))
    cover = fhir.coverage(visit, "Patient/7")
    assert (cover is None) == (visit.coverage is None)
    if cover is not None:
        FhirCoverage.model_validate(cover)
    assert _systems(patient)[SID_NATIONAL_ID] == visit.cccd
    assert patient["birthDate"] == visit.dob


def test_the_population_has_what_the_builders_must_handle() -> None:
    assert any(len(v.dob) == 4 for v in VISITS)  # a year of birth alone
    assert any(v.cmnd for v in VISITS) and any(not v.cmnd for v in VISITS)
    assert any(v.coverage is None for v in VISITS)
    assert any(v.coverage is not None and v.coverage.valid_to is None for v in VISITS)  # open-ended
    assert {v.insurance for v in VISITS} == {"ok", "warn", "reject"}


def test_patient() -> None:
    patient = fhir.patient(ONE)
    assert patient["name"] == [
        {
            "use": "official",
            "text": "Nguyễn Thị Minh Khai",
            "family": "Nguyễn",
            "given": ["Thị", "Minh", "Khai"],
        }
    ]
    assert patient["gender"] == "female"
    assert patient["birthDate"] == "1990-05-17"
    assert patient["address"][0]["text"] == ONE.address
    assert _systems(patient) == {
        SID_NATIONAL_ID: "079190000001",
        SID_INSURANCE_NUMBER: "DN4797900000001",
        SID_CITIZEN_ID: "123456789",
    }
    male = fhir.patient(dataclasses.replace(ONE, sex="M", name="Lò", address=None, coverage=None, cmnd=None))
    assert male["gender"] == "male"
    assert male["name"][0] == {"use": "official", "text": "Lò", "family": "Lò"}
    assert "address" not in male
    assert _systems(male) == {SID_NATIONAL_ID: "079190000001"}
    assert "gender" not in fhir.patient(dataclasses.replace(ONE, sex=None))
    year = fhir.patient(dataclasses.replace(ONE, dob="1950"))
    assert year["birthDate"] == "1950"
    FhirPatient.model_validate(year)


def test_coverage() -> None:
    cover = fhir.coverage(ONE, "Patient/12")
    assert cover is not None
    FhirCoverage.model_validate(cover)
    assert cover["identifier"] == [{"system": SID_INSURANCE_NUMBER, "value": "DN4797900000001"}]
    assert cover["subscriberId"] == "DN4797900000001"
    assert cover["status"] == "active"
    assert cover["beneficiary"] == {"reference": "Patient/12"}
    assert cover["payor"][0]["display"] == "Bảo hiểm xã hội Việt Nam"
    assert cover["period"] == {"start": "2025-01-01", "end": "2025-12-31"}
    assert cover["network"] == "79014"
    warned = fhir.coverage(dataclasses.replace(ONE, insurance="warn"), "Patient/1")
    assert warned is not None and warned["status"] == "active"
    rejected = fhir.coverage(dataclasses.replace(ONE, insurance="reject"), "Patient/1")
    assert rejected is not None and rejected["status"] == "cancelled"
    bare = fhir.coverage(
        dataclasses.replace(ONE, coverage=Coverage(card="DN4797900000001", code="000")), "Patient/1"
    )
    assert bare is not None and "period" not in bare and "network" not in bare
    FhirCoverage.model_validate(bare)
    assert fhir.coverage(dataclasses.replace(ONE, coverage=None), "Patient/1") is None


def test_encounter() -> None:
    enc = fhir.encounter(ONE, "Patient/12")
    FhirEncounter.model_validate(enc)
    assert enc["identifier"] == [{"use": "official", "system": fhir.SID_VISIT, "value": "79014/quay-2/41"}]
    assert enc["status"] == "arrived"
    assert enc["class"]["code"] == "AMB" and enc["class"]["system"].endswith("v3-ActCode")
    assert enc["subject"] == {"reference": "Patient/12"}
    assert enc["period"] == {"start": "2025-03-03T08:15:30+07:00"}
    assert enc["serviceProvider"]["identifier"] == {"system": fhir.SID_PROVIDER_CODE, "value": "79014"}
    assert enc["location"][0]["location"]["display"] == "quay-2"
    with pytest.raises(ValueError, match="aware"):
        fhir.encounter(dataclasses.replace(ONE, arrived=datetime.datetime(2025, 3, 3, 8, 0)), "Patient/1")


def test_search_tokens_are_escaped() -> None:
    assert fhir.token("urn:x", "a,b|c$d\\e") == "urn:x|a\\,b\\|c\\$d\\\\e"
    assert fhir.patient_criteria(ONE) == (
        f"{SID_NATIONAL_ID}|079190000001,{SID_INSURANCE_NUMBER}|DN4797900000001,{SID_CITIZEN_ID}|123456789"
    )
    assert fhir.patient_criteria(dataclasses.replace(ONE, cccd=None, cmnd=None, coverage=None)) == ""


def test_mask_hides_what_the_his_may_echo() -> None:
    text = (
        "Patient NGUYỄN THỊ MINH KHAI (Nguyen Thi Minh Khai), born 1990-05-17 (17/05/1990), "
        "id 079190000001, "
        "card DN4797900000001, other card GD4797900000099, BHXH 7900000099, at Số 1 đường Hoa Sen, "
        "Phường 1, Quận 3, Thành phố Hồ Chí Minh: the birthDate is in the future"
    )
    masked = his.mask(text, ONE)
    for secret in (
        "NGUYỄN",
        "Nguyen",
        "1990-05-17",
        "17/05/1990",
        "079190000001",
        "DN479",
        "GD479",
        "7900000099",
        "Hoa Sen",
    ):
        assert secret not in masked, secret
    assert masked.endswith("the birthDate is in the future")
