"""Run Python code under the MicroPython WebAssembly port, through node.

The port is the npm package ``@micropython/micropython-webassembly-pyscript`` (pinned in
package.json, installed into ``node_modules`` by ``make test`` / ``npm ci``). One call of
:func:`run` starts one node process running ``mpy_driver.mjs``: it copies the ``.py`` files of the
given mounts into the port's in-memory filesystem, puts the given directories on ``sys.path``
and runs the code. Starting node and loading the port costs about 0.1 s, so run many tests in one
call rather than one call per test.

    result = run("import cccd; print(cccd.__name__)", mounts=[(repo / "cccd", "/lib/cccd")])
    result.check()          # raises MicroPythonError on an uncaught exception
    result.stdout           # 'cccd\\n'

Exceptions::

    MicroPythonError                  anything that kept the code from running to its end
     ├── MicroPythonUnavailable       node or the npm package is missing: run `make test` / `npm ci`
     ├── MicroPythonTimeoutError      the run took longer than its timeout (output so far attached)
     ├── MicroPythonDriverError       node or the driver failed outside the Python program
     └── MicroPythonProgramError      raised by MicroPythonRun.check(): an uncaught exception

An uncaught Python exception is not raised by :func:`run`: it is reported in
:attr:`MicroPythonRun.error` (the traceback) so that the caller sees the output before it.

The port grows its heap on demand (split heap), so ``heapsize`` is the starting size, not a
limit: a test that must fit an ESP32's RAM has to measure ``gc.mem_alloc()`` itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "DEFAULT_HEAPSIZE",
    "DEFAULT_TIMEOUT",
    "DRIVER",
    "PACKAGE",
    "MicroPythonDriverError",
    "MicroPythonError",
    "MicroPythonProgramError",
    "MicroPythonRun",
    "MicroPythonTimeoutError",
    "MicroPythonUnavailable",
    "collect_files",
    "find_node",
    "find_node_modules",
    "find_repo_root",
    "port_module",
    "run",
]

PACKAGE = "@micropython/micropython-webassembly-pyscript"
DRIVER = Path(__file__).with_name("mpy_driver.mjs")
DEFAULT_HEAPSIZE = 1024 * 1024  # the package's own default; the port grows it on demand
DEFAULT_PYSTACK = 2048  # words; the package's default
DEFAULT_TIMEOUT = 120.0  # seconds, node start included

_INSTALL_HINT = "run `make test` (or `npm ci` in the repository root) to install it"


class MicroPythonError(Exception):
    """The code could not be run under MicroPython to its end."""


class MicroPythonUnavailable(MicroPythonError):  # noqa: N818 - the name callers know
    """node or the MicroPython npm package is not installed."""


class MicroPythonDriverError(MicroPythonError):
    """node or the driver failed outside the Python program (it reported no result)."""


class MicroPythonTimeoutError(MicroPythonError):
    """The run took longer than its timeout; ``stdout`` and ``stderr`` hold the output until then."""

    def __init__(self, message: str, *, timeout: float, stdout: str, stderr: str) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


class MicroPythonProgramError(MicroPythonError):
    """The Python program ended with an uncaught exception (see :meth:`MicroPythonRun.check`)."""

    def __init__(self, message: str, run: MicroPythonRun) -> None:
        super().__init__(message)
        self.run = run


@dataclass(frozen=True)
class MicroPythonRun:
    """What one run printed and how it ended."""

    stdout: str
    stderr: str
    error: str | None  # traceback of an uncaught exception (or the port's crash), else None
    error_type: str | None  # the exception's type name, e.g. "AssertionError"
    crashed: bool  # the port itself failed (JavaScript / WebAssembly error)
    load_seconds: float  # loading the port inside node
    run_seconds: float  # running the code
    wall_seconds: float  # the whole call: node start, port load, files, code

    @property
    def ok(self) -> bool:
        return self.error is None

    def check(self) -> MicroPythonRun:
        """Return self if the program ran to its end; raise :class:`MicroPythonProgramError` otherwise."""
        if self.error is not None:
            raise MicroPythonProgramError(f"MicroPython: uncaught exception\n{self.error}", self)
        return self


def find_repo_root(start: Path | None = None) -> Path:
    """The repository root (with pyproject.toml and package.json) at or above ``start``.

    Without ``start``: above this file, then above the working directory.
    """
    starts = [start] if start is not None else [Path(__file__).resolve().parent, Path.cwd()]
    for first in starts:
        for d in (first.resolve(), *first.resolve().parents):
            if (d / "pyproject.toml").is_file() and (d / "package.json").is_file():
                return d
    where = " or ".join(str(s) for s in starts)
    raise MicroPythonUnavailable(
        f"no cccd-edge repository (pyproject.toml + package.json) at or above {where}"
    )


def find_node_modules(root: Path | None = None) -> Path:
    """The ``node_modules`` directory of the repository (which must hold the MicroPython package)."""
    base = root if root is not None else find_repo_root()
    node_modules = base / "node_modules"
    port_module(node_modules)  # raises when the package is missing
    return node_modules


def port_module(node_modules: Path) -> Path:
    """The port's JavaScript entry point inside ``node_modules``."""
    entry = node_modules / PACKAGE / "micropython.mjs"
    if not entry.is_file():
        raise MicroPythonUnavailable(
            f"the MicroPython WebAssembly port is not installed ({entry} is missing): {_INSTALL_HINT}"
        )
    return entry


def find_node() -> str:
    """The node executable on PATH."""
    node = shutil.which("node")
    if node is None:
        raise MicroPythonUnavailable(f"node is not installed (not found on PATH): {_INSTALL_HINT}")
    return node


def collect_files(mounts: Iterable[tuple[Path, str]]) -> list[tuple[str, str]]:
    """The files of ``mounts`` as (path in the MicroPython filesystem, text).

    A mount ``(host, target)`` copies a host directory's ``.py`` files (recursively, without
    ``__pycache__`` and hidden directories) into directory ``target`` keeping their relative
    paths, or one host file (of any name: a data file too; UTF-8 text) into directory ``target``.
    """
    files: dict[str, str] = {}
    for host, target in mounts:
        base = PurePosixPath(target)
        if not base.is_absolute():
            raise ValueError(f"mount target must be an absolute path: {target!r}")
        if host.is_file():
            sources = [(host, base / host.name)]
        elif host.is_dir():
            sources = [
                (p, base.joinpath(*p.relative_to(host).parts))
                for p in sorted(host.rglob("*.py"))
                if not any(
                    part == "__pycache__" or part.startswith(".") for part in p.relative_to(host).parts
                )
            ]
        else:
            raise FileNotFoundError(f"mount source does not exist: {host}")
        for path, dest in sources:
            if str(dest) in files:
                raise ValueError(f"two mounts write {dest}")
            files[str(dest)] = path.read_text(encoding="utf-8")
    return sorted(files.items())


def run(
    code: str,
    *,
    mounts: Sequence[tuple[Path, str]] = (),
    sys_path: Sequence[str] = (),
    heapsize: int = DEFAULT_HEAPSIZE,
    pystack: int = DEFAULT_PYSTACK,
    timeout: float = DEFAULT_TIMEOUT,
    node_modules: Path | None = None,
    node: str | None = None,
) -> MicroPythonRun:
    """Run ``code`` as ``__main__`` under MicroPython in a fresh node process.

    ``mounts`` are copied in first (see :func:`collect_files`); ``sys_path`` entries go right after
    ``''`` on ``sys.path`` (``/lib`` is already on it, so a package mounted at ``/lib/<name>`` needs
    none). An uncaught exception ends up in the result, not raised; see the module docstring for
    what is raised.
    """
    entry = port_module(node_modules if node_modules is not None else find_node_modules())
    node_exe = node if node is not None else find_node()
    if shutil.which(node_exe) is None:
        raise MicroPythonUnavailable(f"node is not installed ({node_exe} not found): {_INSTALL_HINT}")
    job = json.dumps(
        {
            "heapsize": heapsize,
            "pystack": pystack,
            "files": collect_files(mounts),
            "sys_path": list(sys_path),
            "code": code,
        }
    )
    start = time.monotonic()
    with subprocess.Popen(
        [node_exe, str(DRIVER), str(entry)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    ) as proc:
        try:
            out, err = proc.communicate(job, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            events = _parse_events(out, partial=True)
            raise MicroPythonTimeoutError(
                f"MicroPython run timed out after {timeout:g} s",
                timeout=timeout,
                stdout=_joined(events, "stdout"),
                stderr=_joined(events, "stderr"),
            ) from None
    wall = time.monotonic() - start
    events = _parse_events(out, partial=False)
    done = [e for e in events if e.get("event") == "done"]
    if proc.returncode != 0 or not done:
        raise MicroPythonDriverError(
            f"the MicroPython driver failed (node exit status {proc.returncode}):\n{err.strip()}\n"
            f"MicroPython stdout until then:\n{_joined(events, 'stdout')}"
        )
    ready = [e for e in events if e.get("event") == "ready"]
    return MicroPythonRun(
        stdout=_joined(events, "stdout"),
        stderr=_joined(events, "stderr"),
        error=_optional_str(done[0]["error"]),
        error_type=_optional_str(done[0]["error_type"]),
        crashed=bool(done[0]["crashed"]),
        load_seconds=float(ready[0]["load_ms"]) / 1000 if ready else 0.0,
        run_seconds=float(done[0]["run_ms"]) / 1000,
        wall_seconds=wall,
    )


def _parse_events(out: str, *, partial: bool) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    # Split on "\n" only: str.splitlines() also splits on characters that JSON leaves as they are
    # (U+2028, U+2029, U+0085).
    lines = [line for line in out.split("\n") if line]
    for i, line in enumerate(lines):
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if partial and i == len(lines) - 1:
                break  # killed in the middle of a line
            raise MicroPythonDriverError(
                f"the MicroPython driver wrote a line that is not JSON: {line!r}"
            ) from exc
        if not isinstance(event, dict):
            raise MicroPythonDriverError(f"the MicroPython driver wrote an unexpected line: {line!r}")
        events.append(event)
    return events


def _joined(events: list[dict[str, Any]], stream: str) -> str:
    return "".join(str(e["text"]) for e in events if e.get("event") == "out" and e.get("stream") == stream)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
