"""Period statistics (collector/stats.py) against the ground truth of a month of synthetic
traffic sent through the real ingest and insurance check (tests/unit/reception.py), on SQLite
and PostgreSQL: every figure is recounted from what the simulator sent."""

import datetime
from collections import Counter
from collections.abc import Iterator

import pytest

from cccd import schema
from collector import fleet, stats
from collector.db import open_db
from collector.metrics import Metrics
from collector.tracker import FleetTracker

from .his_visits import _STATUS as STATUS  # the Result status of each insurance state
from .reception import DEAD, DONE, FAC, OTHER_FAC, PENDING, Month, Reception, Truth, month_in_store

YEAR, MONTH = 2026, 10


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def october(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Reception, Month]]:
    """October 2026 at the counters, in each kind of store; the tests only read it."""
    yield from month_in_store(request, tmp_path_factory, YEAR, MONTH)


def status_of(t: Truth) -> str:
    if t.check == DONE:
        return STATUS.get(t.state, "reject")
    return {PENDING: "pending", DEAD: "error"}.get(t.check, "")


def test_reads_by_document_and_source(october: tuple[Reception, Month]) -> None:
    r, m = october
    reads = r.reads_in(m.window)
    got = stats.reads_by_document(r.db, FAC, m.window)
    assert {(c.doc, c.src): c.reads for c in got.rows} == Counter((t.doc, t.src) for t in reads)
    assert got.total == len(reads) and got.by_doc() == Counter(t.doc for t in reads)
    assert got.by_src() == Counter(t.src for t in reads)
    assert set(got.by_doc()) == set(schema.DOCS) and set(got.by_src()) == {"qr", "nfc"}  # all kinds seen
    other = stats.reads_by_document(r.db, OTHER_FAC, m.window)
    assert other.total == len(r.reads_in(m.window, OTHER_FAC)) == 1


def test_insurance_outcomes_match_what_bhxh_was_asked(october: tuple[Reception, Month]) -> None:
    r, m = october
    reads = r.reads_in(m.window)
    o = stats.insurance_outcomes(r.db, FAC, m.window)
    assert o.total == len(reads)
    assert o.by_check() == Counter(t.check for t in reads)
    assert o.by_code() == Counter(t.code for t in reads if t.check == DONE)
    assert o.by_status() == Counter(status_of(t) for t in reads)
    codes = set(o.by_code())
    assert {"000", "001", "002", "003", "004", "010", "050", "110", "120", "130", ""} <= codes

    cccd = [t for t in reads if t.doc != "bhyt"]
    insured = [t for t in reads if t.insured]
    assert o.insured == len(insured) > 0
    assert o.insured_cccd == sum(1 for t in insured if t.doc != "bhyt") > 0
    assert o.insured_bhyt == sum(1 for t in insured if t.doc == "bhyt") > 0
    assert o.cccd_share() == stats.Ratio(o.insured_cccd, len(insured))
    assert o.returned() == stats.Ratio(sum(t.returned for t in cccd), len(cccd))
    assert o.returned(schema.DOCS) == stats.Ratio(sum(t.returned for t in reads), len(reads))
    answered = sum(1 for t in reads if t.check == DONE and t.state)
    assert o.answered() == stats.Ratio(answered, len(reads))
    assert 0 < (o.returned().value or 0) < 1 and o.answered().value != o.returned(schema.DOCS).value
    assert o.count(("bhyt",)) == sum(1 for t in reads if t.doc == "bhyt")


def test_rejects_by_reason_count_only_the_facility_and_the_window(october: tuple[Reception, Month]) -> None:
    r, m = october
    got = stats.rejects(r.db, FAC, m.window)
    assert (
        {c.reason: c.messages for c in got}
        == r.rejects_in(m.window)
        == {
            "tag": 2,
            "duplicate": 1,
            "unknown_kid": 1,
            "unknown_device": 1,
            "too_large": 1,
        }
    )
    assert got[0] == stats.RejectCount("tag", 2)  # most first
    assert [c.messages for c in stats.rejects(r.db, OTHER_FAC, m.window)] == [1]
    assert stats.rejects(r.db, "3800_", m.window) == ()  # LIKE's wildcards are text here


def test_volume_per_local_day_and_per_hour(october: tuple[Reception, Month]) -> None:
    r, m = october
    reads = r.reads_in(m.window)
    days = stats.volume(r.db, FAC, m.window)
    first = fleet.local_date(m.window.start)
    assert len(days) == 31 and days[0].start == m.window.start and days[-1].end == m.window.end
    per_day = Counter(fleet.local_date(t.received) for t in reads)
    assert [b.reads for b in days] == [per_day[first + datetime.timedelta(days=i)] for i in range(31)]
    assert [b.start for b in days] == [
        fleet.day_window(first + datetime.timedelta(days=i)).start for i in range(31)
    ]
    last = first + datetime.timedelta(days=30)
    late = [
        t
        for t in reads
        if fleet.local_date(t.received) == last and t.received >= fleet.day_window(last).end - 3600
    ]
    assert len(late) == 1  # the read at 23:30 on the last day counts in the month, on its last day

    hours = stats.volume(r.db, FAC, fleet.day_window(last), stats.HOUR)
    per_hour = Counter(
        int((t.received - fleet.day_window(last).start) // 3600)
        for t in reads
        if fleet.local_date(t.received) == last
    )
    assert [b.reads for b in hours] == [per_hour[h] for h in range(24)] and hours[23].reads == 1


def test_the_month_boundary_is_the_facility_s_midnight(october: tuple[Reception, Month]) -> None:
    r, m = october
    september = fleet.month_window(2026, 9)
    november = fleet.month_window(2026, 11)
    assert september.end == m.window.start and m.window.end == november.start
    assert stats.reads_by_document(r.db, FAC, september).total == 1  # 23:59:59 on 30 September
    assert stats.reads_by_document(r.db, FAC, november).total == 1  # 00:00:00 on 1 November
    assert datetime.datetime.fromtimestamp(m.window.start, datetime.UTC).hour == 17  # 00:00 UTC+7


def test_equipment_uptime_and_readers(october: tuple[Reception, Month]) -> None:
    r, m = october
    tracker = FleetTracker(r.db, r.registry, Metrics(), 3600.0)  # as a command builds it, from the store
    tracker.presence.tick(m.now)
    eq = stats.equipment(tracker, FAC, m.window, m.now)
    got = {d.device: d for d in eq.devices}
    assert sorted(got) == [d.device for d in m.devices]  # not the revoked one, nor the one provisioned after
    for want in m.devices:
        d = got[want.device]
        assert d.online == pytest.approx(want.online) and d.expected == pytest.approx(want.expected)
        assert d.uptime == pytest.approx(want.online / want.expected)
        assert sum(1 for x in d.readers if x.type == "qr") == want.qr
    assert (eq.qr_readers, eq.qr_standard, eq.chip_readers, eq.standard_readers) == (
        sum(d.qr for d in m.devices),
        sum(d.qr_std for d in m.devices),
        sum(d.nfc for d in m.devices),
        sum(d.qr_std + d.nfc for d in m.devices),
    )
    assert eq.uptime == pytest.approx(sum(d.online for d in m.devices) / sum(d.expected for d in m.devices))
    assert got["qr-0004"].state == fleet.NEVER_SEEN and got["qr-0004"].uptime == 0.0
    assert got["chip-0002"].uptime == pytest.approx(1.0)


def test_a_month_without_traffic_or_devices(october: tuple[Reception, Month]) -> None:
    r, m = october
    august = fleet.month_window(2026, 8)  # before any device was provisioned
    assert stats.reads_by_document(r.db, FAC, august).rows == ()
    o = stats.insurance_outcomes(r.db, FAC, august)
    assert o.total == 0 and o.cccd_share().value is None and o.returned().value is None
    assert stats.rejects(r.db, FAC, august) == ()
    assert [b.reads for b in stats.volume(r.db, FAC, august)] == [0] * 31
    tracker = FleetTracker(r.db, r.registry, Metrics(), 3600.0)
    eq = stats.equipment(tracker, FAC, august, m.now)
    assert eq.devices == () and eq.uptime is None and eq.qr_readers == eq.chip_readers == 0


def test_an_empty_store(tmp_path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'empty.db'}")
    window = fleet.month_window(2026, 11)
    assert stats.reads_by_document(db, FAC, window).total == 0
    assert stats.insurance_outcomes(db, FAC, window).by_code() == {}
    assert stats.volume(db, FAC, fleet.Interval(window.end, window.start)) == ()
    with pytest.raises(ValueError):
        stats.volume(db, FAC, window, 0)
    with pytest.raises(ValueError):
        stats.volume(db, FAC, window, 1.0)  # 2.6 million buckets
    db.close()
