"""Scenario files: repeatable simulator runs (``cccd-edge sim run --scenario FILE``).

A scenario is TOML. Every key is optional; the command line overrides the file::

    [run]
    facilities = 2            # facility codes 38001, 38002, ... (one broker and collector each)
    nodes = 10                # reader nodes per facility
    speed = 60                # simulated seconds per real second
    start = "07:00"           # simulated local time (UTC+7) at the start; default: now
    duration = "2h"           # simulated; default: until Ctrl-C
    shape = "morning"         # "flat" (the same all day) or "morning" (the 7-9h peak)
    peak = 30                 # patients per counter per simulated hour at the peak
    seed = 1
    gateway_latency = "1-3"   # seconds the fake BHXH gateway takes (real time)

    [habits]                  # what every node does wrong by nature
    double_scan = 0.02        # probability that a code is scanned twice at once
    damaged = 0.01            # probability that a scan is damaged
    skew = 0                  # seconds the nodes' clocks are off

    [[fault]]
    kind = "wifi"             # wifi (link down), power (cut, back after "for"), gone (never back)
    node = "38001/qr-0003"    # facility/device, or "*" for every node
    at = "07:30"              # a local time (needs start), or a duration after the start ("30m")
    for = "15m"               # wifi and power

Durations are a number of seconds or a number with ``s``, ``m`` or ``h``. A mistake is a
``ScenarioError`` naming the key and what is expected.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.hall import FAULT_KINDS, GONE, SHAPES, Fault, HallSettings, NodeHabits

FIRST_FACILITY = 38001  # Thanh Hóa's code range: synthetic facilities 38001, 38002, ...


class ScenarioError(ValueError):
    """The scenario file is missing, not TOML, or has a wrong key or value."""


@dataclass
class Scenario:
    facilities: int = 1
    nodes: int = 20
    speed: float = 1.0
    start: str | None = None  # "HH:MM", local time
    duration: float | None = None  # simulated seconds
    shape: str = "flat"
    peak: float = 1800.0
    seed: int = 0
    gateway_latency: tuple[float, float] = (0.0, 1.0)
    habits: NodeHabits = field(default_factory=NodeHabits)
    faults: dict[str, list[Fault]] = field(default_factory=dict)

    def facility_codes(self) -> list[str]:
        return [str(FIRST_FACILITY + i) for i in range(self.facilities)]

    def hall_settings(self, start: float | None = None, heartbeat: float = 30.0) -> HallSettings:
        return HallSettings(
            speed=self.speed,
            start=start,
            shape=self.shape,
            peak=self.peak,
            heartbeat=heartbeat,
            seed=self.seed,
            habits=self.habits,
            faults=self.faults,
        )


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smh]?)\s*")
_CLOCK = re.compile(r"\s*([01]?[0-9]|2[0-3]):([0-5][0-9])\s*")


def duration(value: object, key: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise ScenarioError(f'{key}: expected a duration like 30, "15m" or "2h", got {value!r}')
    if isinstance(value, int | float):
        if value < 0:
            raise ScenarioError(f"{key}: a duration cannot be negative")
        return float(value)
    found = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if not found:
        raise ScenarioError(f'{key}: expected a duration like 30, "15m" or "2h", got {value!r}')
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]


def clock_minutes(value: object, key: str) -> int:
    found = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if not found:
        raise ScenarioError(f'{key}: expected a local time like "07:30", got {value!r}')
    return int(found.group(1)) * 60 + int(found.group(2))


def latency(value: object, key: str) -> tuple[float, float]:
    text = str(value)
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise ScenarioError(f'{key}: expected seconds like "1-3" or 0.5, got {value!r}') from None
    if not 0 <= pair[0] <= pair[1]:
        raise ScenarioError(f"{key}: needs 0 <= MIN <= MAX")
    return pair


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise ScenarioError(f"{path} is not valid TOML: {exc}") from None
    return from_dict(data)


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"[{name}] must be a table")
    return dict(value)


def _number(run: dict[str, Any], key: str, low: float, kind: type = float) -> Any:
    value = run.pop(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind is int and not isinstance(value, int))
    ):
        raise ScenarioError(
            f"run.{key}: expected a{'n integer' if kind is int else ' number'}, got {value!r}"
        )
    if value < low:
        raise ScenarioError(f"run.{key}: must be at least {low:g}")
    return kind(value)


def from_dict(data: dict[str, Any]) -> Scenario:
    unknown = set(data) - {"run", "habits", "fault"}
    if unknown:
        raise ScenarioError(f"unknown section {sorted(unknown)[0]!r}: use [run], [habits], [[fault]]")
    sc = Scenario()
    run = _section(data, "run")
    for key, low, kind in (
        ("facilities", 1, int),
        ("nodes", 1, int),
        ("speed", 0.001, float),
        ("peak", 0, float),
        ("seed", 0, int),
    ):
        if key in run:
            setattr(sc, key, _number(run, key, low, kind))
    if sc.facilities > 99:
        raise ScenarioError("run.facilities: at most 99")
    if "start" in run:
        start = run.pop("start")
        clock_minutes(start, "run.start")
        sc.start = str(start).strip()
    if "duration" in run:
        sc.duration = duration(run.pop("duration"), "run.duration")
    if "shape" in run:
        shape = run.pop("shape")
        if shape not in SHAPES:
            raise ScenarioError(f"run.shape: one of {', '.join(SHAPES)}, got {shape!r}")
        sc.shape = str(shape)
    if "gateway_latency" in run:
        sc.gateway_latency = latency(run.pop("gateway_latency"), "run.gateway_latency")
    if run:
        raise ScenarioError(f"unknown key run.{sorted(run)[0]}")
    habits = _section(data, "habits")
    h = NodeHabits()
    for key in ("double_scan", "damaged", "skew"):
        if key in habits:
            value = habits.pop(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ScenarioError(f"habits.{key}: expected a number, got {value!r}")
            if key != "skew" and not 0 <= value <= 1:
                raise ScenarioError(f"habits.{key}: a probability from 0 to 1")
            setattr(h, key, float(value))
    if habits:
        raise ScenarioError(f"unknown key habits.{sorted(habits)[0]}")
    sc.habits = h
    faults = data.get("fault", [])
    if not isinstance(faults, list):
        raise ScenarioError("fault: write each as [[fault]]")
    for n, raw in enumerate(faults, start=1):
        key, fault = _fault(raw, n, sc)
        sc.faults.setdefault(key, []).append(fault)
    return sc


def _fault(raw: object, n: int, sc: Scenario) -> tuple[str, Fault]:
    where = f"fault #{n}"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    f = dict(raw)
    kind = f.pop("kind", None)
    if kind not in FAULT_KINDS:
        raise ScenarioError(f"{where}.kind: one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    node = f.pop("node", None)
    if not isinstance(node, str) or not (node == "*" or re.fullmatch(r"[0-9]{5}/[a-z0-9-]{1,32}", node)):
        raise ScenarioError(f'{where}.node: "facility/device" (like "38001/qr-0003") or "*", got {node!r}')
    if "at" not in f:
        raise ScenarioError(f'{where}.at: when, as a local time ("07:30") or after the start ("30m")')
    at_raw = f.pop("at")
    if isinstance(at_raw, str) and ":" in at_raw:
        if sc.start is None:
            raise ScenarioError(f"{where}.at: a local time needs run.start")
        at = 60.0 * (
            (clock_minutes(at_raw, f"{where}.at") - clock_minutes(sc.start, "run.start")) % (24 * 60)
        )
    else:
        at = duration(at_raw, f"{where}.at")
    length = duration(f.pop("for"), f"{where}.for") if "for" in f else 0.0
    if kind != GONE and length <= 0:
        raise ScenarioError(f'{where}.for: how long the {kind} fault lasts ("10m")')
    if f:
        raise ScenarioError(f"unknown key {where}.{sorted(f)[0]}")
    return node, Fault(str(kind), at, length)
