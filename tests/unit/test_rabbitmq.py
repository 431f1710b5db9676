"""A facility's RabbitMQ definitions: the same rules as the Mosquitto ACL (a device writes only its
own topics, reads only its own result and config; the collector reads its facility's queues and
writes Results), the quorum queues and bindings; the collector's [broker] settings for AMQP."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cccd.errors import CoreError
from collector import config
from collector.amqp import fleet_queue, mqtt_topic, reads_queue, routing_key
from tools import provision
from tools.rabbitmq import NodePorts, RabbitError, Tls, definitions, node_conf, rabbit_hash, rabbit_verify

FAC = "38001"


def _defs(devices: tuple[str, ...] = ("qr-0001", "qr-0002")) -> dict[str, Any]:
    names = ["collector_38001", *devices]
    return definitions(FAC, list(devices), "collector_38001", {n: rabbit_hash("pw-" + n) for n in names})


def _topic_rule(defs: dict[str, Any], user: str) -> dict[str, Any]:
    (rule,) = [t for t in defs["topic_permissions"] if t["user"] == user]
    return rule


def _allows(pattern: str, key: str) -> bool:
    # RabbitMQ's permission patterns are regular expressions matched against the whole name
    return re.search(pattern, key) is not None


def test_a_device_writes_only_its_own_topics() -> None:
    rule = _topic_rule(_defs(), "qr-0001")
    for kind in ("read", "status", "telemetry", "inventory"):
        assert _allows(rule["write"], f"cccd.v1.{FAC}.qr-0001.{kind}")
    for key in (
        f"cccd.v1.{FAC}.qr-0002.read",  # another device
        "cccd.v1.38002.qr-0001.read",  # another facility
        f"cccd.v1.{FAC}.qr-0001.result",  # what only the collector writes
        f"cccd.v1.{FAC}.qr-0001x.read",  # a longer name that starts the same
        f"cccd.v1.{FAC}.*.read",  # a pattern
        f"cccd.v1.{FAC}.#",
        f"xcccd.v1.{FAC}.qr-0001.read",
        f"cccd.v1.{FAC}.qr-0001.read.extra",
    ):
        assert not _allows(rule["write"], key), key


def test_a_device_reads_only_its_own_result_and_config() -> None:
    rule = _topic_rule(_defs(), "qr-0002")
    assert _allows(rule["read"], f"cccd.v1.{FAC}.qr-0002.result")
    assert _allows(rule["read"], f"cccd.v1.{FAC}.qr-0002.config")
    for key in (f"cccd.v1.{FAC}.qr-0001.result", f"cccd.v1.{FAC}.qr-0002.read", f"cccd.v1.{FAC}.#"):
        assert not _allows(rule["read"], key), key


def test_a_device_may_only_make_its_own_session_queues() -> None:
    (perm,) = [p for p in _defs()["permissions"] if p["user"] == "qr-0001"]
    assert _allows(perm["configure"], "mqtt-subscription-qr-0001qos1")
    for queue in (
        "mqtt-subscription-qr-0002qos1",
        reads_queue(FAC),
        "amq.topic",
        "mqtt-subscription-qr-0001qos1x",
    ):
        assert not _allows(perm["configure"], queue), queue
    assert not _allows(perm["read"], reads_queue(FAC))


def test_the_collector_reads_its_queues_and_writes_results_only() -> None:
    defs = _defs()
    (perm,) = [p for p in defs["permissions"] if p["user"] == "collector_38001"]
    assert _allows(perm["read"], reads_queue(FAC)) and _allows(perm["read"], fleet_queue(FAC))
    assert not _allows(perm["read"], reads_queue("38002"))
    assert not _allows(perm["configure"], reads_queue(FAC))  # it declares nothing: IT's definitions do
    rule = _topic_rule(defs, "collector_38001")
    assert _allows(rule["write"], f"cccd.v1.{FAC}.qr-0001.result")
    assert _allows(rule["write"], f"cccd.v1.{FAC}.qr-0001.config")
    assert not _allows(rule["write"], f"cccd.v1.{FAC}.qr-0001.read")  # no forged reads
    assert not _allows(rule["write"], "cccd.v1.38002.qr-0001.result")


def test_queues_are_quorum_and_the_fleet_has_one_active_consumer() -> None:
    defs = _defs()
    queues = {q["name"]: q for q in defs["queues"]}
    assert set(queues) == {reads_queue(FAC), fleet_queue(FAC)}
    assert all(q["durable"] and q["arguments"]["x-queue-type"] == "quorum" for q in queues.values())
    assert queues[fleet_queue(FAC)]["arguments"]["x-single-active-consumer"] is True
    assert "x-single-active-consumer" not in queues[reads_queue(FAC)]["arguments"]
    routes = {b["routing_key"]: b["destination"] for b in defs["bindings"]}
    assert routes == {
        f"cccd.v1.{FAC}.*.read": reads_queue(FAC),
        f"cccd.v1.{FAC}.*.status": fleet_queue(FAC),
        f"cccd.v1.{FAC}.*.telemetry": fleet_queue(FAC),
        f"cccd.v1.{FAC}.*.inventory": fleet_queue(FAC),
    }


def test_a_device_without_a_hash_or_with_a_bad_id_is_refused() -> None:
    with pytest.raises(RabbitError, match="no RabbitMQ password hash for qr-0009"):
        definitions(FAC, ["qr-0009"], "collector_38001", {"collector_38001": rabbit_hash("x")})
    with pytest.raises(CoreError):
        definitions(FAC, ["QR 1"], "c", {"c": rabbit_hash("x"), "QR 1": rabbit_hash("y")})


def test_rabbit_hash_is_salted_and_verifies() -> None:
    a, b = rabbit_hash("secret"), rabbit_hash("secret")
    assert a != b  # a fresh salt each time
    assert rabbit_verify(a, "secret") and not rabbit_verify(a, "Secret")
    with pytest.raises(ValueError):
        rabbit_hash("x", salt=b"12345")


@given(
    st.lists(st.sampled_from(["cccd", "v1", "38001", "qr-0001", "a.b", "read", "x"]), min_size=1, max_size=6)
)
def test_routing_key_and_topic_are_inverse(levels: list[str]) -> None:
    topic = "/".join(levels)
    assert mqtt_topic(routing_key(topic)) == topic


def test_node_conf_listens_on_tls_only() -> None:
    conf = node_conf(NodePorts(5671, 8883, 25672), Tls(Path("ca"), Path("c"), Path("k")), ["a@localhost"])
    assert "listeners.tcp = none" in conf and "mqtt.listeners.tcp = none" in conf
    assert "listeners.ssl.default = 127.0.0.1:5671" in conf
    assert "mqtt.allow_anonymous = false" in conf


def test_provisioning_keeps_the_rabbitmq_hashes(tmp_path: Path) -> None:
    home = provision.init(tmp_path / "home", FAC, run_here=True)
    provision.devices(home.path, FAC, [("qr-0001", "esp32", "Quầy 1"), ("qr-0002", "rpi", "Quầy 2")])
    provision.revoke(home.path, FAC, "qr-0002")
    defs = provision.rabbitmq_definitions(home.path, FAC)
    assert {u["name"] for u in defs["users"]} == {"collector_38001", "qr-0001"}
    node = json.loads((home.path / "nodes" / f"{FAC}-qr-0001.json").read_text())
    (user,) = [u for u in defs["users"] if u["name"] == "qr-0001"]
    assert rabbit_verify(user["password_hash"], node["broker"]["password"])
    collector_password = (home.path / "collector.password").read_text().strip()
    (collector,) = [u for u in defs["users"] if u["name"] == "collector_38001"]
    assert rabbit_verify(collector["password_hash"], collector_password)
    assert oct((home.path / provision.RABBIT_USERS).stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ({"transport": "kafka"}, "broker.transport is 'kafka'"),
        ({"transport": "amqp"}, "broker.nodes is empty"),
        ({"transport": "amqp", "nodes": ["rmq1"]}, "write each node as host:port"),
        ({"transport": "amqp", "nodes": ["rmq1:99999"]}, "write each node as host:port"),
        ({"transport": "amqp", "nodes": ["rmq1:5671"], "prefetch": 0}, "prefetch must be at least 1"),
    ],
)
def test_amqp_settings_are_checked(broker: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.from_dict({"broker": broker, "collector": {"facilities": [FAC]}})


def test_amqp_settings_load() -> None:
    cfg = config.from_dict(
        {"broker": {"transport": "amqp", "nodes": ["a:5671", "b:5671"]}, "collector": {"facilities": [FAC]}}
    )
    assert (
        cfg.broker.nodes == ["a:5671", "b:5671"] and cfg.broker.vhost == "cccd" and cfg.broker.prefetch == 400
    )
