"""The embedded broker: a facility's broker without Mosquitto, for the demo and for engineers.

``make demo`` must work on a machine where Mosquitto cannot be installed. This broker is amqtt
(a pure-Python MQTT 3.1.1 broker) configured from the very files ``cccd-edge provision`` writes
for Mosquitto, so that the accounts and their rights are the same on both:

- TLS with the facility's broker certificate and key (``broker/server.crt``, ``server.key``);
- the password file (``broker/passwords``, Mosquitto's ``$7$`` PBKDF2-SHA512 hashes), checked by
  ``MosquittoPasswords``; no anonymous client;
- the ACL file (``broker/acl``: ``user`` blocks of ``topic read|write|readwrite``), applied by
  ``MosquittoAcl`` to every PUBLISH, SUBSCRIBE and delivery — stricter than Mosquitto 2.0, which
  does not check SUBSCRIBE.

Both files are read again when they change (no restart after provisioning a node). What it does
not do that Mosquitto does: persist sessions and retained messages across its own restart (they
live in memory), and enforce ``max_queued_messages``. Production facilities run Mosquitto
(broker_config/mosquitto/README.md); this is the demo's default and a fallback.

Run: ``python -m tools.embroker --broker-dir HOME/broker --port 8883``; it prints
``embedded broker on mqtts://127.0.0.1:PORT`` once it listens, and stops on SIGINT/SIGTERM.
"""

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.brokerfiles import verify_password
from tools.simproc import SimProcess

log = logging.getLogger("cccd.embroker")
_LISTENING = re.compile(r"embedded broker on (mqtts://\S+)")

READ, WRITE = "read", "write"


class _Watched:
    """A file parsed again whenever its modification time changes."""

    def __init__(self, path: Path, parse: Any) -> None:
        self.path = path
        self.parse = parse
        self._stamp: float | None = None
        self.value: Any = parse("")

    def get(self) -> Any:
        try:
            stamp = self.path.stat().st_mtime
        except OSError:
            return self.value
        if stamp != self._stamp:
            self.value = self.parse(self.path.read_text("utf-8"))
            self._stamp = stamp
        return self.value


def parse_passwords(text: str) -> dict[str, str]:
    users = {}
    for line in text.splitlines():
        name, sep, hashed = line.strip().partition(":")
        if sep and name and not name.startswith("#"):
            users[name] = hashed
    return users


def parse_acl(text: str) -> dict[str, list[tuple[str, str]]]:
    """username -> [(access, topic filter)], access ``read``, ``write`` or ``readwrite``."""
    rules: dict[str, list[tuple[str, str]]] = {}
    user: str | None = None
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user" and len(words) == 2:
            user = words[1]
            rules.setdefault(user, [])
        elif words[0] == "topic" and user is not None:
            access, pattern = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            rules[user].append((access, pattern))
    return rules


def matches(topic: str, pattern: str) -> bool:
    """MQTT filter matching; a requested filter with ``+`` matches a pattern's ``+`` only."""
    t, p = topic.split("/"), pattern.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part not in ("+", t[i]):
            return False
    return len(t) == len(p)


def allowed(rules: dict[str, list[tuple[str, str]]], user: str | None, topic: str, access: str) -> bool:
    if user is None:
        return False
    return any(access in a and matches(topic, p) for a, p in rules.get(user, ()))


def _plugins(broker_dir: Path) -> dict[str, Any]:
    from amqtt.contexts import Action  # noqa: PLC0415 - amqtt is imported only where it runs
    from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin  # noqa: PLC0415

    passwords = _Watched(broker_dir / "passwords", parse_passwords)
    acl = _Watched(broker_dir / "acl", parse_acl)

    class MosquittoPasswords(BaseAuthPlugin):  # type: ignore[misc]
        @dataclass
        class Config:
            pass

        async def authenticate(self, *, session: Any) -> bool | None:
            hashed = passwords.get().get(session.username or "")
            ok = bool(hashed) and verify_password(hashed, session.password or "")
            if not ok:
                log.info("refused %s: wrong or unknown account", session.username or "(anonymous)")
            return ok

    class MosquittoAcl(BaseTopicPlugin):  # type: ignore[misc]
        @dataclass
        class Config:
            pass

        async def topic_filtering(
            self, *, session: Any = None, topic: str | None = None, action: Any = None
        ) -> bool | None:
            if topic is None:
                return False
            user = session.username if session is not None else None
            access = WRITE if action == Action.PUBLISH else READ
            ok = allowed(acl.get(), user, topic, access)
            if not ok:
                log.info("denied %s %s on %s", user, action, topic)
            return ok

    module = sys.modules[__name__]
    module.MosquittoPasswords = MosquittoPasswords  # type: ignore[attr-defined]
    module.MosquittoAcl = MosquittoAcl  # type: ignore[attr-defined]
    return {f"{__name__}.MosquittoPasswords": {}, f"{__name__}.MosquittoAcl": {}}


async def serve(broker_dir: Path, host: str, port: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # amqtt's own imports
        from amqtt.broker import Broker  # noqa: PLC0415

    config = {
        "listeners": {
            "default": {
                "type": "tcp",
                "bind": f"{host}:{port}",
                "ssl": True,
                "certfile": str(broker_dir / "server.crt"),
                "keyfile": str(broker_dir / "server.key"),
            }
        },
        "plugins": _plugins(broker_dir),
    }
    broker = Broker(config)
    await broker.start()
    print(f"embedded broker on mqtts://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await broker.shutdown()


class EmbeddedBroker(SimProcess):
    """The embedded broker as a child process (tools/simproc.py's runner), with Mosquitto's
    runner's interface (start, stop, reload, running, output), so the demo runs either."""

    def __init__(self, broker_dir: Path, port: int, log: Path, host: str = "127.0.0.1") -> None:
        super().__init__(
            ["--broker-dir", str(broker_dir), "--host", host, "--port", str(port)],
            log,
            command=[sys.executable, "-m", "tools.embroker"],
            ready=_LISTENING,
        )
        self.port = port

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self) -> None:
        """Nothing to do: the password and ACL files are read again when they change."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.embroker", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--broker-dir", required=True, type=Path, help="the facility home's broker/ directory"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("cccd.embroker").setLevel(logging.INFO)
    asyncio.run(serve(args.broker_dir, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
