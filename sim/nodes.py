"""Virtual reader nodes: each one a counter's QR node built from its configuration file alone.

A ``VirtualNode`` does what the contract asks of a node (docs/PROTOCOL.md): it connects over TLS
with its own account, registers the Last Will (status ``offline``, retained) and publishes its
birth, sends its inventory and a heartbeat, and turns scans of synthetic citizens' cards into
Reads: parsed by ``cccd.qr``, pseudonymised, sealed with its up key and the next sequence number.
It keeps every accepted read in its outbox until the broker acknowledges it, and opens each
Result with its down key. Sequence numbers are reserved ahead in a state file, so a node that is
restarted never reuses one.

Ground truth: ``accepted`` holds every read the node accepted (its sequence number), ``answers``
every Result it received (status per sequence number), ``rejected`` the scans it refused.
This is the first slice of the simulator (issue 5); traffic shapes, faults and scenarios follow.
"""

import datetime
import json
import random
import ssl
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cccd import envelope, keys, pseudonym, qr, schema
from sim import citizens

RESERVE = 100


class VirtualNode:
    def __init__(
        self,
        config: dict[str, Any],
        state_dir: Path,
        people: list[citizens.Citizen],
        *,
        rate: float = 0.5,
        heartbeat: float = 30.0,
        seed: int = 0,
        today: datetime.date | None = None,
    ) -> None:
        self.cfg = config
        self.device = config["device"]
        self.keys = keys.derive(bytes.fromhex(config["secret"]))
        self.pseudonym_secret = bytes.fromhex(config["pseudonym_secret"])
        self.people = people
        self.rate = rate
        self.heartbeat = heartbeat
        self.rng = random.Random(seed)
        self.today = today or datetime.date.today()
        self.state_path = state_dir / f"{self.device}.json"
        self.accepted: list[int] = []
        self.rejected = 0
        self.answers: dict[int, list[str]] = defaultdict(list)
        self.sent_at: dict[int, float] = {}  # seq -> when the read was published (monotonic)
        self.answered_at: dict[int, list[tuple[str, float]]] = defaultdict(list)  # seq -> (status, when)
        self.acked: set[int] = set()
        self._mids: dict[int, int] = {}
        self._early: set[int] = set()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"node-{self.device}", daemon=True)
        self._state = self._load_state()
        self._seq = self._state["reserved"]  # start after everything reserved before a restart
        self._reserve(self._seq + RESERVE)
        self.started = time.time()
        self.client = self._client(config)

    # --- sequence numbers that survive a restart --------------------------------------------

    def _load_state(self) -> dict[str, int]:
        try:
            return dict(json.loads(self.state_path.read_text("utf-8")))
        except (OSError, ValueError):
            return {"reserved": 0, "boot": 0}

    def _reserve(self, upto: int) -> None:
        self._state["reserved"] = upto
        self.state_path.write_text(json.dumps(self._state), "utf-8")

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        if self._seq >= self._state["reserved"]:
            self._reserve(self._seq + RESERVE)
        return seq

    # --- the broker ---------------------------------------------------------------------------

    def _topic(self, kind: str) -> str:
        return schema.topic(self.cfg["facility"], self.device, kind)

    def _client(self, cfg: dict[str, Any]) -> mqtt.Client:
        self._state["boot"] = self._state.get("boot", 0) + 1
        self._reserve(self._state["reserved"])
        b = cfg["broker"]
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.device, clean_session=False
        )
        client.username_pw_set(b["username"], b["password"])
        ca = self.state_path.with_name(f"{self.device}-ca.pem")
        ca.write_text(b["ca"], "ascii")
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        boot, ts = self._state["boot"], int(time.time())
        client.will_set(
            self._topic("status"), schema.encode("status", schema.status("offline", boot, ts)), 1, True
        )
        self._birth = schema.encode("status", schema.status("online", boot, ts))
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(50)
        client.reconnect_delay_set(1, 10)
        client.connect_async(b["host"], int(b["port"]), keepalive=30)
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(self._topic("result"), qos=1)
        client.publish(self._topic("status"), self._birth, qos=1, retain=True)
        readers = [{"type": "qr", "model": "GM65 (simulated)", "std": True}]
        inv = schema.inventory("sim-node", readers, fw="sim-0.1", site=str(self.cfg.get("site", ""))[:100])
        client.publish(self._topic("inventory"), schema.encode("inventory", inv), qos=1, retain=True)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            sealed = envelope.parse(bytes(msg.payload))
            body = schema.decode("result", sealed.open(self.keys.down_key, self.keys.down_iv, msg.topic))
        except Exception:  # a tampered or foreign message: a real node ignores it and counts it
            return
        with self.lock:
            self.answers[int(body["seq"])].append(str(body["status"]))
            self.answered_at[int(body["seq"])].append((str(body["status"]), time.monotonic()))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self.lock:
            seq = self._mids.pop(mid, None)
            if seq is not None:
                self.acked.add(seq)
            else:
                self._early.add(mid)  # a read whose mid scan() has not recorded yet (or telemetry)

    # --- the counter --------------------------------------------------------------------------

    def scan(self) -> int | None:
        """One patient at the counter: a card's QR, parsed, sealed, published. The read's seq."""
        person = self.rng.choice(self.people)
        fmt = self.rng.choice([f for f in citizens.formats(person) if f in ("cccd", "cancuoc", "vneid")])
        try:
            s = qr.parse(
                citizens.qr_bytes(person, fmt),
                now=(self.today.year, self.today.month, self.today.day),
                source="vneid" if fmt == "vneid" else None,
            )
        except qr.QRError:
            self.rejected += 1
            return None
        pid = pseudonym.pid(self.pseudonym_secret, cccd=s.ident["cccd"])
        seq = self._next_seq()
        read = schema.read(seq, int(time.time() * 1000), "ntp", "qr", s.doc, pid, s.ident, warn=s.warn)
        payload = schema.encode("read", read)
        sealed = envelope.seal(
            self.keys.up_key, self.keys.up_iv, self.device.encode(), seq, self._topic("read"), payload
        )
        with self.lock:
            self.sent_at[seq] = time.monotonic()
            self.accepted.append(seq)
        # Never call paho while holding our lock: paho calls on_publish holding its own locks, and
        # on_publish takes ours (the opposite order would deadlock). A PUBACK may thus arrive
        # before the mid is known: it is kept in _early until then.
        info = self.client.publish(self._topic("read"), sealed, qos=1)
        with self.lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked.add(seq)
            else:
                self._mids[info.mid] = seq
        return seq

    def _telemetry(self) -> None:
        with self.lock:
            outbox = len(self.accepted) - len(self.acked)
        tel = schema.telemetry(
            int(time.time() - self.started),
            self._state["boot"],
            q=outbox,
            drop=0,
            reads=len(self.accepted),
            rej=self.rejected,
            fw="sim-0.1",
            rdr={"qr": "ok"},
        )
        self.client.publish(self._topic("telemetry"), schema.encode("telemetry", tel), qos=0)

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_beat:
                self._telemetry()
                next_beat = now + self.heartbeat
            if self.rate > 0 and self.client.is_connected():
                self.scan()
            self._stop.wait(self.rng.expovariate(self.rate) if self.rate > 0 else 1.0)

    def start(self) -> "VirtualNode":
        self.client.loop_start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def unanswered(self) -> list[int]:
        """Accepted reads without a final answer yet (anything but pending)."""
        with self.lock:
            return [s for s in self.accepted if not any(a != "pending" for a in self.answers.get(s, []))]
