"""The facility side end to end: provisioning, the real Mosquitto, the real collector process.

A provisioned node streams reads; the collector is killed with SIGKILL mid-stream and started
again; every read the broker accepted is in the store exactly once.
"""

import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cccd import envelope, keys, pseudonym, schema
from tools import provision
from tools.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAC = "38001"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """A provisioned facility home with its broker running and one provisioned node."""

    def __init__(self, base: Path) -> None:
        self.port = _free_port()
        self.home = provision.init(base / "home", FAC, broker_port=self.port, run_here=True, metrics_port=0)
        self.node = json.loads(
            provision.device(self.home.path, FAC, "qr-0001", "esp32", "Quầy 1").read_text()
        )
        self.ca = self.home.path / "ca.crt"
        self.broker = Mosquitto(self.home.broker.conf, self.port, self.ca).start()
        self.collector: subprocess.Popen[bytes] | None = None
        self.log = base / "collector.log"

    def start_collector(self) -> None:
        with self.log.open("ab") as out:
            self.collector = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tools.cli",
                    "collector",
                    "run",
                    "--config",
                    str(self.home.path / "collector.toml"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def wait_subscribed(self, count: int = 1) -> None:
        """Until the collector's session has its subscriptions: before that the broker keeps
        nothing for it (a facility starts its collector before provisioning nodes)."""
        _wait(lambda: self.log.read_text().count("subscribed to") >= count, 30, "the collector to subscribe")

    def kill_collector(self) -> None:
        assert self.collector is not None
        self.collector.send_signal(signal.SIGKILL)
        self.collector.wait()

    def stop(self) -> None:
        if self.collector is not None and self.collector.poll() is None:
            self.collector.terminate()
            self.collector.wait(timeout=10)
        self.broker.stop()

    def stored(self) -> list[tuple[str, int]]:
        with sqlite3.connect(self.home.path / "collector.db", timeout=10) as conn:
            return conn.execute("SELECT device, seq FROM reads ORDER BY seq").fetchall()

    def quarantined(self) -> list[str]:
        with sqlite3.connect(self.home.path / "collector.db", timeout=10) as conn:
            return [r[0] for r in conn.execute("SELECT reason FROM quarantine")]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.stop()


class Node:
    """A node as the contract describes it, built from its configuration file alone."""

    def __init__(self, cfg: dict[str, Any], ca: Path) -> None:
        self.cfg = cfg
        self.keys = keys.derive(bytes.fromhex(cfg["secret"]))
        self.topic = schema.topic(cfg["facility"], cfg["device"], "read")
        self.acked: set[int] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=cfg["device"], clean_session=False
        )
        self.client.username_pw_set(cfg["broker"]["username"], cfg["broker"]["password"])
        self.client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.max_inflight_messages_set(50)
        self.client.on_publish = self._on_publish
        self.mids: dict[int, int] = {}

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self.lock:
            if mid in self.mids:
                self.acked.add(self.mids.pop(mid))

    def connect(self) -> None:
        self.client.connect(self.cfg["broker"]["host"], self.cfg["broker"]["port"])
        self.client.loop_start()

    def read(self, seq: int) -> bytes:
        pid = pseudonym.pid(bytes.fromhex(self.cfg["pseudonym_secret"]), cccd="001090000001")
        ident = {"cccd": "001090000001", "name": "Lê Văn Bình", "dob": "1990-01-01", "sex": "M"}
        payload = schema.encode(
            "read", schema.read(seq, 1795000000000 + seq, "ntp", "qr", "cccd", pid, ident)
        )
        return envelope.seal(
            self.keys.up_key, self.keys.up_iv, self.cfg["device"].encode(), seq, self.topic, payload
        )

    def publish(self, seq: int) -> None:
        info = self.client.publish(self.topic, self.read(seq), qos=1)
        with self.lock:
            self.mids[info.mid] = seq

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(site: Site) -> None:
    site.start_collector()
    site.wait_subscribed()
    node = Node(site.node, site.ca)
    node.connect()
    n = 1200
    kills = 0
    try:
        for seq in range(n):
            node.publish(seq)
            if seq in (300, 800):  # mid-stream: reads in flight, in a batch, in the queue
                _wait(lambda: len(site.stored()) > 0, 30, "the collector to store something")
                site.kill_collector()
                kills += 1
            if seq in (500, 1000):
                site.start_collector()
            time.sleep(0.002)
        _wait(lambda: len(node.acked) == n, 30, "the broker to acknowledge every read")
        _wait(lambda: len(site.stored()) >= n, 60, f"{n} reads in the store")
        time.sleep(1.0)  # anything redelivered late must still be refused
        stored = site.stored()
    finally:
        node.close()
    assert kills == 2
    assert len(stored) == n, f"{len(stored)} rows for {n} reads"
    assert sorted(seq for _d, seq in stored) == list(range(n))
    assert set(site.quarantined()) <= {"duplicate"}


def _connack(node: Node) -> str:
    """The CONNACK reason the broker gives this node's credentials."""
    got: list[str] = []
    node.client.on_connect = lambda _c, _u, _f, reason, _p: got.append(str(reason))
    node.client.connect(node.cfg["broker"]["host"], node.cfg["broker"]["port"])
    node.client.loop_start()
    try:
        _wait(lambda: bool(got), 10, "a CONNACK")
    finally:
        node.client.disconnect()
        node.client.loop_stop()
    return got[0]


def test_revoked_device_is_refused_by_broker_and_collector(site: Site) -> None:
    assert _connack(Node(site.node, site.ca)) == "Success"
    site.start_collector()
    site.wait_subscribed()
    provision.revoke(site.home.path, FAC, "qr-0001")
    site.broker.reload()
    assert _connack(Node(site.node, site.ca)) == "Not authorized"
    # The broker files rewritten by revoke still serve the others: a device provisioned after it works.
    cfg = json.loads(provision.device(site.home.path, FAC, "qr-0002", "esp32", "Quầy 2").read_text())
    site.broker.reload()
    other = Node(cfg, site.ca)
    other.connect()
    other.publish(0)
    _wait(lambda: len(site.stored()) == 1, 20, "qr-0002's read in the store")
    other.close()
    assert site.stored() == [("qr-0002", 0)]


def test_node_config_file_matches_the_contract(site: Site) -> None:
    cfg = site.node
    assert set(cfg) == {"device", "facility", "site", "broker", "secret", "pseudonym_secret"}
    assert set(cfg["broker"]) == {"host", "port", "tls", "ca", "username", "password"}
    assert len(bytes.fromhex(cfg["secret"])) == 32 and cfg["broker"]["tls"] is True
    path = site.home.path / "nodes" / f"{FAC}-qr-0001.json"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert cfg["site"] == "Quầy 1"
