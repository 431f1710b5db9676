"""Benchmarks: figures measured in one run, printed and optionally written as JSON.

``core``: the protocol core on this machine.
  - CPython, one core: seal+open per second, and the whole read cycle (parse the scanned text,
    pseudonymise, build and encode the Read, seal, then open and decode it as the collector does).
  - MicroPython (the WebAssembly port under node): heap bytes one read cycle allocates on the node
    (parse, pseudonym, encode, seal), measured with gc.mem_alloc() after gc.collect(), stage by
    stage. The port has no cryptolib: the tests' pure-Python stand-in does the AES, so its own
    allocation for the same work is measured too and reported beside the total.

Goals (issue 2): >= 20,000 seal+open per second; <= 16 KB of MicroPython heap per read cycle.
"""

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cccd import envelope, keys, pseudonym, qr, schema
from tools import micropython

GOAL_SEAL_OPEN_PER_S = 20_000
GOAL_MPY_HEAP_PER_READ = 16 * 1024

# Synthetic: structure-valid, nobody's.
SAMPLE_QR = (
    "001090000001|123456789|Nguyễn Văn An|17051990|Nam|"
    "Số 1 đường Lê Lợi, phường Điện Biên, thành phố Thanh Hóa, tỉnh Thanh Hóa|12042021"
).encode()
FACILITY = "38001"
DEVICE = "qr-0007"
SECRET = bytes(range(32))
PSEUDONYM_SECRET = bytes(range(0x40, 0x60))
TS = 1795000000000

Progress = Callable[[str], None]


def _rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls of ``fn(i)`` per second over about ``seconds`` (after a short warm-up)."""
    for i in range(200):
        fn(i)
    n = 0
    batch = 500
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(n, n + batch):
            fn(i)
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def sample_read(seq: int) -> dict[str, Any]:
    """What a node makes of one scan: parse, pseudonymise, build the Read."""
    scan = qr.parse(SAMPLE_QR, now=(2026, 11, 22))
    pid = pseudonym.pid(PSEUDONYM_SECRET, cccd=scan.ident["cccd"])
    return schema.read(seq, TS, "ntp", "qr", scan.doc, pid, scan.ident, warn=scan.warn)


def core(seconds: float = 3.0, micropython: bool = True, progress: Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    k = keys.derive(SECRET)
    topic = schema.topic(FACILITY, DEVICE, "read")
    payload = schema.encode("read", sample_read(1))

    def seal_open(i: int) -> object:
        data = envelope.seal(k.up_key, k.up_iv, b"qr-0007", i, topic, payload)
        return envelope.parse(data).open(k.up_key, k.up_iv, topic)

    def full_cycle(i: int) -> object:
        sealed = schema.encode("read", sample_read(i))
        data = envelope.seal(k.up_key, k.up_iv, b"qr-0007", i, topic, sealed)
        opened = envelope.open_on_topic(data, topic, lambda _f, _kid: (k.up_key, k.up_iv))
        return schema.decode("read", opened.plaintext)

    say(f"CPython seal+open for {seconds:g} s")
    report: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "payload_bytes": len(payload),
        "envelope_bytes": len(envelope.seal(k.up_key, k.up_iv, b"qr-0007", 0, topic, payload)),
        "cpython_seal_open_per_s": round(_rate(seal_open, seconds)),
    }
    say(f"CPython parse+pseudonym+seal+open for {seconds:g} s")
    report["cpython_read_cycle_per_s"] = round(_rate(full_cycle, seconds))
    report["goal_seal_open_per_s"] = GOAL_SEAL_OPEN_PER_S
    if micropython:
        say("MicroPython heap per read cycle (node + WebAssembly port)")
        report["micropython"] = micropython_heap()
        report["goal_mpy_heap_per_read"] = GOAL_MPY_HEAP_PER_READ
    return report


_MPY_SCRIPT = """
import gc, json
from cccd import envelope, keys, pseudonym, qr, schema
import cryptolib

QR = %(qr)r
K = keys.derive(bytes(range(32)))
PS = bytes(range(0x40, 0x60))
TOPIC = "cccd/v1/38001/qr-0007/read"

def cycle(seq, stages):
    gc.collect(); a = gc.mem_alloc()
    scan = qr.parse(QR, now=(2026, 11, 22))
    b = gc.mem_alloc()
    pid = pseudonym.pid(PS, cccd=scan.ident["cccd"])
    c = gc.mem_alloc()
    msg = schema.read(seq, %(ts)d, "ntp", "qr", scan.doc, pid, scan.ident, warn=scan.warn)
    payload = schema.encode("read", msg)
    d = gc.mem_alloc()
    sealed = envelope.seal(K.up_key, K.up_iv, b"qr-0007", seq, TOPIC, payload)
    e = gc.mem_alloc()
    stages.update({"parse": b - a, "pseudonym": c - b, "encode": d - c, "seal": e - d, "total": e - a})
    return payload, sealed

def stand_in(payload):
    # the AES work of one seal, done by the stand-in alone: CBC-MAC over the padded
    # B0|aad|payload and ECB over the counter blocks
    nblocks = 1 + (len(payload) + 15) // 16
    mac_in = bytes(16 * (nblocks + 6))
    ctr_in = bytes(16 * nblocks)
    gc.collect(); a = gc.mem_alloc()
    cryptolib.aes(K.up_key, 2, bytes(16)).encrypt(mac_in)
    cryptolib.aes(K.up_key, 1).encrypt(ctr_in)
    return gc.mem_alloc() - a

warm = {}
cycle(1, warm)
stages = {}
payload, sealed = cycle(2, stages)
stages["stand_in_aes"] = stand_in(payload)
stages["payload_bytes"] = len(payload)
stages["envelope_bytes"] = len(sealed)
print("BENCH " + json.dumps(stages))
"""


def micropython_heap() -> dict[str, Any]:
    root = micropython.find_repo_root(Path(__file__))
    code = _MPY_SCRIPT % {"qr": SAMPLE_QR, "ts": TS}
    result = micropython.run(
        code,
        mounts=[(root / "cccd", "/lib/cccd"), (root / "tests" / "mpy" / "stubs", "/stubs")],
        sys_path=["/stubs"],
    ).check()
    for line in result.stdout.splitlines():
        if line.startswith("BENCH "):
            stages: dict[str, Any] = json.loads(line[6:])
            stages["net_of_stand_in"] = stages["total"] - stages["stand_in_aes"]
            return stages
    raise RuntimeError("the MicroPython benchmark printed no result")


def format_core(r: dict[str, Any]) -> str:
    rate_met = r["cpython_seal_open_per_s"] >= r["goal_seal_open_per_s"]
    lines = [
        f"cccd-edge bench core — {r['machine']}",
        f"  Read payload {r['payload_bytes']} B, envelope {r['envelope_bytes']} B",
        f"  CPython seal+open         {r['cpython_seal_open_per_s']:>8,} /s   "
        f"(goal ≥ {r['goal_seal_open_per_s']:,}: {'met' if rate_met else 'NOT met'})",
        f"  CPython full read cycle   {r['cpython_read_cycle_per_s']:>8,} /s   "
        "(parse + pseudonym + encode + seal + open + decode)",
    ]
    m = r.get("micropython")
    if m:
        goal = r["goal_mpy_heap_per_read"]
        verdict = "met" if m["total"] <= goal else "NOT met"
        lines += [
            f"  MicroPython heap per read {m['total']:>8,} B   (goal ≤ {goal:,}: {verdict})",
            f"    parse {m['parse']:,} B, pseudonym {m['pseudonym']:,} B, encode {m['encode']:,} B, "
            f"seal {m['seal']:,} B",
            f"    of which the test stand-in AES {m['stand_in_aes']:,} B "
            f"(C cryptolib on the device: ~ its output only); net {m['net_of_stand_in']:,} B",
        ]
    return "\n".join(lines) + "\n"
