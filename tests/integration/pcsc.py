"""pcscd with vsmartcard's vpcd driver, started for a test and stopped after it.

pcscd (Debian's, run as root in the foreground) reads a reader.conf.d of our own that declares the
vpcd reader on a free TCP port (pcscd listens on it and the next one, one per slot), so a system
pcscd's virtual reader is never ours. Only one pcscd runs per machine (its socket is
/run/pcscd/pcscd.comm whatever the environment says), so runs of this tier take a file lock.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import pytest

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SOCKET = Path("/run/pcscd/pcscd.comm")
_LOCK = Path("/tmp/cccd-edge-pcscd.lock")


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports")


class Pcscd:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.reader = "Virtual PCD 00 00"
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "pcscd.log"

    def start(self) -> Pcscd:
        if not shutil.which("pcscd") or not VPCD_DRIVER.exists():
            pytest.fail(
                "pcscd and vpcd are not installed: `make test` installs them (pcscd, vsmartcard-vpcd)"
            )
        self._lock = _LOCK.open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        if (
            SOCKET.exists()
            and subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True, check=False).returncode == 0
        ):
            pytest.fail("a pcscd not started by this test is running; stop it to run the PC/SC tier")
        SOCKET.unlink(missing_ok=True)
        self.port = _free_port_pair()
        conf = self.directory / "reader.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "vpcd").write_text(
            f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x{self.port:04X}\n'
            f"LIBPATH {VPCD_DRIVER}\nCHANNELID 0x{self.port:04X}\n"
        )
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            ["pcscd", "--foreground", "--debug", "--config", str(conf)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while b"daemon ready" not in self.log_path.read_bytes():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"pcscd did not start:\n{self.log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        return self

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None
