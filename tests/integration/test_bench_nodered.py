"""`cccd-edge bench nodered` with a tiny load: node-red really runs the flow against Mosquitto and
the fake HIS, and cccd-edge the whole path; at a rate both handle, each registers every read.

Not a timing test. Skipped when Node-RED is not installed in .cache/nodered: installing it takes
10–20 s of npm and 100 MB, more than this test may cost in CI (`cccd-edge bench nodered` installs
it on first use). The flow's structure and the figures' arithmetic are tested without it
(tests/unit/test_benchnodered.py).
"""

import json
from pathlib import Path

import pytest

from tools import benchnodered, cli

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (benchnodered.CACHE / "node_modules" / "node-red" / "package.json").exists(),
        reason="Node-RED is not installed in .cache/nodered (run `cccd-edge bench nodered` once)",
    ),
]


def test_both_flows_register_every_read_at_a_rate_both_handle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nodered.json"
    argv = ["bench", "nodered", "--rate", "20", "--seconds", "3", "--nodes", "2", "--no-kill"]
    assert cli.main([*argv, "--drain", "30", "--json", str(out)]) == 0
    text = capsys.readouterr()
    assert "ratio cccd-edge / Node-RED" in text.out
    assert "Node-RED: starting node-red" in text.err  # progress on stderr
    report = json.loads(out.read_text("utf-8"))
    nodered, edge = report["phases"]
    for side in (nodered, edge):
        assert side["published"] == 60, text.out
        assert side["registered"] == side["published"] and side["lost"] == 0, text.out
        assert side["registered_twice"] == 0 and side["visits_per_s"] > 0, text.out
    assert edge["stored"] == 60
