"""``cccd-edge bench load``: many nodes on one broker, and the reconnect storm after it restarts.

N simulated nodes (default 5,000) in one asyncio loop, each with its own TLS connection to one
Mosquitto (the production broker and configuration), a heartbeat every 30 s and 50 reads/s in
all, against the collector with the insurance check (the fake gateway in its own process). It
measures how long every node takes to connect; then, over a steady window, the collector's CPU
(its three processes, from /proc) and memory (RSS), and tap-to-result at the node; then restarts
the broker and measures the reconnect storm: the time until every node is connected again and
every outbox drained. It ends with the reconciliation: nothing lost.
"""

import math
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.hall import percentile
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


def _wait(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            return float("nan")
        time.sleep(0.5)
    return time.monotonic() - start


def run(nodes: int, rate: float, seconds: float, say: Say) -> dict[str, Any]:
    scenario = Scenario(nodes=nodes, peak=rate / nodes * 3600.0, gateway_latency=(0.0, 0.0))
    say(f"provisioning {nodes} nodes")
    demo = Demo(scenario, lambda _m: None, fakes_apart=True, broker=MOSQUITTO_BROKER, heartbeat=30.0)
    try:
        demo.start()
        hall = demo.hall
        assert hall is not None
        f = demo.facilities[0]
        connect = _wait(lambda: hall.online() == nodes, 600)
        say(f"{hall.online()} of {nodes} nodes connected in {connect:.1f} s")
        assert f.collector.proc is not None
        pids = _tree(f.collector.proc.pid)
        cpu0, _ = _cpu_and_rss(pids)
        t0 = time.monotonic()
        before = hall.tally()["accepted"]
        time.sleep(seconds)
        cpu1, rss = _cpu_and_rss(pids)
        window = time.monotonic() - t0
        reads = hall.tally()["accepted"] - before
        _first, final = hall.call(hall.truth.latencies)
        say(f"steady window: {reads} reads in {window:.0f} s; restarting the broker")
        f.broker.stop()
        _wait(lambda: hall.online() < nodes // 2, 60)  # the nodes notice the broker is gone
        f.broker.start()
        t_storm = time.monotonic()
        back = _wait(lambda: hall.online() == nodes, 600)
        drained = _wait(lambda: hall.tally()["acked"] >= hall.tally()["accepted"], 600)
        storm = time.monotonic() - t_storm
        say(f"reconnect storm: every node back in {back:.1f} s, every outbox drained in {storm:.1f} s")
        demo.drain(timeout=120)
        t = demo.tally()
        return {
            "nodes": nodes,
            "connect_s": round(connect, 1),
            "reads_per_s": round(reads / window, 1),
            "collector_cpu_percent": round(100 * (cpu1 - cpu0) / window, 1),
            "collector_rss_mb": round(rss / 2**20, 1),
            "final_p50_ms": round(1000 * percentile(final, 0.5), 1),
            "final_p99_ms": round(1000 * percentile(final, 0.99), 1),
            "storm_all_back_s": round(back, 1),
            "storm_drained_s": round(storm if not math.isnan(drained) else math.nan, 1),
            "accepted": t.accepted,
            "stored": t.stored,
            "lost": t.lost - t.dropped,
        }
    finally:
        demo.stop()


def format_report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"cccd-edge bench load — {r['nodes']:,} nodes on one Mosquitto, heartbeat 30 s",
            f"  all nodes connected in {r['connect_s']} s",
            f"  steady: {r['reads_per_s']} reads/s; collector CPU {r['collector_cpu_percent']} % of a core "
            f"(3 processes), RSS {r['collector_rss_mb']} MB; tap-to-result p50 {r['final_p50_ms']} ms, "
            f"p99 {r['final_p99_ms']} ms",
            f"  reconnect storm after a broker restart: all back in {r['storm_all_back_s']} s, outboxes "
            f"drained in {r['storm_drained_s']} s (goal ≤ 60 s)",
            f"  reads accepted {r['accepted']}, stored {r['stored']}, lost {r['lost']} (must be 0)",
        ]
    )
