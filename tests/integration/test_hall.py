"""The simulator's nodes against the real broker and collector: the outbox holds reads through a
link outage and a power cut, sequence numbers never repeat, and the ground truth reconciles with
the collector's store — nothing lost, nothing unknown."""

import datetime
import json
import time
from pathlib import Path

import pytest
from facility import FAC, Site, wait

from collector import fleet
from sim import citizens
from sim.hall import Fault, Hall, HallSettings, NodeHabits
from tools import provision

pytestmark = pytest.mark.integration

TODAY = datetime.date.today()


def _configs(site: Site, n: int) -> list[dict[str, object]]:
    configs = [site.node]
    for i in range(2, n + 1):
        path = provision.device(site.home.path, FAC, f"qr-{i:04d}", "esp32", f"Quầy {i}")
        configs.append(json.loads(path.read_text("utf-8")))
    site.broker.reload()  # the new accounts
    return configs


def _offline(site: Site, device: str) -> bool:
    rows = site.query("SELECT body FROM presence_state WHERE facility = ? AND device = ?", (FAC, device))
    return bool(rows) and not fleet.DeviceState.from_dict(json.loads(rows[0][0])).online


def _scanned_by(hall: Hall, device: str) -> int:
    row = hall.call(
        lambda: hall.truth.db.execute("SELECT COUNT(*) FROM reads WHERE device = ?", (device,)).fetchone()
    )
    return int(row[0])


def _stored(site: Site) -> list[tuple[str, str, int]]:
    return [(FAC, d, int(s)) for d, s in site.stored()]


def test_outages_and_power_cuts_lose_nothing_and_never_repeat_a_sequence_number(tmp_path: Path) -> None:
    site = Site(tmp_path)
    configs = _configs(site, 4)
    people = citizens.population(60, seed=8, today=TODAY)
    settings = HallSettings(peak=4 * 3600.0, heartbeat=2.0, habits=NodeHabits(double_scan=0.2, damaged=0.1))
    hall = Hall(configs, people, tmp_path / "truth.db", settings)
    try:
        site.start_collector()
        site.wait_subscribed()
        hall.start()
        wait(lambda: hall.online() == 4, 20, "every node online")  # else: [n.last_error for n in hall.nodes]
        hall.link_down("qr-0002")  # Wi-Fi gone: it keeps scanning into its outbox
        cut = time.monotonic()
        hall.power_cut("qr-0003")
        scanned_before_the_cut = _scanned_by(hall, "qr-0003")
        # no DISCONNECT: the broker publishes the Last Will at once, well before 3 silent heartbeats
        wait(lambda: _offline(site, "qr-0003"), 10, "the Last Will of the node that lost power")
        assert time.monotonic() - cut < 3 * settings.heartbeat
        wait(lambda: hall.tally()["accepted"] >= 30, 20, "reads meanwhile")
        assert _scanned_by(hall, "qr-0003") == scanned_before_the_cut  # no power, no scans
        hall.power_on("qr-0003")
        hall.link_up("qr-0002")
        wait(lambda: hall.online() == 4, 30, "every node back")
        hall.pause()
        wait(lambda: hall.tally()["acked"] == hall.tally()["accepted"], 30, "every outbox empty")
        wait(lambda: hall.reconcile(_stored(site)).lost == 0, 30, "every read stored")
        r = hall.reconcile(_stored(site))
        assert r.accepted >= 30 and r.lost == 0 and r.unknown == 0 and r.dropped == 0
        t = hall.tally()
        assert t["doubles"] > 0 and t["rejected"] >= 0  # double scans suppressed at the node
        boots = dict(hall.call(lambda: hall.truth.db.execute("SELECT device, boot FROM node").fetchall()))
        assert boots["qr-0003"] == 2 and boots["qr-0001"] == 1  # the power cut rebooted it
    finally:
        hall.stop()
        site.stop()


def test_a_full_outbox_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    site = Site(tmp_path)
    people = citizens.population(20, seed=9, today=TODAY)
    hall = Hall([site.node], people, tmp_path / "truth.db", HallSettings(peak=20 * 3600.0, outbox_max=5))
    try:
        site.start_collector()
        site.wait_subscribed()
        hall.start()
        hall.link_down("qr-0001")
        wait(lambda: hall.tally()["dropped"] >= 3, 20, "drops")
        hall.pause()
        hall.link_up("qr-0001")
        wait(lambda: hall.call(lambda: hall.truth.depth(FAC, "qr-0001")) == 0, 30, "the outbox delivered")
        r = hall.reconcile(_stored(site))
        assert r.dropped >= 3 and r.stored == r.accepted - r.dropped and r.unknown == 0
    finally:
        hall.stop()
        site.stop()


def test_scheduled_faults_happen_at_their_simulated_time(tmp_path: Path) -> None:
    site = Site(tmp_path)
    people = citizens.population(20, seed=10, today=TODAY)
    # 60x: a 2-minute Wi-Fi outage starting one simulated minute in takes 2 real seconds
    faults = {"qr-0001": [Fault("wifi", at=60, duration=120)]}
    hall = Hall(
        [site.node], people, tmp_path / "truth.db", HallSettings(speed=60, peak=3600.0, faults=faults)
    )
    try:
        site.start_collector()
        site.wait_subscribed()
        hall.start()
        wait(lambda: "wifi down qr-0001" in hall.events, 10, "the outage")
        wait(lambda: "wifi up qr-0001" in hall.events, 10, "its end")
        wait(lambda: hall.online() == 1, 15, "the node back")
    finally:
        hall.stop()
        site.stop()


def test_a_skewed_clock_shows_in_the_reads_timestamps_not_in_their_delivery(tmp_path: Path) -> None:
    site = Site(tmp_path)
    people = citizens.population(20, seed=11, today=TODAY)
    settings = HallSettings(peak=4 * 3600.0, habits=NodeHabits(skew=-3600.0))  # an hour slow
    hall = Hall([site.node], people, tmp_path / "truth.db", settings)
    try:
        site.start_collector()
        site.wait_subscribed()
        hall.start()
        wait(lambda: len(site.stored()) >= 3, 20, "reads stored")
        rows = site.query("SELECT received, ts FROM reads")
        assert all(3590 < received - ts / 1000 < 3610 for received, ts in rows)
    finally:
        hall.stop()
        site.stop()
