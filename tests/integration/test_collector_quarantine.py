"""Bad messages through the real broker to the real collector: refused, counted, quarantined;
and presence from a node's birth and Last Will."""

import json
import sqlite3
import urllib.request

import pytest
from facility import Node, Site, wait
from prometheus_client.parser import text_string_to_metric_families

from cccd import cbor, envelope, keys, schema
from collector import fleet
from tools.ports import free_port

pytestmark = pytest.mark.integration


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _presence(site: Site) -> str:
    with sqlite3.connect(site.home.path / "collector.db", timeout=10) as conn:
        rows = conn.execute("SELECT body FROM presence_state WHERE device = 'qr-0001'").fetchall()
    return fleet.DeviceState.from_dict(json.loads(rows[0][0])).state if rows else fleet.NEVER_SEEN


def test_tampered_replayed_unknown_and_malformed_are_counted_and_quarantined(tmp_path) -> None:
    site = Site(tmp_path, metrics_port=free_port())
    try:
        site.start_collector()
        site.wait_subscribed()
        node = Node(site.node, site.ca)
        node.set_will(boot=7, ts=1795000000)
        node.connect()
        node.publish_raw(
            "status", schema.encode("status", schema.status("online", 7, 1795000000)), retain=True
        )
        node.publish_raw("telemetry", schema.encode("telemetry", schema.telemetry(5, 7, q=0, drop=0)))

        good = node.read(0)
        tampered = bytearray(node.read(1))
        tampered[-1] ^= 0x40
        stranger = keys.derive(bytes(32))  # a secret the registry does not know for this device
        payload = schema.encode(
            "read", cbor.loads(envelope.parse(good).open(node.keys.up_key, node.keys.up_iv, node.topic))
        )
        forged = envelope.seal(stranger.up_key, stranger.up_iv, b"qr-0001", 2, node.topic, payload)
        bad_schema = envelope.seal(
            node.keys.up_key, node.keys.up_iv, b"qr-0001", 3, node.topic, cbor.dumps({"v": 1})
        )
        for data in (good, good, bytes(tampered), forged, b"\x00\xff not cose", bad_schema):
            node.publish_raw("read", data)

        wait(lambda: len(site.quarantined()) >= 5, 20, "five quarantined messages")
        assert site.stored() == [("qr-0001", 0)]
        assert sorted(site.quarantined()) == ["duplicate", "malformed", "missing", "tag", "tag"]
        metrics = _metrics(site.metrics_port)
        rejects = {
            dict(labels)["reason"]: v for (name, labels), v in metrics.items() if name == "cccd_rejects_total"
        }
        assert rejects == {"duplicate": 1.0, "malformed": 1.0, "missing": 1.0, "tag": 2.0}
        reads = [v for (name, labels), v in metrics.items() if name == "cccd_reads_total"]
        assert reads == [1.0]

        wait(lambda: _presence(site) == fleet.ONLINE, 10, "the birth to count")
        node.crash()  # the broker publishes the Last Will
        wait(lambda: _presence(site) == fleet.OFFLINE, 10, "the Last Will to count")
        node.client.loop_stop()
    finally:
        site.stop()
