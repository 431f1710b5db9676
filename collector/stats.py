"""Period statistics over the collector's store: what the monthly Đề án 06 report and the
operators' dashboard show.

Every function is a query over one facility and one window ``[start, end)`` of Unix seconds (a
``fleet.Interval``: ``fleet.month_window(2026, 11)``, ``fleet.day_window(date)``, both in the
facility's time zone, UTC+7). A read belongs to the window of the moment the collector *received*
it: a node's own clock (the read's ``ts``) may be wrong. Only what the store keeps in clear is
read (document kind, source, times, the insurance check's code): never a personal field, never a
pseudonym, so nothing here can carry personal data.

    reads_by_document(db, facility, window)   reads by document (cccd/cancuoc/vneid/bhyt) and source
                                              (qr/nfc: a chip read is an nfc read of a card)
    insurance_outcomes(db, facility, window)  what became of each read's insurance check: the BHXH
                                              code, the Result status, insured or not, by document
    rejects(db, facility, window)             messages refused at ingest (quarantine), by reason
    volume(db, facility, window, bucket)      reads per bucket (a day, an hour...) from the start
    equipment(tracker, facility, window, now) each device's uptime over the window and the readers

Definitions (the figures the seeds track):

- a read is **insured** when its check ended with a Result ``ok`` or ``warn`` *and* the answer
  named the patient's card (a child without a card, 130, is ``warn`` without one);
- **insured by CCCD/VNeID**: an insured read of a document other than the BHYT card
  (``CCCD_DOCS``), the share of seed 000's template (§II.3);
- **insurance information returned** (seed 003's 70 % target): BHXH's final answer carried the
  patient's card (valid, expired, withdrawn, replaced...): the counter saw the insurance. An
  answer without a card (050 "no card found", 130, the officer errors 054/055, 205), a check still
  pending, a dead letter or no check at all returned none;
- **answered**: BHXH gave a final answer, whatever it said (the check is done with a code).

Codes are turned into statuses by ``collector.forward.insurance.verdict``, the one table.

Speed: each query is one aggregate over the window, helped by the index on ``reads (facility,
received)`` (migration 6).
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cccd import schema
from collector import fleet
from collector.db import Database
from collector.forward import insurance, jobs
from collector.tracker import FleetTracker

Window = fleet.Interval  # [start, end), Unix seconds

DAY = 86400.0
HOUR = 3600.0
MAX_BUCKETS = 10_000  # a volume query asks for at most this many buckets

BHYT_DOC = "bhyt"
CCCD_DOCS = tuple(d for d in schema.DOCS if d != BHYT_DOC)  # documents that replace the BHYT card

# What became of a read's insurance check (``CheckCount.check``).
CHECK_DONE = "done"  # final: BHXH's answer, or the read lacked what BHXH needs
CHECK_PENDING = "pending"  # still being asked
CHECK_DEAD = "dead"  # no final answer before the age limit: a dead letter
CHECK_NONE = "none"  # no insurance check: the collector runs without [bhxh]

# The answer's fields that exist only when BHXH named the patient's card (the answer is kept
# without the card number: ``collector.forward.runner`` keeps dates and codes only).
_CARD_FIELDS = ("gtTheTu", "maDKBD", "maTheMoi")


@dataclass(frozen=True)
class Ratio:
    """A share: ``value`` is None when there is nothing to divide by."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ReadCount:
    doc: str  # cccd / cancuoc / vneid / bhyt
    src: str  # qr / nfc (chip)
    reads: int


@dataclass(frozen=True)
class ReadsByDocument:
    rows: tuple[ReadCount, ...]  # sorted by document then source; only combinations that occur

    @property
    def total(self) -> int:
        return sum(r.reads for r in self.rows)

    def by_doc(self) -> dict[str, int]:
        return _sum_by(self.rows, lambda r: r.doc)

    def by_src(self) -> dict[str, int]:
        return _sum_by(self.rows, lambda r: r.src)


def reads_by_document(db: Database, facility: str, window: Window) -> ReadsByDocument:
    """The facility's reads received in the window, by document and source."""
    rows = db.query(
        "SELECT doc, src, COUNT(*) FROM reads WHERE facility = ? AND received >= ? AND received < ?"
        " GROUP BY doc, src",
        (facility, window.start, window.end),
    )
    return ReadsByDocument(tuple(sorted(ReadCount(str(d), str(s), int(n)) for d, s, n in rows)))


# --- insurance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckCount:
    """How many reads of one document and source had one outcome of their insurance check."""

    doc: str
    src: str
    check: str  # CHECK_DONE / CHECK_PENDING / CHECK_DEAD / CHECK_NONE
    code: str  # BHXH's maKetQua of a done check; '' when there is none
    status: str  # the Result status (insurance.OK...); a dead check is ERROR (as the HIS has it),
    #              a pending one PENDING; '' without a check
    card: bool  # BHXH's answer named the patient's card
    reads: int

    @property
    def insured(self) -> bool:
        return self.check == CHECK_DONE and self.card and self.status in (insurance.OK, insurance.WARN)

    @property
    def returned(self) -> bool:
        """Insurance information returned: the final answer carried the patient's card."""
        return self.check == CHECK_DONE and self.card

    @property
    def answered(self) -> bool:
        """BHXH gave a final answer (any code)."""
        return self.check == CHECK_DONE and bool(self.code)


@dataclass(frozen=True)
class InsuranceOutcomes:
    rows: tuple[CheckCount, ...]  # sorted; only combinations that occur

    @property
    def total(self) -> int:
        return sum(r.reads for r in self.rows)

    def by_code(self) -> dict[str, int]:
        """Done checks by maKetQua ('' for a read that lacked what BHXH needs)."""
        return _sum_by((r for r in self.rows if r.check == CHECK_DONE), lambda r: r.code)

    def by_status(self) -> dict[str, int]:
        """Reads by the Result status of their check ('' for reads without a check)."""
        return _sum_by(self.rows, lambda r: r.status)

    def by_check(self) -> dict[str, int]:
        return _sum_by(self.rows, lambda r: r.check)

    def count(self, docs: Iterable[str] = schema.DOCS, *, insured: bool | None = None) -> int:
        """Reads of ``docs``; with ``insured``, only the insured (True) or the others (False)."""
        wanted = set(docs)
        return sum(
            r.reads for r in self.rows if r.doc in wanted and (insured is None or r.insured == insured)
        )

    @property
    def insured(self) -> int:
        return self.count(insured=True)

    @property
    def insured_cccd(self) -> int:
        """Insured reads of a CCCD, Căn cước or VNeID (QR or chip): the BHYT card not needed."""
        return self.count(CCCD_DOCS, insured=True)

    @property
    def insured_bhyt(self) -> int:
        return self.count((BHYT_DOC,), insured=True)

    def cccd_share(self) -> Ratio:
        """Insured reads by CCCD/VNeID over all insured reads (seed 000's template, §II.3)."""
        return Ratio(self.insured_cccd, self.insured)

    def returned(self, docs: Iterable[str] = CCCD_DOCS) -> Ratio:
        """Reads of ``docs`` with insurance information returned, over all reads of ``docs``
        (seed 003: 70 % of the CCCD visits; ``schema.DOCS`` for every read)."""
        wanted = set(docs)
        mine = [r for r in self.rows if r.doc in wanted]
        return Ratio(sum(r.reads for r in mine if r.returned), sum(r.reads for r in mine))

    def answered(self, docs: Iterable[str] = schema.DOCS) -> Ratio:
        """Reads of ``docs`` with a final answer from BHXH, over all reads of ``docs``."""
        wanted = set(docs)
        mine = [r for r in self.rows if r.doc in wanted]
        return Ratio(sum(r.reads for r in mine if r.answered), sum(r.reads for r in mine))


def insurance_outcomes(db: Database, facility: str, window: Window) -> InsuranceOutcomes:
    """What became of the insurance check of each read received in the window."""
    code = _json_text(db, "j.answer", "maKetQua")
    card = " , ".join(f"NULLIF({_json_text(db, 'j.answer', k)}, '')" for k in _CARD_FIELDS)
    rows = db.query(
        f"SELECT r.doc, r.src, j.state, {code}, CASE WHEN COALESCE({card}) IS NULL THEN 0 ELSE 1 END,"
        " COUNT(*) FROM reads r LEFT JOIN jobs j ON j.facility = r.facility AND j.device = r.device"
        " AND j.seq = r.seq AND j.kind = ?"
        " WHERE r.facility = ? AND r.received >= ? AND r.received < ? GROUP BY 1, 2, 3, 4, 5",
        (jobs.INSURANCE, facility, window.start, window.end),
    )
    found: Counter[tuple[str, str, str, str, str, bool]] = Counter()
    for doc, src, state, answer_code, has_card, n in rows:
        check, status, the_code = _outcome(state, answer_code)
        found[(str(doc), str(src), check, the_code, status, bool(has_card))] += int(n)
    return InsuranceOutcomes(tuple(CheckCount(*key, n) for key, n in sorted(found.items())))


def _outcome(state: str | None, code: object) -> tuple[str, str, str]:
    """(check, status, code) of a read's insurance job."""
    if state is None:
        return CHECK_NONE, "", ""
    if state == jobs.QUEUED:
        return CHECK_PENDING, insurance.PENDING, ""
    if state == jobs.DEAD:
        return CHECK_DEAD, insurance.ERROR, ""
    text = "" if code is None else str(code).strip()
    if not text:  # the read lacked what BHXH needs: the runner told the counter "reject" unasked
        return CHECK_DONE, insurance.REJECT, ""
    return CHECK_DONE, insurance.verdict({"maKetQua": text}).status, text


# --- rejects ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectCount:
    reason: str  # the ingest's reason code (docs/FACILITY.md): tag, duplicate, unknown_kid...
    messages: int


def rejects(db: Database, facility: str, window: Window) -> tuple[RejectCount, ...]:
    """Messages on the facility's topics refused at ingest in the window, by reason, most first.
    (A message whose topic names no facility cannot be counted for one.)"""
    prefix = _like_escape(f"{schema.PREFIX}{facility}/") + "%"
    rows = db.query(
        "SELECT reason, COUNT(*) FROM quarantine WHERE received >= ? AND received < ?"
        " AND topic LIKE ? ESCAPE '\\' GROUP BY reason",
        (window.start, window.end, prefix),
    )
    return tuple(
        sorted((RejectCount(str(r), int(n)) for r, n in rows), key=lambda c: (-c.messages, c.reason))
    )


# --- volume -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start: float
    end: float  # the window's end for the last bucket
    reads: int


def volume(db: Database, facility: str, window: Window, bucket: float = DAY) -> tuple[Bucket, ...]:
    """Reads per bucket of ``bucket`` seconds from the window's start, every bucket listed (zero
    included); the last one ends with the window. Days from a local midnight are local days
    (Viet Nam keeps UTC+7 all year)."""
    if not bucket > 0 or math.isinf(bucket):
        raise ValueError("bucket must be a positive number of seconds")
    span = max(0.0, window.end - window.start)
    n = math.ceil(span / bucket)
    if n > MAX_BUCKETS:
        raise ValueError(f"{n} buckets: at most {MAX_BUCKETS}, choose a larger bucket")
    rows = db.query(
        f"SELECT {_floor(db, '(received - ?) / ?')}, COUNT(*) FROM reads"
        " WHERE facility = ? AND received >= ? AND received < ? GROUP BY 1",
        (window.start, bucket, facility, window.start, window.end),
    )
    counts = {int(i): int(c) for i, c in rows}
    return tuple(
        Bucket(window.start + i * bucket, min(window.end, window.start + (i + 1) * bucket), counts.get(i, 0))
        for i in range(n)
    )


# --- equipment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceUptime:
    """One device over the window: seconds online and seconds it was expected to be (from the
    window's start, or its provisioning if later, to the window's end or now if earlier)."""

    device: str
    site: str
    kind: str
    state: str  # now: online / offline / never_seen
    readers: tuple[fleet.Reader, ...]  # from its latest Inventory
    online: float
    expected: float

    @property
    def uptime(self) -> float:
        return self.online / self.expected if self.expected > 0 else 0.0


@dataclass(frozen=True)
class Equipment:
    """The facility's devices over a window and their readers (QR, chip, meeting the standard)."""

    facility: str
    devices: tuple[DeviceUptime, ...]
    qr_readers: int
    qr_standard: int  # QR readers meeting the Ministry's standard (seed 000's template)
    chip_readers: int
    standard_readers: int  # readers of any type meeting the standard

    @property
    def uptime(self) -> float | None:
        """Seconds online over seconds expected, all devices together; None without any."""
        expected = sum(d.expected for d in self.devices)
        return sum(d.online for d in self.devices) / expected if expected > 0 else None


def equipment(tracker: FleetTracker, facility: str, window: Window, now: float) -> Equipment:
    """The facility's provisioned, active devices over the window, with their uptime (presence
    intervals clipped to the window, which ends at ``now`` at the latest) and the readers of
    their latest Inventory. A device provisioned after the window (or ``now``) is left out; one
    provisioned within it is expected from then on. Call ``tracker.presence.tick(now)`` first, as
    ``cccd-edge collector fleet`` does, so that silent devices count as offline."""
    created = {d.device: d.created for d in tracker.registry.devices(facility)}
    rows = [r for r in tracker.snapshot(now).devices if r.facility == facility]
    until = min(window.end, now)
    kept: list[fleet.DeviceRow] = []
    devices: list[DeviceUptime] = []
    for row in rows:
        since = max(window.start, created.get(row.device, window.start))
        if since >= until:
            continue
        expected = max(0.0, until - since)
        intervals = tracker.presence.intervals((facility, row.device), now)
        online = fleet.uptime(intervals, since, until) * expected
        kept.append(row)
        devices.append(DeviceUptime(row.device, row.site, row.kind, row.state, row.readers, online, expected))
    summary = fleet.facility_summaries(kept)
    return Equipment(
        facility=facility,
        devices=tuple(devices),
        qr_readers=summary[0].qr_readers if summary else 0,
        qr_standard=sum(1 for r in kept for x in r.readers if x.type == fleet.READER_QR and x.std),
        chip_readers=summary[0].chip_readers if summary else 0,
        standard_readers=summary[0].standard_readers if summary else 0,
    )


# --- helpers ----------------------------------------------------------------------------------


class _Counted(Protocol):
    @property
    def reads(self) -> int: ...


_C = TypeVar("_C", bound=_Counted)


def _sum_by(rows: Iterable[_C], key: Callable[[_C], str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        k = key(row)
        out[k] = out.get(k, 0) + row.reads
    return out


def _json_text(db: Database, column: str, key: str) -> str:
    """SQL for the text of ``key`` in the JSON object of ``column`` (NULL when absent or null)."""
    if db.dialect == "postgresql":
        return f"(CAST({column} AS json) ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def _floor(db: Database, expression: str) -> str:
    """SQL for the integer part of a non-negative ``expression`` (PostgreSQL's CAST rounds)."""
    if db.dialect == "postgresql":
        return f"FLOOR({expression})"
    return f"CAST({expression} AS INTEGER)"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
