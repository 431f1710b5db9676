"""Run a fake of the outside world (``cccd-edge sim bhxh``, ``sim his``), or another serving
command (``web run``), as a child process and learn where it listens.

The benchmarks run the fakes apart from the virtual nodes that measure latency: in one process
their hundreds of HTTP threads would compete for one interpreter lock with the nodes' MQTT
threads, and the nodes' clocks would measure that contention instead of the collector. The real
gateway and HIS are other machines; a process of their own is the nearer picture.

``SimProcess(["sim", "bhxh", "--username", ...], log).start()`` starts it on a free port and returns
once it printed where it listens (``url``: the first match of ``ready``); ``stop()`` sends Ctrl-C
(SIGINT) and waits.
"""

import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tools.collectorproc import COMMAND, ROOT

LISTENING = re.compile(r" (?:on|at) ((?:http|mllp)://\S+)")


class SimStartError(RuntimeError):
    """The fake exited or did not say where it listens in time; the message has its output."""


class SimProcess:
    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        command: Sequence[str] = COMMAND,
        ready: re.Pattern[str] = LISTENING,
    ) -> None:
        self.args = list(args)
        self.ready = ready
        self.log = log
        self.command = list(command)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def _name(self) -> str:
        """What the child is, for an error: ``tools.cli sim bhxh``, ``tools.embroker --broker-dir``."""
        return " ".join([*self.command[-1:], *self.args[:2]])

    def output(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> "SimProcess":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.command, *self.args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        deadline = time.monotonic() + timeout
        while True:
            found = self.ready.search(self.output())
            if found:
                self.url = found.group(1).rstrip(".,;/")
                return self
            if self.proc.poll() is not None:
                raise SimStartError(f"`{self._name()}` exited with {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SimStartError(f"`{self._name()}` did not start in {timeout:g} s: {self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
