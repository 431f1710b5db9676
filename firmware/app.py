"""The node application: what the counter sees, what the broker gets, and the loops that run it.

:class:`Node` joins the parts — scanner → read cycle → flash outbox → uplink — and speaks the rest
of the wire contract (DESIGN.md): the retained ``status`` birth and its Last Will, the retained
``inventory``, ``telemetry`` heartbeats, ``result`` messages shown on the display (only the answer
for the counter's latest read: those of earlier patients, delivered late, are counted), ``config``
settings applied and kept in flash. Messages from the collector are opened with the down key and
must carry a sequence number above the last one accepted (kept in flash for ``config``), so a
replayed or tampered message is counted (``bad_down``) and changes nothing.

:func:`serve` is the device's main loop (asyncio): the scanner loop feeds the watchdog and never
waits for the network; the link loop connects (Wi-Fi, TLS, MQTT), runs one session until any part
of it fails with an ``OSError``, then waits a capped, jittered backoff and connects again — never
a reboot loop. A hang anywhere stops the scanner loop's watchdog feeding and the watchdog resets
the node; the outbox and the sequence reservation make that reset lose nothing.
"""

import asyncio
import gc
import json

from cccd import envelope, keys, schema
from firmware.node import ReadCycle
from firmware.outbox import Outbox, read_atomic, write_atomic
from firmware.scanner import Scanner
from firmware.seqstore import SeqStore
from firmware.ticks import ticks_diff, ticks_ms
from firmware.uplink import Uplink

FIRMWARE = "cccd-edge-esp32/0.1.0"
HARDWARE = "esp32"
KEEPALIVE_S = 60
# Settings the collector may change (config topic): name → (lowest, highest). Others are ignored.
SETTINGS = {
    "repeat_ms": (500, 60000),  # double-read suppression window
    "gap_ms": (20, 2000),  # torn-frame timeout
    "heartbeat_s": (10, 3600),  # telemetry interval
}
DEFAULTS = {"repeat_ms": 3000, "gap_ms": 200, "heartbeat_s": 60}


def backoff_ms(attempt, random_unit):
    """Delay before reconnect attempt ``attempt`` (0, 1, ...): uniform up to 1.5^attempt s, capped
    at about a minute, never under half a second (``random_unit`` in [0, 1))."""
    ceiling = 1.5 ** min(10, attempt) * 1000
    return max(500, int(random_unit * ceiling))


def _count_boot(path):
    boots = read_atomic(path, _parse_int)
    boots = (boots or 0) + 1
    write_atomic(path, "%d\n" % boots)
    return boots


def _parse_int(text):
    if not text.endswith("\n") or not text[:-1].isdigit():
        return None
    return int(text[:-1])


class Node:
    """The node's state and its answers to the world; ``root``: its directory in flash."""

    def __init__(self, config, root, uart, clock, feedback=None, event=None, readers=None):
        self.config = config
        self.root = root
        self.device = config["device"]
        self.facility = config["facility"]
        self.clock = clock
        self.feedback = feedback
        self.boot = _count_boot(root + "/boot")
        self.outbox = Outbox(root + "/outbox")
        self.cycle = ReadCycle(config, self.outbox, SeqStore(root + "/seq"), clock)
        self.scanner = Scanner(uart)
        self.uplink = Uplink(self.outbox, self.topic("read"), event=event)
        k = keys.derive(bytes.fromhex(config["secret"]))
        self._down = (k.down_key, k.down_iv)
        self.readers = readers or [{"type": "qr", "model": "GM65", "std": True}]
        self.bad_down = 0  # collector messages refused: tampered, foreign, replayed, malformed
        self.failures = 0  # read cycles that failed inside (flash, a bug): shown red, counted
        self.link_failures = 0  # sessions lost or not opened
        self.results = 0
        self.last_result = None  # (status, text) of the last Result shown
        # Results for a read other than the counter's latest: counted, not shown (after an outage
        # the answers of the day's earlier patients arrive; they must not replace the current one's)
        self.late_results = 0
        self._latest_read = -1  # seq of the read last accepted at the counter (since boot)
        self.started = ticks_ms()
        self.settings = dict(DEFAULTS)
        saved = read_atomic(root + "/settings", _parse_settings, 1024)
        self._config_seq = -1
        self._result_seq = -1
        if saved is not None:
            self._config_seq = saved.pop("_seq", -1)
            self._apply(saved)

    def topic(self, kind):
        return schema.topic(self.facility, self.device, kind)

    # -- the counter --------------------------------------------------------------------------

    def scan(self, now=None):
        """Read what the scanner sent; every frame becomes a Read in flash or a rejection shown."""
        for frame in self.scanner.poll(now):
            outcome = self.cycle.read(frame)
            if self.feedback is not None:
                if outcome.ok:
                    self.feedback.accepted(outcome.seq)
                else:
                    self.feedback.rejected(outcome.reason, outcome.text)
            if outcome.ok:
                self._latest_read = outcome.seq
                self.uplink.kick()

    # -- the broker ---------------------------------------------------------------------------

    def will(self):
        """The Last Will: the retained ``status`` ``offline``."""
        return (self.topic("status"), self.status("offline"), 1, True)

    def status(self, state):
        ts = self.clock.unix_ms() if self.clock.quality() != "none" else 0
        return schema.encode("status", schema.status(state, self.boot, ts))

    def telemetry(self, rssi=None):
        mem = gc.mem_free() if hasattr(gc, "mem_free") else None
        msg = schema.telemetry(
            ticks_diff(ticks_ms(), self.started) // 1000,
            self.boot,
            mem=mem,
            rssi=rssi,
            q=len(self.outbox),
            drop=self.outbox.dropped_since_boot,
            reads=self.cycle.reads,
            rej=self.cycle.rejected,
            fw=FIRMWARE,
            rdr={"qr": "ok"},
        )
        return schema.encode("telemetry", msg)

    def inventory(self, mac=None, serial=None):
        msg = schema.inventory(
            HARDWARE, self.readers, fw=FIRMWARE, site=self.config.get("site"), mac=mac, serial=serial
        )
        return schema.encode("inventory", msg)

    async def session_up(self, session, mac=None):
        """A new session: CONNECT with the Will, birth, inventory, subscriptions, the outbox."""
        broker = self.config.get("broker") or {}
        session.on_message = self.on_message
        await session.connect(
            self.device, KEEPALIVE_S, broker.get("username"), broker.get("password"), self.will()
        )
        await session.publish(self.topic("status"), self.status("online"), qos=1, retain=True)
        await session.publish(self.topic("inventory"), self.inventory(mac), qos=1, retain=True)
        await session.subscribe(self.topic("result"), 1)
        await session.subscribe(self.topic("config"), 1)
        self.uplink.attach(session)

    def on_message(self, topic, payload):
        """A ``result`` or ``config`` from the collector; anything else or anything bad is counted."""
        kind = topic.rsplit("/", 1)[-1]
        if kind not in ("result", "config") or topic != self.topic(kind):
            self.bad_down += 1
            return
        try:
            sealed = envelope.parse(payload)
            body = schema.decode(kind, sealed.open(self._down[0], self._down[1], topic))
        except ValueError:  # every error of the core is one (cccd.errors)
            self.bad_down += 1
            return
        last = self._result_seq if kind == "result" else self._config_seq
        if sealed.seq <= last:
            self.bad_down += 1  # a replay
            return
        if kind == "result":
            self._result_seq = sealed.seq
            self.results += 1
            if body["seq"] != self._latest_read:
                self.late_results += 1
            else:
                self.last_result = (body["status"], body["text"])
                if self.feedback is not None:
                    self.feedback.result(body["status"], body["text"])
        else:
            self._config_seq = sealed.seq
            self._apply(body)
            saved = dict(self.settings)
            saved["_seq"] = sealed.seq
            write_atomic(self.root + "/settings", json.dumps(saved) + "\n")

    def _apply(self, settings):
        for name, value in settings.items():
            bounds = SETTINGS.get(name)
            if bounds is None or not isinstance(value, int) or isinstance(value, bool):
                continue  # unknown settings are ignored, as the contract says
            self.settings[name] = min(max(value, bounds[0]), bounds[1])
        self.scanner.repeat_ms = self.settings["repeat_ms"]
        self.scanner.gap_ms = self.settings["gap_ms"]


def _parse_settings(text):
    if not text.endswith("\n"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- the device's loops ------------------------------------------------------------------------


def _sleep_ms(ms):
    sleep_ms = getattr(asyncio, "sleep_ms", None)  # MicroPython's; CPython (tests) has sleep only
    return sleep_ms(ms) if sleep_ms is not None else asyncio.sleep(ms / 1000)


async def serve(node, open_link, wdt=None, random_unit=None, backoff=backoff_ms):
    """Run the node forever: the scanner loop and the link loop (see the module docstring).

    ``open_link()`` → (reader, writer, mac, rssi_fn) brings Wi-Fi up and opens the TLS connection
    to the broker; it raises OSError when it cannot.
    """
    from firmware.mqtt import Session  # noqa: PLC0415 - the device's loops only

    async def scan_loop():
        while True:
            try:
                node.scan()
            except Exception:  # a failed read shows red; the counter goes on
                node.failures += 1
                if node.feedback is not None:
                    node.feedback.rejected("error", "Lỗi thiết bị\nQuét lại")
            if hasattr(node.feedback, "tick"):
                node.feedback.tick()  # the buzzer's pattern
            if wdt is not None:
                wdt.feed()  # only here: a hung scanner loop resets the node
            await _sleep_ms(20)

    async def heartbeat(session, rssi):
        last = None
        while True:
            now = ticks_ms()
            if last is None or ticks_diff(now, last) >= node.settings["heartbeat_s"] * 1000:
                last = now
                await session.publish(node.topic("telemetry"), node.telemetry(rssi()), qos=0)
            if session.idle_ms() > KEEPALIVE_S * 1500:
                raise OSError("mqtt: broker silent")
            await session.ping()
            await asyncio.sleep(min(KEEPALIVE_S // 2, node.settings["heartbeat_s"]))

    node.scanning = asyncio.create_task(scan_loop())  # forever; kept so that it is not collected
    attempt = 0
    while True:
        tasks = []
        writer = None
        try:
            reader, writer, mac, rssi = await open_link()
            session = Session(reader, writer)
            await node.session_up(session, mac)
            attempt = 0
            failed = asyncio.Event()

            async def guard(coro, failed=failed):
                try:
                    await coro
                finally:
                    failed.set()

            tasks = [
                asyncio.create_task(guard(session.run())),
                asyncio.create_task(guard(node.uplink.pump())),
                asyncio.create_task(guard(heartbeat(session, rssi))),
            ]
            await failed.wait()
        except Exception:  # OSError above all; anything else: the same backoff
            pass
        node.link_failures += 1  # a session ended, or none could be opened
        for task in tasks:
            task.cancel()
        if writer is not None:
            try:
                writer.close()
            except Exception:  # a dead socket may refuse even this
                pass
        delay = backoff(attempt, random_unit() if random_unit else 0.5)
        attempt += 1
        await _sleep_ms(delay)
