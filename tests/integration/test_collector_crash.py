"""The facility side end to end: provisioning, the real Mosquitto, the real collector process.

A provisioned node streams reads; the collector is killed with SIGKILL mid-stream and started
again; every read the broker accepted is in the store exactly once.
"""

import json
import os
import time

import pytest
from facility import FAC, Node, Site, wait

from tools import provision

pytestmark = pytest.mark.integration


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
                wait(lambda: len(site.stored()) > 0, 30, "the collector to store something")
                site.kill_collector()
                kills += 1
            if seq in (500, 1000):
                site.start_collector()
            time.sleep(0.002)
        wait(lambda: len(node.acked) == n, 30, "the broker to acknowledge every read")
        wait(lambda: len(site.stored()) >= n, 60, f"{n} reads in the store")
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
        wait(lambda: bool(got), 10, "a CONNACK")
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
    wait(lambda: len(site.stored()) == 1, 20, "qr-0002's read in the store")
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
