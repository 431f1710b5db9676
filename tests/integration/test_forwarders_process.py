"""The forwarders run in a process of their own: their metric events reach the collector's
/metrics, and when their process dies the ingest worker starts it again and nothing is lost."""

import datetime
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from facility import Node, Site, wait

from sim import citizens
from sim.bhxh import BhxhGateway
from tools.ports import free_port

pytestmark = pytest.mark.integration

TODAY = datetime.date.today()
OFFICER = ("Phạm Thị Hoa", "001185000123")  # synthetic


def metrics(site: Site) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{site.metrics_port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def children(pid: int) -> list[int]:
    """The spawned processes ``pid`` started (not multiprocessing's resource tracker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    found = []
    for child in map(int, out.split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(child)
    return found


def test_alerts_reach_the_metrics_and_a_killed_forwarder_comes_back(tmp_path: Path) -> None:
    people = citizens.population(40, seed=5, today=TODAY)
    insured = [c for c in people if c.insurance == "valid"]
    gw = BhxhGateway(people, username="bv", password="pw", officers=[OFFICER]).start()
    site = Site(tmp_path, metrics_port=free_port())
    node = Node(site.node, site.ca)
    try:
        site.configure(
            f'[bhxh]\nurl = "{gw.url}"\nusername = "bv"\npassword = "pw"\n'
            f'officer_name = "{OFFICER[0]}"\nofficer_cccd = "001185000999"\n'  # not registered: 054
        )
        site.start_collector()
        site.wait_subscribed()
        node.connect()
        node.publish(1, node.read_of(insured[0], 1, TODAY))
        wait(lambda: 'cccd_bhxh_alerts_total{code="054"} 1.0' in metrics(site), 30, "the 054 alert")
        assert 'cccd_circuit_state{destination="bhxh"} 0.0' in metrics(site)  # the gateway answered

        assert site.collector.proc is not None
        (worker,) = children(site.collector.proc.pid)
        (forwarders,) = children(worker)
        os.kill(forwarders, signal.SIGKILL)
        wait(lambda: children(worker) not in ([], [forwarders]), 30, "the forwarders started again")
        node.publish(2, node.read_of(insured[1], 2, TODAY))
        wait(lambda: 'cccd_bhxh_alerts_total{code="054"} 2.0' in metrics(site), 30, "the second check")
        assert "the forwarders stopped" in site.collector.output()
        (restarted,) = children(worker)
        site.stop()  # SIGTERM to the collector: its worker and forwarders end with it
        wait(lambda: not Path(f"/proc/{restarted}").exists(), 20, "the forwarders gone")
        wait(lambda: not Path(f"/proc/{worker}").exists(), 20, "the worker gone")
    finally:
        node.close()
        site.stop()
        gw.stop()
