"""A throwaway PostgreSQL server for tests: initdb in a temporary directory, one free local port.

Debian's ``postgresql`` package puts the server in /usr/lib/postgresql/<version>/bin. PostgreSQL
refuses to run as root, so as root the cluster belongs to the ``postgres`` user (runuser).
"""

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg


class PostgresUnavailableError(RuntimeError):
    pass


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise PostgresUnavailableError(
            "PostgreSQL is not installed: make test installs the Debian package postgresql"
        )
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.bin = _bin_dir()
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip()
            raise PostgresUnavailableError(f"{args[0]} failed: {why}")

    def start(self) -> "PostgresServer":
        self.base.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.base.parent, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError, PostgresUnavailableError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
