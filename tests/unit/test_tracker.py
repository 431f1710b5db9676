"""The fleet as the collector keeps it: fed by ingest, saved in the store, rebuilt after a restart."""

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cccd import envelope, keys, pseudonym, schema
from collector import fleet
from collector.db import Database, open_db
from collector.ingest import Ingest, Message
from collector.keystore import Keystore
from collector.metrics import Metrics
from collector.registry import Registry
from collector.tracker import FleetTracker

FAC = "38001"
T0 = 1_800_000_000.0


@pytest.fixture
def setup(store_url: str) -> Iterator[tuple[Database, Registry, Ingest, FleetTracker, bytes]]:
    db = open_db(store_url)
    reg = Registry(db, Keystore(bytes(range(32))))
    secret = reg.add(FAC, "qr-0001", "esp32", "Quầy 1", now=T0 - 10)
    reg.add(FAC, "qr-0002", "rpi", "Quầy 2", now=T0 - 10)
    ingest = Ingest(db, reg, reg.keystore)
    tracker = FleetTracker(db, reg, Metrics(), heartbeat=30.0)
    ingest.listeners.append(tracker.on_outcomes)
    yield db, reg, ingest, tracker, secret
    db.close()


def _m(kind: str, payload: bytes, at: float, device: str = "qr-0001") -> Message:
    return Message(schema.topic(FAC, device, kind), payload, at)


def test_presence_is_fed_saved_and_rebuilt(setup) -> None:
    db, reg, ingest, tracker, _secret = setup
    ingest.handle_batch(
        [
            _m("status", schema.encode("status", schema.status("online", 4, 1)), T0),
            _m("telemetry", schema.encode("telemetry", schema.telemetry(30, 4, q=3, drop=1)), T0 + 30),
            _m(
                "inventory",
                schema.encode("inventory", schema.inventory("esp32", [{"type": "qr", "std": True}])),
                T0,
            ),
        ]
    )
    assert tracker.presence.state((FAC, "qr-0001")) == fleet.ONLINE
    again = FleetTracker(db, reg, Metrics(), heartbeat=30.0)
    assert again.presence.to_dict() == tracker.presence.to_dict()
    snap = again.snapshot(T0 + 60)
    rows = {row.device: row for row in snap.devices}
    assert (
        rows["qr-0001"].state == fleet.ONLINE and rows["qr-0001"].outbox == 3 and rows["qr-0001"].drops == 1
    )
    assert rows["qr-0002"].state == fleet.NEVER_SEEN
    (summary,) = snap.facilities
    assert (summary.qr_readers, summary.standard_readers, summary.never_seen) == (1, 1, 1)


def test_silence_is_applied_by_tick_and_saved(setup) -> None:
    db, reg, ingest, tracker, _secret = setup
    ingest.handle_batch([_m("telemetry", schema.encode("telemetry", schema.telemetry(1, 1)), T0)])
    tracker.tick(T0 + 200)
    assert tracker.presence.state((FAC, "qr-0001")) == fleet.OFFLINE
    assert FleetTracker(db, reg, Metrics(), 30.0).presence.state((FAC, "qr-0001")) == fleet.OFFLINE


def test_reads_and_rejects_reach_the_metrics(setup) -> None:
    _db, reg, ingest, tracker, secret = setup
    k = keys.derive(secret)
    pid = pseudonym.pid(reg.pseudonym_secret(FAC), cccd="001090000001")
    read = schema.encode("read", schema.read(1, 1, "rtc", "qr", "cccd", pid, {"cccd": "001090000001"}))
    topic = schema.topic(FAC, "qr-0001", "read")
    good = envelope.seal(k.up_key, k.up_iv, b"qr-0001", 1, topic, read)
    ingest.handle_batch([Message(topic, good, T0), Message(topic, good, T0), Message(topic, b"\x00", T0)])
    families = {f.name: f for f in text_string_to_metric_families(tracker.metrics.render().decode())}
    reads = {
        s.labels["outcome"]: s.value for s in families["cccd_reads"].samples if s.name.endswith("_total")
    }
    rejects = {
        s.labels["reason"]: s.value for s in families["cccd_rejects"].samples if s.name.endswith("_total")
    }
    assert reads == {"pending": 1.0}
    assert rejects == {"duplicate": 1.0, "malformed": 1.0}
