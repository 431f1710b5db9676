"""The dashboard as hospital IT sees it: Debian's chromium, headless, driven by playwright-core
(tools/dashboard_browser.mjs), logs in and reads the fleet page while the simulator's nodes run
against the real Mosquitto and collector; what the browser saw must be the simulator's truth.

Four devices are provisioned: three simulated nodes start (one loses power on the way) and one is
never switched on, so the page must say 2 of 4 online. The known device's uptime today is checked
against the time its node connected, as the simulator saw it, and its provisioning time. The
screenshot is kept in the test's directory and in .artifacts/ (ignored by git).
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from facility import FAC, Site, wait

from collector import config, fleet
from collector.db import open_db
from collector.web import Users
from collector.web.render import percent
from sim import citizens
from sim.hall import Hall, HallSettings
from tools import provision

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "dashboard_browser.mjs"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / ".artifacts"
USER = "it-01"
PASSWORD = "mật khẩu của phòng CNTT"
HEARTBEAT = 2.0  # seconds: a node that stops is offline within 3 heartbeats


def _provision(site: Site) -> list[dict[str, object]]:
    configs = [site.node]
    for i, where in ((2, "Quầy 2"), (3, "Quầy 3"), (4, "<b>Quầy 4</b> (chưa lắp)")):
        path = provision.device(site.home.path, FAC, f"qr-{i:04d}", "esp32", where)
        configs.append(json.loads(path.read_text("utf-8")))
    site.broker.reload()  # the new accounts
    toml = site.home.path / "collector.toml"
    text = toml.read_text("utf-8").replace("heartbeat_interval = 30", f"heartbeat_interval = {HEARTBEAT:g}")
    toml.write_text(text, "utf-8")
    return configs


def _dashboard(toml: Path, log: Path) -> tuple["subprocess.Popen[str]", str]:
    """`cccd-edge web run` on a free port, and its address."""
    with log.open("w") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "web", "run", "--config", str(toml), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
        )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("dashboard at http://"), first + log.read_text()
    return proc, first.split()[2].rstrip("/")


def _offline(site: Site, device: str) -> bool:
    rows = site.query("SELECT body FROM presence_state WHERE facility = ? AND device = ?", (FAC, device))
    return bool(rows) and not fleet.DeviceState.from_dict(json.loads(rows[0][0])).online


def _connected_at(hall: Hall, index: int, timeout: float = 20.0) -> float:
    """When the node connected, as the simulator sees it (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not hall.nodes[index].connected:
        if time.monotonic() > deadline:
            raise AssertionError(f"node {index} did not connect: {hall.nodes[index].last_error}")
        time.sleep(0.02)
    return time.time()


def test_the_fleet_page_shows_the_simulators_truth(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: make test installs it"
    assert (ROOT / "node_modules" / "playwright-core").is_dir(), "npm ci installs playwright-core"
    started = time.monotonic()
    site = Site(tmp_path)
    configs = _provision(site)
    toml = site.home.path / "collector.toml"
    created = float(site.query("SELECT created FROM devices WHERE device = 'qr-0001'")[0][0])
    people = citizens.population(40, seed=5, today=datetime.date.today())
    hall = Hall(configs[:3], people, tmp_path / "truth.db", HallSettings(peak=3600.0, heartbeat=HEARTBEAT))
    web = None
    try:
        site.start_collector()
        site.wait_subscribed()
        db = open_db(config.load(toml).store.url)
        try:
            Users(db).add(USER, PASSWORD)  # as `cccd-edge web user add` does (tests/unit/test_web_cli.py)
        finally:
            db.close()
        web, url = _dashboard(toml, tmp_path / "web.log")
        hall.start()
        connected = _connected_at(hall, 0)  # qr-0001, the known device
        wait(lambda: hall.online() == 3, 20, "three nodes online")
        time.sleep(4.0)  # patients at the counters meanwhile
        hall.power_cut("qr-0003")
        wait(lambda: _offline(site, "qr-0003"), 15, "the collector to see qr-0003 go")
        truth_online = hall.online()
        assert truth_online == 2 and hall.tally()["accepted"] > 0

        shot = tmp_path / "dashboard-fleet.png"
        browser = subprocess.run(
            [
                "node",
                str(SCRIPT),
                "--url",
                url,
                "--user",
                USER,
                "--device",
                "qr-0001",
                "--screenshot",
                str(shot),
            ],
            env={**os.environ, "CCCD_WEB_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
            timeout=60,
        )
        assert browser.returncode == 0, browser.stderr
        seen = json.loads(browser.stdout)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(shot, ARTIFACTS / shot.name)

        assert seen["title"] == "Thiết bị · cccd-edge"
        assert (seen["online"], seen["total"], seen["onlineText"]) == (truth_online, 4, f"{truth_online}/4")
        assert seen["rows"] == 4
        device = seen["device"]
        assert device["state"] == "Trực tuyến"
        at = seen["generated"]  # the moment the page's figures are of
        day_start = fleet.day_window(fleet.local_date(at)).start
        expected = (at - max(connected, day_start)) / (at - max(created, day_start))
        assert 0.1 < expected < 0.99  # it was provisioned a while before it came up: not 100 %
        assert abs(device["uptimeTodayValue"] - expected) < 0.02, (device, expected)
        assert device["uptimeToday"].replace("\u00a0", " ") == percent(device["uptimeTodayValue"])
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    finally:
        hall.stop()
        if web is not None:
            web.terminate()
            web.wait(timeout=10)
            if web.stdout is not None:
                web.stdout.close()
        site.stop()
    assert time.monotonic() - started < 60  # the whole run, browser included (about 20 s here)
