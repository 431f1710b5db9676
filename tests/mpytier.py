"""The MicroPython test tier's machinery (tests/test_micropython_tier.py uses it).

1. :func:`discover` reads every core test module (``test_*.py`` / ``*_test.py`` in tests/core, or
   the directory named by ``$CCCD_MPY_CORE_TESTS``) with :mod:`ast`, without importing it, and
   lists one :class:`Case` per top-level ``test*`` function, as pytest would collect them. What
   pytest would collect but MicroPython cannot run (a test with arguments, an ``async def``, a
   ``Test*`` class, a module in a subdirectory, a module that does not parse) becomes a case with
   a ``problem``, which fails: nothing is dropped silently.
2. :func:`run_cases` runs the selected cases in ONE MicroPython process: the port starts once per
   pytest session, not once per test. tests/mpy/harness.py imports each module, calls each test
   and prints one report line per test; this module reads them back into an :class:`Outcome` per
   case. A case without a report (the run crashed or timed out) fails with the reason.

Inside MicroPython: cccd/ is at /lib/cccd and firmware/ at /lib/firmware (as on the device), the
harness at /tier-harness, the core tests at /tier-tests, the firmware's tests (tests/firmware, run
with the core tests unless ``$CCCD_MPY_CORE_TESTS`` names another directory) at /tier-firmware,
tests/mpy/stubs (the ``cryptolib`` stand-in) at /tier-stubs and
the data files the core tests read (``DATA_FILES``) at their repository paths under "/";
tracebacks are rewritten to the host paths so that they point at the files.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tools import micropython

REPO = Path(__file__).resolve().parent.parent
CORE_DIR_ENV = "CCCD_MPY_CORE_TESTS"  # directory of the core tests to run (default tests/core)
TIMEOUT_ENV = "CCCD_MPY_TIMEOUT"  # seconds for the whole tier, node start included
DEFAULT_TIMEOUT = 600.0
HEAPSIZE = 4 * 1024 * 1024  # starting heap; the port grows it on demand
MARK = "\x1ecccd-mpy:"  # tests/mpy/harness.py's report prefix

HARNESS = REPO / "tests" / "mpy" / "harness.py"
STUBS = REPO / "tests" / "mpy" / "stubs"
CCCD = REPO / "cccd"
FIRMWARE = REPO / "firmware"
FIRMWARE_TESTS = REPO / "tests" / "firmware"


@dataclass(frozen=True)
class Case:
    """One core test function, to be run under MicroPython."""

    module: str  # module name, e.g. "test_cbor"
    test: str  # function name, e.g. "test_roundtrip" ("" for a problem of the whole module)
    problem: str | None = None  # why it cannot run under MicroPython; the case then fails

    @property
    def id(self) -> str:
        return f"{self.module}.py::{self.test}" if self.test else f"{self.module}.py"


@dataclass(frozen=True)
class Outcome:
    """How one case ended under MicroPython."""

    ok: bool
    message: str = ""  # failure report: exception, traceback, the test's output
    output: str = ""  # what the test printed


def load_stub(name: str) -> ModuleType:
    """A stand-in from tests/mpy/stubs, loaded under CPython as ``_stub_<name>``.

    Never as ``<name>`` itself: cccd imports ``cryptolib`` when it can, so a stand-in importable
    under its own name would replace the ``cryptography`` package in every CPython test.
    """
    spec = importlib.util.spec_from_file_location(f"_stub_{name}", STUBS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def core_dir() -> Path:
    return Path(os.environ.get(CORE_DIR_ENV) or REPO / "tests" / "core").resolve()


def tier_dirs() -> list[Path]:
    """The directories of tests the tier runs: the core tests, and the firmware's by default."""
    return [core_dir()] if os.environ.get(CORE_DIR_ENV) else [core_dir(), FIRMWARE_TESTS]


def tier_timeout() -> float:
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)


def _is_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def discover(core: Path) -> list[Case]:
    """The cases of every core test module under ``core``, in file and source order."""
    if not core.is_dir():
        raise FileNotFoundError(f"no core test directory {core} (${CORE_DIR_ENV})")
    cases: list[Case] = []
    for path in sorted(core.rglob("*.py")):
        if not _is_test_file(path.name) or "__pycache__" in path.parts:
            continue
        module = path.stem
        if path.parent != core:
            rel = path.relative_to(core)
            cases.append(Case(str(rel.with_suffix("")), "", f"core tests must sit directly in {core}"))
            continue
        cases.extend(_module_cases(module, path))
    return cases


def _module_cases(module: str, path: Path) -> list[Case]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        return [Case(module, "", f"{path.name} does not parse: {exc}")]
    found: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            a = node.args
            takes = a.posonlyargs or a.args or a.vararg or a.kwonlyargs or a.kwarg
            found[node.name] = (
                "takes arguments (pytest fixtures?); core tests take none, so MicroPython can run them"
                if takes
                else None
            )
        elif isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test"):
            found[node.name] = "is async; core tests are plain functions"
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found[node.name] = "is a test class; core tests are top-level functions"
    return [Case(module, name, problem) for name, problem in found.items()]


# The directories' names hold a "-" so that none of them can be imported as a namespace package
# from '' (the working directory, "/"), which MicroPython keeps first on sys.path.
SYS_PATH = ("/tier-harness", "/tier-tests", "/tier-firmware", "/tier-stubs")


def _places(core: Path) -> list[tuple[Path, str]]:
    return [
        (CCCD, "/lib/cccd"),
        (FIRMWARE, "/lib/firmware"),
        (FIRMWARE_TESTS, "/tier-firmware"),
        (HARNESS.parent, "/tier-harness"),
        (core, "/tier-tests"),
        (STUBS, "/tier-stubs"),
    ]


# Data files that core tests read, at the same path under "/" as in the repository.
DATA_FILES = (REPO / "docs" / "contract-vectors.json",)


def _mounts(core: Path) -> list[tuple[Path, str]]:
    mounts = [(HARNESS if target == "/tier-harness" else host, target) for host, target in _places(core)]
    mounts += [(f, "/" + f.parent.relative_to(REPO).as_posix()) for f in DATA_FILES if f.is_file()]
    return mounts


def _host_paths(text: str, core: Path) -> str:
    for host, target in _places(core):
        text = text.replace(f'File "{target}/', f'File "{host}/')
    return text


def run_cases(cases: Sequence[Case], core: Path, *, timeout: float | None = None) -> dict[Case, Outcome]:
    """Run ``cases`` under MicroPython in one process; an :class:`Outcome` for every case.

    Raises :class:`tools.micropython.MicroPythonError` when MicroPython cannot run at all
    (not installed, driver failure); a timeout or a crash fails the unreported cases instead.
    """
    outcomes: dict[Case, Outcome] = {
        c: Outcome(False, f"{c.id}: {c.problem}") for c in cases if c.problem is not None
    }
    runnable = [c for c in cases if c.problem is None]
    if not runnable:
        return outcomes
    plan: dict[str, list[str]] = {}
    for c in runnable:
        plan.setdefault(c.module, []).append(c.test)
    code = f"import harness\nharness.run({sorted(plan.items())!r})\n"
    limit = timeout if timeout is not None else tier_timeout()
    try:
        result = micropython.run(
            code, mounts=_mounts(core), sys_path=SYS_PATH, heapsize=HEAPSIZE, timeout=limit
        )
        stdout, stopped = result.stdout, None
        if result.error is not None:
            stopped = f"the MicroPython run ended with an uncaught exception:\n{result.error}"
    except micropython.MicroPythonTimeoutError as exc:
        stdout, stopped = exc.stdout, f"the MicroPython run timed out after {limit:g} s (${TIMEOUT_ENV})"
    reports = _read_reports(stdout)
    for c in runnable:
        outcomes[c] = _outcome(c, reports, stopped, core)
    return outcomes


@dataclass
class _Reports:
    imported: dict[str, dict[str, object]]  # module → its "imported" record
    results: dict[tuple[str, str], dict[str, object]]  # (module, test) → its "result" record
    output: dict[tuple[str, str], str]  # (module, test or "") → what it printed
    begun: set[tuple[str, str]]  # (module, test or "") started
    ended: bool  # the harness got to its end


def _read_reports(stdout: str) -> _Reports:
    reports = _Reports({}, {}, {}, set(), ended=False)
    current = ("", "")
    # Split on "\n" only: str.splitlines() would also split on MARK's own "\x1e".
    for line in re.findall(r"[^\n]*\n|[^\n]+\Z", stdout):
        text, mark, payload = line.partition(MARK)
        if text:
            reports.output[current] = reports.output.get(current, "") + text
        if not mark:
            continue
        record = json.loads(payload)
        kind = record["k"]
        if kind == "import":
            current = (record["module"], "")
            reports.begun.add(current)
        elif kind == "imported":
            reports.imported[record["module"]] = record
        elif kind == "begin":
            current = (record["module"], record["test"])
            reports.begun.add(current)
        elif kind == "result":
            reports.results[(record["module"], record["test"])] = record
            current = ("", "")
        elif kind == "end":
            reports.ended = True
    return reports


def _failure_text(record: dict[str, object], core: Path) -> str:
    head = f"{record['type']}: {record['message']}" if record["message"] else str(record["type"])
    # The harness's own frame says nothing about the failure.
    frames = "\n".join(s for s in str(record["traceback"]).split("\n") if 'File "/tier-harness/' not in s)
    return f"{head}\n{_host_paths(frames, core)}".rstrip("\n")


def _with_output(message: str, output: str) -> str:
    if output:
        message += f"\n----- output under MicroPython -----\n{output.rstrip()}"
    return message


def _outcome(case: Case, reports: _Reports, stopped: str | None, core: Path) -> Outcome:
    key = (case.module, case.test)
    output = reports.output.get(key, "")
    imported = reports.imported.get(case.module)
    if imported is not None and not imported["ok"]:
        message = f"{case.module}.py failed to import under MicroPython: " + _failure_text(imported, core)
        return Outcome(False, _with_output(message, reports.output.get((case.module, ""), "")))
    record = reports.results.get(key)
    if record is not None:
        if record["ok"]:
            return Outcome(True, output=output)
        message = f"{case.id} failed under MicroPython: " + _failure_text(record, core)
        return Outcome(False, _with_output(message, output), output)
    if key in reports.begun or ((case.module, "") in reports.begun and imported is None):
        where = "while running this test" if key in reports.begun else "while importing its module"
        why = stopped or "the MicroPython harness stopped without reporting it"
        return Outcome(False, _with_output(f"{case.id}: no result from MicroPython {where}: {why}", output))
    why = stopped or (
        "the harness ended without reporting it" if reports.ended else "the harness stopped early"
    )
    return Outcome(False, f"{case.id}: MicroPython never reported this test: {why}")
