"""Run the collector as a child process (demo, benchmarks, tests) and know when it is ready.

``CollectorProcess(config, log).start()`` runs ``cccd-edge collector run --config CONFIG`` with its
output in ``log``; ``wait_subscribed()`` returns once the collector has logged the broker's SUBACK
(before that the broker keeps nothing for it); ``kill()`` is SIGKILL, ``stop()`` SIGTERM (SIGKILL if
it hangs).
"""

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = (sys.executable, "-m", "tools.cli")
# collector/mqtt.py logs "subscribed to N topic filters" on SUBACK; collector/amqp.py "consuming the
# reads of ... from RabbitMQ" once its consumers are registered
READY = ("topic filters", "from RabbitMQ")


class CollectorStartError(RuntimeError):
    """The collector exited, was refused, or did not subscribe in time; the message has its log."""


class CollectorProcess:
    def __init__(self, config: Path, log: Path, command: Sequence[str] = COMMAND) -> None:
        self.config = config
        self.log = log
        self.command = list(command)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "CollectorProcess":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.command, "collector", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def output(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")
        except OSError:
            return ""

    def wait_subscribed(self, count: int = 1, timeout: float = 30.0) -> None:
        """Until the ``count``-th SUBACK since the log began (one per start of the collector)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.output()
            if sum(text.count(marker) for marker in READY) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise CollectorStartError(f"the collector exited with {self.proc.returncode}: {text[-2000:]}")
            if "refused" in text:
                raise CollectorStartError(f"the broker refused the collector: {text[-2000:]}")
            if time.monotonic() > deadline:
                raise CollectorStartError(
                    f"the collector did not subscribe within {timeout:g} s: {text[-2000:]}"
                )
            time.sleep(0.05)

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
