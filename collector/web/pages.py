"""What each page of the dashboard shows, read from the collector's store.

Plain data for the templates, built from the collector's own functions: the fleet from
``FleetTracker.snapshot`` (as ``cccd-edge collector fleet`` builds it), the dead letters from
``forward.jobs.dead_letters``. No personal data: the store keeps the reads' personal fields
encrypted and the dashboard never opens them; the reasons of dead letters are already masked
by the connectors that wrote them.
"""

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from collector import fleet
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

    def __init__(self, db: Database, registry: Registry, heartbeat: float) -> None:
        self.db = db
        self.registry = registry
        self.heartbeat = heartbeat
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
