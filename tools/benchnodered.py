"""``cccd-edge bench nodered``: the same load through a Node-RED flow and through cccd-edge.

What a hospital integrator would build instead of cccd-edge: a Node-RED flow
(``tools/nodered/flow.json``) that subscribes to the reads on the facility's broker (QoS 1, the
Read in plain JSON: no envelope) and, for each read, POSTs the Patient (a conditional create,
``If-None-Exist`` on the CCCD number) and then the Encounter to the HIS: an HTTP request node
each, as such a flow is usually drawn (the fake HIS would take a transaction Bundle too, but
building one with ``urn:uuid`` references is more than that quick flow does). No persistence, no
retry, no de-duplication: what Node-RED has acknowledged to the broker and not yet sent is in its
memory only.

cccd-edge does, per read: the envelope opened and verified, the read stored (SQLite) before the
broker's PUBACK, the insurance check with the fake BHXH gateway, the answer to the node, and the
registration in the HIS (Patient, Coverage, Encounter, exactly once: in one transaction Bundle
when the HIS declares transactions, as the fake HIS does, else three conditional updates; see
``--his-transaction``).

Two phases in one run, each on a fresh facility home (Mosquitto with the production
configuration, TLS) and a fresh fake HIS (``cccd-edge sim his``, the demo's latency): P publisher
processes (``tools.benchingest``'s, one node account each) offer the same reads — made by the
simulator's nodes (``sim.hall.SimNode``) from the demo's synthetic citizens, sealed for cccd-edge,
opened to plain JSON for Node-RED — at the same total rate for the same time. The figure is
visits registered in the HIS per second over the steady window (from a quarter of the window to
its end: the start-up and the first backlog left out), counted in the fake HIS's own store by the
visit identifier (``urn:cccd-edge:visit|facility/device/seq``, the same in both flows).

At the end of the window the consumer (the node-red process; the collector's) is SIGKILLed while
the publishers go on, and started again ``RESTART_AFTER`` seconds later. After the offer, each
side drains (cccd-edge until every read is in the HIS or ``drain`` seconds; Node-RED until no
visit arrived for ``STALL`` seconds) and the reconciliation counts what was lost: published
(PUBACKed by the broker) and never registered, and what was registered twice.

Node-RED is installed on demand with npm into ``.cache/nodered/`` (pinned ``NODE_RED_VERSION``;
not in the project's package.json, which every CI run installs) and runs headless (no editor, no
admin API) from a settings file in the phase's directory.
"""

import contextlib
import datetime
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cccd import envelope, keys, schema
from sim import citizens
from sim.hall import Clock, Shape, SimNode, Truth
from tools import benchingest
from tools.benchingest import BenchError
from tools.collectorproc import ROOT, CollectorStartError
from tools.demo import MOSQUITTO_BROKER, DemoError, Facility, Say, fake_gateway, fake_his, his_visits
from tools.jsonview import to_json
from tools.mosquitto import MosquittoError
from tools.ports import free_port
from tools.simproc import SimProcess, SimStartError

NODE_RED_VERSION = "4.1.15"  # 5.x needs node 22; Debian's is 20
CACHE = ROOT / ".cache" / "nodered"
FLOW = ROOT / "tools" / "nodered" / "flow.json"
FACILITY = "79001"
NODERED, CCCD_EDGE = "Node-RED", "cccd-edge"
SAMPLE = 0.5  # seconds between looks at the HIS's store
RESTART_AFTER = 2.0  # seconds the killed consumer stays down
TAIL = 5.0  # seconds the publishers go on after the kill
STALL = 8.0  # Node-RED has drained when no visit arrived for this long
STEADY_FROM = 0.25  # the steady window starts at this share of the window
CONNECTED = r"Connected to broker: (\S+)"  # node-red's log, once its MQTT client is connected
REGISTERS = {  # --his-transaction: how cccd-edge registers a visit ([his] transaction)
    "auto": 'one FHIR transaction Bundle (transaction = "auto": the fake HIS declares transactions)',
    "on": "one FHIR transaction Bundle (transaction = true)",
    "off": "three FHIR conditional updates (transaction = false)",
}


# --- Node-RED -----------------------------------------------------------------------------------


def install(say: Say, cache: Path = CACHE) -> Path:
    """Node-RED's ``red.js``, installed with npm into ``cache`` unless the pinned version is there."""
    package = cache / "node_modules" / "node-red" / "package.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(package.read_text("utf-8")).get("version") == NODE_RED_VERSION:
            return package.parent / "red.js"
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is not installed (apt-get install npm): it installs Node-RED for the bench")
    say(f"installing Node-RED {NODE_RED_VERSION} into {cache} with npm (once)")
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(cache),
            "--no-audit",
            "--no-fund",
            "--omit=dev",
            f"node-red@{NODE_RED_VERSION}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0 or not package.exists():
        why = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise BenchError(f"npm could not install node-red@{NODE_RED_VERSION}: {' / '.join(why)}")
    return package.parent / "red.js"


def settings_js(port: int, env: dict[str, str]) -> str:
    """Node-RED's settings: headless (no editor, no admin API, no HTTP nodes), the flow's
    credentials unencrypted, ``env`` for the flow's ``${…}`` properties and ``env.get``."""
    lines = [f"process.env[{json.dumps(k)}] = {json.dumps(v)};" for k, v in env.items()]
    lines += [
        "module.exports = {",
        '    flowFile: "flow.json",',
        "    credentialSecret: false,",
        '    uiHost: "127.0.0.1",',
        f"    uiPort: {port},",
        "    httpAdminRoot: false,",
        "    httpNodeRoot: false,",
        "    logging: {console: {level: 'info', metrics: false, audit: false}},",
        "    externalModules: {autoInstall: false, palette: {allowInstall: false}},",
        "    diagnostics: {enabled: false},",
        "    runtimeState: {enabled: false},",
        "    telemetry: {enabled: false},",
        "};",
    ]
    return "\n".join(lines) + "\n"


def node_red(red_js: Path, user_dir: Path, broker: Any, topic: str, his_url: str) -> SimProcess:
    """A headless node-red running the flow in ``user_dir`` against ``broker`` (the collector's
    settings: host, port, CA, account) and the HIS at ``his_url``; ``start()`` returns once its MQTT
    client is connected."""
    user_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FLOW, user_dir / "flow.json")
    creds = {"broker": {"user": broker.username, "password": broker.password}}
    (user_dir / "flow_cred.json").write_text(json.dumps(creds), "utf-8")
    env = {
        "MQTT_HOST": broker.host,
        "MQTT_PORT": str(broker.port),
        "MQTT_CA": str(Path(broker.ca).resolve()),
        "READ_TOPIC": topic,
        "HIS_URL": his_url,
    }
    settings = user_dir / "settings.js"
    settings.write_text(settings_js(free_port(), env), "utf-8")
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not installed (apt-get install nodejs): Node-RED runs on it")
    return SimProcess(
        ["--settings", str(settings), "--userDir", str(user_dir)],
        user_dir / "node-red.log",
        command=[node, str(red_js)],
        ready=re.compile(CONNECTED),
    )


# --- the offered reads --------------------------------------------------------------------------


def sealed_reads(configs: Sequence[dict[str, Any]], per_device: int, work: Path) -> list[list[bytes]]:
    """``per_device`` reads of each node, as the simulator's nodes make them (the demo's synthetic
    citizens, their QR codes parsed, pseudonymised, sealed), in sequence order."""
    people = citizens.population(500, seed=2026, today=datetime.date.today())  # as `sim bhxh` has them
    truth = Truth(work / "reads.db")
    out = []
    try:
        for i, cfg in enumerate(configs):
            node = SimNode(
                cfg, truth, people, Clock(), Shape(0.0), seed=i, ca_dir=work, outbox_max=per_device + 1
            )
            node._power_on()  # the node's flash: its boot and sequence reservation
            while truth.depth(node.facility, node.device) < per_device:
                node.scan()  # a double scan is suppressed: scan again
            out.append([p for _seq, p in truth.outbox(node.facility, node.device, limit=per_device)])
    finally:
        truth.close()
    return out


def plain_read(cfg: dict[str, Any], sealed: bytes) -> bytes:
    """What the integrator's node publishes instead: the same Read, in JSON, not sealed."""
    k = keys.derive(bytes.fromhex(cfg["secret"]))
    topic = schema.topic(cfg["facility"], cfg["device"], "read")
    read = schema.decode("read", envelope.parse(sealed).open(k.up_key, k.up_iv, topic))
    return json.dumps(to_json(read), ensure_ascii=False).encode("utf-8")


# --- figures ------------------------------------------------------------------------------------


def steady_rate(samples: Sequence[tuple[float, int]], start: float, end: float) -> float:
    """Visits a second between ``start`` and ``end`` (seconds), from (time, visits so far) samples:
    the first and last sample inside the window; NaN with fewer than two."""
    inside = [(t, n) for t, n in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return math.nan
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0)


def ratio(edge: float, nodered: float) -> float:
    return edge / nodered if nodered > 0 and not math.isnan(edge) else math.nan


# --- a phase ------------------------------------------------------------------------------------


class _Consumer:
    """What takes the reads off the broker in a phase, with a SIGKILL and a start again."""

    def __init__(self, side: str, facility: Facility, nodered: SimProcess | None, base: Path) -> None:
        self.side, self.facility, self.nodered, self.base = side, facility, nodered, base
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        if self.nodered is not None:
            self.nodered.log = self.base / f"node-red-{self.starts}.log"  # ready: this start's line
            self.nodered.start(timeout=60)
        else:
            self.facility.collector.start()
            self.facility.collector.wait_subscribed(count=self.starts, timeout=60)

    def kill(self) -> None:
        if self.nodered is not None:
            if self.nodered.proc is not None:
                self.nodered.proc.kill()
                self.nodered.proc.wait()
        else:  # every process of the collector at once: the server loses power
            collector = self.facility.collector
            if collector.proc is not None:
                for pid in benchingest._tree(collector.pid)[1:]:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            collector.kill()

    def stop(self) -> None:
        if self.nodered is not None:
            self.nodered.stop()
        else:
            self.facility.collector.stop()

    @property
    def pid(self) -> int | None:
        if self.nodered is not None:
            return None if self.nodered.proc is None else self.nodered.proc.pid
        return self.facility.collector.pid if self.facility.collector.proc is not None else None


def _cpu(pid: int | None) -> float | None:
    return None if pid is None else benchingest._cpu_seconds(pid)


def _phase(
    side: str,
    base: Path,
    red_js: Path | None,
    devices: int,
    rate: float,
    seconds: float,
    kill: bool,
    drain: float,
    his_latency: str,
    say: Say,
    his_transaction: str = "auto",
) -> dict[str, Any]:
    base.mkdir(parents=True)
    offer = seconds + (TAIL if kill else 0.0)
    per_device = max(1, round(rate * offer / devices))
    with contextlib.ExitStack() as stack:
        say(f"{side}: provisioning a facility home, starting Mosquitto and the fake HIS")
        f = Facility(base, FACILITY, devices, MOSQUITTO_BROKER)
        stack.callback(f.broker.stop)
        f.broker.start()
        his_db = base / "his.db"
        his = fake_his(his_db, base / "his.log", his_latency)
        stack.callback(his.stop)
        his.start()
        configs = [json.loads(p.read_text("utf-8")) for p in f.configs]
        say(f"{side}: making {per_device * devices:,} reads of synthetic citizens' cards")
        payloads = sealed_reads(configs, per_device, base)
        nodered = None
        if side == NODERED:
            assert red_js is not None
            payloads = [[plain_read(c, p) for p in ps] for c, ps in zip(configs, payloads, strict=True)]
            broker = f.home.collector_config().broker
            nodered = node_red(red_js, base / "nodered", broker, f"cccd/v1/{FACILITY}/+/read", his.url)
        else:
            gateway = fake_gateway(base / "gateway.log", (0.0, 0.0))
            stack.callback(gateway.stop)
            f.configure(gateway.start().url, his.url, his_transaction)
        consumer = _Consumer(side, f, nodered, base)
        stack.callback(consumer.stop)
        say(f"{side}: starting {'node-red' if nodered else 'the collector'}")
        consumer.start()
        ctx = multiprocessing.get_context("spawn")
        pubs = benchingest._Publishers(
            ctx, f.configs, [len(p) for p in payloads], stack, payloads, rate / devices
        )
        pubs.wait_ready()
        assert his.proc is not None
        cpu0 = {"consumer": _cpu(consumer.pid), "his": _cpu(his.proc.pid)}
        cpu1: dict[str, float | None] = {}
        say(f"{side}: offering {rate:g} reads/s from {devices} nodes for {offer:g} s")
        t0 = pubs.start()
        samples: list[tuple[float, int]] = [(0.0, 0)]
        killed = restarted = shown = False
        while (now := time.monotonic() - t0) < offer or (kill and not restarted):
            pubs.check()
            samples.append((now, his_visits(his_db)[0]))
            if not cpu1 and now >= seconds:
                cpu1 = {"consumer": _cpu(consumer.pid), "his": _cpu(his.proc.pid)}
            if kill and not killed and now >= seconds:
                say(f"{side}: {samples[-1][1]:,} visits in the HIS; SIGKILL of the consumer")
                consumer.kill()
                killed = True
            elif killed and not restarted and now >= seconds + RESTART_AFTER:
                consumer.start()
                restarted = True
            elif int(now) % 5 == 0 and not shown:
                say(f"{side}: {now:4.0f} s, {samples[-1][1]:,} visits in the HIS")
            shown = int(now) % 5 == 0
            time.sleep(SAMPLE)
        if not cpu1:
            cpu1 = {"consumer": _cpu(consumer.pid), "his": _cpu(his.proc.pid)}
        published, _acked_at = pubs.finish(120.0 + offer)
        say(f"{side}: {published:,} reads published; draining")
        deadline = time.monotonic() + drain
        last_change, visits = time.monotonic(), samples[-1][1]
        while visits < published and time.monotonic() < deadline:
            time.sleep(SAMPLE)
            now_visits = his_visits(his_db)[0]
            samples.append((time.monotonic() - t0, now_visits))
            if now_visits != visits:
                last_change, visits = time.monotonic(), now_visits
            elif side == NODERED and time.monotonic() - last_change > STALL:
                break  # nothing more will come: Node-RED keeps nothing to send again
        registered, twice = his_visits(his_db)
        start = seconds * STEADY_FROM
        window = seconds - start
        result: dict[str, Any] = {
            "side": side,
            "published": published,
            "registered": registered,
            "registered_twice": twice,
            "lost": published - registered,
            "killed": kill,
            "visits_per_s": round(steady_rate(samples, start, seconds), 1),
            "drained_s": round(samples[-1][0] - offer, 1),
        }
        for name in ("consumer", "his"):
            before, after = cpu0[name], cpu1.get(name)
            result[f"{name}_cpu_percent"] = (
                None if before is None or after is None else round(100 * (after - before) / window, 1)
            )
        if side == CCCD_EDGE:
            result["stored"] = len(f.stored())
        return result


def run(
    rate: float = 400.0,
    seconds: float = 30.0,
    devices: int = 4,
    kill: bool = True,
    drain: float = 300.0,
    his_latency: str = "0.02-0.2",
    say: Say | None = None,
    his_transaction: str = "auto",
) -> dict[str, Any]:
    """Both phases, Node-RED first; the report (see ``format_report``)."""
    say = say or (lambda _m: None)
    red_js = install(say)
    try:
        with tempfile.TemporaryDirectory(prefix="cccd-bench-nodered-") as tmp:
            args = (devices, rate, seconds, kill, drain, his_latency, say)
            nodered = _phase(NODERED, Path(tmp) / "nodered", red_js, *args)
            edge = _phase(CCCD_EDGE, Path(tmp) / "cccd-edge", None, *args, his_transaction)
    except (DemoError, SimStartError, MosquittoError, CollectorStartError) as exc:
        raise BenchError(str(exc)) from None
    return {
        "machine": benchingest._machine(),
        "node_red": NODE_RED_VERSION,
        "offered_per_s": rate,
        "seconds": seconds,
        "steady_window_s": [seconds * STEADY_FROM, seconds],
        "nodes": devices,
        "his_latency_s": his_latency,
        "his_transaction": his_transaction,
        "phases": [nodered, edge],
        "ratio": round(ratio(edge["visits_per_s"], nodered["visits_per_s"]), 2),
    }


def format_report(r: dict[str, Any]) -> str:
    m = r["machine"]
    low, high = r["steady_window_s"]
    lines = [
        f"cccd-edge bench nodered — {m['cpus']} CPUs, {m['python']}, mosquitto {m['mosquitto'] or '?'}, "
        f"Node-RED {r['node_red']}",
        f"  {r['offered_per_s']:g} reads/s offered by {r['nodes']} nodes for {r['seconds']:g} s; fake HIS "
        f"latency {r['his_latency_s']} s; visits/s counted at the HIS from {low:g} to {high:g} s",
        "  cccd-edge registers a visit in " + REGISTERS[r.get("his_transaction", "auto")],
        f"  {'':10} {'visits/s':>9} {'published':>10} {'in the HIS':>11} {'lost':>7} {'twice':>6} "
        f"{'consumer CPU':>13} {'HIS CPU':>8}",
    ]
    for p in r["phases"]:
        cpu = "n/a" if p["consumer_cpu_percent"] is None else f"{p['consumer_cpu_percent']:g} %"
        his = "n/a" if p["his_cpu_percent"] is None else f"{p['his_cpu_percent']:g} %"
        lines.append(
            f"  {p['side']:10} {p['visits_per_s']:>9.1f} {p['published']:>10,} {p['registered']:>11,} "
            f"{p['lost']:>7,} {p['registered_twice']:>6,} {cpu:>13} {his:>8}"
        )
    if r["phases"][0]["killed"]:
        lines.append(
            f"  at {high:g} s the consumer (node-red; the collector) SIGKILLed, started again "
            f"{RESTART_AFTER:g} s later"
        )
    lines.append("  lost = published (PUBACKed by the broker) and never registered in the HIS")
    lines.append(f"  ratio cccd-edge / Node-RED: {r['ratio']:.2f} (goal ≥ 1)")
    return "\n".join(lines) + "\n"


def write_json(r: dict[str, Any], path: str | os.PathLike[str]) -> None:
    Path(path).write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n", "utf-8")
