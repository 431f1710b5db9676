"""The load bench's short form: 100 nodes on one Mosquitto, then the reconnect storm after the
broker restarts; every node back, every outbox drained, nothing lost. The full form is
`cccd-edge bench load` (5,000 nodes)."""

import math

import pytest

from tools import benchload

pytestmark = pytest.mark.integration


def test_a_broker_restart_under_load_loses_nothing() -> None:
    r = benchload.run(100, 20.0, 3.0, lambda _m: None)
    text = benchload.format_report(r)
    assert r["lost"] == 0 and r["accepted"] > 20 and r["stored"] == r["accepted"], text
    assert not math.isnan(r["storm_all_back_s"]) and not math.isnan(r["storm_drained_s"]), text
    assert r["storm_drained_s"] <= 60, text
    assert r["collector_rss_mb"] > 0 and r["connect_s"] >= 0, text
    # every answered read falls in one of the three windows, and each window saw reads
    windows = [r["burst"]["reads"], r["steady"]["reads"], r["storm"]["reads"]]
    assert all(n > 0 for n in windows) and sum(windows) <= r["accepted"], text
