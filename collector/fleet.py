"""Fleet: which reader nodes are online, their uptime, and the facility's equipment inventory.

Pure logic over plain data: no MQTT, no database, no clock. Every event and query takes ``now``,
the collector's receive time in Unix seconds; that clock is the truth for every interval, since a
node's clock may be wrong (its ``ts`` only tells connections apart, see below).

Presence
--------
``Presence`` follows each device ``(facility, device)`` through three kinds of events, fed in the
order the collector received them: ``on_status`` (the retained Status: the birth ``online`` on every
connect, and the Last Will ``offline`` that the broker publishes for the node), ``on_telemetry``
(the heartbeat) and ``tick`` (the passing of time). A birth or a heartbeat is a *sign of life*; a
death is not. The rules:

- **Birth** opens an online interval at its receive time. A node publishes the same map at
  connect as birth and registers it as its Last Will, so ``(boot, ts)`` names one *connection*.
  A birth of the current connection again (a QoS 1 duplicate, or the retained birth re-delivered
  when the collector re-subscribes) is a sign of life, nothing more, and is ignored once that
  connection's death was accepted; a birth of a newer connection of the same boot (a reconnect
  without a reboot, ``ts`` higher) closes the interval as a death would and opens a new one (no gap
  if the device was heard within the last interval); an older connection's birth is ignored; a
  birth with another boot counter is a reboot (below).
- **Death** closes the interval at its receive time, but never later than the last sign of life
  plus one heartbeat interval: the broker publishes a Last Will only after the keep-alive timeout,
  up to 1.5 keep-alives after the node went away, and we do not credit it with more than the
  silence rule would.
- **Stale death**, ignored: the Last Will of boot N can reach the collector after the birth of
  boot N + 1 (the broker publishes the old connection's will when it notices the old connection is
  gone, which can be after the node has rebooted and reconnected), and the will of connection 1 of
  boot N after the birth of connection 2 of the same boot. So a death is ignored when its boot is
  lower than the newest boot, or its boot is the same and its ``ts`` is lower than the current
  connection's, or it is a repeat of the death already accepted. A death of a boot we never saw
  (its birth missed) is accepted. Node clocks can jump back within a boot (NTP correcting a fast
  clock) and nodes without a clock may send the same ``ts`` every time; then a stale will can pass
  as current and mark a live node offline, and its next heartbeat brings it back (below): the
  error is bounded by one heartbeat interval.
- **Silence**: a device online whose last sign of life is ``missed`` (3) heartbeat intervals old
  or more goes offline at *last sign of life + one interval* (the next heartbeat was due then), even
  without a Last Will: uptime is credited at most one interval past the last thing we heard.
- **Missed birth**: a heartbeat of the current boot from a device believed offline brings it back
  online at the heartbeat's receive time.
- **Reboot**: a boot counter different from the newest one, in a birth or a heartbeat, means the
  node restarted: the old interval closes at the old boot's last sign of life (the restart proves
  it went down, we do not know when), and a new one opens at the receive time. A *lower* counter is
  taken as a reset counter (a re-flashed node): births are retained and reach the collector in
  order, so an older boot's birth does not arrive late; only deaths do.
- **Late events**: time never runs backwards for a device. A heartbeat received earlier than the
  device's latest event is ignored (it cannot tell us the present); a status stamped earlier is
  taken as received at the latest time. So intervals are ordered and never overlap.

Heartbeat intervals come with each heartbeat (``interval``, the node's configured period); until a
device has sent one, ``Presence(heartbeat=...)`` applies. Before a snapshot, call ``tick(now)``:
an open interval counts up to ``now``. After a collector restart, feed the retained statuses
before the first ``tick``, and do not tick while the collector's own broker connection is down,
or silence will close every interval.

Durable state
-------------
The durable record is the interval rows, ``[start, end]`` per device with ``end`` null while the
device is online, and beside them one row per device: boot counter, the current connection's
``ts`` and whether its death was accepted, last sign of life, heartbeat interval and the device's
clock. ``DeviceState.to_dict`` / ``from_dict`` (and ``Presence.to_dict`` / ``from_dict`` for the
whole fleet) give exactly that as JSON-ready data; a ``Presence`` rebuilt from it behaves as the
one that wrote it. Each event returns the ``Change`` list it caused (interval opened or closed),
so the caller knows which rows to write. ``prune`` forgets intervals older than any report needs.

Uptime and inventory
--------------------
``uptime`` is the fraction of a window that merged, clipped intervals cover; ``uptime_day`` and
``uptime_month`` take the facility's calendar (Asia/Ho_Chi_Minh, UTC+7, no DST) and end the window
at ``now``, so the future never counts as downtime. ``snapshot`` joins the registry's provisioned
devices, the latest Inventory and Telemetry of each, and presence into rows per device and counts
per facility (QR readers, chip readers, readers meeting the standard, never seen): what the
dashboard, the metrics and the monthly Đề án 06 report show.
"""

import calendar
import datetime
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DeviceKey = tuple[str, str]  # (facility, device)

ONLINE = "online"
OFFLINE = "offline"
NEVER_SEEN = "never_seen"

DEFAULT_HEARTBEAT = 60.0  # seconds, until a device's heartbeat says otherwise
MISSED_HEARTBEATS = 3  # heartbeats missed in a row before a silent device counts as offline

# Why an interval opened or closed (``Change.cause``).
BIRTH = "birth"
DEATH = "death"
SILENCE = "silence"
REBOOT = "reboot"
RECONNECT = "reconnect"
HEARTBEAT = "heartbeat"

READER_QR = "qr"
READER_CHIP = "nfc"


def _facility_zone() -> datetime.tzinfo:
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:  # no tz database: Viet Nam has kept UTC+7 without DST since 1975
        return datetime.timezone(datetime.timedelta(hours=7), "ICT")


FACILITY_TZ = _facility_zone()


# --- intervals and uptime ------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Interval:
    """A span of time, Unix seconds, ``start <= end``: a device online, or a window."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of intervals as sorted, disjoint intervals; touching ones are joined."""
    merged: list[Interval] = []
    for interval in sorted(intervals):
        if merged and interval.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, interval.end))
        else:
            merged.append(interval)
    return merged


def clip(intervals: Iterable[Interval], window_start: float, window_end: float) -> list[Interval]:
    """The parts of intervals inside the window; parts of no length are dropped."""
    clipped = (Interval(max(i.start, window_start), min(i.end, window_end)) for i in intervals)
    return [i for i in clipped if i.end > i.start]


def uptime(intervals: Iterable[Interval], window_start: float, window_end: float) -> float:
    """Fraction (0..1) of the window covered by the intervals; 0.0 for an empty window."""
    if window_end <= window_start:
        return 0.0
    covered = sum(i.seconds for i in merge(clip(intervals, window_start, window_end)))
    return min(1.0, covered / (window_end - window_start))


@functools.lru_cache(maxsize=64)  # the same few days for every device of a snapshot
def day_window(day: datetime.date, tz: datetime.tzinfo = FACILITY_TZ) -> Interval:
    """The calendar day in the facility's time zone, midnight to midnight."""
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=tz)
    end = start + datetime.timedelta(days=1)
    return Interval(start.timestamp(), end.timestamp())


@functools.lru_cache(maxsize=64)
def month_window(year: int, month: int, tz: datetime.tzinfo = FACILITY_TZ) -> Interval:
    """The calendar month in the facility's time zone."""
    first = datetime.date(year, month, 1)
    days = calendar.monthrange(year, month)[1]
    return Interval(day_window(first, tz).start, day_window(first + datetime.timedelta(days=days), tz).start)


def _uptime_until(intervals: Iterable[Interval], window: Interval, now: float, since: float | None) -> float:
    start = window.start if since is None else max(window.start, since)
    return uptime(intervals, start, min(window.end, now))


def uptime_day(
    intervals: Iterable[Interval],
    day: datetime.date,
    *,
    now: float,
    since: float | None = None,
    tz: datetime.tzinfo = FACILITY_TZ,
) -> float:
    """Uptime over a calendar day; the window ends at ``now`` (today) and starts at ``since`` if later.

    ``since`` is when the device was provisioned: time before it is not downtime.
    """
    return _uptime_until(intervals, day_window(day, tz), now, since)


def uptime_month(
    intervals: Iterable[Interval],
    year: int,
    month: int,
    *,
    now: float,
    since: float | None = None,
    tz: datetime.tzinfo = FACILITY_TZ,
) -> float:
    """Uptime over a calendar month; the window ends at ``now`` and starts at ``since`` if later."""
    return _uptime_until(intervals, month_window(year, month, tz), now, since)


def local_date(now: float, tz: datetime.tzinfo = FACILITY_TZ) -> datetime.date:
    """The facility's calendar date at Unix time ``now``."""
    return datetime.datetime.fromtimestamp(now, tz).date()


# --- presence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """An interval opened (``state`` online) or closed (offline) ``at`` a time, and why."""

    key: DeviceKey
    state: str
    at: float
    cause: str


@dataclass
class DeviceState:
    """What the collector knows of one device's presence; the durable record of it.

    ``conn_ts`` is the Status ``ts`` of the current connection of boot ``boot`` (None when its
    birth was missed); ``ended`` is true once that connection's death was accepted.
    ``clock`` is the latest receive time of the device's events (or interval end), never
    decreasing.
    """

    boot: int | None = None
    conn_ts: int | None = None
    ended: bool = False
    online_since: float | None = None
    last_seen: float | None = None
    heartbeat: float = DEFAULT_HEARTBEAT
    clock: float | None = None
    history: list[Interval] = field(default_factory=list)

    @property
    def online(self) -> bool:
        return self.online_since is not None

    @property
    def state(self) -> str:
        if self.online:
            return ONLINE
        if self.boot is None and self.last_seen is None:
            return NEVER_SEEN
        return OFFLINE

    def intervals(self, now: float) -> list[Interval]:
        """Closed intervals, and the open one as ending at ``now``."""
        if self.online_since is None:
            return list(self.history)
        return [*self.history, Interval(self.online_since, max(self.online_since, now))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``intervals`` are ``[start, end]`` rows, ``end`` None for the open one."""
        rows: list[list[float | None]] = [[i.start, i.end] for i in self.history]
        if self.online_since is not None:
            rows.append([self.online_since, None])
        return {
            "boot": self.boot,
            "conn_ts": self.conn_ts,
            "ended": self.ended,
            "last_seen": self.last_seen,
            "heartbeat": self.heartbeat,
            "clock": self.clock,
            "intervals": rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeviceState":
        history: list[Interval] = []
        online_since: float | None = None
        for start, end in data.get("intervals", []):
            if end is None:
                online_since = float(start)
            else:
                history.append(Interval(float(start), float(end)))
        history.sort()
        return cls(
            boot=_optional_int(data.get("boot")),
            conn_ts=_optional_int(data.get("conn_ts")),
            ended=bool(data.get("ended", False)),
            online_since=online_since,
            last_seen=_optional_float(data.get("last_seen")),
            heartbeat=float(data.get("heartbeat", DEFAULT_HEARTBEAT)),
            clock=_optional_float(data.get("clock")),
            history=history,
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


class Presence:
    """Presence of every device, driven by status, telemetry and the clock (rules: module doc)."""

    def __init__(self, heartbeat: float = DEFAULT_HEARTBEAT, missed: int = MISSED_HEARTBEATS) -> None:
        if heartbeat <= 0 or missed < 1:
            raise ValueError("heartbeat must be positive and missed at least 1")
        self.heartbeat = heartbeat
        self.missed = missed
        self.devices: dict[DeviceKey, DeviceState] = {}

    # events

    def on_status(self, key: DeviceKey, state: str, boot: int, ts: int, now: float) -> list[Change]:
        """A Status received at ``now``: birth (``online``) or death (``offline``, the Last Will)."""
        if state not in (ONLINE, OFFLINE):
            raise ValueError("status state must be online or offline")
        dev = self._device(key)
        at = now if dev.clock is None else max(now, dev.clock)
        dev.clock = at
        if state == ONLINE:
            return self._birth(key, dev, boot, ts, at)
        return self._death(key, dev, boot, ts, at)

    def on_telemetry(
        self, key: DeviceKey, boot: int, now: float, interval: float | None = None
    ) -> list[Change]:
        """A heartbeat of boot ``boot`` received at ``now``; ``interval`` is the node's period (s)."""
        dev = self._device(key)
        if dev.clock is not None and now < dev.clock:
            return []  # late: it cannot tell us the present
        dev.clock = now
        if interval is not None and interval > 0:
            dev.heartbeat = float(interval)
        if dev.boot is not None and boot != dev.boot:
            changes = self._restart(key, dev, dev.last_seen, now, REBOOT)
            dev.boot, dev.conn_ts, dev.ended = boot, None, False
            return changes
        dev.boot = boot
        if dev.online:
            dev.last_seen = now
            return []
        return [self._open(key, dev, now, HEARTBEAT)]  # its birth was missed

    def tick(self, now: float) -> list[Change]:
        """Close the interval of every online device silent for ``missed`` heartbeat intervals."""
        changes: list[Change] = []
        for key, dev in self.devices.items():
            if (
                dev.online
                and dev.last_seen is not None
                and now - dev.last_seen >= self.missed * dev.heartbeat
            ):
                changes.append(self._close(key, dev, dev.last_seen + dev.heartbeat, SILENCE))
        return changes

    # queries

    def state(self, key: DeviceKey) -> str:
        """``online``, ``offline`` or ``never_seen``."""
        dev = self.devices.get(key)
        return NEVER_SEEN if dev is None else dev.state

    def intervals(self, key: DeviceKey, now: float) -> list[Interval]:
        """The device's online intervals, the open one ending at ``now``; [] if never seen."""
        dev = self.devices.get(key)
        return [] if dev is None else dev.intervals(now)

    def last_seen(self, key: DeviceKey) -> float | None:
        dev = self.devices.get(key)
        return None if dev is None else dev.last_seen

    def prune(self, before: float) -> None:
        """Forget closed intervals that ended before ``before`` (the store keeps them)."""
        for dev in self.devices.values():
            dev.history = [i for i in dev.history if i.end >= before]

    # persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: settings and one entry per device (see ``DeviceState.to_dict``)."""
        return {
            "heartbeat": self.heartbeat,
            "missed": self.missed,
            "devices": [
                {"facility": facility, "device": device, **dev.to_dict()}
                for (facility, device), dev in sorted(self.devices.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Presence":
        presence = cls(
            float(data.get("heartbeat", DEFAULT_HEARTBEAT)), int(data.get("missed", MISSED_HEARTBEATS))
        )
        for entry in data.get("devices", []):
            presence.devices[(str(entry["facility"]), str(entry["device"]))] = DeviceState.from_dict(entry)
        return presence

    # the rules

    def _device(self, key: DeviceKey) -> DeviceState:
        dev = self.devices.get(key)
        if dev is None:
            dev = self.devices[key] = DeviceState(heartbeat=self.heartbeat)
        return dev

    def _birth(self, key: DeviceKey, dev: DeviceState, boot: int, ts: int, at: float) -> list[Change]:
        if dev.boot is not None and boot != dev.boot:
            changes = self._restart(key, dev, dev.last_seen, at, REBOOT)
        elif dev.conn_ts is not None and ts == dev.conn_ts:
            if dev.ended:
                return []  # a repeat of a birth whose connection has died since
            if dev.online:
                dev.last_seen = at  # duplicate, or the retained birth again: still connected
                return []
            changes = [self._open(key, dev, at, BIRTH)]  # silent, but the broker vouches for it
        elif dev.conn_ts is not None and ts < dev.conn_ts:
            return []  # an older connection's birth, late
        else:  # first birth, a birth after a missed one, or a reconnect without reboot
            changes = self._restart(key, dev, self._death_time(dev, at), at, RECONNECT)
        dev.boot, dev.conn_ts, dev.ended = boot, ts, False
        return changes

    def _death(self, key: DeviceKey, dev: DeviceState, boot: int, ts: int, at: float) -> list[Change]:
        if self._stale_death(dev, boot, ts):
            return []
        changes: list[Change] = []
        if dev.online:
            if dev.boot is not None and boot != dev.boot and dev.last_seen is not None:
                end = dev.last_seen  # it rebooted unseen: the old boot ended at its last sign of life
            else:
                end = self._death_time(dev, at)
            changes.append(self._close(key, dev, end, DEATH))
        dev.boot, dev.conn_ts, dev.ended = boot, ts, True
        return changes

    @staticmethod
    def _stale_death(dev: DeviceState, boot: int, ts: int) -> bool:
        if dev.boot is None or boot > dev.boot:
            return False  # a boot whose birth we never saw
        if boot < dev.boot:
            return True  # the Last Will of an earlier boot, delivered after the newer birth
        if dev.conn_ts is None:
            return False  # this boot's birth was missed: nothing to compare with
        return ts < dev.conn_ts or (ts == dev.conn_ts and dev.ended)

    @staticmethod
    def _death_time(dev: DeviceState, at: float) -> float:
        """When a device that we hear is gone went: at most one interval past its last sign of life."""
        return at if dev.last_seen is None else min(at, dev.last_seen + dev.heartbeat)

    def _restart(
        self, key: DeviceKey, dev: DeviceState, end: float | None, at: float, cause: str
    ) -> list[Change]:
        """Close the open interval at ``end`` (if it ends before ``at``) and open one at ``at``."""
        if not dev.online:
            return [self._open(key, dev, at, BIRTH if cause == RECONNECT else cause)]
        if end is None or end >= at:
            dev.last_seen = at  # no gap we could see: the interval goes on
            return []
        return [self._close(key, dev, end, cause), self._open(key, dev, at, cause)]

    @staticmethod
    def _open(key: DeviceKey, dev: DeviceState, at: float, cause: str) -> Change:
        dev.online_since = at
        dev.last_seen = at
        return Change(key, ONLINE, at, cause)

    @staticmethod
    def _close(key: DeviceKey, dev: DeviceState, end: float, cause: str) -> Change:
        start = dev.online_since
        assert start is not None
        end = max(start, end)
        dev.history.append(Interval(start, end))
        dev.online_since = None
        dev.clock = end if dev.clock is None else max(dev.clock, end)
        return Change(key, OFFLINE, end, cause)


# --- inventory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """One reader of a node, from its Inventory: ``type`` qr/nfc, ``std`` meets the standard."""

    type: str
    model: str
    std: bool


@dataclass(frozen=True)
class DeviceRow:
    """One provisioned device as the dashboard and the monthly report list it."""

    facility: str
    device: str
    kind: str  # esp32 / rpi, from the registry
    site: str
    hw: str
    readers: tuple[Reader, ...]
    firmware: str
    state: str
    last_seen: float | None
    outbox: int | None  # outbox depth, latest heartbeat
    drops: int | None  # reads dropped since boot, latest heartbeat
    uptime_day: float
    uptime_month: float

    @property
    def reader_types(self) -> tuple[str, ...]:
        return tuple(sorted({r.type for r in self.readers}))

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({r.model for r in self.readers if r.model}))

    @property
    def standard_readers(self) -> int:
        return sum(1 for r in self.readers if r.std)


@dataclass(frozen=True)
class FacilitySummary:
    """Counts per facility; readers are counted whatever the node's state."""

    facility: str
    devices: int
    online: int
    offline: int
    never_seen: int
    qr_readers: int
    chip_readers: int
    standard_readers: int


@dataclass(frozen=True)
class FleetSnapshot:
    """The fleet at ``at``: one row per provisioned device, and the counts per facility."""

    at: float
    devices: tuple[DeviceRow, ...]
    facilities: tuple[FacilitySummary, ...]


def readers_of(inventory: Mapping[str, Any] | None) -> tuple[Reader, ...]:
    """The readers an Inventory message lists; unknown model is '', unknown standard is False."""
    if not inventory:
        return ()
    return tuple(
        Reader(str(r.get("type", "")), str(r.get("model", "")), r.get("std") is True)
        for r in inventory.get("readers", [])
        if isinstance(r, Mapping)
    )


def _text(*values: object) -> str:
    """The first non-empty text among values, else ''."""
    for value in values:
        if isinstance(value, str) and value:
            return value
    return ""


def _count(telemetry: Mapping[str, Any] | None, name: str) -> int | None:
    value = None if telemetry is None else telemetry.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _key(entry: Mapping[str, Any]) -> DeviceKey:
    return str(entry["facility"]), str(entry["device"])


def _is_active(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("state", "active") == "active")


def device_row(
    entry: Mapping[str, Any],
    presence: Presence,
    inventory: Mapping[str, Any] | None,
    telemetry: Mapping[str, Any] | None,
    now: float,
) -> DeviceRow:
    """The row of one provisioned device (``entry``: facility, device, kind, site[, created])."""
    key = _key(entry)
    intervals = presence.intervals(key, now)
    today = local_date(now)
    since = _optional_float(entry.get("created"))
    inv = inventory or {}
    return DeviceRow(
        facility=key[0],
        device=key[1],
        kind=_text(entry.get("kind")),
        site=_text(entry.get("site"), inv.get("site")),
        hw=_text(inv.get("hw")),
        readers=readers_of(inventory),
        firmware=_text(inv.get("fw"), None if telemetry is None else telemetry.get("fw")),
        state=presence.state(key),
        last_seen=presence.last_seen(key),
        outbox=_count(telemetry, "q"),
        drops=_count(telemetry, "drop"),
        uptime_day=uptime_day(intervals, today, now=now, since=since),
        uptime_month=uptime_month(intervals, today.year, today.month, now=now, since=since),
    )


def facility_summaries(rows: Iterable[DeviceRow]) -> list[FacilitySummary]:
    """Counts per facility, sorted by facility code."""
    by_facility: dict[str, list[DeviceRow]] = {}
    for row in rows:
        by_facility.setdefault(row.facility, []).append(row)
    return [_summary(facility, by_facility[facility]) for facility in sorted(by_facility)]


def _summary(facility: str, rows: Sequence[DeviceRow]) -> FacilitySummary:
    readers = [r for row in rows for r in row.readers]
    return FacilitySummary(
        facility=facility,
        devices=len(rows),
        online=sum(1 for row in rows if row.state == ONLINE),
        offline=sum(1 for row in rows if row.state == OFFLINE),
        never_seen=sum(1 for row in rows if row.state == NEVER_SEEN),
        qr_readers=sum(1 for r in readers if r.type == READER_QR),
        chip_readers=sum(1 for r in readers if r.type == READER_CHIP),
        standard_readers=sum(1 for r in readers if r.std),
    )


def snapshot(
    provisioned: Iterable[Mapping[str, Any]],
    presence: Presence,
    inventories: Mapping[DeviceKey, Mapping[str, Any]],
    telemetry: Mapping[DeviceKey, Mapping[str, Any]],
    now: float,
) -> FleetSnapshot:
    """The fleet at ``now``.

    ``provisioned``: the registry's devices as dicts (facility, device, kind, site; optional
    ``state``, only ``active`` ones count, and ``created``, before which time is not downtime).
    ``inventories`` and ``telemetry``: the latest decoded message of each kind per device.
    Devices that are not provisioned are left out. Call ``presence.tick(now)`` first.
    """
    rows = sorted(
        (
            device_row(entry, presence, inventories.get(_key(entry)), telemetry.get(_key(entry)), now)
            for entry in provisioned
            if _is_active(entry)
        ),
        key=lambda row: (row.facility, row.device),
    )
    return FleetSnapshot(now, tuple(rows), tuple(facility_summaries(rows)))
