"""Scenario files: what they say, and one clear error for every way they can be wrong."""

from pathlib import Path

import pytest

from sim.hall import Fault
from sim.scenario import Scenario, ScenarioError, duration, from_dict, load


def test_a_full_scenario_is_read_with_its_faults_in_simulated_seconds(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        """
[run]
facilities = 3
nodes = 200
speed = 60
start = "07:00"
duration = "2h"
shape = "morning"
peak = 30
seed = 4
gateway_latency = "1-3"
[habits]
double_scan = 0.02
damaged = 0.01
skew = -90
[[fault]]
kind = "wifi"
node = "38001/qr-0003"
at = "07:30"
for = "15m"
[[fault]]
kind = "gone"
node = "*"
at = "90m"
""",
        "utf-8",
    )
    sc = load(path)
    assert (sc.facilities, sc.nodes, sc.speed, sc.shape, sc.peak, sc.seed) == (
        3,
        200,
        60.0,
        "morning",
        30.0,
        4,
    )
    assert sc.duration == 7200 and sc.start == "07:00" and sc.gateway_latency == (1.0, 3.0)
    assert (sc.habits.double_scan, sc.habits.damaged, sc.habits.skew) == (0.02, 0.01, -90.0)
    assert sc.faults == {"38001/qr-0003": [Fault("wifi", 1800.0, 900.0)], "*": [Fault("gone", 5400.0, 0.0)]}
    assert sc.facility_codes() == ["38001", "38002", "38003"]
    settings = sc.hall_settings(start=1_000.0)
    assert (settings.speed, settings.start, settings.faults) == (60.0, 1_000.0, sc.faults)


def test_an_empty_scenario_is_the_defaults() -> None:
    assert from_dict({}) == Scenario()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"run": {"nodes": 0}}, "run.nodes: must be at least 1"),
        ({"run": {"nodes": 2.5}}, "run.nodes: expected an integer"),
        ({"run": {"speed": "fast"}}, "run.speed: expected a number"),
        ({"run": {"facilities": True}}, "run.facilities: expected an integer"),
        ({"run": {"facilities": 100}}, "at most 99"),
        ({"run": {"shape": "evening"}}, "run.shape"),
        ({"run": {"start": "25:00"}}, "run.start"),
        ({"run": {"duration": "-3h"}}, "run.duration"),
        ({"run": {"duration": "2 days"}}, "run.duration"),
        ({"run": {"gateway_latency": "3-1"}}, "MIN <= MAX"),
        ({"run": {"nodez": 3}}, "unknown key run.nodez"),
        ({"run": 3}, "[run] must be a table"),
        ({"habits": {"damaged": 2}}, "habits.damaged: a probability"),
        ({"habits": {"luck": 1}}, "unknown key habits.luck"),
        ({"faults": []}, "unknown section 'faults'"),
        ({"fault": {"kind": "wifi"}}, "[[fault]]"),
        ({"fault": [{"kind": "flood", "node": "*", "at": 1}]}, "fault #1.kind"),
        ({"fault": [{"kind": "wifi", "node": "qr-0003", "at": 1, "for": 5}]}, "fault #1.node"),
        ({"fault": [{"kind": "wifi", "node": "38001/QR 3", "at": 1, "for": 5}]}, "fault #1.node"),
        ({"fault": [{"kind": "wifi", "node": "*", "for": 5}]}, "fault #1.at"),
        ({"fault": [{"kind": "wifi", "node": "*", "at": "07:30", "for": 5}]}, "needs run.start"),
        ({"fault": [{"kind": "power", "node": "*", "at": 1}]}, "fault #1.for"),
        ({"fault": [{"kind": "gone", "node": "*", "at": 1, "why": "x"}]}, "unknown key fault #1.why"),
    ],
)
def test_every_mistake_is_named(data: dict[str, object], says: str) -> None:
    with pytest.raises(ScenarioError, match=None) as caught:
        from_dict(data)  # type: ignore[arg-type]
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("1.5h", 5400.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert duration(text, "x") == seconds


def test_a_file_that_is_not_toml_or_missing_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[run\nnodes = \xff")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(bad)
