"""The facility broker's security and delivery guarantees, against a real Mosquitto (MQTT v5 over TLS).

The configuration under test is tools/brokerfiles.py's, as production uses it. MQTT v5 so that every
outcome has a reason code: a refused login is a CONNACK "Not authorized", a denied publish a PUBACK
"Not authorized". A denied publish is also proven not to reach the one subscriber entitled to read
that topic, and a forbidden subscription is proven to deliver nothing; both without sleeping, by a
barrier: a later message that the observer does receive (Mosquitto processes a connection's packets
in order, and delivers to a subscriber in order).

What Mosquitto 2.0.11 does, found here and documented in broker_config/mosquitto/README.md:
- its acl_file does not check SUBSCRIBE at all: every SUBACK grants the subscription, and each
  message is checked against `topic read` for the subscriber at delivery. So "cannot subscribe"
  means "receives nothing"; a shared subscription `$share/<group>/<filter>` is checked the same way,
  against each message's own topic, with no `$share` line in the ACL;
- hence any account can join a share group, and the messages the broker hands to it are dropped:
  test_any_account_can_join_a_share_group pins that hazard (the collector should not rely on a
  well-known share group on Mosquitto);
- SIGHUP re-reads the password file and ACL and disconnects a connected client whose account is
  gone; it re-reads the broker's certificate and key as well;
- a PUBLISH above message_size_limit gets a PUBACK over MQTT 3.1.1 and is dropped (over v5 the
  PUBACK carries reason 0x95, which paho-mqtt rejects as malformed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import (
    FACILITY,
    NEVER_SESSION_EXPIRY,
    OTHER_FACILITY,
    Account,
    Broker,
    Message,
    Peer,
    Peers,
    start_broker,
)
from paho.mqtt.enums import MQTTProtocolVersion

from tools import brokerfiles as bf

pytestmark = pytest.mark.integration

A, B, C = "qr-0001", "qr-0002", "qr-0101"  # A and B in FACILITY, C in OTHER_FACILITY
DENIED = "Not authorized"
# A PUBACK that accepts: MQTT v5 says "No matching subscribers" when nobody may receive it.
ACCEPTED = {"Success", "No matching subscribers"}
REFUSED_LOGIN = {"Not authorized", "Bad user name or password"}
SHORT_WAIT = 0.3  # for the few checks that have no barrier


def t(device: str, kind: str, facility: str = FACILITY) -> str:
    return bf.topic(facility, device, kind)


def token(label: str = "") -> bytes:
    """A payload no other test sends."""
    return f"{label}-{uuid.uuid4().hex}".encode()


def payloads(messages: list[Message]) -> list[bytes]:
    return [m.payload for m in messages]


def device(broker: Broker, device_id: str) -> Account:
    return broker.devices[device_id]


def collector(broker: Broker, facility: str = FACILITY) -> Account:
    return broker.collectors[facility]


# --- observers and barriers -----------------------------------------------------------------------


def watch_uplink(peers: Peers, facility: str) -> Peer:
    """The facility's collector, subscribed to every uplink topic it may read."""
    observer = peers.connect(collector(peers.broker, facility))
    for kind in bf.DEVICE_PUBLISHES:
        observer.subscribe(t("+", kind, facility))
    return observer


def uplink_barrier(peers: Peers, facility: str) -> tuple[str, bytes]:
    """A read that a device of ``facility`` publishes on its own topic; returns (topic, payload)."""
    sender = A if facility == FACILITY else C
    marker = token("barrier")
    topic = t(sender, "read", facility)
    assert peers.connect(device(peers.broker, sender)).publish(topic, marker) == "Success"
    return topic, marker


def watch_downlink(peers: Peers, device_id: str) -> Peer:
    """A device, subscribed to its own result and config."""
    observer = peers.connect(device(peers.broker, device_id))
    observer.subscribe(t(device_id, "result", facility_of(device_id)))
    observer.subscribe(t(device_id, "config", facility_of(device_id)))
    return observer


def facility_of(device_id: str) -> str:
    return OTHER_FACILITY if device_id == C else FACILITY


def downlink_barrier(peers: Peers, device_id: str) -> tuple[str, bytes]:
    """A result that the device's collector sends it; returns (topic, payload)."""
    facility = facility_of(device_id)
    marker = token("barrier")
    topic = t(device_id, "result", facility)
    assert peers.connect(collector(peers.broker, facility)).publish(topic, marker) == "Success"
    return topic, marker


# --- devices publishing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "qos", "retain"),
    [("read", 1, False), ("status", 1, True), ("telemetry", 0, False), ("inventory", 1, True)],
)
def test_a_device_publishes_its_own_uplink(
    broker: Broker, peers: Peers, kind: str, qos: int, retain: bool
) -> None:
    observer = watch_uplink(peers, FACILITY)
    a = peers.connect(device(broker, A))
    payload = token(kind)
    assert a.publish(t(A, kind), payload, qos=qos, retain=retain) == "Success"
    assert payload in payloads(observer.until(t(A, kind), payload))


DENIED_PUBLISHES = [
    pytest.param(t(B, "read"), id="as-B-read"),
    pytest.param(t(B, "status"), id="as-B-status"),
    pytest.param(t(B, "telemetry"), id="as-B-telemetry"),
    pytest.param(t(B, "inventory"), id="as-B-inventory"),
    pytest.param(t(A, "read", OTHER_FACILITY), id="own-id-other-facility"),
    pytest.param(t(C, "read", OTHER_FACILITY), id="as-C-other-facility"),
    pytest.param(t(A, "result"), id="own-result"),
    pytest.param(t(A, "config"), id="own-config"),
    pytest.param(t(B, "result"), id="B-result"),
    pytest.param(t(C, "config", OTHER_FACILITY), id="C-config-other-facility"),
]


@pytest.mark.parametrize("topic", DENIED_PUBLISHES)
def test_a_device_cannot_publish_outside_its_own_uplink(broker: Broker, peers: Peers, topic: str) -> None:
    facility, device_id, kind = topic.split("/")[2:]
    uplink = kind in bf.DEVICE_PUBLISHES
    observer = watch_uplink(peers, facility) if uplink else watch_downlink(peers, device_id)
    a = peers.connect(device(broker, A))
    payload = token("forged")

    assert a.publish(topic, payload) == DENIED

    barrier = uplink_barrier(peers, facility) if uplink else downlink_barrier(peers, device_id)
    assert payload not in payloads(observer.until(*barrier))


def test_a_forged_message_does_not_cost_the_device_its_connection(broker: Broker, peers: Peers) -> None:
    observer = watch_uplink(peers, FACILITY)
    a = peers.connect(device(broker, A))
    assert a.publish(t(B, "read"), token("forged")) == DENIED
    payload = token("after")
    assert a.publish(t(A, "read"), payload) == "Success"
    assert payloads(observer.until(t(A, "read"), payload))[-1] == payload


# --- devices subscribing --------------------------------------------------------------------------


def _bait(peers: Peers) -> set[bytes]:
    """Traffic on every topic a device must never receive (other devices', both facilities)."""
    broker = peers.broker
    sent: set[bytes] = set()
    b, c = peers.connect(device(broker, B)), peers.connect(device(broker, C))
    col, col_other = peers.connect(collector(broker)), peers.connect(collector(broker, OTHER_FACILITY))
    for sender, topic, retain in [
        (b, t(B, "read"), False),
        (b, t(B, "status"), True),
        (b, t(B, "telemetry"), False),
        (b, t(B, "inventory"), True),
        (col, t(B, "result"), False),
        (col, t(B, "config"), True),
        (c, t(C, "read", OTHER_FACILITY), False),
        (col_other, t(C, "result", OTHER_FACILITY), False),
    ]:
        payload = token("bait")
        assert sender.publish(topic, payload, retain=retain) in ACCEPTED
        sent.add(payload)
    return sent


FORBIDDEN_FILTERS = [
    t(B, "result"),
    t(B, "config"),
    t("+", "result"),
    t("+", "read"),
    t(B, "read"),
    t(C, "result", OTHER_FACILITY),
    "cccd/#",
    "cccd/v1/+/+/+",
    "#",
    f"$share/collectors/{t('+', 'read')}",
]


@pytest.mark.parametrize("topic_filter", FORBIDDEN_FILTERS)
def test_a_device_receives_nothing_but_its_own_result_and_config(
    broker: Broker, peers: Peers, topic_filter: str
) -> None:
    a = watch_downlink(peers, A)
    # Mosquitto 2.0's acl_file grants every SUBSCRIBE and filters at delivery (module docstring);
    # a broker that refuses the subscription outright is as good.
    assert a.subscribe(topic_filter) in {"Granted QoS 1", DENIED}
    bait = _bait(peers)

    received = a.until(*downlink_barrier(peers, A))

    assert not bait & set(payloads(received))
    assert {m.topic for m in received} <= {t(A, "result"), t(A, "config")}


def test_a_device_receives_its_result_and_its_retained_config(broker: Broker, peers: Peers) -> None:
    col = peers.connect(collector(broker))
    config = token("config")
    assert col.publish(t(A, "config"), config, retain=True) in ACCEPTED

    a = peers.connect(device(broker, A))
    assert a.subscribe(t(A, "config")) == "Granted QoS 1"
    assert a.subscribe(t(A, "result")) == "Granted QoS 1"
    result = token("result")
    assert col.publish(t(A, "result"), result) == "Success"

    received = a.until(t(A, "result"), result)
    assert next(m for m in received if m.payload == config).retain  # the retained copy, on subscribing
    assert result in payloads(received)


# --- collectors -----------------------------------------------------------------------------------


def test_the_collector_reads_its_facility_through_a_shared_subscription(broker: Broker, peers: Peers) -> None:
    col = peers.connect(collector(broker))
    assert col.subscribe(f"$share/collectors/{t('+', 'read')}") == "Granted QoS 1"
    assert col.subscribe(f"$share/collectors/{t('+', 'read', OTHER_FACILITY)}") in {"Granted QoS 1", DENIED}
    a, b, c = (peers.connect(device(broker, d)) for d in (A, B, C))
    other = token("other-facility")
    assert c.publish(t(C, "read", OTHER_FACILITY), other) == "Success"
    sent = [token("a"), token("b"), token("a")]
    for sender, device_id, payload in zip((a, b, a), (A, B, A), sent, strict=True):
        assert sender.publish(t(device_id, "read"), payload) == "Success"

    received = col.until(t(A, "read"), sent[-1])

    assert payloads(received) == sent
    assert other not in payloads(received)


def test_any_account_can_join_a_share_group(broker: Broker, peers: Peers) -> None:
    """A known hazard of Mosquitto 2.0.11 (README "Shared subscriptions"), pinned so an upgrade shows.

    A device joins the collectors' share group; the broker hands it every other read, finds it may
    not read them, and drops them: the collector receives only part of the stream. A collector on
    Mosquitto therefore uses a plain subscription (next test) or a secret group name.
    """
    group = f"$share/collectors/{t('+', 'read')}"
    col = peers.connect(collector(broker))
    assert col.subscribe(group) == "Granted QoS 1"
    thief = peers.connect(device(broker, A))
    thief.subscribe(group)
    b = peers.connect(device(broker, B))
    sent = [token(f"r{i}") for i in range(6)]
    for payload in sent:
        assert b.publish(t(B, "read"), payload) == "Success"

    received = payloads(col.drain(SHORT_WAIT))

    assert 0 < len(received) < len(sent)
    assert thief.drain(0) == []


def test_a_plain_subscription_gets_every_read_whoever_else_subscribes(broker: Broker, peers: Peers) -> None:
    col = peers.connect(collector(broker))
    assert col.subscribe(t("+", "read")) == "Granted QoS 1"
    intruder = peers.connect(device(broker, A))
    intruder.subscribe(f"$share/collectors/{t('+', 'read')}")
    intruder.subscribe(t("+", "read"))
    b = peers.connect(device(broker, B))
    sent = [token(f"r{i}") for i in range(6)]
    for payload in sent:
        assert b.publish(t(B, "read"), payload) == "Success"

    assert payloads(col.until(t(B, "read"), sent[-1])) == sent


def test_a_collector_cannot_write_to_another_facility(broker: Broker, peers: Peers) -> None:
    c = watch_downlink(peers, C)
    col = peers.connect(collector(broker))
    forged = token("forged")
    assert col.publish(t(C, "result", OTHER_FACILITY), forged) == DENIED
    assert col.publish(t(C, "config", OTHER_FACILITY), forged, retain=True) == DENIED
    assert forged not in payloads(c.until(*downlink_barrier(peers, C)))


def test_a_collector_cannot_forge_a_device_uplink(broker: Broker, peers: Peers) -> None:
    observer = watch_uplink(peers, FACILITY)
    col = peers.connect(collector(broker))
    forged = token("forged")
    assert col.publish(t(A, "read"), forged) == DENIED
    assert forged not in payloads(observer.until(*uplink_barrier(peers, FACILITY)))


def test_the_collector_reads_the_drop_counter(broker: Broker, peers: Peers) -> None:
    col = peers.connect(collector(broker))
    assert col.subscribe("$SYS/broker/publish/messages/dropped") == "Granted QoS 1"
    # Mosquitto publishes $SYS topics retained, every sys_interval (10 s): the retained value is
    # delivered at once; a device gets nothing.
    msg = col.next_message()
    assert msg.topic == "$SYS/broker/publish/messages/dropped" and msg.payload.isdigit()
    a = peers.connect(device(broker, A))
    a.subscribe("$SYS/#")
    assert a.drain(SHORT_WAIT) == []


# --- logins ---------------------------------------------------------------------------------------


def test_every_account_logs_in(broker: Broker, peers: Peers) -> None:
    for account in [*broker.devices.values(), *broker.collectors.values()]:
        assert peers.new(account).attempt() == "Success", account.username


@pytest.mark.parametrize(
    "who",
    [
        pytest.param("wrong-password", id="wrong-password"),
        pytest.param("unknown-user", id="unknown-user"),
        pytest.param("anonymous", id="anonymous"),
        pytest.param("other-device-password", id="other-device-password"),
    ],
)
def test_a_bad_login_is_refused(broker: Broker, peers: Peers, who: str) -> None:
    a = device(broker, A)
    account: Account | None = {
        "wrong-password": Account(A, "not-" + a.password, FACILITY),
        "unknown-user": Account("qr-9999", a.password, FACILITY),
        "anonymous": None,
        "other-device-password": Account(A, device(broker, B).password, FACILITY),
    }[who]
    peer = peers.new(account)
    assert peer.attempt() in REFUSED_LOGIN
    peer.wait_closed()


def test_plain_mqtt_to_the_tls_port_gets_no_connack(broker: Broker, peers: Peers) -> None:
    peer = peers.new(device(broker, A), tls=False, port=broker.port)
    outcome = peer.attempt()
    assert outcome == "closed" or outcome.startswith("socket:"), outcome


def test_a_broker_certificate_from_another_ca_is_rejected(
    broker: Broker, peers: Peers, tmp_path: Path
) -> None:
    impostor_ca = tmp_path / "other-ca.crt"
    impostor_ca.write_text(bf.make_ca(FACILITY).cert_pem)
    outcome = peers.new(device(broker, A), ca_path=impostor_ca).attempt()
    assert outcome.startswith("tls:") and "CERTIFICATE_VERIFY_FAILED" in outcome, outcome


def test_the_loopback_listener_has_the_same_logins_and_acl(broker: Broker, peers: Peers) -> None:
    col = peers.connect(collector(broker), tls=False)
    assert col.subscribe(t("+", "read")) == "Granted QoS 1"
    assert peers.new(None, tls=False).attempt() in REFUSED_LOGIN
    a = peers.connect(device(broker, A), tls=False)
    forged, payload = token("forged"), token("read")
    assert a.publish(t(B, "read"), forged) == DENIED
    assert a.publish(t(A, "read"), payload) == "Success"
    assert payloads(col.until(t(A, "read"), payload)) == [payload]


def test_a_message_larger_than_the_limit_is_acknowledged_and_dropped(broker: Broker, peers: Peers) -> None:
    """message_size_limit: the node gets its PUBACK (it moves on), the collector never sees it.

    Over MQTT 3.1.1, that is. Over MQTT v5, Mosquitto 2.0.11 answers with PUBACK reason 0x95,
    which MQTT v5 does not allow in a PUBACK: paho-mqtt 2.2 calls it malformed and disconnects.
    """
    observer = watch_uplink(peers, FACILITY)
    a = peers.new(device(broker, A), protocol=MQTTProtocolVersion.MQTTv311).connect()
    big, fits = token("big").ljust(bf.MESSAGE_SIZE_LIMIT + 1, b"x"), token("fits").ljust(8192, b"x")
    assert a.publish(t(A, "read"), big) == "Success"
    assert a.publish(t(A, "read"), fits) == "Success"
    received = observer.until(t(A, "read"), fits)
    assert [m.payload for m in received if m.topic == t(A, "read")] == [fits]
    assert not a.closed


# --- revocation, persistence: a broker of the test's own ------------------------------------------


def test_a_revoked_device_is_cut_off_at_once_and_cannot_log_in(
    fresh_broker: Broker, fresh_peers: Peers
) -> None:
    a = fresh_peers.connect(device(fresh_broker, A))

    fresh_broker.revoke(A)

    a.wait_closed()
    assert fresh_peers.new(device(fresh_broker, A)).attempt() in REFUSED_LOGIN
    assert fresh_peers.new(device(fresh_broker, B)).attempt() == "Success"


def test_a_renewed_server_certificate_is_served_after_a_reload(
    fresh_broker: Broker, fresh_peers: Peers
) -> None:
    renewed = bf.make_server_cert(fresh_broker.ca, ["localhost"], ["127.0.0.1"])
    bf.write_file_atomic(fresh_broker.paths.certfile, renewed.cert_pem, bf.PUBLIC_MODE)
    bf.write_file_atomic(fresh_broker.paths.keyfile, renewed.key_pem, bf.SECRET_MODE)

    fresh_broker.reload()

    assert fresh_broker.served_certificate() == renewed.cert_pem
    assert fresh_peers.new(device(fresh_broker, A)).attempt() == "Success"


def _collector_session(peers: Peers, broker: Broker) -> Peer:
    """The collector's persistent session: fixed client id, clean_start False, no expiry."""
    return peers.connect(
        collector(broker), client_id="collector-38001", clean_start=False, session_expiry=NEVER_SESSION_EXPIRY
    )


def test_reads_wait_for_a_disconnected_collector(fresh_broker: Broker, fresh_peers: Peers) -> None:
    col = _collector_session(fresh_peers, fresh_broker)
    assert col.subscribe(t("+", "read")) == "Granted QoS 1"
    col.close()
    a = fresh_peers.connect(device(fresh_broker, A))
    sent = [token("while-away") for _ in range(3)]
    for payload in sent:
        assert a.publish(t(A, "read"), payload) == "Success"

    back = _collector_session(fresh_peers, fresh_broker)

    assert back.session_present
    assert payloads(back.until(t(A, "read"), sent[-1])) == sent


def test_queued_reads_and_retained_status_survive_a_broker_restart(
    fresh_broker: Broker, fresh_peers: Peers
) -> None:
    col = _collector_session(fresh_peers, fresh_broker)
    assert col.subscribe(t("+", "read")) == "Granted QoS 1"
    col.close()
    a = fresh_peers.connect(device(fresh_broker, A))
    queued, status = token("queued"), token("online")
    assert a.publish(t(A, "read"), queued) == "Success"
    assert a.publish(t(A, "status"), status, retain=True) in ACCEPTED
    a.close()

    fresh_broker.restart()

    back = _collector_session(fresh_peers, fresh_broker)
    assert back.session_present
    assert payloads(back.until(t(A, "read"), queued)) == [queued]
    assert back.subscribe(t("+", "status")) == "Granted QoS 1"
    retained = back.next_message()
    assert (retained.topic, retained.payload, retained.retain) == (t(A, "status"), status, True)


# --- mutual TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    started = start_broker(tmp_path_factory.mktemp("mosquitto-mtls"), mtls=True)
    yield started
    started.stop()


@pytest.fixture
def mtls_peers(mtls_broker: Broker) -> Iterator[Peers]:
    made = Peers(mtls_broker)
    yield made
    made.close_all()


def _cert_files(directory: Path, cert: bf.CertKey) -> tuple[Path, Path]:
    certfile, keyfile = directory / "client.crt", directory / "client.key"
    certfile.write_text(cert.cert_pem)
    keyfile.write_text(cert.key_pem)
    keyfile.chmod(0o600)
    return certfile, keyfile


def test_mtls_admits_a_certificate_of_the_facility_ca_with_a_password(
    mtls_broker: Broker, mtls_peers: Peers, tmp_path: Path
) -> None:
    cert = _cert_files(tmp_path, bf.make_client_cert(mtls_broker.ca, A))
    assert mtls_peers.new(device(mtls_broker, A), cert=cert).attempt() == "Success"
    wrong_password = Account(A, "wrong", FACILITY)
    assert mtls_peers.new(wrong_password, cert=cert).attempt() in REFUSED_LOGIN


def test_mtls_refuses_a_client_without_a_certificate(mtls_broker: Broker, mtls_peers: Peers) -> None:
    outcome = mtls_peers.new(device(mtls_broker, A)).attempt()
    assert outcome == "closed" or outcome.startswith(("tls:", "socket:")), outcome


def test_mtls_refuses_a_certificate_of_another_ca(
    mtls_broker: Broker, mtls_peers: Peers, tmp_path: Path
) -> None:
    cert = _cert_files(tmp_path, bf.make_client_cert(bf.make_ca(FACILITY), A))
    outcome = mtls_peers.new(device(mtls_broker, A), cert=cert).attempt()
    assert outcome == "closed" or outcome.startswith(("tls:", "socket:")), outcome
