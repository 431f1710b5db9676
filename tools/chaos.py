"""``cccd-edge bench chaos``: the promises of DESIGN.md under faults, with figures.

One facility (Mosquitto, the production broker, with its persistence; the collector with the
insurance check and the HIS registration; the fake gateway and HIS) and simulated nodes scanning
all the time. The faults come one at a time, then several together:

- ``broker restart``: Mosquitto stopped (it saves its store) and started again;
- ``collector kill``: the collector SIGKILLed mid-work, started again;
- ``his down``: the HIS refuses connections for a while;
- ``bhxh down``: the BHXH gateway refuses connections for a while;
- ``node offline``: a node's link down for a while (its outbox holds the reads);
- ``node offline 24 h``: a node's link down for 24 simulated hours while its counter keeps
  scanning a whole day's patients (``Hall.away``: its clock goes back a day and catches up with
  the others' within the fault's few seconds), then back: the reads it held arrive a day old and
  must be stored once, checked and registered like any other; the collector's fleet must have it
  offline during the outage and online after. Its row says how many reads it held and how long
  they took from the reconnect to their last answer at the counter;
- ``collector link cut``: the network between the broker and the collector fails (a relay that
  drops its connections and refuses new ones, tools/tcpproxy.py);
- ``power loss``: two nodes lose power and come back (their outboxes are in flash);
- ``together``: the broker restarted while the collector is killed and the HIS is down.

Each fault's window is recorded, and the next fault waits until every read so far is answered;
at the end the nodes stop scanning, everything drains, and the
run reconciles the simulator's ground truth with the store and the HIS: reads lost (must be 0),
stored twice (0: the store's key forbids it, and the quarantine counts the duplicates the broker
re-delivered), registered twice in the HIS (0), and for the reads published during each fault,
how long the reads scanned during each fault took to their final answer at the counter (the
fault's delay).
"""

import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from collector.fleet import OFFLINE, ONLINE
from sim.hall import MORNING, Shape, percentile
from sim.scenario import Scenario
from tools.demo import MOSQUITTO_BROKER, Demo, Say, Tally
from tools.tcpproxy import LinkProxy

RECOVERY = 120.0  # seconds a fault's effects may take to clear before the next one
DAY = 86400.0
# A counter's day while the node is away: 60 patients an hour at the 7-9h peak, about 300 in all
# (the bench's own rate, reads every second, would overflow any outbox in a day).
COUNTER_DAY = Shape(60.0, MORNING)


@dataclass
class FaultRun:
    name: str
    start: float  # monotonic
    end: float
    reads: int = 0  # reads scanned during the fault
    delay_p50: float = float("nan")  # seconds from the scan to the final answer at the counter
    delay_max: float = float("nan")
    held: int | None = None  # reads the node's outbox held when its link came back (24 h offline)
    drain: float = float("nan")  # seconds from the reconnect to the last held read's final answer
    offline_seen: bool = False  # the collector's fleet had the node offline during the outage
    online_after: bool = False  # ... and online after


@dataclass
class ChaosReport:
    faults: list[FaultRun]
    tally: Tally
    duplicates_quarantined: int

    @property
    def ok(self) -> bool:
        t = self.tally
        away = all(f.offline_seen and f.online_after for f in self.faults if f.held is not None)
        return t.lost - t.dropped == 0 and t.registered_twice == 0 and t.answered >= t.accepted and away


class Chaos:
    def __init__(self, seconds: float, nodes: int, rate: float, say: Say) -> None:
        self.seconds = seconds  # how long each fault lasts (real time)
        self.say = say
        scenario = Scenario(facilities=1, nodes=nodes, peak=rate * 3600.0, gateway_latency=(0.05, 0.3))
        self.demo = Demo(scenario, lambda _m: None, broker=MOSQUITTO_BROKER)
        self.faults: list[FaultRun] = []
        # the collector reaches its broker through a link that can be cut
        f = self.demo.facilities[0]
        self.link = LinkProxy("127.0.0.1", f.port).start()
        toml = f.home.path / "collector.toml"
        text = toml.read_text("utf-8")
        toml.write_text(text.replace(f"port = {f.port}\n", f"port = {self.link.port}\n", 1), "utf-8")
        self._subscribed = 1  # the collector's SUBACKs so far (one per start)

    def _window(self, name: str, begin: Callable[[], None], end: Callable[[], None]) -> FaultRun:
        self.say(f"fault: {name} for {self.seconds:g} s")
        start = time.monotonic()
        begin()
        time.sleep(self.seconds)
        end()
        fault = FaultRun(name, start, time.monotonic())
        self.faults.append(fault)
        # every read so far answered before the next fault: each fault's delay is its own
        hall = self.demo.hall
        assert hall is not None
        deadline = time.monotonic() + RECOVERY
        while hall.unanswered() > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        return fault

    def _away_a_day(self, device: str) -> None:
        """``node offline 24 h``: the node away for a simulated day, then back (module doc)."""
        d = self.demo
        f, hall = d.facilities[0], d.hall
        assert hall is not None
        back_at, held, offline = math.nan, 0, False

        def state_is(state: str) -> bool:
            deadline = time.monotonic() + RECOVERY
            while f.states().get(device) != state and time.monotonic() < deadline:
                time.sleep(0.2)
            return f.states().get(device) == state

        def back() -> None:
            nonlocal back_at, held, offline
            offline = state_is(OFFLINE)  # the broker's Last Will reached the fleet
            back_at = time.monotonic()
            held = hall.back(device)

        done = self._window(
            "node offline 24 h", lambda: hall.away(device, DAY, self.seconds, COUNTER_DAY), back
        )
        done.held, done.offline_seen, done.online_after = held, offline, state_is(ONLINE)
        last: float | None = hall.call(
            lambda: hall.truth.db.execute(
                "SELECT MAX(final_at) FROM reads WHERE device = ? AND scanned_at BETWEEN ? AND ?",
                (device, done.start, done.end),
            ).fetchone()[0]
        )
        done.drain = math.nan if last is None else last - back_at

    def run(self) -> ChaosReport:
        d = self.demo
        d.start()
        f = d.facilities[0]
        hall = d.hall
        assert hall is not None and d.gateway is not None and d.his is not None
        gateway, his = d.gateway, d.his
        nodes = [n.device for n in hall.nodes]
        time.sleep(2.0)

        def restart_collector() -> None:
            f.collector.start()
            f.collector.wait_subscribed(self._subscribed + 1)
            self._subscribed += 1

        def broker_back() -> None:
            f.broker.start()

        self._window("broker restart", f.broker.stop, broker_back)
        self._window("collector kill", f.collector.kill, restart_collector)
        self._window("his down", lambda: his.set_outage("refuse"), lambda: his.set_outage(False))
        self._window("bhxh down", lambda: gateway.set_outage(True), lambda: gateway.set_outage(False))
        self._window("node offline", lambda: hall.link_down(nodes[0]), lambda: hall.link_up(nodes[0]))
        self._away_a_day(nodes[0])
        self._window("collector link cut", self.link.cut, self.link.restore)

        def cut() -> None:
            for n in nodes[1:3]:
                hall.power_cut(n)

        def back() -> None:
            for n in nodes[1:3]:
                hall.power_on(n)

        self._window("power loss", cut, back)

        def together() -> None:
            his.set_outage("refuse")
            f.collector.kill()
            f.broker.stop()

        def apart() -> None:
            broker_back()
            restart_collector()
            his.set_outage(False)

        self._window("together", together, apart)
        self.say("draining: the nodes stop scanning; every read to its answer and the HIS")
        d.drain(timeout=180)
        tally = d.tally()
        self._delays()
        with sqlite3.connect(f.db, timeout=10) as db:
            duplicates = int(
                db.execute("SELECT COUNT(*) FROM quarantine WHERE reason = 'duplicate'").fetchone()[0]
            )
        return ChaosReport(self.faults, tally, duplicates)

    def _delays(self) -> None:
        hall = self.demo.hall
        assert hall is not None
        rows = hall.call(
            lambda: hall.truth.db.execute(
                "SELECT scanned_at, final_at FROM reads WHERE final_at IS NOT NULL"
            ).fetchall()
        )
        for fault in self.faults:
            delays = [final - scanned for scanned, final in rows if fault.start <= scanned <= fault.end]
            fault.reads = len(delays)
            if delays:
                fault.delay_p50 = percentile(delays, 0.5)
                fault.delay_max = max(delays)

    def stop(self) -> None:
        self.demo.stop()
        self.link.stop()


def run(seconds: float, nodes: int, rate: float, say: Say) -> ChaosReport:
    chaos = Chaos(seconds, nodes, rate, say)
    try:
        return chaos.run()
    finally:
        chaos.stop()


def format_report(r: ChaosReport) -> str:
    t = r.tally
    lines = [
        "cccd-edge bench chaos — each fault, then the reconciliation with the simulator's ground truth",
        f"  {'fault':18} {'reads':>6} {'delay p50':>10} {'delay max':>10}   (scan → final answer)"
        f"   {'held':>5} {'drain':>7}",
    ]
    for f in r.faults:
        line = f"  {f.name:18} {f.reads:6d} {f.delay_p50:9.1f}s {f.delay_max:9.1f}s"
        if f.held is not None:
            fleet = "offline during, online after" if f.offline_seen and f.online_after else "NOT SEEN"
            line += f"{'':22} {f.held:5d} {f.drain:6.1f}s   fleet: {fleet}"
        lines.append(line)
    lines += [
        f"  reads accepted by the nodes {t.accepted}, stored {t.stored}, answered {t.answered}, "
        f"in the HIS {t.registered}",
        f"  reads lost {t.lost - t.dropped} (must be 0), stored twice 0 (the store's key; "
        f"{r.duplicates_quarantined} re-deliveries quarantined as duplicates), registered twice in the "
        f"HIS {t.registered_twice} (must be 0), dropped by full outboxes {t.dropped}",
        f"  {'PASS' if r.ok else 'FAIL'}",
    ]
    return "\n".join(lines)
