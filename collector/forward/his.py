"""Registration in the hospital information system (HIS): what every connector is given and owes.

After a read's insurance check is final, the collector registers the patient and the visit in the
HIS. The same ``Visit`` goes to whichever connector the facility runs: FHIR R4 (``fhir.py``) or
HL7 v2.5 ADT^A04 over MLLP (``hl7v2.py``). A connector must be idempotent on ``Visit.key``: the
collector may die after the HIS acted and before it recorded so, and then sends the same visit
again; the HIS must still hold one visit (FHIR: conditional update on the Encounter's identifier;
HL7 v2: the message control ID is the key, and the HIS de-duplicates on it).

A connector raises ``HisUnavailableError`` for what may pass (network errors, timeouts, 5xx, 429:
retried with backoff, counted by the circuit breaker) and ``HisRejectedError`` for what will not
(the HIS refused the content: a dead letter at once, with the HIS's own explanation, for IT).
"""

import datetime
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collector.config import HisSettings

# VN Core naming systems (the Ministry of Health's FHIR implementation guide, hl7vn/vn-core-ig).
SID_NATIONAL_ID = "http://fhir.ehealth.gov.vn/core/sid/national_id"  # CCCD, 12 digits
SID_CITIZEN_ID = "http://fhir.ehealth.gov.vn/core/sid/citizen_id"  # the old CMND, 9 or 12 digits
SID_INSURANCE_NUMBER = "http://fhir.ehealth.gov.vn/core/sid/insurance_number"  # BHYT card, 15 chars


class HisError(Exception):
    """Registration in the HIS did not happen."""


class HisUnavailableError(HisError):
    """The HIS could not be reached or failed on its side: try again later."""


class HisRejectedError(HisError):
    """The HIS refused the registration itself: trying again will not help (a dead letter)."""


@dataclass(frozen=True)
class Coverage:
    """The patient's BHYT card as the insurance check found it."""

    card: str  # maThe: the 15-character card number
    code: str  # maKetQua of the check
    valid_from: str | None = None  # ISO dates
    valid_to: str | None = None
    kcbbd: str | None = None  # maDKBD: the facility of initial registration (5 digits)


@dataclass(frozen=True)
class Visit:
    """One patient arriving at one counter: the read, its identity and its insurance outcome."""

    facility: str  # the facility code (5 digits)
    device: str  # the counter's node
    seq: int  # the read's sequence number at that node
    arrived: datetime.datetime  # when the node read the card (aware)
    name: str  # NFC, as on the card
    dob: str  # ISO date, or a year alone (some BHYT cards)
    sex: str | None = None  # "M" / "F"
    address: str | None = None
    cccd: str | None = None  # the 12-digit personal ID
    cmnd: str | None = None  # the old ID card number, when the QR carries it
    coverage: Coverage | None = None  # None: no valid insurance (the counter fell back to the card)
    insurance: str = ""  # the insurance check's Result status: ok / warn / reject / error
    bhyt: str | None = None  # the card number read from the BHYT card itself (its QR)

    @property
    def card(self) -> str | None:
        """The patient's BHYT card number: the one the check confirmed, else the one read."""
        return self.coverage.card if self.coverage is not None else self.bhyt

    @property
    def key(self) -> str:
        """The visit's identity everywhere: one read, one visit, however often it is sent."""
        return f"{self.facility}/{self.device}/{self.seq}"


def mask(text: str, visit: Visit) -> str:
    """``text`` (a HIS's own message, which may echo what it was sent) with the visit's personal
    values, with or without diacritics, and anything ID-shaped replaced by ``***``: fit for a log
    line or a dead letter."""
    values = [visit.name, visit.dob, visit.address, visit.cccd, visit.cmnd, visit.card]
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", visit.dob):
        year, month, day = visit.dob.split("-")
        values.append(f"{day}/{month}/{year}")  # the Vietnamese way of writing it
    values += [_plain(v) for v in (visit.name, visit.address) if v]
    for value in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
    text = re.sub(r"[A-Za-z]{2}[0-9]{13}", "***", text)  # a BHYT card number
    return re.sub(r"[0-9]{9,}", "***", text)  # a CCCD, CMND, BHXH number


def _plain(text: str) -> str:
    """Vietnamese without its diacritics, as many systems write names (đ → d)."""
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return bare.replace("đ", "d").replace("Đ", "D")


class HisConnector(Protocol):
    """What the collector needs of a HIS."""

    name: str  # the destination's name in metrics, logs and the circuit breaker

    async def register(self, visit: Visit) -> str:
        """Register ``visit``; returns the HIS's reference for it (an Encounter id, a message
        control ID). Raises HisUnavailableError or HisRejectedError."""
        ...

    async def aclose(self) -> None: ...


def connect(settings: "HisSettings") -> HisConnector:
    """The connector the facility's [his] settings name."""
    if settings.protocol == "hl7v2":
        from collector.forward.hl7v2 import Hl7v2Connector  # noqa: PLC0415 - only the one in use

        return Hl7v2Connector(settings.host, settings.port, timeout=settings.timeout)
    from collector.forward.fhir import FhirConnector  # noqa: PLC0415

    return FhirConnector(
        settings.url,
        timeout=settings.timeout,
        token=settings.token or None,
        connections=settings.concurrency,
        transaction=None if settings.transaction == "auto" else bool(settings.transaction),
    )
