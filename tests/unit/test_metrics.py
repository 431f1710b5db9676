"""The collector's Prometheus metrics, read back through prometheus_client's own parser."""

import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import fleet
from collector.metrics import INGEST_BUCKETS, Metrics

Labels = frozenset[tuple[str, str]]

ICT = datetime.timezone(datetime.timedelta(hours=7))
NOW = datetime.datetime(2025, 3, 10, 12, 0, tzinfo=ICT).timestamp()


def samples(metrics: Metrics) -> dict[tuple[str, Labels], float]:
    """Every sample of the exposition, by (sample name, labels)."""
    text = metrics.render().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def names(metrics: Metrics, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples(metrics) if sample == name]


def test_reads_are_counted_by_facility_doc_src_outcome() -> None:
    m = Metrics()
    m.read("38001", "cccd", "qr", "ok")
    m.read("38001", "cccd", "qr", "ok")
    m.read("38001", "vneid", "qr", "warn")
    m.read("38002", "cancuoc", "nfc", "reject")
    assert value(m, "cccd_reads_total", facility="38001", doc="cccd", src="qr", outcome="ok") == 2
    assert value(m, "cccd_reads_total", facility="38001", doc="vneid", src="qr", outcome="warn") == 1
    assert value(m, "cccd_reads_total", facility="38002", doc="cancuoc", src="nfc", outcome="reject") == 1


def test_rejects_are_counted_by_reason() -> None:
    m = Metrics()
    for reason in ("tag", "tag", "unknown_kid", "duplicate", "too_large", "missing", "topic"):
        m.reject("38001", reason)
    assert value(m, "cccd_rejects_total", facility="38001", reason="tag") == 2
    for reason in ("unknown_kid", "duplicate", "too_large", "missing", "topic"):
        assert value(m, "cccd_rejects_total", facility="38001", reason=reason) == 1


def test_label_values_are_never_free_text() -> None:
    m = Metrics()
    m.reject("079201001234", "tag")  # a personal ID where a facility should be
    m.reject("38001", "Nguyễn Văn An")  # text where a reason code should be
    m.read("38001", "passport", "camera", "maybe")
    assert value(m, "cccd_rejects_total", facility="unknown", reason="tag") == 1
    assert value(m, "cccd_rejects_total", facility="38001", reason="other") == 1
    assert value(m, "cccd_reads_total", facility="38001", doc="other", src="other", outcome="other") == 1
    text = m.render().decode("utf-8")
    assert "079201001234" not in text
    assert "Nguyễn" not in text


def test_ingest_histogram_buckets_from_one_millisecond_to_five_seconds() -> None:
    m = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 0.2, 7.0, -1.0):
        m.observe_ingest(seconds)
    bounds = [float(b) for b in INGEST_BUCKETS]
    assert (bounds[0], bounds[-1]) == (0.001, 5.0)
    assert value(m, "cccd_ingest_seconds_bucket", le="0.001") == 2  # 0.5 ms, and -1 counted as 0
    assert value(m, "cccd_ingest_seconds_bucket", le="0.005") == 4
    assert value(m, "cccd_ingest_seconds_bucket", le="0.25") == 5
    assert value(m, "cccd_ingest_seconds_bucket", le="5.0") == 5
    assert value(m, "cccd_ingest_seconds_bucket", le="+Inf") == 6
    assert value(m, "cccd_ingest_seconds_count") == 6
    assert value(m, "cccd_ingest_seconds_sum") == pytest.approx(7.2065)


def _snapshot(devices: list[dict[str, str]]) -> fleet.FleetSnapshot:
    presence = fleet.Presence(heartbeat=60)
    presence.on_status(("38001", "qr-0001"), fleet.ONLINE, 1, 0, NOW - 6 * 3600)
    for t in range(int(NOW - 6 * 3600), int(NOW) + 1, 60):
        presence.on_telemetry(("38001", "qr-0001"), 1, t, interval=60)
    presence.on_status(("38001", "qr-0002"), fleet.ONLINE, 1, 0, NOW - 3600)
    presence.on_status(("38001", "qr-0002"), fleet.OFFLINE, 1, 0, NOW - 3600 + 30)
    presence.tick(NOW)
    telemetry = {
        ("38001", "qr-0001"): {"v": 1, "up": 1, "boot": 1, "q": 4, "drop": 2},
        ("38001", "qr-0002"): {"v": 1, "up": 1, "boot": 1, "q": 0},
    }
    return fleet.snapshot(devices, presence, {}, telemetry, NOW)


DEVICES = [
    {"facility": "38001", "device": "qr-0001", "kind": "esp32", "site": "Quầy 1"},
    {"facility": "38001", "device": "qr-0002", "kind": "esp32", "site": "Quầy 2"},
    {"facility": "38002", "device": "qr-0001", "kind": "esp32", "site": "Quầy 1"},
]


def test_fleet_gauges() -> None:
    m = Metrics()
    m.fleet(_snapshot(DEVICES))
    assert value(m, "cccd_devices_online", facility="38001") == 1
    assert value(m, "cccd_devices_online", facility="38002") == 0
    assert value(m, "cccd_outbox_depth", facility="38001", device="qr-0001") == 4
    assert value(m, "cccd_outbox_drops", facility="38001", device="qr-0001") == 2
    assert value(m, "cccd_outbox_depth", facility="38001", device="qr-0002") == 0
    assert value(m, "cccd_outbox_drops", facility="38001", device="qr-0002") is None  # not reported
    assert value(m, "cccd_outbox_depth", facility="38002", device="qr-0001") is None  # never seen
    day = value(m, "cccd_uptime_ratio", facility="38001", device="qr-0001", window="day")
    month = value(m, "cccd_uptime_ratio", facility="38001", device="qr-0001", window="month")
    assert day == pytest.approx(6 / 12)
    assert month == pytest.approx(6 / (9 * 24 + 12))
    assert value(m, "cccd_uptime_ratio", facility="38001", device="qr-0002", window="day") == pytest.approx(
        30 / (12 * 3600)
    )
    assert value(m, "cccd_uptime_ratio", facility="38002", device="qr-0001", window="month") == 0


def test_a_new_snapshot_replaces_the_old_one_whole() -> None:
    m = Metrics()
    m.fleet(_snapshot(DEVICES))
    m.fleet(_snapshot(DEVICES[:1]))  # two devices left the registry
    assert names(m, "cccd_devices_online") == [{"facility": "38001"}]
    assert {d["device"] for d in names(m, "cccd_uptime_ratio")} == {"qr-0001"}


def test_fleet_gauges_are_empty_before_the_first_snapshot() -> None:
    m = Metrics()
    assert names(m, "cccd_devices_online") == []
    assert "# TYPE cccd_devices_online gauge" in m.render().decode("utf-8")


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.reject("38001", "tag")
    assert value(a, "cccd_rejects_total", facility="38001", reason="tag") == 1
    assert value(b, "cccd_rejects_total", facility="38001", reason="tag") is None
