"""Fleet logic: presence rules on scripted histories with hand-computed answers, uptime windows in
the facility's calendar (UTC+7), inventory counts, and properties of both.

Every script is run the way the collector runs it: events in receive order, and a ``tick`` every
minute in between, so the silence rule is always in play.
"""

import datetime
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import fleet
from collector.fleet import (
    NEVER_SEEN,
    OFFLINE,
    ONLINE,
    Interval,
    Presence,
    merge,
    uptime,
    uptime_day,
    uptime_month,
)

ICT = datetime.timezone(datetime.timedelta(hours=7))  # the facility's time, written out by hand
KEY = ("38001", "qr-0007")
HB = 60  # heartbeat interval of every script, seconds
DAY = 86400

Event = tuple[float, str, int, int]  # (receive time, kind, boot, status ts)


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 3, year: int = 2025) -> float:
    """Unix time of a local (UTC+7) wall-clock time."""
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=ICT).timestamp()


def birth(t: float, boot: int, ts: int = 0) -> Event:
    return (t, "online", boot, ts)


def will(t: float, boot: int, ts: int = 0) -> Event:
    return (t, "offline", boot, ts)


def beats(start: float, end: float, boot: int) -> list[Event]:
    """A heartbeat every HB seconds from ``start`` up to, not including, ``end``."""
    return [(float(t), "telemetry", boot, 0) for t in range(int(start), int(end), HB)]


def session(start: float, end: float, boot: int, ts: int = 0) -> list[Event]:
    """Birth at ``start`` and heartbeats until the one due at ``end`` is missed: credited to ``end``."""
    return [birth(start, boot, ts), *beats(start, end, boot)]


def apply(presence: Presence, event: Event, key: tuple[str, str] = KEY) -> list[fleet.Change]:
    t, kind, boot, ts = event
    if kind == "telemetry":
        return presence.on_telemetry(key, boot, t, interval=HB)
    return presence.on_status(key, kind, boot, ts, t)


def run(events: Iterable[Event], until: float, presence: Presence | None = None) -> Presence:
    """Feed events in receive order with a tick every minute in between, up to ``until``."""
    presence = Presence(heartbeat=HB) if presence is None else presence
    ordered = sorted(events, key=lambda e: e[0])
    clock = ordered[0][0] if ordered else until
    for event in ordered:
        while clock < event[0]:
            presence.tick(clock)
            clock += HB
        apply(presence, event)
    while clock <= until:
        presence.tick(clock)
        clock += HB
    return presence


def spans(presence: Presence, now: float, key: tuple[str, str] = KEY) -> list[tuple[float, float]]:
    return [(i.start, i.end) for i in presence.intervals(key, now)]


# --- presence on scripted days -------------------------------------------------------------

MORNING = (at(10, 7), at(10, 11))
AFTERNOON = (at(10, 13), at(10, 17))
END_OF_DAY = at(11, 0)


def test_two_sessions_with_last_wills_make_eight_hours_of_twenty_four() -> None:
    events = [
        *session(*MORNING, boot=1, ts=100),
        will(at(10, 11, 0, 30), boot=1, ts=100),  # the broker's Last Will, after the keep-alive
        *session(*AFTERNOON, boot=2, ts=200),
        will(at(10, 17, 1, 30), boot=2, ts=200),
    ]
    presence = run(events, END_OF_DAY)
    assert spans(presence, END_OF_DAY) == [MORNING, AFTERNOON]
    assert uptime_day(presence.intervals(KEY, END_OF_DAY), datetime.date(2025, 3, 10), now=END_OF_DAY) == (
        pytest.approx(8 / 24)
    )
    assert presence.state(KEY) == OFFLINE


def test_a_death_is_credited_at_most_one_interval_past_the_last_heartbeat() -> None:
    # The Last Will comes 10 minutes late (long keep-alive): the device is not credited with them.
    events = [*beats(at(10, 7), at(10, 8), boot=1), will(at(10, 8, 10), boot=1)]
    presence = Presence(heartbeat=HB)
    for event in events:
        apply(presence, event)  # no ticks: only the death closes it
    assert spans(presence, at(10, 9)) == [(at(10, 7), at(10, 8))]


def test_a_clean_offline_closes_at_its_receive_time() -> None:
    events = [birth(at(10, 7), boot=1), *beats(at(10, 7), at(10, 8), boot=1), will(at(10, 7, 59, 30), boot=1)]
    presence = run(events, at(10, 9))
    assert spans(presence, at(10, 9)) == [(at(10, 7), at(10, 7, 59, 30))]


def test_last_will_of_the_previous_boot_after_the_new_birth_is_ignored() -> None:
    events = [
        *session(*MORNING, boot=1, ts=100),  # no Last Will yet: the silence rule closes it at 11:00
        *session(*AFTERNOON, boot=2, ts=200),
        will(at(10, 13, 0, 5), boot=1, ts=100),  # boot 1's will, delivered after boot 2's birth
        will(at(10, 17, 1, 30), boot=2, ts=200),
    ]
    presence = run(events, END_OF_DAY)
    assert spans(presence, END_OF_DAY) == [MORNING, AFTERNOON]


def test_last_will_of_an_earlier_connection_of_the_same_boot_is_ignored() -> None:
    # Wi-Fi drop without reboot: connection 2 of boot 7 is up when connection 1's will arrives.
    events = [
        *session(*MORNING, boot=7, ts=1000),
        *session(at(10, 13), at(10, 15, 1), boot=7, ts=2000),
        will(at(10, 13, 0, 5), boot=7, ts=1000),
    ]
    presence = run(events, at(10, 15))
    assert spans(presence, at(10, 15)) == [MORNING, (at(10, 13), at(10, 15))]
    assert presence.state(KEY) == ONLINE


def test_reconnect_then_its_own_will_closes_it() -> None:
    events = [
        *session(*MORNING, boot=7, ts=1000),
        *session(*AFTERNOON, boot=7, ts=2000),
        will(at(10, 17, 1, 30), boot=7, ts=2000),
    ]
    presence = run(events, END_OF_DAY)
    assert spans(presence, END_OF_DAY) == [MORNING, AFTERNOON]


def test_heartbeat_silence_without_last_will_is_offline_from_last_heartbeat_plus_interval() -> None:
    presence = Presence(heartbeat=HB)
    for event in session(at(10, 7), at(10, 11), boot=1):
        apply(presence, event)
    last_heartbeat = at(10, 10, 59)
    assert presence.tick(last_heartbeat + 2 * HB) == []  # two missed: still online
    assert presence.state(KEY) == ONLINE
    changes = presence.tick(last_heartbeat + 3 * HB)
    assert changes == [fleet.Change(KEY, OFFLINE, last_heartbeat + HB, fleet.SILENCE)]
    assert presence.state(KEY) == OFFLINE
    assert spans(presence, END_OF_DAY) == [MORNING]


def test_a_day_without_its_link_is_a_day_offline_then_the_node_is_back() -> None:
    # The node's Wi-Fi is lost at 14:00 on the 10th (the broker's Last Will after the keep-alive)
    # and comes back at 14:00 on the 11th, on the same boot: a new connection, its birth's ts a day
    # later. Offline the whole gap, online after, and the uptime of both days says so.
    gone, back = at(10, 14), at(11, 14)
    presence = run(
        [*session(at(10, 7), gone, boot=1, ts=100), will(at(10, 14, 0, 45), boot=1, ts=100)], at(11, 13)
    )
    assert presence.state(KEY) == OFFLINE
    assert spans(presence, at(11, 13)) == [(at(10, 7), gone)]
    run(session(back, at(11, 17), boot=1, ts=100 + DAY), at(11, 17), presence)
    assert presence.state(KEY) == ONLINE
    assert spans(presence, at(11, 17)) == [(at(10, 7), gone), (back, at(11, 17))]
    intervals = presence.intervals(KEY, at(11, 17))
    assert uptime_day(intervals, datetime.date(2025, 3, 10), now=at(11, 17)) == pytest.approx(7 / 24)
    assert uptime_day(intervals, datetime.date(2025, 3, 11), now=at(11, 17)) == pytest.approx(3 / 17)
    assert uptime_month(intervals, 2025, 3, now=at(11, 17)) == pytest.approx(10 / (10 * 24 + 17))


def test_heartbeat_interval_comes_from_the_telemetry() -> None:
    presence = Presence(heartbeat=HB)
    presence.on_telemetry(KEY, 1, at(10, 7), interval=600)
    assert presence.tick(at(10, 7, 29)) == []  # 29 min < 3 x 10 min
    assert presence.tick(at(10, 7, 30)) == [fleet.Change(KEY, OFFLINE, at(10, 7, 10), fleet.SILENCE)]


def test_reboot_seen_only_in_telemetry_closes_at_last_sign_of_life() -> None:
    events = [
        *session(at(10, 7), at(10, 11), boot=1),
        *beats(at(10, 11, 0, 30), at(10, 12), boot=2),  # boot 2's birth was missed
    ]
    presence = run(events, at(10, 12))
    assert spans(presence, at(10, 12)) == [(at(10, 7), at(10, 10, 59)), (at(10, 11, 0, 30), at(10, 12))]
    assert presence.devices[KEY].boot == 2


def test_reboot_in_a_birth_while_online() -> None:
    presence = Presence(heartbeat=HB)
    for event in [*session(at(10, 7), at(10, 8), boot=1), birth(at(10, 7, 59, 40), boot=2)]:
        apply(presence, event)
    assert spans(presence, at(10, 9)) == [(at(10, 7), at(10, 7, 59)), (at(10, 7, 59, 40), at(10, 9))]


def test_telemetry_from_a_device_believed_offline_brings_it_back() -> None:
    events = [
        *session(*MORNING, boot=3, ts=50),
        will(at(10, 11, 1), boot=3, ts=50),
        *beats(at(10, 13), at(10, 13, 31), boot=3),  # reconnected; its birth was lost
    ]
    presence = run(events, at(10, 13, 30))
    assert spans(presence, at(10, 13, 30)) == [MORNING, (at(10, 13), at(10, 13, 30))]
    assert presence.state(KEY) == ONLINE


def test_a_repeated_birth_of_a_dead_connection_is_ignored() -> None:
    events = [*session(*MORNING, boot=3, ts=50), will(at(10, 11, 1), boot=3, ts=50), birth(at(10, 12), 3, 50)]
    presence = run(events, at(10, 13))
    assert spans(presence, at(10, 13)) == [MORNING]
    assert presence.state(KEY) == OFFLINE


def test_window_is_clipped_at_now() -> None:
    now = at(10, 13)
    presence = run(session(at(10, 7), now + HB, boot=1), now)
    intervals = presence.intervals(KEY, now)
    assert spans(presence, now) == [(at(10, 7), now)]
    assert uptime_day(intervals, datetime.date(2025, 3, 10), now=now) == pytest.approx(6 / 13)
    assert uptime_month(intervals, 2025, 3, now=now) == pytest.approx(6 * 3600 / (9 * DAY + 13 * 3600))
    assert uptime_day(intervals, datetime.date(2025, 3, 11), now=now) == 0.0  # the future counts nothing


def test_counter_reset_is_a_new_boot() -> None:
    events = [*session(*MORNING, boot=41, ts=9), *session(*AFTERNOON, boot=0, ts=1)]  # re-flashed at noon
    presence = run(events, END_OF_DAY)
    assert spans(presence, END_OF_DAY) == [MORNING, AFTERNOON]
    assert presence.devices[KEY].boot == 0


# --- duplicates and order ------------------------------------------------------------------


def test_qos1_duplicates_change_nothing() -> None:
    events = [
        *session(*MORNING, boot=1, ts=100),
        will(at(10, 11, 0, 30), boot=1, ts=100),
        *session(*AFTERNOON, boot=2, ts=200),
        will(at(10, 17, 1, 30), boot=2, ts=200),
    ]
    once = run(events, END_OF_DAY)
    twice = run([e for event in events for e in (event, event)], END_OF_DAY)
    late_repeats = run([*events, will(at(10, 18), 1, 100), birth(at(10, 18), 2, 200)], END_OF_DAY)
    assert once.to_dict() == twice.to_dict()
    assert spans(late_repeats, END_OF_DAY) == [MORNING, AFTERNOON]


def test_late_telemetry_changes_nothing() -> None:
    presence = Presence(heartbeat=HB)
    for event in [*session(*MORNING, boot=1), will(at(10, 11, 0, 30), boot=1)]:
        apply(presence, event)
    before = presence.to_dict()
    assert presence.on_telemetry(KEY, 1, at(10, 10, 30), interval=HB) == []  # received before the will
    assert presence.on_telemetry(KEY, 0, at(10, 9), interval=HB) == []  # an older boot, late too
    assert presence.to_dict() == before


def test_a_late_status_is_taken_at_the_device_clock() -> None:
    presence = Presence(heartbeat=HB)
    for event in session(at(10, 7), at(10, 8), boot=1):
        apply(presence, event)
    presence.on_status(KEY, OFFLINE, 1, 0, at(10, 7, 30))  # stamped before the last heartbeat
    assert spans(presence, at(10, 9)) == [(at(10, 7), at(10, 7, 59))]


def test_retained_birth_after_collector_restart_continues_the_interval() -> None:
    first = run(session(at(10, 7), at(10, 8, 31), boot=1, ts=5), at(10, 8, 30))
    saved = json.loads(json.dumps(first.to_dict()))
    # The collector was down 08:30-10:00; the broker still holds the same birth: never disconnected.
    rebuilt = Presence.from_dict(saved)
    apply(rebuilt, birth(at(10, 10), boot=1, ts=5))
    rebuilt = run(beats(at(10, 10), at(10, 11), boot=1), at(10, 11, 3), rebuilt)
    assert spans(rebuilt, at(10, 12)) == [(at(10, 7), at(10, 11))]


def test_rebuilt_presence_behaves_as_the_one_that_wrote_it() -> None:
    events = [
        *session(*MORNING, boot=1, ts=100),
        *session(*AFTERNOON, boot=2, ts=200),
        will(at(10, 13, 0, 5), boot=1, ts=100),
        will(at(10, 17, 1, 30), boot=2, ts=200),
    ]
    whole = run(events, END_OF_DAY)
    split = at(10, 14)
    first = run([e for e in events if e[0] < split], split - HB)
    second = run([e for e in events if e[0] >= split], END_OF_DAY, Presence.from_dict(first.to_dict()))
    assert second.to_dict() == whole.to_dict()


def test_state_rows_are_the_durable_record() -> None:
    presence = run([*session(*MORNING, boot=1, ts=100), birth(at(10, 13), 2, 200)], at(10, 13))
    (entry,) = presence.to_dict()["devices"]
    assert entry["facility"] == "38001"
    assert entry["device"] == "qr-0007"
    assert entry["boot"] == 2
    assert entry["conn_ts"] == 200
    assert entry["intervals"] == [[MORNING[0], MORNING[1]], [at(10, 13), None]]


def test_prune_forgets_old_intervals_only() -> None:
    presence = run([*session(*MORNING, boot=1), *session(*AFTERNOON, boot=2)], END_OF_DAY)
    presence.prune(at(10, 12))
    assert spans(presence, END_OF_DAY) == [AFTERNOON]


def test_never_seen_device() -> None:
    presence = Presence()
    other = ("38001", "qr-0099")
    assert presence.state(other) == NEVER_SEEN
    assert presence.intervals(other, END_OF_DAY) == []
    assert uptime_day([], datetime.date(2025, 3, 10), now=END_OF_DAY) == 0.0


def test_a_retained_will_alone_means_offline_not_never_seen() -> None:
    presence = Presence()
    presence.on_status(KEY, OFFLINE, 4, 0, at(10, 8))
    assert presence.state(KEY) == OFFLINE
    assert presence.intervals(KEY, at(10, 9)) == []


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError):
        Presence().on_status(KEY, "sleeping", 1, 0, at(10, 8))


# --- the facility's calendar ---------------------------------------------------------------


def test_interval_across_midnight_and_month_end_splits_by_local_calendar() -> None:
    # 23:00 on 31 January to 01:00 on 1 February, local: 16:00-18:00 UTC on 31 January.
    night = [Interval(at(31, 23, month=1), at(1, 1, month=2))]
    now = at(1, 0, month=3)
    assert uptime_day(night, datetime.date(2025, 1, 31), now=now) == pytest.approx(1 / 24)
    assert uptime_day(night, datetime.date(2025, 2, 1), now=now) == pytest.approx(1 / 24)
    assert uptime_month(night, 2025, 1, now=now) == pytest.approx(3600 / (31 * DAY))
    assert uptime_month(night, 2025, 2, now=now) == pytest.approx(3600 / (28 * DAY))
    assert uptime_month(night, 2024, 12, now=now) == 0.0


def test_day_and_month_windows_are_local_midnights() -> None:
    day = fleet.day_window(datetime.date(2025, 3, 10))
    assert (day.start, day.end) == (at(10, 0), at(11, 0))
    month = fleet.month_window(2024, 2)
    assert (month.start, month.end) == (at(1, 0, month=2, year=2024), at(1, 0, month=3, year=2024))
    assert month.seconds == 29 * DAY  # leap year
    assert fleet.local_date(at(1, 0, 30, month=2)) == datetime.date(2025, 2, 1)  # 17:30 UTC on 31 Jan


def test_since_excludes_the_time_before_provisioning() -> None:
    day = datetime.date(2025, 3, 10)
    online = [Interval(at(10, 12), at(11, 0))]
    assert uptime_day(online, day, now=END_OF_DAY, since=at(10, 12)) == 1.0
    assert uptime_day(online, day, now=END_OF_DAY) == pytest.approx(0.5)


def test_uptime_merges_overlaps_and_clips() -> None:
    overlapping = [Interval(0, 50), Interval(40, 60), Interval(40, 60), Interval(90, 200)]
    assert merge(overlapping) == [Interval(0, 60), Interval(90, 200)]
    assert uptime(overlapping, 10, 110) == pytest.approx(0.7)  # 10..60 and 90..110
    assert uptime(overlapping, 100, 100) == 0.0


# --- inventory -----------------------------------------------------------------------------

PROVISIONED = [
    {"facility": "38001", "device": "qr-0001", "kind": "esp32", "site": "Quầy 1"},
    {"facility": "38001", "device": "kiosk-01", "kind": "rpi", "site": "Quầy 2"},
    {"facility": "38001", "device": "qr-0003", "kind": "esp32", "site": "Quầy 3"},  # never seen
    {"facility": "38002", "device": "qr-0001", "kind": "esp32", "site": "Khoa Nhi"},
    {"facility": "38002", "device": "qr-0009", "kind": "esp32", "site": "cũ", "state": "revoked"},
]
INVENTORIES: dict[tuple[str, str], dict[str, Any]] = {
    ("38001", "qr-0001"): {
        "v": 1,
        "hw": "esp32-s3",
        "fw": "1.2.0",
        "readers": [{"type": "qr", "model": "GM65", "std": True}],
    },
    ("38001", "kiosk-01"): {
        "v": 1,
        "hw": "rpi4",
        "fw": "1.1.0",
        "site": "ignored: the registry's site wins",
        "readers": [
            {"type": "qr", "model": "HW-2D", "std": False},
            {"type": "nfc", "model": "ACR1252U", "std": True},
        ],
    },
    ("38002", "qr-0001"): {"v": 1, "hw": "esp32", "readers": [{"type": "qr"}]},  # standard unknown
    ("38002", "qr-0009"): {"v": 1, "hw": "esp32", "readers": [{"type": "qr", "std": True}]},
}
TELEMETRY: dict[tuple[str, str], dict[str, Any]] = {
    ("38001", "qr-0001"): {"v": 1, "up": 10, "boot": 1, "q": 3, "drop": 1, "fw": "1.2.0"},
    ("38001", "kiosk-01"): {"v": 1, "up": 10, "boot": 1},
    ("38002", "qr-0001"): {"v": 1, "up": 10, "boot": 1, "q": 0, "drop": 0, "fw": "0.9.9"},
}


def fleet_at(now: float) -> fleet.FleetSnapshot:
    presence = Presence(heartbeat=HB)
    for event in session(at(10, 0), now + HB, boot=1):
        apply(presence, event, ("38001", "qr-0001"))
        apply(presence, event, ("38002", "qr-0001"))
    presence.on_status(("38001", "kiosk-01"), ONLINE, 1, 0, at(10, 6))
    presence.on_status(("38001", "kiosk-01"), OFFLINE, 1, 0, at(10, 6, 0, 30))
    presence.tick(now)
    return fleet.snapshot(PROVISIONED, presence, INVENTORIES, TELEMETRY, now)


def test_inventory_rows() -> None:
    now = at(10, 12)
    rows = {(r.facility, r.device): r for r in fleet_at(now).devices}
    assert sorted(rows) == [
        ("38001", "kiosk-01"),
        ("38001", "qr-0001"),
        ("38001", "qr-0003"),
        ("38002", "qr-0001"),
    ]
    qr = rows["38001", "qr-0001"]
    assert (qr.kind, qr.site, qr.hw, qr.firmware, qr.state) == (
        "esp32",
        "Quầy 1",
        "esp32-s3",
        "1.2.0",
        ONLINE,
    )
    assert (qr.reader_types, qr.models, qr.standard_readers) == (("qr",), ("GM65",), 1)
    assert (qr.outbox, qr.drops, qr.last_seen) == (3, 1, at(10, 12))
    assert qr.uptime_day == 1.0
    assert qr.uptime_month == pytest.approx(12 / (9 * 24 + 12))
    kiosk = rows["38001", "kiosk-01"]
    assert (kiosk.site, kiosk.state, kiosk.outbox, kiosk.drops) == ("Quầy 2", OFFLINE, None, None)
    assert (kiosk.reader_types, kiosk.models, kiosk.standard_readers) == (
        ("nfc", "qr"),
        ("ACR1252U", "HW-2D"),
        1,
    )
    assert kiosk.uptime_day == pytest.approx(30 / (12 * 3600))
    never = rows["38001", "qr-0003"]
    assert (never.state, never.readers, never.last_seen, never.uptime_day, never.uptime_month) == (
        NEVER_SEEN,
        (),
        None,
        0.0,
        0.0,
    )
    assert rows["38002", "qr-0001"].firmware == "0.9.9"  # no firmware in its inventory: the heartbeat's


def test_inventory_counts_per_facility() -> None:
    summaries = {s.facility: s for s in fleet_at(at(10, 12)).facilities}
    assert summaries["38001"] == fleet.FacilitySummary(
        facility="38001",
        devices=3,
        online=1,
        offline=1,
        never_seen=1,
        qr_readers=2,
        chip_readers=1,
        standard_readers=2,
    )
    assert summaries["38002"] == fleet.FacilitySummary("38002", 1, 1, 0, 0, 1, 0, 0)  # revoked one left out


def test_provisioned_since_is_taken_from_created() -> None:
    presence = Presence(heartbeat=HB)
    now = at(10, 12)
    for event in session(at(10, 6), now + HB, boot=1):
        apply(presence, event)
    entry = {"facility": KEY[0], "device": KEY[1], "kind": "esp32", "site": "x", "created": at(10, 6)}
    (row,) = fleet.snapshot([entry], presence, {}, {}, now).devices
    assert row.uptime_day == 1.0


# --- properties ----------------------------------------------------------------------------

times = st.integers(min_value=0, max_value=10_000)
intervals_st = st.lists(
    st.tuples(times, times).map(lambda p: Interval(min(p), max(p))),
    max_size=20,
)


@given(intervals_st, times, times)
def test_uptime_is_a_fraction(intervals: list[Interval], a: int, b: int) -> None:
    value = uptime(intervals, min(a, b), max(a, b))
    assert 0.0 <= value <= 1.0


@given(intervals_st)
def test_merge_is_idempotent_sorted_and_disjoint(intervals: list[Interval]) -> None:
    merged = merge(intervals)
    assert merge(merged) == merged
    assert merge(merged + intervals) == merged
    assert all(a.end < b.start for a, b in itertools.pairwise(merged))
    assert uptime(merged, 0, 10_000) == pytest.approx(uptime(intervals, 0, 10_000))


event_st = st.tuples(
    st.integers(min_value=0, max_value=400),  # seconds since the previous event
    st.sampled_from(["online", "offline", "telemetry", "tick"]),
    st.integers(min_value=0, max_value=3),  # boot
    st.integers(min_value=0, max_value=3),  # status ts
)


def replay(presence: Presence, script: Sequence[tuple[int, str, int, int]], start: float) -> float:
    t = start
    for gap, kind, boot, ts in script:
        t += gap
        if kind == "tick":
            presence.tick(t)
        else:
            apply(presence, (t, kind, boot, ts))
    return t


@settings(max_examples=300)
@given(st.lists(event_st, max_size=40), st.integers(min_value=0, max_value=40))
def test_any_history_gives_ordered_disjoint_intervals_and_survives_a_restart(
    script: list[tuple[int, str, int, int]], cut: int
) -> None:
    start = at(10, 0)
    whole = Presence(heartbeat=HB)
    end = replay(whole, script, start)
    intervals = whole.intervals(KEY, end)
    assert all(i.start <= i.end for i in intervals)
    assert all(a.end <= b.start for a, b in itertools.pairwise(intervals))
    assert all(start <= i.start and i.end <= end for i in intervals)
    assert 0.0 <= uptime(intervals, start, end + 1) <= 1.0
    if whole.state(KEY) == ONLINE:
        assert intervals[-1].end == end

    first = Presence(heartbeat=HB)
    t = replay(first, script[:cut], start)
    rebuilt = Presence.from_dict(json.loads(json.dumps(first.to_dict())))
    replay(rebuilt, script[cut:], t)
    assert rebuilt.to_dict() == whole.to_dict()
