"""``cccd-edge bench cluster``: one facility on a RabbitMQ cluster, two collectors competing.

Three RabbitMQ nodes on this machine (tools/rabbitmq.py: Debian's rabbitmq-server, the MQTT
plugin, TLS listeners on 127.0.0.1), the facility's definitions imported (its two quorum queues
replicated on all three), two collectors consuming over AMQP with one shared store, the fake
gateway and HIS, and simulated nodes that reach the cluster through a TCP balancer (each new
connection to the next live node: what HAProxy or a DNS round robin does at a site).

Under load, the node that leads the reads' queue is SIGKILLed, and one collector with it. The
other collector takes every read (RabbitMQ delivers again what the dead one had not
acknowledged) and the fleet (single active consumer); the nodes that were connected to the dead
RabbitMQ node reconnect through the balancer. At the end the nodes stop scanning, everything
drains, and the run reconciles with the simulator's ground truth: reads lost (must be 0),
stored twice (0: the store's key; what RabbitMQ delivered twice is counted as a duplicate),
registered twice in the HIS (0).
"""

import datetime
import json
import math
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.amqp import reads_queue
from sim import citizens
from sim.hall import Hall, HallSettings
from tools import provision
from tools.benchload import wait_until
from tools.collectorproc import CollectorProcess, CollectorStartError
from tools.demo import OFFICER, Say, fake_gateway, fake_his, his_visits, store_presence, stored_reads
from tools.rabbitmq import Cluster, RabbitError, Tls
from tools.simproc import SimStartError
from tools.tcpproxy import LinkProxy

FACILITY = "38001"


class ClusterRunError(RuntimeError):
    """The run could not be set up; the message says what failed."""


@dataclass
class ClusterReport:
    nodes: int
    rate: float
    cluster_start: float = 0.0  # seconds until three nodes ran as one cluster
    queue_members: list[str] = field(default_factory=list)
    killed_node: str = ""
    accepted: int = 0
    stored: int = 0
    lost: int = 0
    dropped: int = 0
    unknown: int = 0
    answered: int = 0
    duplicates: int = 0  # deliveries the store refused as already stored
    registered: int = 0
    registered_twice: int = 0
    stored_before: int = 0  # by the end of the warm-up, then during the fault
    stored_during: int = 0
    fault_seconds: float = 0.0
    drained_after: float = float("nan")  # seconds from the end of the scanning to everything settled
    online_at_end: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.lost - self.dropped == 0
            and self.unknown == 0
            and self.registered_twice == 0
            and self.answered >= self.accepted - self.dropped
            and self.registered >= self.stored
        )


def _collector_toml(run: "ClusterRun", index: int, gateway_url: str, his_url: str) -> str:
    h = run.home.path
    nodes = ", ".join(f'"127.0.0.1:{p.amqp}"' for p in run.cluster.ports)
    return f"""[broker]
transport = "amqp"
nodes = [{nodes}]
tls = true
ca = "{h / "ca.crt"}"
username = "collector_{FACILITY}"
password_file = "{h / "collector.password"}"
client_id = "cccd-collector-{index}"

[store]
url = "sqlite:///{h / "collector.db"}"
kek_file = "{h / "kek"}"

[collector]
facilities = ["{FACILITY}"]
heartbeat_interval = {run.heartbeat:g}
metrics_port = 0

[bhxh]
url = "{gateway_url}"
username = "bv"
password = "demo"
officer_name = "{OFFICER[0]}"
officer_cccd = "{OFFICER[1]}"

[his]
protocol = "fhir"
url = "{his_url}"
"""


class ClusterRun:
    """One facility on a local RabbitMQ cluster with ``collectors`` collectors (see the module)."""

    def __init__(
        self,
        base: Path,
        nodes: int,
        rate: float,
        say: Say,
        collectors: int = 2,
        size: int = 3,
        heartbeat: float = 5.0,
    ) -> None:
        self.base = base
        base.chmod(0o711)  # the RabbitMQ nodes run as their own user and must reach base/rabbitmq
        self.say = say
        self.rate = rate
        self.heartbeat = heartbeat
        say(f"provisioning facility {FACILITY} with {nodes} nodes in {base}")
        self.home = provision.init(base / "home", FACILITY, run_here=True, metrics_port=0)
        self.configs = provision.devices(
            self.home.path,
            FACILITY,
            [(f"qr-{i + 1:04d}", "esp32", f"Quầy {i + 1} – Khoa Khám bệnh") for i in range(nodes)],
        )
        paths = self.home.broker
        tls = Tls(self.home.path / "ca.crt", paths.certfile, paths.keyfile)
        self.cluster = Cluster(base / "rabbitmq", tls, size)
        mqtt = [("127.0.0.1", p.mqtt) for p in self.cluster.ports]
        self.balancer = LinkProxy(*mqtt[0], fallbacks=mqtt[1:])
        self.gateway = fake_gateway(base / "gateway.log", (0.0, 0.0))
        self.his_db = base / "his.db"
        self.his = fake_his(self.his_db, base / "his.log")
        self.collectors = [
            CollectorProcess(base / f"collector-{i + 1}.toml", base / f"collector-{i + 1}.log")
            for i in range(collectors)
        ]
        self.hall: Hall | None = None
        self.cluster_start = 0.0

    def start(self) -> None:
        self.say(f"starting {self.cluster.size} RabbitMQ nodes (TLS, MQTT plugin) as one cluster")
        t0 = time.monotonic()
        try:
            self.cluster.start()
            self.cluster.import_definitions(provision.rabbitmq_definitions(self.home.path, FACILITY))
            self._await_queue()
            self._await_mqtt()
        except RabbitError as exc:
            raise ClusterRunError(str(exc)) from None
        self.cluster_start = time.monotonic() - t0
        self.balancer.start()
        try:
            gateway_url, his_url = (proc.start().url for proc in (self.gateway, self.his))
        except SimStartError as exc:
            raise ClusterRunError(str(exc)) from None
        self.say(f"starting {len(self.collectors)} collectors, consuming over AMQP")
        for i, c in enumerate(self.collectors):
            c.config.write_text(_collector_toml(self, i + 1, gateway_url, his_url), "utf-8")
            c.config.chmod(0o600)
            c.start()
        for c in self.collectors:
            try:
                c.wait_subscribed(timeout=60)
            except CollectorStartError as exc:
                raise ClusterRunError(str(exc)) from None
        configs = []
        for path in self.configs:
            cfg = json.loads(path.read_text("utf-8"))
            cfg["broker"]["host"], cfg["broker"]["port"] = "127.0.0.1", self.balancer.port
            configs.append(cfg)
        people = citizens.population(500, seed=2026, today=datetime.date.today())
        peak = self.rate / len(configs) * 3600.0  # patients per counter per hour, flat
        self.say(f"starting {len(configs)} virtual reader nodes, {self.rate:g} reads/s in all")
        self.hall = Hall(
            configs, people, self.base / "truth.db", HallSettings(peak=peak, heartbeat=self.heartbeat)
        )
        self.hall.start()

    def _await_queue(self, timeout: float = 60.0) -> None:
        """Until the reads' queue has a member on every node (the import is asynchronous)."""
        deadline = time.monotonic() + timeout
        while len(self.cluster.queue_members(reads_queue(FACILITY))) < self.cluster.size:
            if time.monotonic() > deadline:
                raise RabbitError(f"the queue {reads_queue(FACILITY)} was not replicated on every node")
            time.sleep(0.5)

    def _await_mqtt(self, timeout: float = 60.0) -> None:
        """Until every node's MQTT listener accepts a login: just after the cluster forms, the
        plugin answers "server unavailable" for a while (its client-id tracking is not up). Now and
        then (one CI run in many) a node's stays so: its application is restarted once."""
        for i in range(self.cluster.size):
            if self._mqtt_ready(i, timeout):
                continue
            self.say(f"{self.cluster.names[i]} refused MQTT logins for {timeout:g} s: restarting it")
            self.cluster.ctl(i, "stop_app")
            self.cluster.ctl(i, "start_app")
            self.cluster.await_node(i)
            if not self._mqtt_ready(i, timeout):
                raise RabbitError(f"{self.cluster.names[i]} does not accept MQTT logins yet")

    def _mqtt_ready(self, i: int, timeout: float) -> bool:
        """Whether node ``i`` accepted the collector's MQTT login within ``timeout`` seconds."""
        password = (self.home.path / "collector.password").read_text("utf-8").strip()
        port = self.cluster.ports[i].mqtt
        deadline = time.monotonic() + timeout
        while True:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"cccd-ready-{i}"
            )
            client.username_pw_set(f"collector_{FACILITY}", password)
            client.tls_set(ca_certs=str(self.home.path / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
            try:
                accepted = client.connect("127.0.0.1", port, keepalive=10) == 0
                client.loop_start()
                ready = not math.isnan(wait_until(client.is_connected, 5.0))
            except OSError:
                accepted = ready = False
            finally:
                client.disconnect()
                client.loop_stop()
            if accepted and ready:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)

    def leader(self) -> int:
        """The index of the node that leads the reads' queue."""
        for row in self.cluster.quorum_status(reads_queue(FACILITY)):
            if row.get("Raft State") == "leader":
                return self.cluster.names.index(str(row.get("Node Name")))
        return 0

    # --- what the store and the simulator say ------------------------------------------------

    def stored(self) -> list[tuple[str, str, int]]:
        return stored_reads(self.home.path / "collector.db", FACILITY)

    def settled(self) -> bool:
        assert self.hall is not None
        r = self.hall.reconcile(self.stored())
        registered, _ = his_visits(self.his_db)
        return r.lost <= r.dropped and r.answered >= r.accepted - r.dropped and registered >= r.stored

    def report(self, into: ClusterReport) -> ClusterReport:
        assert self.hall is not None
        stored = self.stored()
        r = self.hall.reconcile(stored)
        into.accepted, into.stored, into.lost, into.dropped = r.accepted, len(stored), r.lost, r.dropped
        into.unknown, into.answered = r.unknown, r.answered
        into.online_at_end, into.duplicates = store_presence(self.home.path / "collector.db")
        into.registered, into.registered_twice = his_visits(self.his_db)
        return into

    def stop(self) -> None:
        if self.hall is not None:
            self.hall.stop()
        for c in self.collectors:
            c.stop()
        for proc in (self.gateway, self.his):
            proc.stop()
        self.balancer.stop()
        self.cluster.stop()


def kill_and_drain(site: ClusterRun, warmup: float, fault: float, say: Say) -> ClusterReport:
    """On a started site: load, kill the queue's leader node and the first collector, drain, reconcile."""
    assert site.hall is not None
    report = ClusterReport(nodes=len(site.configs), rate=site.rate, cluster_start=site.cluster_start)
    report.queue_members = site.cluster.queue_members(reads_queue(FACILITY))
    say(f"reads for {warmup:g} s with everything up")
    time.sleep(warmup)
    report.stored_before = len(site.stored())
    victim = site.leader()
    report.killed_node = site.cluster.names[victim]
    say(f"SIGKILL {report.killed_node} (the reads' queue leader) and collector 1, under load")
    t0 = time.monotonic()
    site.cluster.kill(victim)
    site.collectors[0].kill()
    time.sleep(fault)
    report.fault_seconds = time.monotonic() - t0
    report.stored_during = len(site.stored()) - report.stored_before
    say("the nodes stop scanning; draining")
    site.hall.pause()
    report.drained_after = wait_until(site.settled, 120.0)
    return site.report(report)


def run(base: Path, nodes: int, rate: float, warmup: float, fault: float, say: Say) -> ClusterReport:
    """``cccd-edge bench cluster``: set up, then ``kill_and_drain``; everything stopped after."""
    site = ClusterRun(base, nodes, rate, say)
    try:
        site.start()
        say(f"the cluster formed in {site.cluster_start:.0f} s")
        return kill_and_drain(site, warmup, fault, say)
    finally:
        site.stop()


def format_report(r: ClusterReport) -> str:
    rows = [
        (
            "cluster",
            f"{len(r.queue_members)} nodes hold the reads' quorum queue; formed in {r.cluster_start:.0f} s",
        ),
        (
            "killed",
            f"{r.killed_node} (SIGKILL) and collector 1 (SIGKILL), {r.fault_seconds:.0f} s before the drain",
        ),
        ("offered", f"{r.rate:g} reads/s from {r.nodes} nodes"),
        (
            "stored",
            f"{r.stored_before} before the fault, {r.stored_during} during it (one node, one collector down)",
        ),
        ("drained", f"{r.drained_after:.1f} s after the scanning stopped"),
        ("accepted", f"{r.accepted} reads at the nodes ({r.dropped} dropped by a full outbox)"),
        ("lost", f"{r.lost - r.dropped}  (must be 0)"),
        ("stored twice", f"0 by the store's key; {r.duplicates} second deliveries refused as duplicates"),
        ("registered", f"{r.registered} visits in the HIS, {r.registered_twice} twice (must be 0)"),
        ("answered", f"{r.answered} final Results at the counters"),
        (
            "fleet",
            f"{r.online_at_end} of {r.nodes} nodes online at the end (kept by the surviving collector)",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    verdict = "PASS" if r.ok else "FAIL"
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows) + f"\n  {'result':<{width}}  {verdict}\n"
