"""``cccd-edge bench counter``: tap-to-result latency at the counter.

Virtual nodes scan at a steady total rate (default 100 reads/s) against the whole facility side
(``tools.demo``: Mosquitto, the collector with the insurance check, the fake BHXH gateway), once
with the gateway answering at once and once with it taking 1–3 s, as the real one does. For every
read it measures, at the node, the time from publishing the read to the first Result (``pending``
or final) and to the final one, and prints p50/p99 of each.

Goals (issue 4): p99 ≤ 200 ms to the answer with no gateway latency; ``pending`` at the node within
300 ms p99 when the gateway is slow.
"""

import statistics
import time
from collections.abc import Callable
from typing import Any

from sim.hall import percentile
from sim.scenario import Scenario
from tools.demo import MOSQUITTO_BROKER, Demo


def _phase(
    name: str,
    nodes: int,
    rate: float,
    seconds: float,
    latency: tuple[float, float],
    say: Callable[[str], None],
) -> dict[str, Any]:
    scenario = Scenario(nodes=nodes, peak=rate / nodes * 3600.0, gateway_latency=latency)
    demo = Demo(scenario, lambda _m: None, fakes_apart=True, broker=MOSQUITTO_BROKER)  # production's
    try:
        low, high = latency
        say(f"{name}: {nodes} nodes, {rate:g} reads/s for {seconds:g} s, gateway {low:g}–{high:g} s")
        demo.start()
        time.sleep(seconds)
        demo.drain(timeout=30)
        assert demo.hall is not None
        hall = demo.hall
        first, final = hall.call(hall.truth.latencies)
        reads = hall.tally()["accepted"]
        return {
            "phase": name,
            "reads": reads,
            "answered": len(final),
            "first_p50_ms": round(1000 * percentile(first, 0.5), 1),
            "first_p99_ms": round(1000 * percentile(first, 0.99), 1),
            "final_p50_ms": round(1000 * percentile(final, 0.5), 1),
            "final_p99_ms": round(1000 * percentile(final, 0.99), 1),
            "final_mean_ms": round(1000 * statistics.fmean(final), 1) if final else None,
        }
    finally:
        demo.stop()


def run(nodes: int, rate: float, seconds: float, say: Callable[[str], None]) -> list[dict[str, Any]]:
    return [
        _phase("gateway at once", nodes, rate, seconds, (0.0, 0.0), say),
        _phase("gateway 1-3 s", nodes, rate, seconds, (1.0, 3.0), say),
    ]


def format_report(rows: list[dict[str, Any]]) -> str:
    lines = ["cccd-edge bench counter — tap-to-result at the node (read published → Result received)"]
    for r in rows:
        lines.append(
            f"  {r['phase']:16} reads {r['reads']:6,}  answered {r['answered']:6,}   first Result "
            f"p50 {r['first_p50_ms']:7.1f} ms  p99 {r['first_p99_ms']:7.1f} ms   final "
            f"p50 {r['final_p50_ms']:7.1f} ms  p99 {r['final_p99_ms']:7.1f} ms"
        )
    fast, slow = rows[0], rows[1]
    fast_met = "met" if fast["final_p99_ms"] <= 200 else "NOT met"
    slow_met = "met" if slow["first_p99_ms"] <= 300 else "NOT met"
    lines.append(
        f"  goals: final p99 ≤ 200 ms with no gateway latency: {fast_met}; "
        f"pending p99 ≤ 300 ms with a slow gateway: {slow_met}"
    )
    return "\n".join(lines) + "\n"
