"""The chaos bench's short form: every fault once and several together, each for 1.5 s, while
simulated nodes scan (a node offline for 24 simulated hours among them: a day of reads held in its
outbox); then nothing lost, nothing stored or registered twice, every read answered.
The full form is `cccd-edge bench chaos`."""

import pytest

from tools import chaos

pytestmark = pytest.mark.integration


def test_every_fault_loses_nothing_and_doubles_nothing() -> None:
    said: list[str] = []
    report = chaos.run(1.5, 3, 3.0, said.append)
    t = report.tally
    text = chaos.format_report(report)
    assert report.ok, text
    assert t.accepted > 50 and t.stored == t.accepted and t.lost == 0, text
    assert t.answered == t.accepted and t.registered == t.stored and t.registered_twice == 0, text
    names = [f.name for f in report.faults]
    assert names == [
        "broker restart",
        "collector kill",
        "his down",
        "bhxh down",
        "node offline",
        "node offline 24 h",
        "collector link cut",
        "power loss",
        "together",
    ]
    assert sum(f.reads for f in report.faults) > 10, text  # reads were scanned during the faults
    # a day offline: its outbox held the day's reads (a counter's day, within the outbox), every
    # one delivered (the counts above), and the fleet had the node offline, then online
    (day,) = [f for f in report.faults if f.held is not None]
    assert day.held > 100 and day.offline_seen and day.online_after, text
    assert "PASS" in text and "reads lost 0" in text
