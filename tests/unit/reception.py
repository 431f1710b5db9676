"""A month at a facility's reception counters, through the real collector, with the simulator's
ground truth of everything it sent.

``Reception`` provisions nodes in a real store (registry, keystore), and everything they send
goes through the real ``Ingest`` with real envelopes: inventories, status births and Last Wills,
heartbeats (fed to the real ``FleetTracker``), and reads of synthetic citizens (sim/citizens.py)
in any document the citizen holds — CCCD, Căn cước, VNeID, the BHYT card (QR) or the card's chip
(NFC) — as ``cccd.qr`` parses them. The collector's clock (``Message.received``) is chosen, so
that a read lands on a known day, hour and month. ``check`` runs the real ``InsuranceRunner``
against the fake BHXH gateway over real HTTP. Nothing personal is invented here: every identity
is a synthetic citizen's.

``truth`` holds what the simulator knows of each read: the citizen's insurance state (what
BHXH must answer: ``citizens.BHXH_CODES``), the document and source, when it arrived, and what
the test made of its check (done, pending, dead, none). The expectations derive from it alone.
"""

import asyncio
import datetime
import itertools
import os
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from cccd import envelope, keys, pseudonym, qr, schema
from collector import fleet
from collector.db import Database, open_db
from collector.forward import jobs
from collector.forward.answer import Answers
from collector.forward.bhxh import BhxhClient
from collector.forward.runner import InsuranceRunner
from collector.ingest import Ingest, Message
from collector.keystore import Keystore
from collector.metrics import Metrics
from collector.registry import Registry
from collector.tracker import FleetTracker
from sim import citizens
from sim.bhxh import BhxhGateway

from .desk import OFFICER

FAC = "38001"
OTHER_FAC = "38002"

# The ground truth's own reading of the insurance states (sim/citizens.py's table): the check
# finds a valid card (insured visit), or BHXH's answer names a card at all (information returned).
INSURED_STATES = frozenset({"valid", "defence", "police", "replaced_expired", "replaced_valid"})
CARD_STATES = INSURED_STATES | {"expired", "withdrawn", "reduced"}

DONE, PENDING, DEAD, NONE = "done", "pending", "dead", "none"


def local(day: datetime.date, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Unix time of a local (UTC+7) wall-clock moment."""
    moment = datetime.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=fleet.FACILITY_TZ)
    return moment.timestamp()


@dataclass
class Truth:
    """One read as the simulator knows it."""

    facility: str
    device: str
    seq: int
    received: float
    doc: str
    src: str
    state: str  # the citizen's insurance state; '' for a read without the identity BHXH needs
    check: str = NONE  # what became of its insurance check: done / pending / dead / none

    @property
    def code(self) -> str:
        return citizens.BHXH_CODES[self.state] if self.check == DONE and self.state else ""

    @property
    def insured(self) -> bool:
        return self.check == DONE and self.state in INSURED_STATES

    @property
    def returned(self) -> bool:
        return self.check == DONE and self.state in CARD_STATES


@dataclass
class Reception:
    url: str
    heartbeat: float = 3600.0
    kek: bytes = bytes(range(32))  # the facility's key-encryption key (a home's ``kek`` file)
    db: Database = field(init=False)
    truth: list[Truth] = field(default_factory=list)
    rejected: list[tuple[str, float, str]] = field(default_factory=list)  # facility, received, reason

    def __post_init__(self) -> None:
        self.db = open_db(self.url)
        self.keystore = Keystore(self.kek)
        self.registry = Registry(self.db, self.keystore)
        self.ingest = Ingest(self.db, self.registry, self.keystore, first_job=jobs.INSURANCE)
        self.unchecked = Ingest(self.db, self.registry, self.keystore)  # a collector without [bhxh]
        self.tracker = FleetTracker(self.db, self.registry, Metrics(), self.heartbeat)
        self.ingest.listeners.append(self.tracker.on_outcomes)
        self.keys: dict[tuple[str, str], keys.DeviceKeys] = {}
        self.seqs: dict[tuple[str, str], int] = {}
        self._unchecked_jobs: list[Truth] = []

    def close(self) -> None:
        self.db.close()

    # --- the nodes --------------------------------------------------------------------------

    def device(
        self,
        device: str,
        site: str,
        created: float,
        readers: Sequence[dict[str, Any]] = (),
        kind: str = "esp32",
        facility: str = FAC,
    ) -> None:
        """Provision a node at ``created``; with readers, it sends its Inventory then."""
        self.keys[(facility, device)] = keys.derive(self.registry.add(facility, device, kind, site, created))
        self.seqs[(facility, device)] = 0
        if readers:
            body = schema.inventory("esp32-s3", list(readers), fw="1.0.0", site=site)
            self._plain(facility, device, "inventory", body, created)

    def online(
        self, device: str, start: float, end: float, boot: int, last_will: bool = True, facility: str = FAC
    ) -> None:
        """The node connects at ``start`` (its birth) and beats every heartbeat until ``end``, when
        its Last Will arrives; without ``last_will`` it just falls silent after its last beat."""
        topic = schema.topic(facility, device, "status")
        messages = [Message(topic, schema.encode("status", schema.status("online", boot, int(start))), start)]
        t = start + self.heartbeat
        while t < end:
            body = schema.telemetry(int(t - start), boot)
            messages.append(
                Message(schema.topic(facility, device, "telemetry"), schema.encode("telemetry", body), t)
            )
            t += self.heartbeat
        if last_will:
            will = schema.encode("status", schema.status("offline", boot, int(start)))
            messages.append(Message(topic, will, end))
        outcomes = self.ingest.handle_batch(messages)
        assert {o.status for o in outcomes} == {"accepted"}

    def _plain(self, facility: str, device: str, kind: str, body: dict[str, Any], at: float) -> None:
        (outcome,) = self.ingest.handle_batch(
            [Message(schema.topic(facility, device, kind), schema.encode(kind, body), at)]
        )
        assert outcome.status == "accepted", outcome.reason

    # --- reads ------------------------------------------------------------------------------

    def scan(
        self,
        device: str,
        person: citizens.Citizen,
        fmt: str,
        at: float,
        *,
        src: str = "qr",
        damage: str | None = None,
        facility: str = FAC,
        checked: bool = True,
    ) -> Truth:
        """``person`` shows ``fmt`` (citizens.FORMATS) at the counter; ``src="nfc"``: the card's
        chip is read instead of its QR code."""
        day = fleet.local_date(at)
        if src == "nfc":
            assert fmt in ("cccd", "cancuoc")
            doc, ident = person.doc, citizens.expected_ident(person, person.doc)
        else:
            scanned = qr.parse(
                citizens.qr_bytes(person, fmt, damage),
                now=(day.year, day.month, day.day),
                source="vneid" if fmt == "vneid" else None,
            )
            doc, ident = scanned.doc, scanned.ident
            assert doc == citizens.expected_doc(fmt)
        secret = self.registry.pseudonym_secret(facility)
        if "cccd" in ident:
            pid = pseudonym.pid(secret, cccd=str(ident["cccd"]))
        else:
            pid = pseudonym.pid(secret, bhxh=str(ident["bhyt"])[-10:])
        return self._read(facility, device, at, src, doc, pid, ident, person.insurance, checked)

    def scan_without_identity(self, device: str, at: float) -> Truth:
        """A read the check cannot make: a document whose name and birth date did not come through."""
        return self._read(FAC, device, at, "qr", "cccd", os.urandom(16), {}, "", True)

    def _read(
        self,
        facility: str,
        device: str,
        at: float,
        src: str,
        doc: str,
        pid: bytes,
        ident: dict[str, Any],
        state: str,
        checked: bool,
    ) -> Truth:
        key = (facility, device)
        self.seqs[key] += 1
        seq = self.seqs[key]
        sealed = self._seal(
            facility, device, seq, schema.read(seq, int(at * 1000), "ntp", src, doc, pid, ident)
        )
        (outcome,) = (self.ingest if checked else self.unchecked).handle_batch(
            [Message(schema.topic(facility, device, "read"), sealed, at)]
        )
        assert outcome.status == "stored", outcome.reason
        truth = Truth(facility, device, seq, at, doc, src, state, NONE)
        self.truth.append(truth)
        if checked:
            self._unchecked_jobs.append(truth)
        return truth

    def _seal(self, facility: str, device: str, seq: int, body: dict[str, Any]) -> bytes:
        k = self.keys[(facility, device)]
        topic = schema.topic(facility, device, "read")
        return envelope.seal(k.up_key, k.up_iv, device.encode(), seq, topic, schema.encode("read", body))

    # --- refused messages ---------------------------------------------------------------------

    def refuse(self, how: str, at: float, facility: str = FAC, device: str = "qr-0001") -> None:
        """A message the collector must refuse: ``tag`` (tampered), ``duplicate`` (a replay),
        ``unknown_kid`` (an unprovisioned node's read), ``unknown_device`` (its status),
        ``too_large``."""
        topic = schema.topic(facility, device, "read")
        if how == "unknown_kid":
            topic = schema.topic(facility, "ghost-01", "read")
            payload = envelope.seal(os.urandom(32), os.urandom(13), b"ghost-01", 1, topic, b"\xa0")
        elif how == "unknown_device":
            topic = schema.topic(facility, "ghost-01", "status")
            payload = schema.encode("status", schema.status("online", 1, int(at)))
        elif how == "too_large":
            payload = b"\x00" * 9000
        else:
            seq = self.seqs[(facility, device)] + 1
            body = schema.read(seq, int(at * 1000), "ntp", "qr", "cccd", os.urandom(16), {})
            payload = self._seal(facility, device, seq, body)
            if how == "tag":
                payload = payload[:-1] + bytes([payload[-1] ^ 1])
            else:
                assert how == "duplicate"
                self.seqs[(facility, device)] = seq
                first = self.ingest.handle_batch([Message(topic, payload, at)])
                assert first[0].status == "stored"
                self.truth.append(Truth(facility, device, seq, at, "cccd", "qr", "", NONE))
                self._unchecked_jobs.append(self.truth[-1])
        (outcome,) = self.ingest.handle_batch([Message(topic, payload, at)])
        assert (outcome.status, outcome.reason) == ("rejected", how)
        self.rejected.append((facility, at, how))

    # --- the insurance checks -----------------------------------------------------------------

    def check(self, gateway: BhxhGateway, outcome: str = DONE) -> None:
        """Run the insurance check of every read not yet checked, with the gateway up (``done``),
        down for good (``dead``: past its age at once) or down for now (``pending``)."""
        gateway.set_outage(outcome != DONE)
        max_age = {DONE: 3600.0, DEAD: -1.0, PENDING: 1e12}[outcome]

        async def go() -> None:
            client = BhxhClient(gateway.url, "bv", "pw", timeout=3.0, attempts=1)
            answers = Answers(self.db, self.registry, self._published)
            try:
                runner = InsuranceRunner(self.db, self.keystore, client, OFFICER, answers, max_age=max_age)
                await runner.run_once()
            finally:
                await client.aclose()

        try:
            asyncio.run(go())
        finally:
            gateway.set_outage(False)
        for truth in self._unchecked_jobs:
            truth.check = outcome if truth.state else DONE  # nothing to ask: rejected at once
        self._unchecked_jobs = []

    async def _published(self, topic: str, payload: bytes) -> None:
        pass

    # --- the expectations ---------------------------------------------------------------------

    def reads_in(self, window: fleet.Interval, facility: str = FAC) -> list[Truth]:
        return [t for t in self.truth if t.facility == facility and window.start <= t.received < window.end]

    def rejects_in(self, window: fleet.Interval, facility: str = FAC) -> dict[str, int]:
        found: dict[str, int] = {}
        for fac, at, reason in self.rejected:
            if fac == facility and window.start <= at < window.end:
                found[reason] = found.get(reason, 0) + 1
        return found


# --- a month ------------------------------------------------------------------------------------

QR_STD = {"type": "qr", "model": "Newland FM430", "std": True}
QR_PLAIN = {"type": "qr", "model": "Generic 2D", "std": False}
NFC_STD = {"type": "nfc", "model": "ACR1252U", "std": True}
# Site names as IT types them: Vietnamese, one decomposed (NFD, as some keyboards send it), one
# that a spreadsheet would take for a formula, one with a table's separator.
SITES = {
    "qr-0001": "Quầy 1 – Khoa Khám bệnh",
    "chip-0002": "Quầy 2 – Tiếp đón BHYT | tầng 1",
    "qr-0003": unicodedata.normalize("NFD", "Phòng khám Nhi – Tầng 2"),
    "qr-0004": "=1+1 Quầy 4 – Khoa Cấp cứu",
    "qr-0005": "Quầy 5 – Khoa Ngoại",
    "qr-0009": "Quầy 9 – Khu Dịch vụ",
}


@dataclass(frozen=True)
class DeviceTruth:
    device: str
    site: str  # NFC
    online: float  # seconds online within the window
    expected: float  # seconds from the window's start (or provisioning) to its end
    qr: int
    qr_std: int
    nfc: int


@dataclass(frozen=True)
class Month:
    year: int
    month: int
    window: fleet.Interval
    now: float  # when the report is made
    devices: tuple[DeviceTruth, ...]  # what the report must list, by device id
    people: tuple[citizens.Citizen, ...]  # everyone who could have come


def a_month(
    r: Reception, gateway: BhxhGateway, people: Sequence[citizens.Citizen], year: int, month: int
) -> Month:
    """A month of traffic at facility 38001 (and a little at 38002), with its ground truth."""
    rng = random.Random(f"{year}-{month}")
    window = fleet.month_window(year, month)
    s, e = window.start, window.end
    days = round((e - s) / 86400)
    first = fleet.local_date(s)
    last = first + datetime.timedelta(days=days - 1)
    h, d = 3600.0, 86400.0

    r.device("qr-0001", SITES["qr-0001"], s - 30 * d, [QR_STD])
    r.device("chip-0002", SITES["chip-0002"], s - 20 * d, [QR_STD, NFC_STD], kind="rpi")
    r.device("qr-0003", SITES["qr-0003"], s + 14 * d + 12 * h, [QR_PLAIN])
    r.device("qr-0004", SITES["qr-0004"], s - 5 * d)  # never seen: no inventory, no presence
    r.device("qr-0005", SITES["qr-0005"], s - 30 * d, [QR_STD])  # revoked on the 2nd
    r.device("qr-0009", SITES["qr-0009"], e + d, [QR_STD])  # provisioned after the month
    r.device("qr-0001", "Quầy 1", s - 30 * d, [QR_STD], facility=OTHER_FAC)

    r.online("qr-0001", s - 3 * h, s + 9 * d + 8 * h, boot=1)
    r.online("qr-0001", s + 11 * d + 9 * h, e + 2 * d, boot=2, last_will=False)
    r.online("chip-0002", s - 10 * d, e + d, boot=7, last_will=False)
    r.online("qr-0003", s + 15 * d + 8 * h, e - 30 * 60, boot=1)

    # the reads: about eight a day at the counters open that day, 7h to 16h
    pool = list(people)
    rng.shuffle(pool)
    for n in range(days):
        day = first + datetime.timedelta(days=n)
        for k in range(8):
            person = pool[(n * 8 + k) % len(pool)]
            fmt = rng.choice(citizens.formats(person))
            counters = ["qr-0001", "chip-0002"] + (["qr-0003"] if n >= 15 else [])
            device = rng.choice(counters)
            src = "nfc" if device == "chip-0002" and fmt == person.doc and rng.random() < 0.6 else "qr"
            damage = rng.choice([None, None, None, None, "crlf", "bom", "mojibake", "doubled"])
            at = local(day, 7 + rng.randrange(9), rng.randrange(60), rng.randrange(60))
            r.scan(device, person, fmt, at, src=src, damage=None if src == "nfc" else damage)
    adult = next(p for p in pool if p.insurance == "valid" and p.vneid)
    r.scan("chip-0002", adult, adult.doc, s)  # the first moment of the month: in it
    r.scan("chip-0002", adult, "vneid", local(last, 23, 30))  # 23:30 on the last day: in it
    r.scan("chip-0002", adult, adult.doc, s - 1)  # the last second of the month before: not in it
    r.scan("chip-0002", adult, adult.doc, e)  # the next month's first moment: not in it
    r.scan("qr-0005", pool[1], citizens.formats(pool[1])[0], s + 3 * h)
    r.scan("qr-0005", pool[2], citizens.formats(pool[2])[0], s + 4 * h)
    r.registry.revoke(FAC, "qr-0005", s + d + 12 * h)
    r.scan("qr-0001", pool[3], citizens.formats(pool[3])[0], s + 2 * d + 9 * h, facility=OTHER_FAC)
    r.scan_without_identity("qr-0001", s + 4 * d + 10 * h)
    for how, at in (
        ("tag", 3),
        ("duplicate", 5),
        ("unknown_kid", 6),
        ("unknown_device", 7),
        ("too_large", 8),
    ):
        r.refuse(how, s + at * d + 10 * h)
    r.refuse("tag", s + 16 * d + 10 * h)
    r.refuse("tag", s - h)  # the month before
    r.refuse("tag", s + 5 * d, facility=OTHER_FAC)
    r.check(gateway)
    # checks that never got an answer (dead letters), and some still pending at the month's end
    for person in pool[10:14]:
        r.scan("qr-0001", person, person.doc, local(first + datetime.timedelta(days=20), 10))
    r.check(gateway, DEAD)
    for person in pool[20:24]:
        r.scan("qr-0003", person, person.doc, local(last, 15))
    r.check(gateway, PENDING)
    for person in pool[30:32]:  # read while the collector ran without [bhxh]: never checked
        r.scan("qr-0001", person, person.doc, local(first + datetime.timedelta(days=6), 11), checked=False)

    nfc = unicodedata.normalize
    return Month(
        year,
        month,
        window,
        e + 5 * d,
        (
            DeviceTruth("chip-0002", nfc("NFC", SITES["chip-0002"]), e - s, e - s, 1, 1, 1),
            DeviceTruth(
                "qr-0001",
                SITES["qr-0001"],
                (9 * d + 8 * h) + (e - (s + 11 * d + 9 * h)),
                e - s,
                1,
                1,
                0,
            ),
            DeviceTruth(
                "qr-0003",
                nfc("NFC", SITES["qr-0003"]),
                (e - 30 * 60) - (s + 15 * d + 8 * h),
                e - (s + 14 * d + 12 * h),
                1,
                0,
                0,
            ),
            DeviceTruth("qr-0004", SITES["qr-0004"], 0.0, e - s, 0, 0, 0),
        ),
        tuple(people),
    )


_stores = itertools.count()


def month_in_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, year: int, month: int
) -> Iterator[tuple[Reception, Month]]:
    """``a_month`` in a fresh store of the kind ``request.param`` names (sqlite, postgresql), the
    fake gateway knowing the people: for a module-scoped fixture whose tests only read it."""
    tmp = tmp_path_factory.mktemp(f"month-{year}-{month}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'collector.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"month_{os.getpid()}_{next(_stores)}")
    people = citizens.population(150, seed=11, today=datetime.date(year, month, 15))
    gateway = BhxhGateway(people, username="bv", password="pw", officers=[(OFFICER.name, OFFICER.cccd)])
    gateway.start()
    r = Reception(url)
    try:
        m = a_month(r, gateway, people, year, month)
        gateway.stop()
        yield r, m
    finally:
        gateway.stop()
        r.close()
