"""``cccd-edge demo``: the whole facility side on this machine, with a live view.

It provisions a facility home in a temporary directory, starts the production Mosquitto
configuration on a free local port, the fake BHXH gateway (synthetic citizens), the fake HIS (a
FHIR R4 server), the collector process with the insurance check and the HIS registration on, and
virtual reader nodes that scan citizens' cards. Every second it shows reads accepted by the nodes,
stored by the collector, answered at the counter, registered in the HIS, and the nodes online.
Ctrl-C (or ``--duration``) stops everything and prints a summary that reconciles the nodes'
ground truth with the store and the HIS: reads lost must be 0, visits registered twice 0.

Not yet in the demo (later issues): the dashboard, several facilities, faults on demand, the
embedded broker for machines without Mosquitto.
"""

import datetime
import json
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collector import fleet
from collector.forward.fhir import SID_VISIT
from sim import citizens
from sim.bhxh import BhxhGateway
from sim.hall import Hall, HallSettings
from sim.his import FhirHis
from tools import provision
from tools.collectorproc import CollectorProcess, CollectorStartError
from tools.mosquitto import MOSQUITTO, Mosquitto
from tools.simproc import SimProcess, SimStartError

FACILITY = "38001"
OFFICER = ("Phạm Thị Hoa", "001185000123")  # synthetic
HIS_LATENCY = "0.02-0.2"  # seconds the fake HIS takes to answer

Say = Callable[[str], None]


class DemoError(Exception):
    """The demo could not start; the message says what to do."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class Demo:
    def __init__(
        self, nodes: int, rate: float, latency: tuple[float, float], say: Say, fakes_apart: bool = False
    ) -> None:
        """``latency``: the fake gateway's answer time, (min, max) seconds. ``fakes_apart``: run the
        fake gateway and HIS as child processes instead of threads of this one (benchmarks: see
        tools/simproc.py)."""
        if not shutil.which(MOSQUITTO) and not Path(MOSQUITTO).exists():
            raise DemoError(
                "Mosquitto is not installed: run `make demo` (it installs it) or apt-get install mosquitto"
            )
        self.say = say
        self.base = Path(tempfile.mkdtemp(prefix="cccd-demo-"))
        self.today = datetime.date.today()
        self.people = citizens.population(500, seed=2026, today=self.today)  # as `sim bhxh` makes them
        self.his_db = self.base / "his.db"
        self.gateway: BhxhGateway | None = None
        self.his: FhirHis | None = None
        self.apart: list[SimProcess] = []
        if fakes_apart:
            low, high = latency
            self.apart = [
                SimProcess(
                    [
                        *("bhxh", "--username", "bv", "--password", "demo", "--citizens", "500"),
                        *("--seed", "2026", "--officer", f"{OFFICER[0]}={OFFICER[1]}"),
                        *("--latency", f"{low:g}-{high:g}"),
                    ],
                    self.base / "gateway.log",
                ),
                SimProcess(
                    ["his", "--db", str(self.his_db), "--latency", HIS_LATENCY], self.base / "his.log"
                ),
            ]
        else:
            self.gateway = BhxhGateway(
                self.people, username="bv", password="demo", officers=[OFFICER], latency=latency
            )
            low_text, _, high_text = HIS_LATENCY.partition("-")
            self.his = FhirHis(db=str(self.his_db), latency=(float(low_text), float(high_text)))
        port = _free_port()
        self.metrics_port = _free_port()
        say("provisioning a facility home, the broker's certificates and accounts")
        self.home = provision.init(
            self.base / "home", FACILITY, broker_port=port, run_here=True, metrics_port=self.metrics_port
        )
        self.configs = [
            provision.device(
                self.home.path, FACILITY, f"qr-{i + 1:04d}", "esp32", f"Quầy {i + 1} – Khoa Khám bệnh"
            )
            for i in range(nodes)
        ]
        self.broker = Mosquitto(
            self.home.broker.conf,
            port,
            self.home.path / "ca.crt",
            log=self.home.path / "broker" / "mosquitto.log",
        )
        self.collector = CollectorProcess(self.home.path / "collector.toml", self.base / "collector.log")
        self.hall: Hall | None = None
        self.rate = rate

    def start(self) -> None:
        self.say("starting Mosquitto (TLS, passwords, ACL), the fake BHXH gateway and the fake HIS")
        self.broker.start()
        if self.gateway is not None and self.his is not None:
            gateway_url, his_url = self.gateway.start().url, self.his.start().url
        else:
            try:
                gateway_url, his_url = (proc.start().url for proc in self.apart)
            except SimStartError as exc:
                raise DemoError(str(exc)) from None
        with (self.home.path / "collector.toml").open("a", encoding="utf-8") as f:
            f.write(
                f'\n[bhxh]\nurl = "{gateway_url}"\nusername = "bv"\npassword = "demo"\n'
                f'officer_name = "{OFFICER[0]}"\nofficer_cccd = "{OFFICER[1]}"\n'
                f'\n[his]\nprotocol = "fhir"\nurl = "{his_url}"\n'
            )
        self.say("starting the collector")
        try:
            self.collector.start().wait_subscribed()
        except CollectorStartError as exc:
            raise DemoError(str(exc)) from None
        self.say(f"starting {len(self.configs)} virtual reader nodes")
        configs = [json.loads(path.read_text("utf-8")) for path in self.configs]
        settings = HallSettings(peak=self.rate * 3600.0, heartbeat=5.0)
        self.hall = Hall(configs, self.people, self.base / "truth.db", settings).start()

    def tally(self) -> Tally:
        t = Tally()
        if self.hall is not None:
            truth = self.hall.tally()
            t.accepted, t.answered, t.pending = truth["accepted"], truth["answered"], truth["pending"]
        try:
            with sqlite3.connect(self.home.path / "collector.db", timeout=5) as db:
                t.stored = int(db.execute("SELECT COUNT(*) FROM reads").fetchone()[0])
                t.duplicates = int(
                    db.execute("SELECT COUNT(*) FROM quarantine WHERE reason = 'duplicate'").fetchone()[0]
                )
                rows = db.execute("SELECT body FROM presence_state").fetchall()
        except sqlite3.Error:
            rows = []
        states = [fleet.DeviceState.from_dict(json.loads(body)).state for (body,) in rows]
        t.online = states.count(fleet.ONLINE)
        try:  # the fake HIS's own store: the visits it holds, by the visit identifier
            with sqlite3.connect(self.his_db, timeout=5) as db:
                keys = db.execute(
                    "SELECT value FROM ident WHERE type = 'Encounter' AND system = ?", (SID_VISIT,)
                ).fetchall()
        except sqlite3.Error:
            keys = []
        t.registered = len(set(keys))
        t.registered_twice = len(keys) - t.registered
        return t

    def drain(self, timeout: float = 20.0) -> None:
        if self.hall is None:
            return
        self.hall.pause()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.tally()
            if t.stored >= t.accepted and t.answered >= t.accepted and t.registered >= t.stored:
                return
            time.sleep(0.25)

    def stop(self) -> None:
        if self.hall is not None:
            self.hall.stop()
        self.collector.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.his is not None:
            self.his.close()
        for proc in self.apart:
            proc.stop()
        self.broker.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def run(
    nodes: int, rate: float, duration: float | None, latency: float, say: Say, show: Callable[[str], None]
) -> int:
    demo = Demo(nodes, rate, (0.0, latency), say)
    started = time.monotonic()
    try:
        demo.start()
        say(f"running; metrics at http://127.0.0.1:{demo.metrics_port}/metrics; Ctrl-C stops")
        while duration is None or time.monotonic() - started < duration:
            t = demo.tally()
            show(
                f"{time.monotonic() - started:6.0f} s  accepted {t.accepted:6d}  stored {t.stored:6d}  "
                f"answered {t.answered:6d}  pending {t.pending:4d}  in the HIS {t.registered:6d}  "
                f"nodes online {t.online:3d}/{nodes}"
            )
            time.sleep(1.0)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        try:
            if demo.hall is not None:
                demo.drain()
            t = demo.tally()
            lost = max(0, t.accepted - t.stored)
            unanswered = t.accepted - t.answered
            say(
                f"summary: reads accepted by the nodes {t.accepted}, stored {t.stored}, answered at the "
                f"counter {t.answered} ({unanswered} without a final answer), registered in the HIS "
                f"{t.registered} (twice: {t.registered_twice}), lost {lost}"
            )
        finally:
            demo.stop()
    return 0 if lost == 0 and t.registered_twice == 0 else 1
