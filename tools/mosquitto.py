"""Run a Mosquitto broker from a configuration file as a child process (demo, bench, tests).

``Mosquitto(conf, port, ca)`` starts ``mosquitto -c conf`` and returns once the broker completes a
verified TLS handshake on ``port`` (so it is really serving, not just started). ``reload()`` sends
SIGHUP (the broker re-reads passwords and ACL), ``stop()`` ends it cleanly (it saves its store),
``kill()`` ends it with SIGKILL.
"""

import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class MosquittoError(RuntimeError):
    """The broker did not start or stopped unexpectedly; the message holds its output."""


class Mosquitto:
    """``log``: the file the configuration's ``log_dest`` names, if any (``reload`` watches it)."""

    def __init__(
        self, conf: Path, port: int, ca: Path, host: str = "localhost", log: Path | None = None
    ) -> None:
        self.conf = conf
        self.port = port
        self.ca = ca
        self.host = host
        self.log = log
        self.out = conf.with_suffix(".out")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT, cwd=self.conf.parent
            )
        deadline = time.monotonic() + timeout
        while not self._serving():
            if self.proc.poll() is not None:
                why = self.output()[-2000:]
                raise MosquittoError(f"mosquitto exited with {self.proc.returncode}: {why}")
            if time.monotonic() > deadline:
                self.kill()
                raise MosquittoError(
                    f"mosquitto did not serve TLS on port {self.port}: {self.output()[-2000:]}"
                )
            time.sleep(0.01)
        return self

    def _serving(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname=self.host),
            ):
                return True
        except OSError:
            return False

    def output(self) -> str:
        """What Mosquitto printed and logged."""
        parts = [
            p.read_text("utf-8", "replace") for p in (self.out, self.log) if p is not None and p.exists()
        ]
        return "\n".join(parts)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP: re-read the configuration, passwords and ACL. With a log, returns once it has
        (Mosquitto logs "Reloading config." and reloads before it serves a socket again)."""
        if self.proc is None:
            raise MosquittoError("the broker is not running")
        before = self.output().count("Reloading config.")
        self.proc.send_signal(signal.SIGHUP)
        if self.log is None:
            time.sleep(0.2)
            return
        deadline = time.monotonic() + timeout
        while self.output().count("Reloading config.") <= before:
            if time.monotonic() > deadline:
                raise MosquittoError(f"mosquitto did not reload: {self.output()[-2000:]}")
            time.sleep(0.005)

    def stop(self) -> None:
        """SIGTERM (Mosquitto saves its store), SIGKILL if it hangs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
