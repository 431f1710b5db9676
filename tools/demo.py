"""``cccd-edge demo``: the whole facility side on this machine, with a live view.

For each facility of the scenario (``sim/scenario.py``; the demo's default is 2 facilities of 10
nodes) it provisions a facility home in a temporary directory and starts the production Mosquitto
configuration on a free local port and that facility's collector, with the insurance check and
the HIS registration on; the fake BHXH gateway (synthetic citizens) and the fake HIS (a FHIR R4
server) serve every facility, as the real ones do; the simulator's nodes (``sim/hall.py``) scan
citizens' cards. Every second it shows reads accepted by the nodes, stored by the collectors,
answered at the counter, registered in the HIS, and the nodes online. Ctrl-C (or the duration)
stops everything and prints a summary that reconciles the nodes' ground truth with the stores and
the HIS: reads lost must be 0, visits registered twice 0. ``cccd-edge sim run`` is the same run
without the live view, from a scenario file, with faults.

Not yet (later issues): the dashboard in the demo, the embedded broker for machines without
Mosquitto.
"""

import datetime
import json
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector import fleet
from collector.forward.fhir import SID_VISIT
from sim import citizens
from sim.bhxh import BhxhGateway
from sim.hall import VIETNAM, Hall
from sim.his import FhirHis
from sim.scenario import Scenario
from tools import provision
from tools.collectorproc import COMMAND, ROOT, CollectorProcess, CollectorStartError
from tools.embroker import EmbeddedBroker
from tools.mosquitto import MOSQUITTO, Mosquitto, MosquittoError
from tools.ports import free_port
from tools.simproc import SimProcess, SimStartError

OFFICER = ("Phạm Thị Hoa", "001185000123")  # synthetic
HIS_LATENCY = "0.02-0.2"
EMBEDDED, MOSQUITTO_BROKER = "embedded", "mosquitto"
BROKERS = (EMBEDDED, MOSQUITTO_BROKER)  # seconds the fake HIS takes to answer

Say = Callable[[str], None]


class DemoError(Exception):
    """The demo could not start; the message says what to do."""


@dataclass
class Tally:
    accepted: int = 0
    stored: int = 0
    answered: int = 0
    pending: int = 0
    online: int = 0
    duplicates: int = 0
    registered: int = 0  # visits in the HIS
    registered_twice: int = 0  # visits the HIS holds more than once (must stay 0)
    lost: int = 0  # accepted by a node, not stored by its collector
    dropped: int = 0  # dropped by a full outbox (counted at the node)
    outcomes: dict[str, int] = field(default_factory=dict)  # final Results by status


class Facility:
    """One facility of the run: its home, broker and collector."""

    def __init__(self, base: Path, code: str, nodes: int, broker: str = EMBEDDED) -> None:
        self.code = code
        self.port = free_port()
        self.metrics_port = free_port()
        self.home = provision.init(
            base / f"home-{code}", code, broker_port=self.port, run_here=True, metrics_port=self.metrics_port
        )
        self.configs = provision.devices(
            self.home.path,
            code,
            [(f"qr-{i + 1:04d}", "esp32", f"Quầy {i + 1} – Khoa Khám bệnh") for i in range(nodes)],
        )
        self.broker: Mosquitto | EmbeddedBroker
        if broker == MOSQUITTO_BROKER:
            self.broker = Mosquitto(
                self.home.broker.conf,
                self.port,
                self.home.path / "ca.crt",
                log=self.home.path / "broker" / "mosquitto.log",
            )
        else:
            self.broker = EmbeddedBroker(self.home.path / "broker", self.port, base / f"broker-{code}.log")
        self.collector = CollectorProcess(self.home.path / "collector.toml", base / f"collector-{code}.log")
        self.db = self.home.path / "collector.db"
        self.dashboard = SimProcess(
            ["web", "run", "--config", str(self.home.path / "collector.toml"), "--port", "0"],
            base / f"web-{code}.log",
        )
        self.login = ("it", secrets.token_urlsafe(9))  # the dashboard's user for this run

    def start_dashboard(self) -> str:
        """Add the run's IT user and start the facility's dashboard; its address."""
        toml = str(self.home.path / "collector.toml")
        added = subprocess.run(
            [*COMMAND, "web", "user", "add", "--config", toml, "--name", self.login[0]],
            input=self.login[1] + "\n",
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if added.returncode != 0:
            raise DemoError(f"cannot add the dashboard's user: {added.stderr.strip()}")
        try:
            return self.dashboard.start().url
        except SimStartError as exc:
            raise DemoError(str(exc)) from None

    def configure(self, gateway_url: str, his_url: str, his_transaction: str = "auto") -> None:
        """[bhxh] and [his] for the fakes; ``his_transaction``: "auto", "on" or "off"."""
        transaction = {"auto": '"auto"', "on": "true", "off": "false"}[his_transaction]
        with (self.home.path / "collector.toml").open("a", encoding="utf-8") as f:
            f.write(
                f'\n[bhxh]\nurl = "{gateway_url}"\nusername = "bv"\npassword = "demo"\n'
                f'officer_name = "{OFFICER[0]}"\nofficer_cccd = "{OFFICER[1]}"\n'
                f'\n[his]\nprotocol = "fhir"\nurl = "{his_url}"\n'
                f"transaction = {transaction}\n"
            )

    def stored(self) -> list[tuple[str, str, int]]:
        return stored_reads(self.db, self.code)

    def states(self) -> dict[str, str]:
        return fleet_states(self.db)

    def presence(self) -> tuple[int, int]:
        return store_presence(self.db)


# --- what a collector's SQLite store says (read while the collector runs) ------------------------


def stored_reads(path: Path, code: str) -> list[tuple[str, str, int]]:
    """(facility, device, seq) of every read stored."""
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return [(code, d, int(s)) for d, s in db.execute("SELECT device, seq FROM reads")]
    except sqlite3.Error:
        return []


def fleet_states(path: Path) -> dict[str, str]:
    """Each device's state (online, offline) as the collector's fleet has it."""
    try:
        with sqlite3.connect(path, timeout=5) as db:
            rows = db.execute("SELECT device, body FROM presence_state").fetchall()
    except sqlite3.Error:
        return {}
    return {str(device): fleet.DeviceState.from_dict(json.loads(body)).state for device, body in rows}


def store_presence(path: Path) -> tuple[int, int]:
    """(devices online, duplicate reads quarantined)."""
    try:
        with sqlite3.connect(path, timeout=5) as db:
            duplicates = int(
                db.execute("SELECT COUNT(*) FROM quarantine WHERE reason = 'duplicate'").fetchone()[0]
            )
    except sqlite3.Error:
        return 0, 0
    return list(fleet_states(path).values()).count(fleet.ONLINE), duplicates


class Demo:
    def __init__(
        self,
        scenario: Scenario,
        say: Say,
        fakes_apart: bool = False,
        broker: str = EMBEDDED,
        heartbeat: float = 5.0,
    ) -> None:
        """``fakes_apart``: run the fake gateway and HIS as child processes instead of threads of
        this one (benchmarks: see tools/simproc.py). ``broker``: ``embedded`` (tools/embroker.py,
        no Mosquitto needed) or ``mosquitto`` (the production broker, when installed)."""
        if broker == MOSQUITTO_BROKER and not shutil.which(MOSQUITTO) and not Path(MOSQUITTO).exists():
            raise DemoError(
                "Mosquitto is not installed: use the embedded broker, or apt-get install mosquitto"
            )
        self.broker_kind = broker
        self.heartbeat = heartbeat  # the nodes' telemetry interval, seconds
        self.scenario = scenario
        self.say = say
        self.base = Path(tempfile.mkdtemp(prefix="cccd-demo-"))
        self.today = datetime.date.today()
        self.people = citizens.population(500, seed=2026, today=self.today)  # as `sim bhxh` makes them
        self.his_db = self.base / "his.db"
        self.gateway: BhxhGateway | None = None
        self.his: FhirHis | None = None
        self.apart: list[SimProcess] = []
        low, high = scenario.gateway_latency
        if fakes_apart:
            self.apart = [
                fake_gateway(self.base / "gateway.log", (low, high)),
                fake_his(self.his_db, self.base / "his.log"),
            ]
        else:
            self.gateway = BhxhGateway(
                self.people, username="bv", password="demo", officers=[OFFICER], latency=(low, high)
            )
            low_text, _, high_text = HIS_LATENCY.partition("-")
            self.his = FhirHis(db=str(self.his_db), latency=(float(low_text), float(high_text)))
        codes = scenario.facility_codes()
        say(
            f"provisioning {len(codes)} facility homes ({', '.join(codes)}): certificates, accounts, "
            f"nodes, in {self.base}"
        )
        self.facilities = [Facility(self.base, code, scenario.nodes, broker) for code in codes]
        first = self.facilities[0]
        self.home, self.metrics_port = first.home, first.metrics_port  # the first facility's
        self.hall: Hall | None = None
        self.started = 0.0
        self.dashboards: list[tuple[str, str, str, str]] = []  # (facility, address, user, password)

    def start(self) -> None:
        name = "Mosquitto" if self.broker_kind == MOSQUITTO_BROKER else "the embedded broker"
        self.say(f"starting {name} (TLS, passwords, ACL) per facility, the fake BHXH gateway and HIS")
        for f in self.facilities:
            try:
                f.broker.start()
            except (SimStartError, MosquittoError) as exc:
                raise DemoError(str(exc)) from None
        if self.gateway is not None and self.his is not None:
            gateway_url, his_url = self.gateway.start().url, self.his.start().url
        else:
            try:
                gateway_url, his_url = (proc.start().url for proc in self.apart)
            except SimStartError as exc:
                raise DemoError(str(exc)) from None
        self.say("starting the collectors")
        for f in self.facilities:
            f.configure(gateway_url, his_url)
            f.collector.start()
        for f in self.facilities:
            try:
                f.collector.wait_subscribed()
            except CollectorStartError as exc:
                raise DemoError(str(exc)) from None
        self.dashboards = [(f.code, f.start_dashboard(), *f.login) for f in self.facilities]
        configs = [json.loads(path.read_text("utf-8")) for f in self.facilities for path in f.configs]
        self.say(f"starting {len(configs)} virtual reader nodes")
        sc = self.scenario
        self.hall = Hall(
            configs, self.people, self.base / "truth.db", sc.hall_settings(_start_of(sc), self.heartbeat)
        )
        self.hall.start()
        self.started = time.monotonic()

    def sim_elapsed(self) -> float:
        """Simulated seconds since the nodes started."""
        return (time.monotonic() - self.started) * self.scenario.speed if self.started else 0.0

    def tally(self) -> Tally:
        t = Tally()
        stored: list[tuple[str, str, int]] = []
        for f in self.facilities:
            stored += f.stored()
            online, duplicates = f.presence()
            t.online += online
            t.duplicates += duplicates
        t.stored = len(stored)
        if self.hall is not None:
            truth = self.hall.tally()
            t.accepted, t.answered, t.pending = truth["accepted"], truth["answered"], truth["pending"]
            r = self.hall.reconcile(stored)
            t.lost, t.dropped = r.lost, r.dropped
            t.outcomes = self.hall.outcomes()
        t.registered, t.registered_twice = his_visits(self.his_db)
        return t

    def drain(self, timeout: float = 30.0) -> None:
        """No more patients; wait until every accepted read is stored, answered and registered."""
        if self.hall is None:
            return
        self.hall.pause()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.tally()
            delivered = t.accepted - t.dropped
            if t.lost <= t.dropped and t.answered >= delivered and t.registered >= t.stored:
                return
            time.sleep(0.25)

    def stop(self) -> None:
        if self.hall is not None:
            self.hall.stop()
        for f in self.facilities:
            f.dashboard.stop()
            f.collector.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.his is not None:
            self.his.close()
        for proc in self.apart:
            proc.stop()
        for f in self.facilities:
            f.broker.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def his_visits(his_db: Path) -> tuple[int, int]:
    """The fake HIS's own store: (visits it holds, by the visit identifier; visits held twice)."""
    try:
        with sqlite3.connect(his_db, timeout=5) as db:
            keys = db.execute(
                "SELECT value FROM ident WHERE type = 'Encounter' AND system = ?", (SID_VISIT,)
            ).fetchall()
    except sqlite3.Error:
        keys = []
    return len(set(keys)), len(keys) - len(set(keys))


def fake_gateway(log: Path, latency: tuple[float, float]) -> SimProcess:
    """The fake BHXH gateway (``cccd-edge sim bhxh``) as a child process: the demo's 500 citizens
    (``citizens.population(500, seed=2026)``), its account and officer."""
    low, high = latency
    return SimProcess(
        [
            *("sim", "bhxh", "--username", "bv", "--password", "demo", "--citizens", "500"),
            *("--seed", "2026", "--officer", f"{OFFICER[0]}={OFFICER[1]}"),
            *("--latency", f"{low:g}-{high:g}"),
        ],
        log,
    )


def fake_his(his_db: Path, log: Path, latency: str = HIS_LATENCY) -> SimProcess:
    """The fake HIS (``cccd-edge sim his``) as a child process, its store in ``his_db``."""
    return SimProcess(["sim", "his", "--db", str(his_db), "--latency", latency], log)


def _start_of(sc: Scenario) -> float | None:
    """The simulated start: today at ``sc.start`` local time, or now."""
    if sc.start is None:
        return None
    hours, minutes = (int(x) for x in sc.start.split(":"))
    day = datetime.datetime.now(VIETNAM).date()
    return datetime.datetime(day.year, day.month, day.day, hours, minutes, tzinfo=VIETNAM).timestamp()


def run(
    scenario: Scenario,
    say: Say,
    show: Callable[[str], None],
    real_duration: float | None = None,
    broker: str = EMBEDDED,
) -> int:
    """Run ``scenario`` until its simulated duration, ``real_duration`` seconds, or Ctrl-C; then
    drain, reconcile and print the summary. Exit status 1 when a read was lost or a visit
    registered twice."""
    demo = Demo(scenario, say, broker=broker)
    nodes = scenario.nodes * scenario.facilities
    t = Tally()
    try:
        demo.start()
        for code, url, user, password in demo.dashboards:
            say(f"dashboard of {code}: {url}/ — user {user}, password {password}")
        say(f"running; metrics at http://127.0.0.1:{demo.metrics_port}/metrics; Ctrl-C stops")
        before = (time.monotonic(), 0)
        while True:
            elapsed = time.monotonic() - demo.started
            if real_duration is not None and elapsed >= real_duration:
                break
            if scenario.duration is not None and demo.sim_elapsed() >= scenario.duration:
                break
            t = demo.tally()
            now = time.monotonic()
            rate = (t.accepted - before[1]) / max(now - before[0], 1e-6)
            before = (now, t.accepted)
            o = t.outcomes
            show(
                f"{elapsed:6.0f} s  {rate:5.1f} reads/s  accepted {t.accepted:6d}  stored {t.stored:6d}  "
                f"answered {t.answered:6d} (ok {o.get('ok', 0)}, warn {o.get('warn', 0)}, "
                f"reject {o.get('reject', 0)})  pending {t.pending:4d}  in the HIS {t.registered:6d}  "
                f"nodes online {t.online:3d}/{nodes}"
            )
            time.sleep(1.0)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        try:
            if demo.hall is not None:
                demo.drain()
                for event in demo.hall.events:
                    say(f"fault: {event}")
            t = demo.tally()
            say(
                f"summary: reads accepted by the nodes {t.accepted}, stored {t.stored}, answered at the "
                f"counter {t.answered} ({t.accepted - t.answered} without a final answer), registered in "
                f"the HIS {t.registered} (twice: {t.registered_twice}), dropped by full outboxes "
                f"{t.dropped}, lost {t.lost - t.dropped}"
            )
        finally:
            demo.stop()
    return 0 if t.lost - t.dropped == 0 and t.registered_twice == 0 else 1
