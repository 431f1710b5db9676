"""The embedded broker over the network, configured from a facility home as Mosquitto is: TLS,
the accounts' passwords, the ACL; a persistent session keeps reads for an absent collector."""

import json
import queue
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from facility import wait
from paho.mqtt.enums import CallbackAPIVersion

from tools import brokerfiles as bf
from tools import provision
from tools.embroker import EmbeddedBroker
from tools.ports import free_port

pytestmark = pytest.mark.integration


def _client(home: Path, user: str, password: str, cid: str) -> tuple[mqtt.Client, list[str]]:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=str(home / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    answers: list[str] = []
    c.on_connect = lambda _c, _u, _f, reason, _p: answers.append(str(reason))
    return c, answers


def test_accounts_acl_and_a_kept_session(tmp_path: Path) -> None:
    port = free_port()
    home = provision.init(tmp_path / "home", "38001", broker_port=port, run_here=True, metrics_port=0).path
    node = json.loads(provision.device(home, "38001", "qr-0001", "esp32", "Quầy 1").read_text("utf-8"))
    broker = EmbeddedBroker(home / "broker", port, tmp_path / "broker.log").start()
    clients: list[mqtt.Client] = []
    try:
        password = (home / "collector.password").read_text().strip()
        col, col_said = _client(home, bf.collector_username("38001"), password, "col")
        got: queue.Queue[bytes] = queue.Queue()
        col.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
        clients.append(col)
        col.connect("127.0.0.1", port)
        col.loop_start()
        wait(lambda: col_said == ["Success"], 10, "the collector connected")
        col.subscribe("cccd/v1/38001/+/read", qos=1)

        bad, bad_said = _client(home, "qr-0001", "not-the-password", "bad")
        clients.append(bad)
        bad.connect("127.0.0.1", port)
        bad.loop_start()
        wait(lambda: bad_said != [], 10, "an answer to a wrong password")
        assert bad_said == ["Not authorized"]

        dev, dev_said = _client(home, node["broker"]["username"], node["broker"]["password"], "qr-0001")
        clients.append(dev)
        dev.connect("127.0.0.1", port)
        dev.loop_start()
        wait(lambda: dev_said == ["Success"], 10, "the node connected")
        dev.publish("cccd/v1/38001/qr-0002/read", b"forged", qos=1).wait_for_publish(5)
        dev.publish("cccd/v1/38001/qr-0001/read", b"mine", qos=1).wait_for_publish(5)
        assert got.get(timeout=5) == b"mine"  # the forged one never arrives first (nor at all)

        col.disconnect()
        col.loop_stop()
        dev.publish("cccd/v1/38001/qr-0001/read", b"kept", qos=1).wait_for_publish(5)
        again, _said = _client(home, bf.collector_username("38001"), password, "col")
        again.on_message = col.on_message
        clients.append(again)
        again.connect("127.0.0.1", port)
        again.loop_start()
        assert got.get(timeout=10) == b"kept"
        assert got.empty() and "denied qr-0001" in broker.output()
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()
