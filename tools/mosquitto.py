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
    def __init__(self, conf: Path, port: int, ca: Path, host: str = "localhost") -> None:
        self.conf = conf
        self.port = port
        self.ca = ca
        self.host = host
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
                raise MosquittoError(f"mosquitto exited with {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise MosquittoError(f"mosquitto did not serve TLS on port {self.port}: {self.output()}")
            time.sleep(0.02)
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
        try:
            return self.out.read_text("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def reload(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)

    def stop(self) -> None:
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
