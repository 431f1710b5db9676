"""``cccd-edge bench load``: many nodes on one broker, and the reconnect storm after it restarts.

N simulated nodes (default 5,000) in one asyncio loop, each with its own TLS connection to one
Mosquitto (the production broker and configuration), a heartbeat every 30 s and 50 reads/s in
all, against the collector with the insurance check (the fake gateway in its own process). It
measures how long every node takes to connect; then, over a steady window, the collector's CPU
(its three processes, from /proc) and memory (RSS); then restarts the broker and measures the
reconnect storm: the time until every node is connected again and every outbox drained. It ends
with the reconciliation: nothing lost. Tap-to-result at the node is reported for three windows,
by when the read was scanned: the connection burst (until the collector has every node online and
every read of the burst answered), the steady state, and the reconnect storm.
"""

import gc
import math
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.hall import Hall, percentile
from sim.scenario import Scenario
from tools.demo import MOSQUITTO_BROKER, Demo, Say

TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    pids = [pid]
    for child in map(int, out.split()):
        pids += _tree(child)
    return pids


def _cpu_and_rss(pids: list[int]) -> tuple[float, int]:
    """(CPU seconds used so far, resident bytes) of these processes."""
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICKS
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


def wait_until(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate()`` held (looked at every 0.5 s); NaN if not within ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            return float("nan")
        time.sleep(0.5)
    return time.monotonic() - start


SETTLE_TIMEOUT = 300.0  # seconds the connection burst may take to settle


def _window(hall: Hall, since: float, until: float) -> dict[str, float]:
    """Reads scanned in the window: how many, and tap-to-result (publish → final) p50 / p99 in ms."""
    _first, final = hall.call(lambda: hall.truth.latencies(since, until))
    return {
        "reads": len(final),
        "p50_ms": round(1000 * percentile(final, 0.5), 1),
        "p99_ms": round(1000 * percentile(final, 0.99), 1),
    }


def run(nodes: int, rate: float, seconds: float, say: Say) -> dict[str, Any]:
    scenario = Scenario(nodes=nodes, peak=rate / nodes * 3600.0, gateway_latency=(0.0, 0.0))
    say(f"provisioning {nodes} nodes")
    demo = Demo(scenario, lambda _m: None, fakes_apart=True, broker=MOSQUITTO_BROKER, heartbeat=30.0)
    try:
        demo.start()
        hall = demo.hall
        assert hall is not None
        f = demo.facilities[0]
        connect = wait_until(lambda: hall.online() == nodes, 600)
        connected = time.monotonic()
        say(f"{hall.online()} of {nodes} nodes connected in {connect:.1f} s")
        # The burst settles once the collector has every node online (births and first heartbeats
        # taken) and every read scanned during the burst has its final answer.
        settle = wait_until(
            lambda: f.presence()[0] >= nodes and hall.unanswered(scanned_before=connected) == 0,
            SETTLE_TIMEOUT,
        )
        say(f"the connection burst settled {settle:.1f} s after the last node connected")
        # The simulator is the instrument: with 5,000 clients in its heap each full garbage
        # collection of this process paused every node for 0.5 s, counted as tap-to-result. Its
        # long-lived objects are left out of collection from now on (the collector's processes
        # are untouched).
        gc.collect()
        gc.freeze()
        assert f.collector.proc is not None
        pids = _tree(f.collector.proc.pid)
        cpu0, _ = _cpu_and_rss(pids)
        t0 = time.monotonic()
        before = hall.tally()["accepted"]
        time.sleep(seconds)
        cpu1, rss = _cpu_and_rss(pids)
        t1 = time.monotonic()
        window = t1 - t0
        reads = hall.tally()["accepted"] - before
        say(f"steady window: {reads} reads in {window:.0f} s; restarting the broker")
        f.broker.stop()
        wait_until(lambda: hall.online() < nodes // 2, 60)  # the nodes notice the broker is gone
        f.broker.start()
        t_storm = time.monotonic()
        back = wait_until(lambda: hall.online() == nodes, 600)
        drained = wait_until(lambda: hall.tally()["acked"] >= hall.tally()["accepted"], 600)
        storm = time.monotonic() - t_storm
        storm_end = time.monotonic()
        say(f"reconnect storm: every node back in {back:.1f} s, every outbox drained in {storm:.1f} s")
        demo.drain(timeout=120)
        t = demo.tally()
        return {
            "nodes": nodes,
            "connect_s": round(connect, 1),
            "settle_s": round(settle, 1),
            "reads_per_s": round(reads / window, 1),
            "collector_cpu_percent": round(100 * (cpu1 - cpu0) / window, 1),
            "collector_rss_mb": round(rss / 2**20, 1),
            # tap-to-result by when the read was scanned: the connection burst (until it settled),
            # the steady window, and the reconnect storm (broker down until every outbox drained)
            "burst": _window(hall, demo.started, t0),
            "steady": _window(hall, t0, t1),
            "storm": _window(hall, t1, storm_end),
            "storm_all_back_s": round(back, 1),
            "storm_drained_s": round(storm if not math.isnan(drained) else math.nan, 1),
            "accepted": t.accepted,
            "stored": t.stored,
            "lost": t.lost - t.dropped,
        }
    finally:
        gc.unfreeze()
        demo.stop()


def format_report(r: dict[str, Any]) -> str:
    def window(name: str, w: dict[str, float]) -> str:
        return f"  {name:38} {w['reads']:7d} reads  p50 {w['p50_ms']:8.1f} ms  p99 {w['p99_ms']:8.1f} ms"

    return "\n".join(
        [
            f"cccd-edge bench load — {r['nodes']:,} nodes on one Mosquitto, heartbeat 30 s",
            f"  all nodes connected in {r['connect_s']} s; the burst settled {r['settle_s']} s later",
            f"  steady: {r['reads_per_s']} reads/s; collector CPU {r['collector_cpu_percent']} % of a core "
            f"(3 processes), RSS {r['collector_rss_mb']} MB",
            "  tap-to-result at the node (publish → final), by when the read was scanned:",
            window("connection burst (start → settled)", r["burst"]),
            window("steady state", r["steady"]),
            window("reconnect storm (broker down → drained)", r["storm"]),
            f"  reconnect storm after a broker restart: all back in {r['storm_all_back_s']} s, outboxes "
            f"drained in {r['storm_drained_s']} s (goal ≤ 60 s)",
            f"  reads accepted {r['accepted']}, stored {r['stored']}, lost {r['lost']} (must be 0)",
        ]
    )
