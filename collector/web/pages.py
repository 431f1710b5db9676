"""What each page of the dashboard shows, read from the collector's store.

Plain data for the templates, built from the collector's own functions: the fleet from
``FleetTracker.snapshot`` (as ``cccd-edge collector fleet`` builds it), the dead letters from
``forward.jobs.dead_letters``, read volume and outcomes from ``collector.stats`` (the figures of
the monthly report, over today and the last 30 days). No personal data: the store keeps the
reads' personal fields encrypted and the dashboard never opens them; the reasons of dead letters
are already masked by the connectors that wrote them.
"""

import datetime
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from collector import fleet, stats
from collector.db import Database
from collector.forward import jobs
from collector.metrics import Metrics
from collector.registry import Registry
from collector.tracker import FleetTracker

log = logging.getLogger("cccd.web")

WINDOW_DAYS = 30  # the fleet's long uptime window, and the volume page's
DEAD_LETTERS_SHOWN = 200
BHXH_ALERT_DAYS = 7  # how far back the BHXH configuration alerts look
BHXH_CONFIG_CODES = ("054", "055")  # maKetQua: the officer identity in [bhxh] is wrong


def read_only(db: Database) -> None:
    """Refuse every write on this connection: the dashboard only reads the collector's store."""
    with db.lock:
        if db.dialect == "sqlite":
            db.execute("PRAGMA query_only = ON")
        else:
            db.execute("SET default_transaction_read_only = on")
            db.conn.commit()


class Store:
    """The collector's store as the dashboard reads it, one page at a time."""

    def __init__(
        self, db: Database, registry: Registry, heartbeat: float, facilities: Iterable[str] = ()
    ) -> None:
        self.db = db
        self.registry = registry
        self.heartbeat = heartbeat
        self.configured = tuple(facilities)  # the collector's [collector] facilities
        self._metrics = Metrics()  # FleetTracker wants one; the dashboard's is never scraped

    @contextmanager
    def reading(self) -> Iterator[Database]:
        """The store for one page: others wait, and the read transaction ends with the page (on
        PostgreSQL it would otherwise stay open and show the same snapshot forever)."""
        with self.db.lock:
            try:
                yield self.db
            finally:
                self.done()

    def done(self) -> None:
        """End the connection's read transaction after a request (PostgreSQL keeps one open from
        the first query: an idle transaction would hold its locks and its snapshot)."""
        with self.db.lock:
            try:
                self.db.conn.rollback()
            except self.db.errors:
                log.warning("the store's connection failed", exc_info=True)

    def tracker(self) -> FleetTracker:
        """The fleet as the running collector last saved it."""
        return FleetTracker(self.db, self.registry, self._metrics, self.heartbeat)

    def facilities(self) -> tuple[str, ...]:
        """The facilities the collector serves, and any other the registry has devices of."""
        with self.reading():
            known = {d.facility for d in self.registry.devices()}
        return tuple(dict.fromkeys([*self.configured, *sorted(known - set(self.configured))]))


# --- the fleet ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetLine:
    """A device row of the snapshot and its uptime over the last ``WINDOW_DAYS`` days."""

    row: fleet.DeviceRow
    uptime_window: float


@dataclass(frozen=True)
class FleetPage:
    at: float
    lines: tuple[FleetLine, ...]
    facilities: tuple[fleet.FacilitySummary, ...]

    @property
    def online(self) -> int:
        return sum(f.online for f in self.facilities)

    @property
    def devices(self) -> int:
        return sum(f.devices for f in self.facilities)


def fleet_page(store: Store, now: float | None = None) -> FleetPage:
    now = time.time() if now is None else now
    with store.reading():
        tracker = store.tracker()
        tracker.presence.tick(now)  # silence as of now; not saved: the collector owns the state
        snap = tracker.snapshot(now)
        created = {(d.facility, d.device): d.created for d in store.registry.devices()}
    start = now - WINDOW_DAYS * 86400.0
    lines = tuple(
        FleetLine(
            row,
            fleet.uptime(
                tracker.presence.intervals((row.facility, row.device), now),
                max(start, created.get((row.facility, row.device), start)),
                now,
            ),
        )
        for row in snap.devices
    )
    return FleetPage(now, lines, snap.facilities)


# --- alerts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineDevice:
    facility: str
    device: str
    site: str
    state: str  # offline / never_seen
    last_seen: float | None


@dataclass(frozen=True)
class BhxhAlert:
    """How often the gateway answered ``code`` lately, and the latest time, at which device."""

    code: str
    count: int
    last: float
    facility: str
    device: str


@dataclass(frozen=True)
class AlertsPage:
    at: float
    threshold: float  # seconds offline before a device is listed
    offline: tuple[OfflineDevice, ...]
    dead_letters: tuple[jobs.DeadLetter, ...]
    dead_letters_more: bool  # more than shown
    bhxh: tuple[BhxhAlert, ...]


def offline_devices(page: FleetPage, threshold: float) -> tuple[OfflineDevice, ...]:
    """Devices offline for longer than ``threshold`` seconds, and those never seen, longest first."""
    found = [
        OfflineDevice(r.facility, r.device, r.site, r.state, r.last_seen)
        for r in (line.row for line in page.lines)
        if r.state == fleet.NEVER_SEEN
        or (r.state == fleet.OFFLINE and (r.last_seen is None or page.at - r.last_seen > threshold))
    ]
    return tuple(sorted(found, key=lambda d: (d.last_seen is not None, d.last_seen or 0.0)))


def bhxh_alerts(db: Database, since: float) -> tuple[BhxhAlert, ...]:
    """The insurance checks answered 054/055 since ``since``, by code (the answer the forwarder
    kept is a small JSON object with ``maKetQua``: collector/forward/runner.py)."""
    rows = db.query(
        "SELECT facility, device, updated, answer FROM jobs WHERE kind = ? AND state = ? AND updated >= ?"
        " AND (" + " OR ".join("answer LIKE ?" for _ in BHXH_CONFIG_CODES) + ")",
        (jobs.INSURANCE, jobs.DONE, since, *(f"%{code}%" for code in BHXH_CONFIG_CODES)),
    )
    counts: Counter[str] = Counter()
    latest: dict[str, tuple[float, str, str]] = {}
    for facility, device, updated, answer in rows:
        try:
            code = str(json.loads(answer).get("maKetQua", "")).strip()
        except (ValueError, AttributeError):
            continue
        if code in BHXH_CONFIG_CODES:
            counts[code] += 1
            latest[code] = max(latest.get(code, (0.0, "", "")), (float(updated), facility, device))
    return tuple(BhxhAlert(code, counts[code], *latest[code]) for code in sorted(counts))


def alerts_page(store: Store, threshold: float, now: float | None = None) -> AlertsPage:
    page = fleet_page(store, now)
    with store.reading() as db:
        letters = jobs.dead_letters(db, limit=DEAD_LETTERS_SHOWN + 1)
        bhxh = bhxh_alerts(db, page.at - BHXH_ALERT_DAYS * 86400.0)
    return AlertsPage(
        page.at,
        threshold,
        offline_devices(page, threshold),
        tuple(letters[:DEAD_LETTERS_SHOWN]),
        len(letters) > DEAD_LETTERS_SHOWN,
        bhxh,
    )


# --- volume and outcomes (collector.stats) --------------------------------------------------


@dataclass(frozen=True)
class Periods:
    """Today (midnight to midnight, UTC+7) and the last ``WINDOW_DAYS`` days including today."""

    today: fleet.Interval
    days: fleet.Interval

    @classmethod
    def at(cls, now: float) -> "Periods":
        today = fleet.local_date(now)
        first = fleet.day_window(today - datetime.timedelta(days=WINDOW_DAYS - 1))
        day = fleet.day_window(today)
        return cls(day, fleet.Interval(first.start, day.end))


@dataclass(frozen=True)
class VolumePage:
    at: float
    facility: str
    facilities: tuple[str, ...]
    hours: tuple[stats.Bucket, ...]  # today, per hour
    days: tuple[stats.Bucket, ...]  # the last 30 days, per day
    reads_today: stats.ReadsByDocument
    reads_days: stats.ReadsByDocument


def volume_page(store: Store, facility: str, now: float | None = None) -> VolumePage:
    now = time.time() if now is None else now
    periods = Periods.at(now)
    with store.reading() as db:
        return VolumePage(
            now,
            facility,
            store.facilities(),
            stats.volume(db, facility, periods.today, stats.HOUR),
            stats.volume(db, facility, periods.days, stats.DAY),
            stats.reads_by_document(db, facility, periods.today),
            stats.reads_by_document(db, facility, periods.days),
        )


# What became of the reads, as the counter lived it.
INSURED_CCCD = "insured_cccd"  # insured with the CCCD/VNeID alone
FALLBACK = "fallback"  # a CCCD/VNeID read whose check found no valid card: the BHYT card was asked for
BHYT_CARD = "bhyt_card"  # the BHYT card itself was scanned
PENDING = "pending"  # a CCCD/VNeID read still being checked
DEAD = "dead"  # a CCCD/VNeID read whose check never got an answer (a dead letter)
UNCHECKED = "unchecked"  # a CCCD/VNeID read without a check (the collector runs without [bhxh])
OUTCOME_ORDER = (INSURED_CCCD, FALLBACK, BHYT_CARD, PENDING, DEAD, UNCHECKED)


@dataclass(frozen=True)
class Outcomes:
    """One period's outcomes: the reads by what became of them, BHXH's codes, and the rejects."""

    outcomes: stats.InsuranceOutcomes
    rejects: tuple[stats.RejectCount, ...]

    def by_outcome(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOME_ORDER, 0)
        for row in self.outcomes.rows:
            counts[_outcome_of(row)] += row.reads
        return counts

    def by_reason(self) -> dict[str, int]:
        return {r.reason: r.messages for r in self.rejects}


def _outcome_of(row: stats.CheckCount) -> str:
    if row.doc not in stats.CCCD_DOCS:
        return BHYT_CARD
    if row.insured:
        return INSURED_CCCD
    return {
        stats.CHECK_DONE: FALLBACK,
        stats.CHECK_PENDING: PENDING,
        stats.CHECK_DEAD: DEAD,
    }.get(row.check, UNCHECKED)


@dataclass(frozen=True)
class OutcomesPage:
    at: float
    facility: str
    facilities: tuple[str, ...]
    today: Outcomes
    days: Outcomes


def outcomes_page(store: Store, facility: str, now: float | None = None) -> OutcomesPage:
    now = time.time() if now is None else now
    periods = Periods.at(now)
    with store.reading() as db:
        today, days = (
            Outcomes(stats.insurance_outcomes(db, facility, w), stats.rejects(db, facility, w))
            for w in (periods.today, periods.days)
        )
        return OutcomesPage(now, facility, store.facilities(), today, days)
