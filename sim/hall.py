"""A reception hall of virtual reader nodes: many nodes, one asyncio loop, faults on demand.

Each ``SimNode`` does what the contract asks of a node (docs/PROTOCOL.md), built from its
configuration file alone: TLS with its own account, the Last Will (status ``offline``, retained),
the birth on every connect, the inventory, a heartbeat with its outbox depth and drops, and reads
of synthetic citizens' cards (``cccd.qr`` parses them; pseudonymised; sealed with the up key and
the next sequence number). Results are opened with the down key and recorded.

The node's promises are kept as the firmware keeps them, in a store that survives the node:

- the **outbox** holds every accepted read until the broker's PUBACK, in order; a link that goes
  down keeps the reads in the outbox, and they leave in order when it comes back;
- **sequence numbers** are reserved ahead (``RESERVE`` at a time), so a node that loses power never
  reuses one: it comes back with the next boot counter and starts after its reservation;
- the same code scanned again within ``DOUBLE_WINDOW`` seconds is suppressed (a double scan).

MQTT is ``aiomqtt`` (paho driven by the event loop, no thread per node): thousands of nodes fit in
one process.

Time: a ``Clock`` runs ``speed`` times faster than real time from a simulated start (say 07:00);
the traffic ``Shape`` gives each counter's arrival rate per simulated hour (a morning peak 7–9h),
and faults are scheduled in simulated time. Reads carry the node's clock in ``ts`` (with its
skew, when the scenario gives it one).

Ground truth: ``Truth`` (SQLite) records every read a node accepted — node, sequence number, the
citizen and document, when it was published and acknowledged — and every Result it received, so
a test can reconcile the collector's store and the HIS against it: nothing lost, nothing twice.
"""

import asyncio
import contextlib
import datetime
import math
import random
import socket
import sqlite3
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from cccd import envelope, keys, pseudonym, qr, schema
from sim import citizens

RESERVE = 100  # sequence numbers reserved ahead in the node's store
DOUBLE_WINDOW = 3.0  # seconds (simulated) in which the same code again is a double scan
OUTBOX_MAX = 2000  # reads the node's outbox holds; beyond, the oldest is dropped and counted
PUBLISH_TIMEOUT = 10.0
RECONNECT = (1.0, 10.0)  # seconds between connection attempts, growing
FIRMWARE = "sim-0.2"

# Arrivals per counter per simulated hour, as a weight of the peak (a Vietnamese outpatient
# department: patients queue from 6:30, most arrive 7–9h, few after 16h).
MORNING = {6: 0.3, 7: 1.0, 8: 1.0, 9: 0.7, 10: 0.5, 11: 0.3, 12: 0.1, 13: 0.4, 14: 0.4, 15: 0.3, 16: 0.1}


# --- time and traffic -------------------------------------------------------------------------


class Clock:
    """Simulated time: ``start`` (Unix seconds) advancing ``speed`` times faster than real time."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        self.start = time.time() if start is None else start
        self.speed = speed
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self._t0) * self.speed

    def real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.speed

    def hour(self) -> int:
        return datetime.datetime.fromtimestamp(self.now(), VIETNAM).hour


class CatchUp(Clock):
    """A node's clock for a long outage in a short time: it starts ``behind`` simulated seconds
    behind ``base`` and runs fast enough to meet it after ``real_seconds``; from then on it is
    ``base``. The node lives the last ``behind`` seconds while the hall lives ``real_seconds``."""

    def __init__(self, base: Clock, behind: float, real_seconds: float) -> None:
        super().__init__(base.now() - behind, base.speed + behind / real_seconds)
        self.base = base

    def now(self) -> float:
        return min(super().now(), self.base.now())

    def real(self, sim_seconds: float) -> float:
        return super().real(sim_seconds) if super().now() < self.base.now() else self.base.real(sim_seconds)


VIETNAM = datetime.timezone(datetime.timedelta(hours=7))


@dataclass(frozen=True)
class Shape:
    """Arrivals per counter: ``peak`` per simulated hour times the hour's weight."""

    peak: float  # patients per counter per simulated hour at weight 1
    weights: dict[int, float] | None = None  # hour -> weight; None: the same all day (flat)

    def rate(self, hour: int) -> float:
        """Arrivals per simulated second at ``hour``."""
        weight = 1.0 if self.weights is None else self.weights.get(hour, 0.0)
        return self.peak * weight / 3600.0


FLAT = "flat"
SHAPES = {"flat": None, "morning": MORNING}


# --- faults -----------------------------------------------------------------------------------


WIFI = "wifi"  # the link is down for a while: the outbox holds the reads
POWER = "power"  # the node loses power: it reboots after a while, its outbox kept in flash
GONE = "gone"  # the node never comes back
FAULT_KINDS = (WIFI, POWER, GONE)


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float  # simulated seconds after the hall's start
    duration: float = 0.0  # simulated seconds (wifi, power)


@dataclass
class NodeHabits:
    """What a node does wrong by nature: scans twice, damaged codes, a skewed clock."""

    double_scan: float = 0.0  # probability that a patient's code is scanned twice at once
    damaged: float = 0.0  # probability that a scan is damaged (cccd.qr may refuse it)
    skew: float = 0.0  # seconds the node's clock is off (its reads' ts)


# --- the ground truth and the nodes' own stores --------------------------------------------------


_TRUTH = """
CREATE TABLE IF NOT EXISTS reads (
    facility TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL,
    person INTEGER NOT NULL, doc TEXT NOT NULL, scanned REAL NOT NULL, scanned_at REAL,
    sent REAL, acked REAL, first_status TEXT, first_at REAL, final_status TEXT, final_at REAL,
    PRIMARY KEY (facility, device, seq));
CREATE TABLE IF NOT EXISTS outbox (
    facility TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (facility, device, seq));
CREATE TABLE IF NOT EXISTS node (
    facility TEXT NOT NULL, device TEXT NOT NULL, reserved INTEGER NOT NULL, boot INTEGER NOT NULL,
    drops INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
    doubles INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (facility, device));
"""


@dataclass(frozen=True)
class Reconciliation:
    accepted: int  # reads the nodes accepted
    stored: int  # of those, stored by the collector
    lost: int  # accepted, not stored (must be 0 once drained)
    unknown: int  # stored, never accepted by a node (must be 0)
    answered: int  # accepted reads with a final Result at the node
    pending: int  # accepted reads whose only answer so far is pending
    dropped: int  # reads the nodes' full outboxes dropped (counted, reported)


class Truth:
    """What every node accepted and received, and the nodes' own persistent state (their flash):
    one SQLite file for the hall. Written from the event loop only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # a simulation: the host does not lose power
        self.db.executescript(_TRUTH)

    def close(self) -> None:
        self.db.close()

    # the node's flash

    def node_state(self, facility: str, device: str) -> tuple[int, int]:
        """(reserved sequence numbers, boot counter), 0/0 for a new node."""
        row = self.db.execute(
            "SELECT reserved, boot FROM node WHERE facility = ? AND device = ?", (facility, device)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def save_node(self, facility: str, device: str, reserved: int, boot: int) -> None:
        self.db.execute(
            "INSERT INTO node (facility, device, reserved, boot) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (facility, device)"
            " DO UPDATE SET reserved = excluded.reserved, boot = excluded.boot",
            (facility, device, reserved, boot),
        )
        self.db.commit()

    def count(self, facility: str, device: str, what: str) -> None:
        assert what in ("drops", "rejected", "doubles")
        self.db.execute(
            f"UPDATE node SET {what} = {what} + 1 WHERE facility = ? AND device = ?", (facility, device)
        )
        self.db.commit()

    def counters(self, facility: str, device: str) -> tuple[int, int, int]:
        row = self.db.execute(
            "SELECT drops, rejected, doubles FROM node WHERE facility = ? AND device = ?", (facility, device)
        ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def accept(
        self, facility: str, device: str, seq: int, person: int, doc: str, scanned: float, payload: bytes
    ) -> None:
        """A read accepted at the counter: into the outbox and the ground truth, together."""
        with self.db:
            self.db.execute(
                "INSERT INTO reads (facility, device, seq, person, doc, scanned, scanned_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (facility, device, seq, person, doc, scanned, time.monotonic()),
            )
            self.db.execute(
                "INSERT INTO outbox (facility, device, seq, payload) VALUES (?, ?, ?, ?)",
                (facility, device, seq, payload),
            )

    def outbox(self, facility: str, device: str, limit: int = 50) -> list[tuple[int, bytes]]:
        rows = self.db.execute(
            "SELECT seq, payload FROM outbox WHERE facility = ? AND device = ? ORDER BY seq LIMIT ?",
            (facility, device, limit),
        ).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def depth(self, facility: str, device: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE facility = ? AND device = ?", (facility, device)
        ).fetchone()
        return int(row[0])

    def drop_oldest(self, facility: str, device: str) -> None:
        with self.db:
            self.db.execute(
                "DELETE FROM outbox WHERE rowid = (SELECT rowid FROM outbox WHERE facility = ? AND device = ?"
                " ORDER BY seq LIMIT 1)",
                (facility, device),
            )
            self.db.execute(
                "UPDATE node SET drops = drops + 1 WHERE facility = ? AND device = ?", (facility, device)
            )

    def sent(self, facility: str, device: str, seq: int, when: float) -> None:
        self.db.execute(
            "UPDATE reads SET sent = COALESCE(sent, ?) WHERE facility = ? AND device = ? AND seq = ?",
            (when, facility, device, seq),
        )

    def acked(self, facility: str, device: str, seq: int, when: float) -> None:
        """The broker has the read: out of the outbox."""
        with self.db:
            self.db.execute(
                "DELETE FROM outbox WHERE facility = ? AND device = ? AND seq = ?", (facility, device, seq)
            )
            self.db.execute(
                "UPDATE reads SET acked = COALESCE(acked, ?) WHERE facility = ? AND device = ? AND seq = ?",
                (when, facility, device, seq),
            )

    def answer(self, facility: str, device: str, seq: int, status: str, when: float) -> None:
        if status == "pending":
            sql = (
                "UPDATE reads SET first_status = COALESCE(first_status, ?), first_at = COALESCE(first_at, ?)"
            )
            params: tuple[Any, ...] = (status, when)
        else:
            sql = (
                "UPDATE reads SET first_status = COALESCE(first_status, ?), first_at = COALESCE(first_at, ?),"
                " final_status = COALESCE(final_status, ?), final_at = COALESCE(final_at, ?)"
            )
            params = (status, when, status, when)
        self.db.execute(
            sql + " WHERE facility = ? AND device = ? AND seq = ?", (*params, facility, device, seq)
        )
        self.db.commit()

    # what a test or the demo asks

    def accepted(self) -> set[tuple[str, str, int]]:
        return {(f, d, int(s)) for f, d, s in self.db.execute("SELECT facility, device, seq FROM reads")}

    def latencies(self, since: float = -math.inf, until: float = math.inf) -> tuple[list[float], list[float]]:
        """(to the first Result, to the final Result), seconds from publishing, answered reads;
        only those scanned from ``since`` until before ``until`` (monotonic), when given."""
        rows = self.db.execute(
            "SELECT first_at - sent, final_at - sent FROM reads"
            " WHERE sent IS NOT NULL AND first_at IS NOT NULL AND scanned_at >= ? AND scanned_at < ?",
            (since, until),
        ).fetchall()
        return [float(a) for a, _ in rows], [float(b) for _, b in rows if b is not None]

    def tally(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), COUNT(acked), COUNT(final_status),"
            " SUM(CASE WHEN final_status IS NULL AND first_status = 'pending' THEN 1 ELSE 0 END) FROM reads"
        ).fetchone()
        drops, rejected, doubles = self.db.execute(
            "SELECT COALESCE(SUM(drops), 0), COALESCE(SUM(rejected), 0), COALESCE(SUM(doubles), 0) FROM node"
        ).fetchone()
        return {
            "accepted": int(row[0]),
            "acked": int(row[1]),
            "answered": int(row[2]),
            "pending": int(row[3] or 0),
            "dropped": int(drops),
            "rejected": int(rejected),
            "doubles": int(doubles),
        }

    def outcomes(self) -> dict[str, int]:
        """The final Results the counters showed, by status (ok, warn, reject, error)."""
        rows = self.db.execute(
            "SELECT final_status, COUNT(*) FROM reads WHERE final_status IS NOT NULL GROUP BY final_status"
        ).fetchall()
        return {str(status): int(n) for status, n in rows}

    def reconcile(self, stored: Iterable[tuple[str, str, int]]) -> Reconciliation:
        """Compare with the reads a collector stored ((facility, device, seq) of each)."""
        accepted, have = self.accepted(), set(stored)
        t = self.tally()
        return Reconciliation(
            accepted=len(accepted),
            stored=len(accepted & have),
            lost=len(accepted - have),
            unknown=len(have - accepted),
            answered=t["answered"],
            pending=t["pending"],
            dropped=t["dropped"],
        )


# --- a node ------------------------------------------------------------------------------------


class SimNode:
    """One counter's node. ``run`` until cancelled; ``power_cut`` / ``link_down`` are the faults."""

    def __init__(
        self,
        config: dict[str, Any],
        truth: Truth,
        people: Sequence[citizens.Citizen],
        clock: Clock,
        shape: Shape,
        *,
        heartbeat: float = 30.0,
        habits: NodeHabits | None = None,
        seed: int = 0,
        ca_dir: Path | None = None,
        outbox_max: int = OUTBOX_MAX,
    ) -> None:
        self.cfg = config
        self.outbox_max = outbox_max
        self.facility, self.device = str(config["facility"]), str(config["device"])
        self.keys = keys.derive(bytes.fromhex(config["secret"]))
        self.pseudonym_secret = bytes.fromhex(config["pseudonym_secret"])
        self.truth = truth
        self.people = people
        self.clock = clock
        self.shape = shape
        self.heartbeat = heartbeat
        self.habits = habits or NodeHabits()
        self.rng = random.Random(seed)
        self.paused = False  # no patients (the demo's drain; a closed counter)
        self.link_up = asyncio.Event()  # set and cleared by ``set_link`` only, with _link_down
        self.link_up.set()
        self._link_down = asyncio.Event()
        self.connected = False
        self._live: aiomqtt.Client | None = None  # the client of the current session
        self.last_error = ""  # why the link last failed, for the engineer
        self.boot = 0
        self._seq = 0
        self._reserved = 0
        self._last_code: tuple[bytes, float] | None = None
        self._kick = asyncio.Event()  # a read waits in the outbox
        self._counter: asyncio.Future[None] | None = None  # the patients loop, while powered
        self._started = time.monotonic()
        ca_dir = ca_dir or Path(tempfile.gettempdir())
        self._ca = ca_dir / f"{self.facility}-ca.pem"
        if not self._ca.exists():
            self._ca.write_text(str(config["broker"]["ca"]), "ascii")

    def topic(self, kind: str) -> str:
        return schema.topic(self.facility, self.device, kind)

    # the node's flash

    def _power_on(self) -> None:
        reserved, boot = self.truth.node_state(self.facility, self.device)
        self.boot = boot + 1
        self._seq = reserved  # after everything reserved before: never a sequence number twice
        self._reserved = reserved + RESERVE
        self.truth.save_node(self.facility, self.device, self._reserved, self.boot)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        if self._seq >= self._reserved:
            self._reserved = self._seq + RESERVE
            self.truth.save_node(self.facility, self.device, self._reserved, self.boot)
        return seq

    # the counter

    def scan(self) -> int | None:
        """One patient: a document's QR, parsed, pseudonymised, sealed, into the outbox."""
        index = self.rng.randrange(len(self.people))
        person = self.people[index]
        fmt = self.rng.choice([f for f in citizens.formats(person) if f in ("cccd", "cancuoc", "vneid")])
        damage = None
        if self.habits.damaged and self.rng.random() < self.habits.damaged:
            damage = self.rng.choice(citizens.DAMAGES)
        code = citizens.qr_bytes(person, fmt, damage=damage) if damage else citizens.qr_bytes(person, fmt)
        seq = self._read(index, fmt, code)
        if seq is not None and self.habits.double_scan and self.rng.random() < self.habits.double_scan:
            self._read(index, fmt, code)  # the same card again at once: suppressed
        return seq

    def _read(self, index: int, fmt: str, code: bytes) -> int | None:
        now = self.clock.now()
        if (
            self._last_code is not None
            and self._last_code[0] == code
            and now - self._last_code[1] < DOUBLE_WINDOW
        ):
            self.truth.count(self.facility, self.device, "doubles")
            return None
        self._last_code = (code, now)
        day = datetime.datetime.fromtimestamp(now, VIETNAM).date()
        try:
            s = qr.parse(code, now=(day.year, day.month, day.day), source="vneid" if fmt == "vneid" else None)
        except qr.QRError:
            self.truth.count(self.facility, self.device, "rejected")  # the counter shows the red light
            return None
        cccd = s.ident.get("cccd")
        if not isinstance(cccd, str):
            self.truth.count(self.facility, self.device, "rejected")
            return None
        pid = pseudonym.pid(self.pseudonym_secret, cccd=cccd)
        seq = self._next_seq()
        ts = int((now + self.habits.skew) * 1000)
        read = schema.read(seq, ts, "ntp", "qr", s.doc, pid, s.ident, warn=s.warn)
        sealed = envelope.seal(
            self.keys.up_key,
            self.keys.up_iv,
            self.device.encode(),
            seq,
            self.topic("read"),
            schema.encode("read", read),
        )
        if self.truth.depth(self.facility, self.device) >= self.outbox_max:
            self.truth.drop_oldest(self.facility, self.device)  # bounded: the oldest goes, counted
        self.truth.accept(self.facility, self.device, seq, index, s.doc, now, sealed)
        self._kick.set()
        return seq

    async def _patients(self) -> None:
        # Each arrival is due in simulated time after the one before, not after the wake-up: a
        # late wake-up (a busy loop; a scan's own time; a fast clock making waits of a few ms)
        # brings the next patient sooner, so the rate holds.
        clock, due = self.clock, self.clock.now()
        while True:
            rate = self.shape.rate(self.clock.hour())
            if rate <= 0 or self.paused:
                await asyncio.sleep(self.clock.real(60.0) if rate <= 0 else 0.2)  # look again later
                clock, due = self.clock, self.clock.now()
                continue
            if clock is not self.clock:  # a new clock (a node away, or back): anew
                clock, due = self.clock, self.clock.now()
            due += self.rng.expovariate(rate)
            await asyncio.sleep(clock.real(max(0.0, due - clock.now())))
            if not self.paused and clock is self.clock:
                self.scan()

    # the link

    def _client(self) -> aiomqtt.Client:
        b = self.cfg["broker"]
        ts = int(self.clock.now())
        will = schema.encode("status", schema.status("offline", self.boot, ts))
        self._birth = schema.encode("status", schema.status("online", self.boot, ts))
        context = ssl.create_default_context(cafile=str(self._ca))
        return aiomqtt.Client(
            b["host"],
            int(b["port"]),
            username=b["username"],
            password=b["password"],
            identifier=self.device,
            clean_session=False,
            keepalive=30,
            will=aiomqtt.Will(self.topic("status"), will, qos=1, retain=True),
            tls_context=context,
            max_inflight_messages=20,
        )

    def drop_socket(self, close: bool = True) -> None:
        """End the link's connection under the client, without an MQTT DISCONNECT: the broker sees a
        connection lost and publishes the Last Will (a power cut or a lost link, not a polite
        goodbye). ``close`` False (the node lives on): shut down only, so that the client reads the
        end of the connection and its session ends as after any loss."""
        client = self._live
        raw = client._client.socket() if client is not None else None  # paho's socket under aiomqtt
        if isinstance(raw, socket.socket):  # a TLS socket is one too
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
            if close:
                with contextlib.suppress(OSError):
                    raw.close()

    async def _session(self) -> None:
        async with self._client() as client:
            self._live = client
            self.connected = True
            await client.subscribe(self.topic("result"), qos=1)
            await client.publish(self.topic("status"), self._birth, qos=1, retain=True)
            readers = [{"type": "qr", "model": "GM65 (simulated)", "std": True}]
            site = str(self.cfg.get("site", ""))[:100]
            inv = schema.inventory("sim-node", readers, fw=FIRMWARE, site=site)
            await client.publish(self.topic("inventory"), schema.encode("inventory", inv), qos=1, retain=True)
            tasks = [
                asyncio.ensure_future(self._send(client)),
                asyncio.ensure_future(self._beat(client)),
                asyncio.ensure_future(self._listen(client)),
                asyncio.ensure_future(self._watch_link()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a failure ends the session
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.connected = False
                self._live = None

    def power_off(self) -> None:
        """The power goes: the socket closes without a DISCONNECT (the broker publishes the Last
        Will) and the counter stops at once. The caller cancels ``run``, whose client may take its
        keep-alive to give up the closed socket: the counter must not scan meanwhile."""
        self.drop_socket()
        self.connected = False
        if self._counter is not None:
            self._counter.cancel()

    def set_link(self, up: bool) -> None:
        """The node's Wi-Fi (or its way to the broker) comes back, or goes."""
        if up:
            self._link_down.clear()
            self.link_up.set()
        else:
            self.link_up.clear()
            self._link_down.set()

    async def _watch_link(self) -> None:
        await self._link_down.wait()  # an event, not a poll: 5,000 nodes polling filled the loop
        self.drop_socket(close=False)  # a lost link sends no DISCONNECT: the broker publishes the Last Will
        await asyncio.sleep(PUBLISH_TIMEOUT)  # the client sees the connection end, which ends the session
        raise ConnectionAbortedError("the link went down")

    async def _send(self, client: aiomqtt.Client) -> None:
        """The outbox in order: each read stays until its PUBACK."""
        while True:
            batch = self.truth.outbox(self.facility, self.device)
            if not batch:
                self._kick.clear()
                await self._kick.wait()
                continue
            for seq, payload in batch:
                self.truth.sent(self.facility, self.device, seq, time.monotonic())
                await client.publish(self.topic("read"), payload, qos=1, timeout=PUBLISH_TIMEOUT)
                self.truth.acked(self.facility, self.device, seq, time.monotonic())

    async def _beat(self, client: aiomqtt.Client) -> None:
        while True:
            drops, rejected, _doubles = self.truth.counters(self.facility, self.device)
            tel = schema.telemetry(
                int(time.monotonic() - self._started),
                self.boot,
                q=self.truth.depth(self.facility, self.device),
                drop=drops,
                rej=rejected,
                fw=FIRMWARE,
                rdr={"qr": "ok"},
            )
            await client.publish(self.topic("telemetry"), schema.encode("telemetry", tel), qos=0)
            await asyncio.sleep(self.heartbeat)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                sealed = envelope.parse(bytes(message.payload))
                body = schema.decode(
                    "result", sealed.open(self.keys.down_key, self.keys.down_iv, str(message.topic))
                )
            except Exception:  # a tampered or foreign message: a real node ignores it and counts it
                continue
            self.truth.answer(
                self.facility, self.device, int(body["seq"]), str(body["status"]), time.monotonic()
            )

    async def run(self) -> None:
        """Power on, then serve the counter and keep the link until cancelled (power off)."""
        self._power_on()
        patients = self._counter = asyncio.ensure_future(self._patients())
        delay = RECONNECT[0]
        try:
            while True:
                await self.link_up.wait()
                try:
                    await self._session()
                    delay = RECONNECT[0]
                except (aiomqtt.MqttError, OSError, TimeoutError, ConnectionAbortedError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                if self.link_up.is_set():
                    await asyncio.sleep(self.rng.uniform(0.5, 1.0) * delay)
                    delay = min(RECONNECT[1], delay * 2)
        finally:
            patients.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await patients


# --- the hall ----------------------------------------------------------------------------------


@dataclass
class HallSettings:
    speed: float = 1.0
    start: float | None = None  # simulated start (Unix seconds); None: now
    shape: str = FLAT
    peak: float = 1800.0  # patients per counter per simulated hour at the peak (flat: 0.5/s)
    heartbeat: float = 30.0
    seed: int = 0
    habits: NodeHabits = field(default_factory=NodeHabits)
    outbox_max: int = OUTBOX_MAX
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # "facility/device" or "*" -> faults


class Hall:
    """Every node of the configurations, in one event loop in a thread of its own."""

    def __init__(
        self,
        configs: Sequence[dict[str, Any]],
        people: Sequence[citizens.Citizen],
        truth_path: str | Path,
        settings: HallSettings | None = None,
    ) -> None:
        self.settings = settings or HallSettings()
        s = self.settings
        self.clock = Clock(s.start, s.speed)
        self.truth = Truth(truth_path)
        self.people = people
        self.configs = list(configs)
        self.shape = shape = Shape(s.peak, SHAPES[s.shape])
        ca_dir = Path(truth_path).parent
        self.nodes = [
            SimNode(
                cfg,
                self.truth,
                people,
                self.clock,
                shape,
                heartbeat=s.heartbeat,
                habits=s.habits,
                seed=s.seed + i,
                ca_dir=ca_dir,
                outbox_max=s.outbox_max,
            )
            for i, cfg in enumerate(self.configs)
        ]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: Any = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.events: list[str] = []  # the faults as they happened, for the run's report

    # life cycle (the loop runs in a thread so that tests and the demo stay synchronous)

    def start(self) -> "Hall":
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            for i, node in enumerate(self.nodes):
                self._tasks[i] = loop.create_task(node.run())
            self._fault_plan = loop.create_task(self._faults())
            ready.set()
            loop.run_forever()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=main, name="sim-hall", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` in the hall's loop and return its result."""
        assert self._loop is not None

        async def wrapped() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
            self._loop = None
        self.truth.close()

    def pause(self, paused: bool = True) -> None:
        """No more patients (the nodes keep their links and deliver their outboxes)."""

        def apply() -> None:
            for node in self.nodes:
                node.paused = paused

        self.call(apply)

    # faults (by index or device id)

    def _index(self, device: str) -> int:
        """The node named ``facility/device``, or ``device`` alone when it is unique."""
        facility, _, name = device.rpartition("/")
        found = [i for i, n in enumerate(self.nodes) if n.device == name and facility in ("", n.facility)]
        if len(found) != 1:
            raise KeyError(f"{device}: {'no such node' if not found else 'name the facility too'}")
        return found[0]

    def link_down(self, device: str) -> None:
        """Wi-Fi gone (or the broker unreachable): the node keeps scanning into its outbox."""
        node = self.nodes[self._index(device)]
        self.call(lambda: node.set_link(False))

    def link_up(self, device: str) -> None:
        node = self.nodes[self._index(device)]
        self.call(lambda: node.set_link(True))

    def away(self, device: str, behind: float, real_seconds: float, shape: Shape) -> None:
        """A long outage in a short time: the node's link goes down and its clock goes back
        ``behind`` simulated seconds (a day, say), catching up with the hall's in ``real_seconds``
        (``CatchUp``), while its counter keeps scanning at ``shape`` (a counter's day) into the
        outbox. ``back`` ends it: the reads held are from the last ``behind`` seconds."""
        node = self.nodes[self._index(device)]

        def apply() -> None:
            node.set_link(False)
            node.clock = CatchUp(self.clock, behind, real_seconds)
            node.shape = shape

        self.call(apply)
        self.events.append(f"away {node.device} for {behind / 3600:g} h (simulated)")

    def back(self, device: str) -> int:
        """The node of ``away`` back on the hall's clock and traffic, its link up; the reads its
        outbox held at that moment."""
        node = self.nodes[self._index(device)]

        def apply() -> int:
            node.clock = self.clock
            node.shape = self.shape
            node.set_link(True)
            return self.truth.depth(node.facility, node.device)

        held: int = self.call(apply)
        self.events.append(f"back {node.device}: {held} reads held")
        return held

    def power_cut(self, device: str) -> None:
        """The node dies at once: its socket closes without a DISCONNECT (the broker publishes its
        Last Will), everything in its memory is gone; its outbox and reservation are in flash."""
        self.call(lambda: self._cut(self._index(device)))

    def power_on(self, device: str) -> None:
        self.call(lambda: self._on(self._index(device)))

    def _cut(self, i: int) -> None:
        self.nodes[i].power_off()
        task = self._tasks.pop(i, None)
        if task is not None:
            task.cancel()
        self.events.append(f"power cut {self.nodes[i].device}")

    def _on(self, i: int) -> None:
        old = self.nodes[i]
        node = SimNode(
            old.cfg,
            self.truth,
            self.people,
            self.clock,
            old.shape,
            heartbeat=old.heartbeat,
            habits=old.habits,
            seed=self.settings.seed + 1000 + i,
            ca_dir=old._ca.parent,
            outbox_max=old.outbox_max,
        )
        node.paused = old.paused
        self.nodes[i] = node
        assert self._loop is not None
        self._tasks[i] = self._loop.create_task(node.run())
        self.events.append(f"power on {node.device} (boot {node.boot or 'next'})")

    async def _faults(self) -> None:
        """The scenario's faults, at their simulated times."""
        plan: list[tuple[float, str, int, Fault]] = []
        for key, faults in self.settings.faults.items():
            targets = range(len(self.nodes)) if key == "*" else [self._index(key)]
            for i in targets:
                for f in faults:
                    plan.append((f.at, "start", i, f))
                    if f.kind in (WIFI, POWER) and f.duration > 0:
                        plan.append((f.at + f.duration, "end", i, f))
        plan.sort(key=lambda p: p[0])
        for at, edge, i, f in plan:
            wait = self.clock.real(self.clock.start + at - self.clock.now())
            if wait > 0:
                await asyncio.sleep(wait)
            node = self.nodes[i]
            if f.kind == WIFI:
                node.set_link(edge != "start")
                self.events.append(f"wifi {'down' if edge == 'start' else 'up'} {node.device}")
            elif f.kind == POWER:
                self._cut(i) if edge == "start" else self._on(i)
            elif f.kind == GONE:
                self._cut(i)
                self.events.append(f"gone {node.device}")

    # what the demo and tests ask

    def tally(self) -> dict[str, int]:
        """The ground truth's counts (read in the hall's loop, which owns the store)."""
        result: dict[str, int] = self.call(self.truth.tally)
        return result

    def outcomes(self) -> dict[str, int]:
        result: dict[str, int] = self.call(self.truth.outcomes)
        return result

    def reconcile(self, stored: Iterable[tuple[str, str, int]]) -> Reconciliation:
        have = list(stored)
        result: Reconciliation = self.call(lambda: self.truth.reconcile(have))
        return result

    def unanswered(self, scanned_before: float | None = None) -> int:
        """Accepted reads without a final Result; only those scanned before a monotonic time, when given."""
        if scanned_before is None:
            t = self.tally()
            return t["accepted"] - t["answered"]
        before = scanned_before
        row = self.call(
            lambda: self.truth.db.execute(
                "SELECT COUNT(*) FROM reads WHERE final_at IS NULL AND scanned_at < ?", (before,)
            ).fetchone()
        )
        return int(row[0])

    def online(self) -> int:
        return sum(1 for n in self.nodes if n.connected)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
