"""Registration in a FHIR R4 HIS: a Patient, their Coverage (the BHYT card) and the Encounter.

Three conditional updates, each idempotent, so that ``register`` may be repeated from the start
after any failure (a crash after the HIS acted, a lost answer) and the HIS still holds one of each:

1. ``PUT Patient?identifier=<national_id>|<CCCD>,<insurance_number>|<card>,<citizen_id>|<CMND>``
   — whichever identifiers the visit carries, ORed (FHIR search: a comma is "or"). No Patient
   matches: the HIS creates one; one matches (say, registered earlier from a BHYT card alone): it
   is updated, and gains the identifiers it lacked; several match: HTTP 412, a dead letter (the
   HIS holds duplicates of the person, which IT must merge). The update replaces the Patient with
   what the card says (name, birth date, sex, address): the card is the source of truth here.
2. when the check found the card: ``PUT Coverage?identifier=<insurance_number>|<card>``;
3. ``PUT Encounter?identifier=urn:cccd-edge:visit|<facility>/<device>/<seq>``: the visit's key,
   the one thing that makes a second delivery of the same read never a second visit.

The resources follow VN Core's naming systems (collector/forward/his.py; the facility code:
``SID_PROVIDER_CODE`` below). The builders (``patient``, ``coverage``, ``encounter``) are pure
functions; the tests validate what they make with the fhir.resources R4B models, which the
collector itself does not need.

Errors, translated once here (``_check``):

- ``HisUnavailableError``: no answer (connection, timeout), HTTP 5xx, 429, 408, 409 (a version
  conflict: another writer was first), and the 4xx that say nothing about the visit but about
  our configuration or the server — 401/403 (credentials), 404/405 (a wrong base URL, or a
  server without the resource or conditional update), 406/415 (it does not speak FHIR JSON):
  every visit would fail alike, so they wait (the circuit breaker opens, IT sees the HIS down)
  rather than all becoming dead letters; any other status but 2xx and 4xx;
- ``HisRejectedError``: any other 4xx, 412 included, and a success that names no resource (no
  id in the body, no Location).
  Its message is the HIS's own explanation (the OperationOutcome's diagnostics or details), so
  that IT reads the real reason in the dead letter.

Personal data: our messages and log lines name the step, the resource type and the HTTP status,
never a value of the visit. The HIS's explanation is kept because IT needs it, but it may echo
what we sent: before it goes into an exception, every value of the visit that is personal (name,
IDs, card, birth date, address) is masked where it appears, as is any run of 9 or more digits and
anything shaped like a BHYT card number; then it is cut to ``MAX_REASON`` characters. Request URLs
carry identifiers: the HTTP client's errors never hold them (collector/forward/http.py).
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from collector.forward.his import (
    SID_CITIZEN_ID,
    SID_INSURANCE_NUMBER,
    SID_NATIONAL_ID,
    HisRejectedError,
    HisUnavailableError,
    Visit,
    mask,
)
from collector.forward.http import Answer, HttpClient, HttpError, HttpTimeoutError

log = logging.getLogger("cccd.collector.fhir")

# VN Core NamingSystem "provider-code" (SID-Provider-Code, http://fhir.ehealth.gov.vn/core/
# NamingSystem/provider-code): "mã cơ sở khám, chữa bệnh theo ban hành của Bộ Y tế", the 5-digit
# facility code. This URI is the one the IG marks preferred, odd as its name is.
SID_PROVIDER_CODE = "http://fhir.ehealth.gov.vn/core/sid/provider-medical-license-number"
# Ours: the visit's key (facility/device/seq) and the reception counter (facility/device).
SID_VISIT = "urn:cccd-edge:visit"
SID_COUNTER = "urn:cccd-edge:counter"

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
BHXH = "Bảo hiểm xã hội Việt Nam"
FHIR_JSON = "application/fhir+json"
MAX_REASON = 500  # characters of the HIS's explanation kept in a dead letter
MAX_METADATA = 16 << 20  # bytes of a CapabilityStatement (HAPI's lists every resource: ~1 MB)
LOOK_AGAIN = 3600.0  # seconds before the CapabilityStatement is read again (a HIS upgraded)
LOOK_AGAIN_FAILED = 60.0  # ... when it could not be read

_GENDER = {"M": "male", "F": "female"}
_VALID = ("ok", "warn")  # Result statuses of a check that found the card valid


# --- the resources ------------------------------------------------------------------------------


def patient(visit: Visit) -> dict[str, Any]:
    """The Patient as the card shows them. Vietnamese names put the family name first."""
    words = visit.name.split()
    name: dict[str, Any] = {"use": "official", "text": visit.name}
    if words:
        name["family"] = words[0]
    if len(words) > 1:
        name["given"] = words[1:]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {"use": use, "system": system, "value": value} for system, value, use in _identifiers(visit)
        ],
        "active": True,
        "name": [name],
        "birthDate": visit.dob,  # ISO date, or the year alone (FHIR's date allows both)
    }
    if visit.sex in _GENDER:
        resource["gender"] = _GENDER[visit.sex]
    if visit.address:
        resource["address"] = [{"use": "home", "text": visit.address, "country": "VN"}]
    return resource


def _identifiers(visit: Visit) -> list[tuple[str, str, str]]:
    """(system, value, use) of every identifier the visit carries, the strongest first."""
    out: list[tuple[str, str, str]] = []
    if visit.cccd:
        out.append((SID_NATIONAL_ID, visit.cccd, "official"))
    if visit.card:
        out.append((SID_INSURANCE_NUMBER, visit.card, "secondary"))
    if visit.cmnd:
        out.append((SID_CITIZEN_ID, visit.cmnd, "old"))  # the CMND, superseded by the CCCD
    return out


def coverage(visit: Visit, patient_ref: str) -> dict[str, Any] | None:
    """The BHYT card as a Coverage of ``patient_ref`` ("Patient/<id>"); None without a card.

    The facility of initial registration (maDKBD, KCBBĐ) goes in ``network``: R4's definition of
    that element — the insurer's network of providers where the beneficiary is treated at the
    "in-network" rate, other terms applying elsewhere — is what the KCBBĐ is to a BHYT card (the
    đúng tuyến / trái tuyến rate). A core element, so any server keeps it without knowing an
    extension of ours; ``class`` names a plan or a group, which the KCBBĐ is not.
    """
    card = visit.coverage
    if card is None:
        return None
    resource: dict[str, Any] = {
        "resourceType": "Coverage",
        "identifier": [{"system": SID_INSURANCE_NUMBER, "value": card.card}],
        # cancelled: the card exists but the check found it not valid (withdrawn, expired)
        "status": "active" if visit.insurance in _VALID else "cancelled",
        "type": {"coding": [{"system": V3_ACT_CODE, "code": "PUBLICPOL", "display": "public healthcare"}]},
        "subscriberId": card.card,
        "beneficiary": {"reference": patient_ref},
        "relationship": {"coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": "self"}]},
        "payor": [{"type": "Organization", "display": BHXH}],
    }
    period = {k: v for k, v in (("start", card.valid_from), ("end", card.valid_to)) if v}
    if period:
        resource["period"] = period
    if card.kcbbd:
        resource["network"] = card.kcbbd
    return resource


def encounter(visit: Visit, patient_ref: str) -> dict[str, Any]:
    """The visit: arrived at a counter of the facility, ambulatory, identified by its key."""
    arrived = visit.arrived
    if arrived.tzinfo is None:
        raise ValueError("Visit.arrived must be an aware datetime")
    return {
        "resourceType": "Encounter",
        "identifier": [{"use": "official", "system": SID_VISIT, "value": visit.key}],
        "status": "arrived",
        "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": patient_ref},
        "period": {"start": arrived.isoformat(timespec="seconds")},
        "location": [
            {
                "location": {
                    "type": "Location",
                    "identifier": {"system": SID_COUNTER, "value": f"{visit.facility}/{visit.device}"},
                    "display": visit.device,
                }
            }
        ],
        "serviceProvider": {
            "type": "Organization",
            "identifier": {"system": SID_PROVIDER_CODE, "value": visit.facility},
        },
    }


def token(system: str, value: str) -> str:
    """One ``system|value`` of a token search, FHIR-escaped (``\\``, ``,``, ``|``, ``$``)."""
    return f"{_escape(system)}|{_escape(value)}"


def _escape(text: str) -> str:
    return re.sub(r"([\\,|$])", r"\\\1", text)


def patient_criteria(visit: Visit) -> str:
    """The ``identifier`` search that finds the visit's Patient: any of their identifiers."""
    return ",".join(token(system, value) for system, value, _ in _identifiers(visit))


def takes_transactions(statement: Any) -> bool | None:
    """Whether a CapabilityStatement declares what one transaction Bundle a visit needs: the
    ``transaction`` interaction and conditional update of Patient, Coverage and Encounter, in a
    ``server`` rest entry. None when ``statement`` is not a CapabilityStatement at all."""
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        return None
    rests = statement.get("rest")
    for rest in rests if isinstance(rests, list) else ():
        if not isinstance(rest, dict) or rest.get("mode") != "server":
            continue
        if "transaction" not in _codes(rest.get("interaction")):
            continue
        resources = rest.get("resource")
        updatable = {
            r.get("type")
            for r in (resources if isinstance(resources, list) else ())
            if isinstance(r, dict) and r.get("conditionalUpdate") is True
        }
        if {"Patient", "Coverage", "Encounter"} <= updatable:
            return True
    return False


def _codes(interactions: Any) -> set[Any]:
    if not isinstance(interactions, list):
        return set()
    return {i.get("code") for i in interactions if isinstance(i, dict)}


# --- the connector ------------------------------------------------------------------------------


class FhirConnector:
    """Registers visits in a FHIR R4 server at ``base_url`` (e.g. ``https://his.example.vn/fhir``).

    ``token``: a bearer token the HIS asks for; ``headers``: any others (an API key).
    ``connections``: requests in flight at most (``[his] concurrency``).
    ``transaction``: True, one transaction Bundle a visit; False, three conditional updates; None
    (``[his] transaction = "auto"``), as the HIS's CapabilityStatement (``GET [base]/metadata``)
    declares (``takes_transactions``), read on the first registration and every ``LOOK_AGAIN``
    seconds after; while it cannot be read, three updates (every FHIR server takes them, and both
    ways leave the same resources).
    """

    name = "fhir"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        connections: int = 20,
        transaction: bool | None = False,
    ) -> None:
        self.transaction = transaction
        self.declared: bool | None = None  # what the CapabilityStatement said, when it was read
        self._look_at = 0.0  # time.monotonic() of the next read of it
        merged = {"Accept": FHIR_JSON, "Content-Type": f"{FHIR_JSON}; charset=utf-8"}
        merged.update(headers or {})
        if token:
            merged["Authorization"] = f"Bearer {token}"
        self._http = HttpClient(base_url, connections=connections, timeout=timeout, headers=merged)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def register(self, visit: Visit) -> str:
        """Patient, Coverage (when the card is known), Encounter; returns "Encounter/<id>"."""
        criteria = patient_criteria(visit)
        if not criteria:
            raise HisRejectedError("the visit carries no CCCD, CMND or BHYT card to find the patient by")
        if await self.uses_transaction():
            return await self._register_at_once(visit, criteria)
        patient_id = await self._put("Patient", criteria, patient(visit), visit)
        ref = f"Patient/{patient_id}"
        cover = coverage(visit, ref)
        if cover is not None:
            await self._put("Coverage", token(SID_INSURANCE_NUMBER, cover["subscriberId"]), cover, visit)
        encounter_id = await self._put("Encounter", token(SID_VISIT, visit.key), encounter(visit, ref), visit)
        return f"Encounter/{encounter_id}"

    async def uses_transaction(self) -> bool:
        """Whether this visit goes in one transaction Bundle."""
        if self.transaction is not None:
            return self.transaction
        if time.monotonic() >= self._look_at:
            await self._look()
        return bool(self.declared)

    async def _look(self) -> None:
        """Read the CapabilityStatement; the visits meanwhile go as before (one look at a time)."""
        self._look_at = time.monotonic() + LOOK_AGAIN_FAILED
        try:
            answer = await self._http.request("GET", "metadata", max_body=MAX_METADATA)
            declared = takes_transactions(answer.json()) if answer.status == 200 else None
        except (HttpError, ValueError) as exc:
            why = str(exc) if isinstance(exc, HttpError) else "not JSON"
            log.warning("the HIS's CapabilityStatement could not be read (%s): three updates a visit", why)
            return
        if declared is None:
            log.warning(
                "GET metadata answered HTTP %d without a CapabilityStatement: three updates a visit",
                answer.status,
            )
            return
        self._look_at = time.monotonic() + LOOK_AGAIN
        if declared != self.declared:
            how = "one transaction Bundle" if declared else "three conditional updates"
            log.info(
                "the HIS %s transactions: %s a visit", "declares" if declared else "does not declare", how
            )
        self.declared = declared

    async def _send(self, what: str, method: str, url: str, **kwargs: Any) -> Answer:
        """One request; no answer at all is ``HisUnavailableError`` naming ``what``."""
        try:
            return await self._http.request(method, url, **kwargs)
        except HttpTimeoutError:
            raise HisUnavailableError(f"{what}: the HIS did not answer in time") from None
        except HttpError as exc:  # its text never holds the URL
            raise HisUnavailableError(f"{what}: the HIS could not be reached ({exc})") from None

    async def _register_at_once(self, visit: Visit, criteria: str) -> str:
        """The same three conditional updates in one transaction Bundle: one round trip, and the
        HIS applies all or nothing. The Coverage and the Encounter name the Patient by the
        entry's ``fullUrl``, which the HIS replaces with the Patient it matched or created."""
        ref = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SID_VISIT}|{visit.key}|patient"))
        steps = [("Patient", criteria, patient(visit))]
        cover = coverage(visit, ref)
        if cover is not None:
            steps.append(("Coverage", token(SID_INSURANCE_NUMBER, cover["subscriberId"]), cover))
        steps.append(("Encounter", token(SID_VISIT, visit.key), encounter(visit, ref)))
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    **({"fullUrl": ref} if kind == "Patient" else {}),
                    "resource": resource,
                    "request": {"method": "PUT", "url": kind + "?" + urlencode({"identifier": crit})},
                }
                for kind, crit, resource in steps
            ],
        }
        body = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
        response = await self._send("transaction", "POST", "", content=body)
        _check("transaction", response, visit)
        found = _transaction_encounter(response)
        if found is None:
            raise HisRejectedError(
                f"transaction: the HIS answered HTTP {response.status} without the Encounter's id"
            )
        log.debug("Encounter %s: HTTP %d (transaction)", found, response.status)
        return f"Encounter/{found}"

    async def _put(self, kind: str, criteria: str, resource: dict[str, Any], visit: Visit) -> str:
        """One conditional update; the id of the resource the HIS created or updated."""
        body = json.dumps(resource, ensure_ascii=False).encode("utf-8")
        response = await self._send(kind, "PUT", kind, params={"identifier": criteria}, content=body)
        _check(kind, response, visit)
        found = _resource_id(kind, response)
        if found is None:
            raise HisRejectedError(f"{kind}: the HIS answered HTTP {response.status} without the id")
        log.debug("%s %s: HTTP %d", kind, found, response.status)
        return found


# 4xx that are not about the visit's content: configuration, or try again (see the docstring).
_NOT_THE_VISIT = frozenset({401, 403, 404, 405, 406, 408, 409, 415, 429})


def _check(kind: str, response: Answer, visit: Visit) -> None:
    """Raise the HisError an unsuccessful answer means."""
    status = response.status
    if 200 <= status < 300:
        return
    reason = _reason(response, visit)
    what = f"{kind}: HTTP {status}" + (f": {reason}" if reason else "")
    if status == 412:
        what = f"{kind}: several match the identifiers, merge them in the HIS (HTTP 412)"
        raise HisRejectedError(what + (f": {reason}" if reason else ""))
    if 400 <= status < 500 and status not in _NOT_THE_VISIT:
        raise HisRejectedError(what)
    raise HisUnavailableError(what)


def _reason(response: Answer, visit: Visit) -> str:
    """The HIS's explanation: its OperationOutcome's issues, personal values masked, cut short."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in body.get("issue") or ():
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
        code = issue.get("code")
        if isinstance(text, str) and text.strip():
            parts.append(f"{code}: {text.strip()}" if isinstance(code, str) else text.strip())
        elif isinstance(code, str):
            parts.append(code)
    return _cut(mask(" | ".join(parts), visit))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _transaction_encounter(response: Answer) -> str | None:
    """The Encounter's id in a transaction-response Bundle (its last entry's location)."""
    try:
        body = response.json()
    except ValueError:
        return None
    entries = body.get("entry") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries or not isinstance(entries[-1], dict):
        return None
    answer = entries[-1].get("response")
    location = answer.get("location") if isinstance(answer, dict) else None
    found = _LOCATION["Encounter"].search(location) if isinstance(location, str) else None
    return found[1] if found else None


_LOCATION = {
    kind: re.compile(rf"(?:^|/){kind}/([A-Za-z0-9\-.]{{1,64}})(?:/_history/[^/]+)?/?$")
    for kind in ("Patient", "Coverage", "Encounter")
}


def _resource_id(kind: str, response: Answer) -> str | None:
    """The id of the resource an answer is about: its body, else Location / Content-Location."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("resourceType") == kind and isinstance(body.get("id"), str):
        return str(body["id"])
    pattern = _LOCATION[kind]
    for header in ("Location", "Content-Location"):
        found = pattern.search(response.headers.get(header, ""))
        if found:
            return found[1]
    return None
