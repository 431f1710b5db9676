"""``bench ingest``: reads committed per second by the collector, against a bare subscriber.

The real chain, on this machine: N publisher processes with real node configurations send sealed
reads (COSE envelopes, QoS 1) over TLS to the real Mosquitto with the production configuration,
and the collector process verifies, de-duplicates and commits them to SQLite. In the same run a
bare subscriber (paho-mqtt, QoS 1, auto-acknowledge, one plain subscription on the facility's
reads with the collector's account) only counts the same traffic. The ratio of the two says what
the collector costs over the broker and the MQTT client library alone.

Two phases, each with a fresh facility home (``provision.init(..., run_here=True)``), a fresh
broker on a free port and P fresh devices, so nothing of one phase (sessions, queues, stored
sequence numbers) reaches the other:

1. bare: the subscriber connects and subscribes, then the publishers run;
2. collector: ``cccd-edge collector run`` starts and subscribes (its SUBACK is in its log), then
   the publishers run; the bench polls the store for the committed reads.

Each publisher seals all its envelopes and connects BEFORE the clock starts (sealing is not what
is measured), then waits for the start signal and publishes as fast as its QoS 1 window allows.

Rate, the same definition in both phases: reads / (time from the start signal to the moment the
last read was received by the bare subscriber, or seen committed in the store). The store is
polled every ``POLL`` seconds, which bounds the collector's timing error.

Also reported for phase 2: the collector's CPU time over the timed window and its peak RSS
(VmHWM), both from /proc and including any processes it started; the broker's CPU time in each
phase; and how fast the broker acknowledged the publishers (the rate a sink cannot change while
the broker queues for it).

Goal (issue 3): collector / bare >= 0.5 on the 2-core reference machine.
"""

import contextlib
import json
import multiprocessing
import os
import platform
import queue
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from types import FrameType
from typing import Any

from tools import provision
from tools.collectorproc import CollectorProcess, CollectorStartError
from tools.mosquitto import MOSQUITTO, Mosquitto
from tools.ports import free_port

GOAL_RATIO = 0.5
FACILITY = "38001"
READ_FILTER = f"cccd/v1/{FACILITY}/+/read"
INFLIGHT = 100  # each publisher's QoS 1 window (unacknowledged PUBLISHes)
POLL = 0.02  # seconds between looks at the store
READY_TIMEOUT = 120.0  # publishers sealing and connecting, the collector subscribing
ROOT = Path(__file__).resolve().parents[1]

Progress = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark could not run to its end; the message says where it stopped."""


# --- child processes (spawned: everything they need comes as arguments) ---------------------------


def _seal_reads(cfg: dict[str, Any], count: int) -> list[bytes]:
    """``count`` reads of the device in ``cfg``, sealed as the node would, sequence 0 up."""
    from cccd import envelope, keys, pseudonym, qr, schema  # noqa: PLC0415
    from tools import bench  # noqa: PLC0415

    k = keys.derive(bytes.fromhex(cfg["secret"]))
    topic = schema.topic(cfg["facility"], cfg["device"], "read")
    scan = qr.parse(bench.SAMPLE_QR, now=(2026, 11, 22))
    pid = pseudonym.pid(bytes.fromhex(cfg["pseudonym_secret"]), cccd=scan.ident["cccd"])
    kid = cfg["device"].encode()
    out = []
    for seq in range(count):
        read = schema.read(seq, bench.TS + seq, "ntp", "qr", scan.doc, pid, scan.ident, warn=scan.warn)
        out.append(envelope.seal(k.up_key, k.up_iv, kid, seq, topic, schema.encode("read", read)))
    return out


def _tls_client(client_id: str, username: str, password: str, ca_pem: str) -> Any:
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(username, password)
    client.tls_set_context(ssl.create_default_context(cadata=ca_pem))
    return client


def _publisher(
    node_file: str,
    count: int,
    ready: "MpQueue[Any]",
    go: EventType,
    results: "MpQueue[Any]",
    timeout: float,
    payloads: Sequence[bytes] | None = None,
    rate: float = 0.0,
) -> None:
    """One node: seal ``count`` reads (or take ``payloads``), connect, wait for ``go``, publish them
    all (``rate`` a second, or as fast as the QoS 1 window allows), wait for PUBACKs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench process ends its children
    name = Path(node_file).stem
    try:
        cfg = json.loads(Path(node_file).read_text("utf-8"))
        name = cfg["device"]
        sealed = list(payloads) if payloads is not None else _seal_reads(cfg, count)
        b = cfg["broker"]
        client = _tls_client(cfg["device"], b["username"], b["password"], b["ca"])
        client.max_inflight_messages_set(INFLIGHT)
        connected = threading.Event()
        refused: list[str] = []
        all_acked = threading.Event()
        acked = [0]

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                refused.append(str(reason))
            connected.set()

        def on_publish(_c: Any, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
            acked[0] += 1
            if acked[0] == count:
                all_acked.set()

        client.on_connect = on_connect
        client.on_publish = on_publish
        client.connect(b["host"], b["port"], keepalive=60)
        client.loop_start()
        try:
            if not connected.wait(30) or refused:
                raise BenchError(f"the broker did not accept {name}: {refused or 'no CONNACK'}")
            ready.put(("ready", name, sum(len(s) for s in sealed)))
            if not go.wait(timeout):
                raise BenchError("no start signal")
            topic = f"cccd/v1/{cfg['facility']}/{cfg['device']}/read"
            start = time.monotonic()
            for i, data in enumerate(sealed):
                if rate > 0 and (wait := start + i / rate - time.monotonic()) > 0:
                    time.sleep(wait)
                client.publish(topic, data, qos=1)
            all_acked.wait(timeout)
            results.put(("done", name, acked[0], time.monotonic()))
        finally:
            client.disconnect()
            client.loop_stop()
    except BaseException as exc:
        results.put(("error", name, f"{type(exc).__name__}: {exc}"))
        ready.put(("error", name, f"{type(exc).__name__}: {exc}"))


def _bare_subscriber(
    broker: dict[str, Any],
    expect: int,
    ready: "MpQueue[Any]",
    results: "MpQueue[Any]",
    timeout: float,
) -> None:
    """Count QoS 1 reads (auto-acknowledged) until ``expect`` arrived; report first and last times."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        client = _tls_client("cccd-bench-bare", broker["username"], broker["password"], broker["ca_pem"])
        done = threading.Event()
        state = {"n": 0, "first": 0.0, "last": 0.0}
        cpu_ready = [0.0]

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                ready.put(("error", "bare", f"the broker refused the bare subscriber: {reason}"))
            else:
                c.subscribe(READ_FILTER, qos=1)

        def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
            if any(r.is_failure for r in reasons):
                ready.put(("error", "bare", f"the broker refused {READ_FILTER}: {reasons}"))
            else:
                cpu_ready[0] = time.process_time()
                ready.put(("ready", "bare", 0))

        def on_message(_c: Any, _u: Any, _msg: Any) -> None:
            now = time.monotonic()
            n = state["n"] = state["n"] + 1
            if n == 1:
                state["first"] = now
            if n == expect:
                state["last"] = now
                done.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(broker["host"], broker["port"], keepalive=60)
        client.loop_start()
        try:
            done.wait(timeout)
            cpu = time.process_time() - cpu_ready[0]
            results.put(("bare", int(state["n"]), state["first"], state["last"], cpu))
        finally:
            client.disconnect()
            client.loop_stop()
    except BaseException as exc:
        ready.put(("error", "bare", f"{type(exc).__name__}: {exc}"))
        results.put(("error", "bare", f"{type(exc).__name__}: {exc}"))


# --- the bench process ----------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), None where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text("ascii")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (a collector may run workers of its own)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat_fields(int(entry))
                if fields is not None:
                    children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _cpu_seconds(pid: int) -> float | None:
    """user + system CPU time so far of a process and its descendants (Linux /proc), or None."""
    total = 0
    for p in _tree(pid):
        fields = _stat_fields(p)
        if fields is None:
            if p == pid:
                return None
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def _peak_rss_kib(pid: int) -> int | None:
    """Peak resident set (VmHWM) of a process, plus its descendants' peaks, in KiB; or None."""
    total = None
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            found = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text("ascii"), re.M)
            if found:
                total = (total or 0) + int(found.group(1))
    return total


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 3)


def _end_process(proc: SpawnProcess) -> None:
    if proc.is_alive():
        proc.terminate()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()


@dataclass
class _Site:
    home: provision.Home
    broker: Mosquitto
    nodes: list[Path]


def _site(base: Path, publishers: int, stack: contextlib.ExitStack) -> _Site:
    port = free_port()
    home = provision.init(base / "home", FACILITY, broker_port=port, run_here=True, metrics_port=0)
    nodes = [
        provision.device(home.path, FACILITY, f"bench-{i:02d}", "rpi", f"Quầy {i + 1}")
        for i in range(publishers)
    ]
    broker = Mosquitto(home.broker.conf, port, home.path / "ca.crt")
    stack.callback(broker.stop)
    broker.start()
    return _Site(home, broker, nodes)


def _get(q: "MpQueue[Any]", timeout: float, what: str, procs: Sequence[SpawnProcess]) -> Any:
    """The next item of ``q``; fails when the wait is over or one of ``procs`` died silently."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return q.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            pass
        _check_alive(procs)
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")


def _check_alive(procs: Sequence[SpawnProcess]) -> None:
    for proc in procs:
        if proc.exitcode not in (None, 0):
            raise BenchError(f"{proc.name} exited with status {proc.exitcode} (its error is above)")


class _Publishers:
    """P publisher processes, sealed and connected, waiting for one start signal."""

    def __init__(
        self,
        ctx: SpawnContext,
        nodes: Sequence[Path],
        counts: Sequence[int],
        stack: contextlib.ExitStack,
        payloads: Sequence[Sequence[bytes]] | None = None,
        rate: float = 0.0,
    ) -> None:
        """``payloads``: each publisher's messages, instead of sealing ``counts`` reads; ``rate``:
        each publisher's messages a second (0: as fast as its QoS 1 window allows)."""
        self.ready: MpQueue[Any] = ctx.Queue()
        self.results: MpQueue[Any] = ctx.Queue()
        self.go = ctx.Event()
        self.count = len(nodes)
        self.envelope_bytes = 0
        self.done: list[tuple[str, int, float]] = []
        self.procs: list[SpawnProcess] = []
        timeout = READY_TIMEOUT + 60.0 + sum(counts) / 200.0
        for i, (node, n) in enumerate(zip(nodes, counts, strict=True)):
            mine = None if payloads is None else payloads[i]
            proc = ctx.Process(
                target=_publisher,
                args=(str(node), n, self.ready, self.go, self.results, timeout, mine, rate),
                name=f"cccd-bench-publisher-{node.stem}",
                daemon=True,
            )
            proc.start()
            stack.callback(_end_process, proc)
            self.procs.append(proc)

    def wait_ready(self) -> None:
        for _ in range(self.count):
            kind, name, value = _get(
                self.ready, READY_TIMEOUT, "the publishers to seal and connect", self.procs
            )
            if kind == "error":
                raise BenchError(f"publisher {name} failed: {value}")
            self.envelope_bytes += value

    def start(self) -> float:
        t0 = time.monotonic()
        self.go.set()
        return t0

    def check(self, timeout: float = 0.0) -> None:
        """Collect what the publishers reported; raise on a failure."""
        while len(self.done) < self.count:
            try:
                item = self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
            except queue.Empty:
                _check_alive(self.procs)
                return
            if item[0] == "error":
                raise BenchError(f"publisher {item[1]} failed: {item[2]}")
            self.done.append((item[1], item[2], item[3]))

    def finish(self, timeout: float) -> tuple[int, float]:
        """Total reads the broker acknowledged, and when the last PUBACK came."""
        deadline = time.monotonic() + timeout
        while len(self.done) < self.count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("timed out waiting for the publishers' PUBACKs")
            self.check(timeout=min(left, 1.0))
        return sum(n for _name, n, _t in self.done), max(t for _name, _n, t in self.done)


def _broker_settings(home: provision.Home) -> dict[str, Any]:
    b = home.collector_config().broker
    return {
        "host": b.host,
        "port": b.port,
        "username": b.username,
        "password": b.password,
        "ca_pem": Path(b.ca).read_text("ascii"),
    }


def _phase_bare(
    ctx: SpawnContext, base: Path, counts: Sequence[int], timeout: float, say: Progress
) -> dict[str, Any]:
    total = sum(counts)
    with contextlib.ExitStack() as stack:
        say("bare subscriber: provisioning a facility home and starting Mosquitto")
        site = _site(base, len(counts), stack)
        ready: MpQueue[Any] = ctx.Queue()
        results: MpQueue[Any] = ctx.Queue()
        sub = ctx.Process(
            target=_bare_subscriber,
            args=(_broker_settings(site.home), total, ready, results, READY_TIMEOUT + timeout),
            name="cccd-bench-bare",
            daemon=True,
        )
        sub.start()
        stack.callback(_end_process, sub)
        pubs = _Publishers(ctx, site.nodes, counts, stack)
        say(f"bare subscriber: {len(counts)} publishers sealing {total:,} reads, connecting")
        kind, _name, detail = _get(ready, READY_TIMEOUT, "the bare subscriber to subscribe", [sub])
        if kind == "error":
            raise BenchError(detail)
        pubs.wait_ready()
        assert site.broker.proc is not None
        broker_cpu0 = _cpu_seconds(site.broker.proc.pid)
        say("bare subscriber: publishing")
        t0 = pubs.start()
        deadline = t0 + timeout
        while True:
            pubs.check()
            try:
                item = results.get(timeout=0.2)
                break
            except queue.Empty:
                _check_alive([sub])
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the bare subscriber did not get {total:,} reads in {timeout:g} s"
                    ) from None
        broker_cpu1 = _cpu_seconds(site.broker.proc.pid)
        if item[0] == "error":
            raise BenchError(f"the bare subscriber failed: {item[2]}")
        _kind, received, first, last, cpu = item
        if received < total:
            raise BenchError(f"the bare subscriber got {received:,} of {total:,} reads in {timeout:g} s")
        published, acked_at = pubs.finish(timeout)
        seconds = last - t0
        return {
            "received": received,
            "published": published,
            "seconds": round(seconds, 3),
            "per_s": round(total / seconds),
            "first_to_last_s": round(last - first, 3),
            "broker_acked_per_s": round(published / (acked_at - t0)),
            "subscriber_cpu_s": round(cpu, 3),
            "broker_cpu_s": _delta(broker_cpu1, broker_cpu0),
            "envelope_bytes": pubs.envelope_bytes / total,
        }


def _phase_collector(
    ctx: SpawnContext,
    base: Path,
    counts: Sequence[int],
    timeout: float,
    say: Progress,
    collector_cmd: Sequence[str],
) -> dict[str, Any]:
    total = sum(counts)
    with contextlib.ExitStack() as stack:
        say("collector: provisioning a fresh facility home and starting Mosquitto")
        site = _site(base, len(counts), stack)
        collector = CollectorProcess(site.home.path / "collector.toml", base / "collector.log", collector_cmd)
        collector.start()
        stack.callback(collector.stop)
        pubs = _Publishers(ctx, site.nodes, counts, stack)
        say(f"collector: starting it; {len(counts)} publishers sealing {total:,} reads, connecting")
        try:
            collector.wait_subscribed(timeout=READY_TIMEOUT)
        except CollectorStartError as exc:
            raise BenchError(str(exc)) from None
        pubs.wait_ready()
        db = sqlite3.connect(f"file:{site.home.path / 'collector.db'}?mode=ro", uri=True, timeout=10)
        stack.callback(db.close)
        assert site.broker.proc is not None
        cpu0 = _cpu_seconds(collector.pid)
        broker_cpu0 = _cpu_seconds(site.broker.proc.pid)
        say("collector: publishing")
        t0 = pubs.start()
        deadline = t0 + timeout
        committed = 0
        while True:
            # max(id) is cheap; the count confirms it (ids are not guaranteed to have no gaps)
            top = db.execute("SELECT max(id) FROM reads").fetchone()[0] or 0
            if top >= total:
                committed = int(db.execute("SELECT count(*) FROM reads").fetchone()[0])
                if committed >= total:
                    t_end = time.monotonic()
                    break
            pubs.check()
            if collector.exit_code() is not None:
                raise BenchError(
                    f"the collector exited with {collector.exit_code()}: {collector.output()[-2000:]}"
                )
            if time.monotonic() > deadline:
                committed = int(db.execute("SELECT count(*) FROM reads").fetchone()[0])
                raise BenchError(f"the collector committed {committed:,} of {total:,} reads in {timeout:g} s")
            time.sleep(POLL)
        cpu1 = _cpu_seconds(collector.pid)
        broker_cpu1 = _cpu_seconds(site.broker.proc.pid)
        rss = _peak_rss_kib(collector.pid)
        published, acked_at = pubs.finish(timeout)
        quarantined = int(db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
        seconds = t_end - t0
        cpu = _delta(cpu1, cpu0)
        return {
            "committed": committed,
            "published": published,
            "quarantined": quarantined,
            "seconds": round(seconds, 3),
            "per_s": round(total / seconds),
            "broker_acked_per_s": round(published / (acked_at - t0)),
            "cpu_s": cpu,
            "cpu_us_per_read": None if cpu is None else round(cpu * 1e6 / total),
            "cpu_share_of_one_core": None if cpu is None else round(cpu / seconds, 2),
            "peak_rss_mib": None if rss is None else round(rss / 1024, 1),
            "broker_cpu_s": _delta(broker_cpu1, broker_cpu0),
            "envelope_bytes": pubs.envelope_bytes / total,
        }


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM ends the bench like Ctrl-C: through the finally blocks that stop every child."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else ""
    version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, timeout=5, check=False)
        found = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
        version = found.group(1) if found else ""
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "mosquitto": version,
    }


def _payload_bytes() -> int:
    from cccd import pseudonym, qr, schema  # noqa: PLC0415
    from tools import bench  # noqa: PLC0415

    scan = qr.parse(bench.SAMPLE_QR, now=(2026, 11, 22))
    pid = pseudonym.pid(bytes(32), cccd=scan.ident["cccd"])
    read = schema.read(1000, bench.TS + 1000, "ntp", "qr", scan.doc, pid, scan.ident, warn=scan.warn)
    return len(schema.encode("read", read))


def ingest(
    publishers: int = 4,
    reads: int = 40_000,
    progress: Progress | None = None,
    timeout: float | None = None,
    collector_cmd: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run both phases; returns the report (see ``format_ingest``).

    ``reads`` is the total, split over the publishers. ``timeout``: seconds each phase may take
    from the start signal (default: 60 s + 2 ms per read). ``collector_cmd``: what runs
    ``collector run --config ...`` (default this Python's ``-m tools.cli``), e.g. under a profiler.
    """
    if publishers < 1 or reads < publishers:
        raise ValueError("need at least one publisher and at least one read per publisher")
    say = progress or (lambda _m: None)
    counts = [reads // publishers + (1 if i < reads % publishers else 0) for i in range(publishers)]
    timeout = 60.0 + reads * 0.002 if timeout is None else timeout
    cmd = list(collector_cmd or [sys.executable, "-m", "tools.cli"])
    ctx = multiprocessing.get_context("spawn")
    with _sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="cccd-bench-ingest-") as tmp:
        bare = _phase_bare(ctx, Path(tmp) / "bare", counts, timeout, say)
        collector = _phase_collector(ctx, Path(tmp) / "collector", counts, timeout, say, cmd)
    ratio = collector["per_s"] / bare["per_s"]
    return {
        "machine": _machine(),
        "publishers": publishers,
        "reads": reads,
        "qos": 1,
        "tls": True,
        "payload_bytes": _payload_bytes(),
        "envelope_bytes": round(collector.pop("envelope_bytes")),
        "rate": "reads / (start signal -> last read received (bare) or seen committed (collector))",
        "poll_s": POLL,
        "bare": {k: v for k, v in bare.items() if k != "envelope_bytes"},
        "collector": collector,
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
    }


def format_ingest(r: dict[str, Any]) -> str:
    m, b, c = r["machine"], r["bare"], r["collector"]
    cpu = (
        f"CPU {c['cpu_s']:.2f} s ({c['cpu_share_of_one_core']:.0%} of a core, {c['cpu_us_per_read']} µs/read)"
        if c["cpu_s"] is not None
        else "CPU n/a"
    )
    rss = f"peak RSS {c['peak_rss_mib']} MiB" if c["peak_rss_mib"] is not None else "peak RSS n/a"
    lines = [
        f"cccd-edge bench ingest — {m['platform']}, {m['cpus']} CPUs ({m['cpu_model'] or 'unknown'}), "
        f"{m['python']}, mosquitto {m['mosquitto'] or '?'}",
        f"  {r['publishers']} publishers, {r['reads']:,} reads in all; Read payload {r['payload_bytes']} B, "
        f"envelope {r['envelope_bytes']} B; TLS, QoS 1",
        "  rate = reads / (start → last read received, or seen committed; store polled every "
        f"{r['poll_s'] * 1000:g} ms)",
        f"  bare subscriber (count only)   {b['per_s']:>8,} msg/s   {b['seconds']:6.2f} s   "
        f"(broker acked {b['broker_acked_per_s']:,}/s)",
        f"  collector (SQLite, committed)  {c['per_s']:>8,} reads/s {c['seconds']:6.2f} s   "
        f"(broker acked {c['broker_acked_per_s']:,}/s)",
        f"    {cpu}, {rss}; {c['committed']:,} committed of {c['published']:,} published, "
        f"{c['quarantined']} quarantined",
        f"  ratio collector / bare         {r['ratio']:>8.2f}         "
        f"(goal ≥ {r['goal_ratio']}: {'met' if r['goal_met'] else 'NOT met'})",
    ]
    return "\n".join(lines) + "\n"
