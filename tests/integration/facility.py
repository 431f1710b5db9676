"""A provisioned facility for the integration tests: its home, its real broker, its real collector
process, and nodes built from their configuration files alone (docs/PROTOCOL.md).
"""

import datetime
import json
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cccd import envelope, keys, pseudonym, qr, schema
from sim import citizens
from tools import provision
from tools.collectorproc import CollectorProcess
from tools.mosquitto import Mosquitto
from tools.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
FAC = "38001"


class Site:
    """A provisioned facility home with its broker running and one provisioned node."""

    def __init__(self, base: Path, metrics_port: int = 0) -> None:
        self.port = free_port()
        self.metrics_port = metrics_port
        self.home = provision.init(
            base / "home", FAC, broker_port=self.port, run_here=True, metrics_port=metrics_port
        )
        self.node = json.loads(
            provision.device(self.home.path, FAC, "qr-0001", "esp32", "Quầy 1").read_text()
        )
        self.ca = self.home.path / "ca.crt"
        log = self.home.path / "broker" / "mosquitto.log"
        self.broker = Mosquitto(self.home.broker.conf, self.port, self.ca, log=log).start()
        self.log = base / "collector.log"
        self.collector = CollectorProcess(self.home.path / "collector.toml", self.log)

    def start_collector(self) -> None:
        self.collector.start()

    def wait_subscribed(self, count: int = 1) -> None:
        """Until the collector's session has its subscriptions: before that the broker keeps
        nothing for it (a facility starts its collector before provisioning nodes)."""
        self.collector.wait_subscribed(count)

    def configure(self, text: str) -> None:
        """Append sections to the collector's settings (before it starts)."""
        with (self.home.path / "collector.toml").open("a", encoding="utf-8") as f:
            f.write("\n" + text)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home.path / "collector.db", timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def kill_collector(self) -> None:
        self.collector.kill()

    def stop(self) -> None:
        self.collector.stop()
        self.broker.stop()

    def stored(self) -> list[tuple[str, int]]:
        with sqlite3.connect(self.home.path / "collector.db", timeout=10) as conn:
            return conn.execute("SELECT device, seq FROM reads ORDER BY seq").fetchall()

    def quarantined(self) -> list[str]:
        with sqlite3.connect(self.home.path / "collector.db", timeout=10) as conn:
            return [r[0] for r in conn.execute("SELECT reason FROM quarantine")]


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
        self.early: set[int] = set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self.lock:
            if mid in self.mids:
                self.acked.add(self.mids.pop(mid))
            else:
                self.early.add(mid)  # the PUBACK came before publish() returned the mid

    def topic_of(self, kind: str) -> str:
        return schema.topic(self.cfg["facility"], self.cfg["device"], kind)

    def set_will(self, boot: int, ts: int) -> None:
        """The Last Will of the contract: the status map with ``offline``, retained."""
        will = schema.encode("status", schema.status("offline", boot, ts))
        self.client.will_set(self.topic_of("status"), will, qos=1, retain=True)

    def connect(self) -> None:
        self.client.connect(self.cfg["broker"]["host"], self.cfg["broker"]["port"])
        self.client.loop_start()

    def publish_raw(self, kind: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(self.topic_of(kind), payload, qos=1, retain=retain).wait_for_publish(10)

    def crash(self) -> None:
        """Lose the connection without a DISCONNECT, as a node that loses power does."""
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.client.loop_stop()

    def read(self, seq: int) -> bytes:
        pid = pseudonym.pid(bytes.fromhex(self.cfg["pseudonym_secret"]), cccd="001090000001")
        ident = {"cccd": "001090000001", "name": "Lê Văn Bình", "dob": "1990-01-01", "sex": "M"}
        payload = schema.encode(
            "read", schema.read(seq, 1795000000000 + seq, "ntp", "qr", "cccd", pid, ident)
        )
        return envelope.seal(
            self.keys.up_key, self.keys.up_iv, self.cfg["device"].encode(), seq, self.topic, payload
        )

    def read_of(self, person: citizens.Citizen, seq: int, today: datetime.date) -> bytes:
        """The sealed read of scanning ``person``'s own document (CCCD or Căn cước QR)."""
        scan = qr.parse(citizens.qr_bytes(person, person.doc), now=(today.year, today.month, today.day))
        pid = pseudonym.pid(bytes.fromhex(self.cfg["pseudonym_secret"]), cccd=scan.ident["cccd"])
        payload = schema.encode(
            "read", schema.read(seq, 1795000000000 + seq, "ntp", "qr", scan.doc, pid, scan.ident)
        )
        return envelope.seal(
            self.keys.up_key, self.keys.up_iv, self.cfg["device"].encode(), seq, self.topic, payload
        )

    def publish(self, seq: int, payload: bytes | None = None) -> None:
        """Publish a read at QoS 1 (``payload``, or the fixed read of ``seq``) and note its PUBACK."""
        data = self.read(seq) if payload is None else payload
        info = self.client.publish(self.topic, data, qos=1)  # not under our lock (paho's order)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                self.acked.add(seq)
            else:
                self.mids[info.mid] = seq

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
