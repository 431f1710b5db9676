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
            "3",
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
        r"\((\d+) without a final answer\), registered in the HIS (\d+) \(twice: (\d+)\), lost (\d+)",
        out.stdout,
    )
    assert summary, out.stdout
    accepted, stored, answered, unanswered, registered, twice, lost = map(int, summary.groups())
    assert accepted > 0 and stored == accepted and lost == 0
    assert answered == accepted and unanswered == 0
    assert registered == accepted and twice == 0
    assert (
        "cccd-demo-" not in subprocess.run(["ps", "ax"], capture_output=True, text=True, check=False).stdout
    )
