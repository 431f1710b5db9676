"""Every read registered in the HIS exactly once, whatever fails: the real collector process, the
real broker, and the fake HIS of sim/ over real HTTP (FHIR) and TCP (HL7 v2 over MLLP).

The HIS goes away and comes back, answers get lost after the HIS acted, the collector is killed
with SIGKILL in the middle: at the end each read is one Encounter (one ADT^A04), never two.
A visit the HIS refuses is a dead letter with the HIS's own reason, and IT's replay delivers it.
"""

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from facility import ROOT, Node, Site, wait

from collector.forward.fhir import SID_VISIT
from sim import citizens
from sim.bhxh import BhxhGateway
from sim.his import FhirHis
from sim.hl7his import Hl7His

pytestmark = pytest.mark.integration

TODAY = datetime.date.today()
OFFICER = ("Phạm Thị Hoa", "001185000123")  # synthetic
FAC, DEV = "38001", "qr-0001"


def his_section(protocol: str, where: str) -> str:
    target = f'url = "{where}"' if protocol == "fhir" else f'host = "127.0.0.1"\nport = {where}'
    return (
        f'[his]\nprotocol = "{protocol}"\n{target}\ntimeout = 2\nbreaker_failures = 3\nbreaker_cooldown = 1\n'
    )


def jobs_in(site: Site, kind: str, state: str) -> int:
    return int(site.query("SELECT COUNT(*) FROM jobs WHERE kind = ? AND state = ?", (kind, state))[0][0])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_fhir_every_visit_once_across_an_outage_lost_answers_and_a_killed_collector(tmp_path: Path) -> None:
    people = citizens.population(40, seed=21, today=TODAY)
    insured = [c for c in people if c.insurance == "valid"][:6]
    gw = BhxhGateway(people, username="bv", password="pw", officers=[OFFICER]).start()
    his = FhirHis(db=str(tmp_path / "his.db")).start()
    site = Site(tmp_path)
    node = Node(site.node, site.ca)
    try:
        site.configure(
            f'[bhxh]\nurl = "{gw.url}"\nusername = "bv"\npassword = "pw"\n'
            f'officer_name = "{OFFICER[0]}"\nofficer_cccd = "{OFFICER[1]}"\n'
        )
        site.configure(his_section("fhir", his.url))
        site.start_collector()
        site.wait_subscribed()
        node.connect()

        # 1. the HIS is down: the insurance answers still come, the registrations wait
        his.set_outage("refuse")
        for seq, person in enumerate(insured, start=1):
            node.publish(seq, node.read_of(person, seq, TODAY))
        wait(lambda: jobs_in(site, "insurance", "done") == 6, 30, "the insurance checks")
        wait(
            lambda: site.query("SELECT COUNT(*) FROM jobs WHERE kind = 'his' AND attempts > 0")[0][0] > 0,
            30,
            "a try",
        )
        assert his.count("Encounter") == 0
        his.set_outage(False)
        wait(lambda: his.count("Encounter") == 6, 60, "the registrations after the outage")

        # 2. the HIS acts but its answers are lost, and the collector is killed meanwhile
        his.set_latency(0.3, 0.6)
        his.set_error_rate(0.5, after=True)
        for seq in range(7, 19):
            node.publish(seq)  # the same patient each time: one Patient, one Encounter per read
        time.sleep(1.0)
        site.kill_collector()
        his.set_error_rate(0.0)
        site.start_collector()
        site.wait_subscribed(2)
        wait(lambda: jobs_in(site, "his", "done") == 18, 90, "every registration done")

        encounters = his.encounters()
        keys = sorted(i["value"] for e in encounters for i in e["identifier"] if i["system"] == SID_VISIT)
        assert keys == sorted(f"{FAC}/{DEV}/{seq}" for seq in range(1, 19))  # each once
        assert his.count("Patient") == 7  # six insured people and the fixed one
        assert his.count("Coverage") == 6  # the fixed patient is unknown to BHXH: no coverage
        assert jobs_in(site, "his", "dead") == 0
    finally:
        node.close()
        site.stop()
        his.close()
        gw.stop()


def test_a_refused_visit_is_a_dead_letter_with_the_his_reason_until_it_is_replayed(tmp_path: Path) -> None:
    his = FhirHis().start()
    site = Site(tmp_path)
    node = Node(site.node, site.ca)
    toml = str(site.home.path / "collector.toml")
    try:
        site.configure(his_section("fhir", his.url))  # no [bhxh]: reads go straight to the HIS
        site.start_collector()
        site.wait_subscribed()
        node.connect()
        his.set_reject("Encounter", "Encounter.location: quầy qr-0001 chưa khai báo trong HIS")
        node.publish(1)
        wait(lambda: jobs_in(site, "his", "dead") == 1, 30, "the dead letter")
        (letter,) = json.loads(cli("collector", "dead-letters", "--config", toml, "--json").stdout)
        assert letter["kind"] == "his" and "quầy qr-0001 chưa khai báo trong HIS" in letter["why"]
        # one transaction (transaction = "auto", and the fake HIS declares them), not retried
        assert his.count("Encounter") == 0 and his.requests("POST") == 1 and his.requests("PUT") == 0

        his.set_reject("Encounter", None)  # IT fixed the HIS
        assert cli("collector", "replay", "--config", toml, "--all").returncode == 0
        wait(lambda: his.count("Encounter") == 1, 30, "the replayed registration")
        assert jobs_in(site, "his", "dead") == 0
    finally:
        node.close()
        site.stop()
        his.close()


def test_hl7v2_every_visit_once_when_acks_are_lost(tmp_path: Path) -> None:
    his = Hl7His(str(tmp_path / "his.db")).start()
    site = Site(tmp_path)
    node = Node(site.node, site.ca)
    try:
        site.configure(his_section("hl7v2", str(his.port)))
        site.start_collector()
        site.wait_subscribed()
        node.connect()
        his.set_drop_before_ack(True)  # the HIS stores each message, then hangs up without an ACK
        for seq in range(1, 6):
            node.publish(seq)
        wait(lambda: his.count() == 5, 30, "the HIS storing every message")
        time.sleep(0.5)
        assert jobs_in(site, "his", "done") == 0  # no ACK, so not done
        his.set_drop_before_ack(False)
        wait(lambda: jobs_in(site, "his", "done") == 5, 60, "every registration acknowledged")
        assert his.count() == 5 and sorted(r.visit_key for r in his.registrations()) == [
            f"{FAC}/{DEV}/{seq}" for seq in range(1, 6)
        ]
    finally:
        node.close()
        site.stop()
        his.close()
