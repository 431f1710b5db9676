"""Beyond one broker: a real three-node RabbitMQ cluster (Debian's rabbitmq-server, the MQTT
plugin, quorum queues), two collectors consuming over AMQP as competing consumers, the fake
gateway and HIS, simulated nodes through a TCP balancer. The facility's definitions keep the
Mosquitto ACL's rules; one RabbitMQ node and one collector SIGKILLed under load lose nothing and
store or register nothing twice (`cccd-edge bench cluster` is the long form)."""

import json
import shutil
import sqlite3
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from facility import wait
from paho.mqtt.enums import CallbackAPIVersion

from collector.amqp import fleet_queue, reads_queue
from tools import rabbitmq
from tools.benchcluster import FACILITY, ClusterRun, kill_and_drain

pytestmark = pytest.mark.integration

NODES = 6


@pytest.fixture(scope="module")
def site() -> Iterator[ClusterRun]:
    why = rabbitmq.available()
    if why is not None:
        pytest.fail(f"{why}: `make test` installs it")
    # not under pytest's temporary directory: the nodes run as the user rabbitmq, who cannot enter it
    base = Path(tempfile.mkdtemp(prefix="cccd-cluster-test-"))
    run = ClusterRun(base, NODES, 10.0, lambda _m: None)
    try:
        run.start()
        yield run
    finally:
        run.stop()
        shutil.rmtree(base, ignore_errors=True)


def _quarantined(site: ClusterRun, topic: str) -> int:
    with sqlite3.connect(site.home.path / "collector.db", timeout=5) as db:
        return int(db.execute("SELECT COUNT(*) FROM quarantine WHERE topic = ?", (topic,)).fetchone()[0])


def _device(site: ClusterRun, device: str) -> dict[str, str]:
    cfg = json.loads((site.home.path / "nodes" / f"{FACILITY}-{device}.json").read_text("utf-8"))
    return dict(cfg["broker"])


class _Probe:
    """A device's account on one cluster node, with another client id than the device's own (the
    simulated node keeps its session)."""

    def __init__(self, site: ClusterRun, device: str, password: str | None = None) -> None:
        broker = _device(site, device)
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.reason = ""
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=device + "-probe"
        )
        self.client.username_pw_set(device, broker["password"] if password is None else password)
        self.client.tls_set(ca_certs=str(site.home.path / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.closed.set()
        self.client.connect("127.0.0.1", site.cluster.ports[1].mqtt)
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        self.reason = str(reason)
        if reason.is_failure:
            self.closed.set()
        else:
            self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_both_queues_are_replicated_on_every_node(site: ClusterRun) -> None:
    for queue in (reads_queue(FACILITY), fleet_queue(FACILITY)):
        assert sorted(site.cluster.queue_members(queue)) == sorted(site.cluster.names)


def test_a_wrong_password_is_refused(site: ClusterRun) -> None:
    probe = _Probe(site, "qr-0001", password="not-the-password")
    try:
        assert probe.closed.wait(10) and not probe.connected.is_set()
        assert "Not authorized" in probe.reason or "Bad user name or password" in probe.reason
    finally:
        probe.close()


def test_a_device_reaches_the_collector_on_its_own_topic_only(site: ClusterRun) -> None:
    own, other = f"cccd/v1/{FACILITY}/qr-0001/read", f"cccd/v1/{FACILITY}/qr-0002/read"
    before_own, before_other = _quarantined(site, own), _quarantined(site, other)
    probe = _Probe(site, "qr-0001")
    try:
        assert probe.connected.wait(10), probe.reason
        # what is not an envelope reaches a collector on its own topic, and is quarantined there
        probe.client.publish(own, b"not an envelope", qos=1).wait_for_publish(10)
        wait(lambda: _quarantined(site, own) == before_own + 1, 15, "the collector to quarantine it")
        # on another device's topic RabbitMQ refuses it and closes the connection
        probe.client.publish(other, b"not an envelope either", qos=1)
        assert probe.closed.wait(10)
    finally:
        probe.close()
    time.sleep(1.0)  # time enough to reach the store, had it been let through
    assert _quarantined(site, other) == before_other


def test_a_broker_node_and_a_collector_killed_under_load_lose_nothing(site: ClusterRun) -> None:
    report = kill_and_drain(site, warmup=4.0, fault=6.0, say=lambda _m: None)
    assert report.killed_node in report.queue_members
    assert report.stored_before > 0
    assert report.stored_during > 0  # the other collector and two nodes went on storing
    assert report.accepted > report.stored_before
    assert report.lost == report.dropped == 0
    assert report.unknown == 0
    assert report.stored == report.accepted  # each read once: the store's key
    assert report.registered == report.stored and report.registered_twice == 0
    assert report.answered == report.accepted
    assert report.online_at_end == NODES  # the surviving collector took over the fleet
    assert report.ok


def test_the_site_survives_without_the_killed_node(site: ClusterRun) -> None:
    """Runs after the kill: two nodes of three still hold the queues' majority."""
    assert len(site.cluster.running()) == site.cluster.size - 1
    assert site.collectors[1].exit_code() is None  # the surviving collector is still running
    log = Path(site.collectors[1].log).read_text("utf-8", "replace")
    assert "could not store" not in log
