"""`cccd-edge demo --duration`: everything starts, runs, reconciles and stops by itself."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_loses_nothing() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "demo",
            "--duration",
            "6",
            "--nodes",
            "2",
            "--rate",
            "2",
            "--latency",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the demo stops its broker, collector and gateway on SIGTERM
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail("the demo did not end by itself:\n" + stdout + stderr)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = re.search(
        r"accepted by the nodes (\d+), stored (\d+), answered at the counter (\d+) "
        r"\((\d+) without a final answer\), registered in the HIS (\d+) \(twice: (\d+)\), "
        r"dropped by full outboxes (\d+), lost (\d+)",
        out.stdout,
    )
    assert summary, out.stdout
    accepted, stored, answered, unanswered, registered, twice, dropped, lost = map(int, summary.groups())
    assert accepted > 0 and stored == accepted and lost == 0 and dropped == 0
    assert answered == accepted and unanswered == 0
    assert registered == accepted and twice == 0
    assert "2 facility homes (38001, 38002)" in out.stdout
    assert "starting the embedded broker" in out.stdout  # the default: nothing to install
    assert re.search(r"dashboard of 38001: http://127\.0\.0\.1:\d+/ — user it, password \S+", out.stdout)
    base = re.search(r"nodes, in (\S+cccd-demo-\S+)", out.stdout)
    assert base, out.stdout
    running = subprocess.run(["ps", "axww"], capture_output=True, text=True, check=False).stdout
    assert base.group(1) not in running  # every child of this demo stopped (other runs may go on)


def test_sim_run_with_a_scenario_of_faults_reconciles(tmp_path: Path) -> None:
    scenario = tmp_path / "faults.toml"
    scenario.write_text(
        """
[run]
facilities = 1
nodes = 3
speed = 60
start = "07:00"
duration = "8m"
shape = "morning"
peak = 240
gateway_latency = "0-0.2"

[habits]
double_scan = 0.1

[[fault]]
kind = "wifi"
node = "38001/qr-0002"
at = "07:01"
for = "3m"

[[fault]]
kind = "power"
node = "38001/qr-0003"
at = "2m"
for = "2m"
""",
        "utf-8",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "sim",
            "run",
            "--scenario",
            str(scenario),
            "--broker",
            "mosquitto",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fault: wifi down qr-0002" in out.stdout and "fault: wifi up qr-0002" in out.stdout
    assert "fault: power cut qr-0003" in out.stdout and "fault: power on qr-0003" in out.stdout
    summary = re.search(r"accepted by the nodes (\d+), stored (\d+).*\(twice: 0\).*lost 0$", out.stdout, re.M)
    assert summary and int(summary.group(1)) > 0 and summary.group(1) == summary.group(2), out.stdout


def test_sim_run_refuses_a_bad_scenario_in_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[[fault]]\nkind = "flood"\nnode = "*"\nat = "1m"\n', "utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "tools.cli", "sim", "run", "--scenario", str(scenario)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert (
        out.returncode == 64 and "fault #1.kind" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    )
