"""A facility's RabbitMQ: its definitions from provisioning data, and a local cluster to test on.

RabbitMQ is the broker for sites that need more than one (broker_config/rabbitmq/README.md): the
nodes speak MQTT to its MQTT plugin, exactly as to Mosquitto; the collectors consume over AMQP
from two quorum queues per facility (collector/amqp.py: the reads, competing; the fleet, one
collector at a time) and publish their Results to ``amq.topic``, where the MQTT plugin hands
them to the node.

- ``rabbit_hash``: RabbitMQ's own password hash (``rabbit_password_hashing_sha256``: base64 of a
  4-byte salt and SHA-256(salt + password)); provisioning keeps it beside Mosquitto's, because a
  password is never kept in plaintext and neither hash can be turned into the other.
- ``definitions``: the JSON that ``rabbitmqctl import_definitions`` loads: the virtual host, the
  accounts, their permissions (a device writes only its own topics and reads only its own result
  and config, as in the Mosquitto ACL), the quorum queues and their bindings.
- ``node_conf``: one node's ``rabbitmq.conf``: TLS listeners only, on the given address.
- ``Cluster``: three (or N) nodes of Debian's ``rabbitmq-server`` on this machine, with distinct
  node names, ports and directories, formed by classic peer discovery; ``kill``/``start`` a node.
  For the tests and ``cccd-edge bench cluster``; a site runs one node per machine.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cccd import schema
from collector.amqp import fleet_queue, reads_queue
from tools.brokerfiles import DEVICE_PUBLISHES as INBOUND
from tools.brokerfiles import DEVICE_SUBSCRIBES as OUTBOUND
from tools.ports import free_ports

VHOST = "cccd"
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


class RabbitError(RuntimeError):
    """A RabbitMQ node did not start, or a command to it failed; the message has its output."""


# --- accounts ---------------------------------------------------------------------------------------


def rabbit_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` form of ``password``."""
    salt = secrets.token_bytes(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("RabbitMQ's salt is 4 bytes")
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode("ascii")


def rabbit_verify(hashed: str, password: str) -> bool:
    raw = base64.b64decode(hashed)
    return secrets.compare_digest(rabbit_hash(password, raw[:4]), hashed)


def _alternatives(words: Iterable[str]) -> str:
    return "(" + "|".join(re.escape(w) for w in words) + ")"


def _own_topics(facility: str, device: str, kinds: Iterable[str]) -> str:
    return rf"^cccd\.v1\.{facility}\.{re.escape(device)}\.{_alternatives(kinds)}$"


def definitions(
    facility: str,
    devices: Sequence[str],
    collector: str,
    hashes: Mapping[str, str],
    vhost: str = VHOST,
) -> dict[str, Any]:
    """The definitions of one facility on RabbitMQ (``rabbitmqctl import_definitions``).

    ``hashes``: username -> ``rabbit_hash`` for the collector and every active device; a device
    without one is refused here (it could not log in)."""
    missing = [name for name in [collector, *devices] if name not in hashes]
    if missing:
        raise RabbitError(
            "no RabbitMQ password hash for " + ", ".join(missing[:5]) + ": provision them again "
            "(`cccd-edge provision rotate`) so that the hash is kept"
        )
    for device in devices:
        schema.topic(facility, device, "read")  # the contract's rules for a device id
    users = [
        {
            "name": name,
            "password_hash": hashes[name],
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "",
        }
        for name in [collector, *devices]
    ]
    queues = (reads_queue(facility), fleet_queue(facility))
    permissions = [
        {  # reads its facility's queues; publishes Results and settings to amq.topic; declares nothing
            "user": collector,
            "vhost": vhost,
            "configure": "^$",
            "write": r"^amq\.topic$",
            "read": "^" + _alternatives(queues) + "$",
        }
    ]
    topic_permissions = [
        {
            "user": collector,
            "vhost": vhost,
            "exchange": "amq.topic",
            "write": rf"^cccd\.v1\.{facility}\.[a-z0-9-]+\.{_alternatives(OUTBOUND)}$",
            "read": "^$",
        }
    ]
    for device in devices:
        # the MQTT plugin names a client's subscription queues mqtt-subscription-<client id>qos<n>
        own_queue = "^mqtt-subscription-" + re.escape(device) + "qos[01]$"
        permissions.append(
            {
                "user": device,
                "vhost": vhost,
                "configure": own_queue,
                "write": own_queue[:-1] + r"|^amq\.topic$",
                "read": own_queue[:-1] + r"|^amq\.topic$",
            }
        )
        topic_permissions.append(
            {
                "user": device,
                "vhost": vhost,
                "exchange": "amq.topic",
                "write": _own_topics(facility, device, INBOUND),
                "read": _own_topics(facility, device, OUTBOUND),
            }
        )
    return {
        "rabbit_version": "3.10.8",
        "vhosts": [{"name": vhost}],
        "users": users,
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "queues": [
            {
                "name": reads_queue(facility),
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            },
            {  # one collector keeps the fleet at a time (collector/amqp.py)
                "name": fleet_queue(facility),
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum", "x-single-active-consumer": True},
            },
        ],
        "exchanges": [],
        "bindings": [
            {
                "source": "amq.topic",
                "vhost": vhost,
                "destination": reads_queue(facility) if kind == "read" else fleet_queue(facility),
                "destination_type": "queue",
                "routing_key": f"cccd.v1.{facility}.*.{kind}",
                "arguments": {},
            }
            for kind in INBOUND
        ],
        # RabbitMQ 3.10 keeps a node's MQTT session (its result and config subscriptions) in a
        # classic queue on the cluster node it first connected to; if that node dies, the device
        # cannot subscribe anywhere else until it returns. Mirrored on every node, the queue is
        # promoted on a survivor instead. (Classic mirroring is gone in RabbitMQ 4, where the
        # plugin's sessions no longer have this limit.)
        "policies": [
            {
                "vhost": vhost,
                "name": "cccd-mqtt-sessions",
                "pattern": "^mqtt-subscription-",
                "apply-to": "queues",
                "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"},
                "priority": 0,
            }
        ],
        "parameters": [],
        "global_parameters": [],
    }


# --- a node's configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePorts:
    amqp: int  # AMQP over TLS (the collectors)
    mqtt: int  # MQTT over TLS (the reader nodes)
    dist: int  # Erlang distribution, between the cluster's nodes


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def node_conf(ports: NodePorts, tls: Tls, cluster: Sequence[str], bind: str = "127.0.0.1") -> str:
    """One node's ``rabbitmq.conf``: TLS listeners on ``bind`` only, and the cluster's members."""
    lines = [
        "# cccd-edge: written by tools/rabbitmq.py (see broker_config/rabbitmq/README.md)",
        "listeners.tcp = none",
        f"listeners.ssl.default = {bind}:{ports.amqp}",
        f"ssl_options.cacertfile = {tls.ca}",
        f"ssl_options.certfile = {tls.cert}",
        f"ssl_options.keyfile = {tls.key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
        "mqtt.listeners.tcp = none",
        f"mqtt.listeners.ssl.default = {bind}:{ports.mqtt}",
        "mqtt.allow_anonymous = false",
        f"mqtt.vhost = {VHOST}",
        "mqtt.exchange = amq.topic",
        # a node that stores reads must never be paused by a memory alarm it cannot clear
        "vm_memory_high_watermark.relative = 0.4",
        "disk_free_limit.absolute = 200MB",
        "cluster_formation.peer_discovery_backend = classic_config",
        *(f"cluster_formation.classic_config.nodes.{i + 1} = {name}" for i, name in enumerate(cluster)),
        "cluster_partition_handling = pause_minority",
        "log.console = false",
        "log.file.level = info",
        "",
    ]
    return "\n".join(lines)


# --- a local cluster ---------------------------------------------------------------------------------


def available() -> str | None:
    """Why a local cluster cannot run here, or None."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("rabbitmq")
        except KeyError:
            return "there is no user rabbitmq to run the nodes as"
    return None


class Cluster:
    """N RabbitMQ nodes on 127.0.0.1, started as the user ``rabbitmq`` when run as root."""

    def __init__(self, base: Path, tls: Tls, size: int = 3, name: str = "") -> None:
        self.base = base
        self.size = size
        # node names are machine-wide (epmd): a random part keeps two runs from colliding
        name = name or f"cccd-{secrets.token_hex(3)}-"
        self.names = [f"{name}{i + 1}@localhost" for i in range(size)]
        ports = free_ports(3 * size)  # the distribution's too: by default AMQP's + 20000, maybe taken
        self.ports = [NodePorts(*ports[3 * i : 3 * i + 3]) for i in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self._user = "rabbitmq" if os.geteuid() == 0 else None
        self._uid, self._gid = (-1, -1)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
        self._prepare(tls)

    # --- files -------------------------------------------------------------------------------

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._uid, self._gid)

    def _prepare(self, tls: Tls) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            closed = [p for p in self.base.resolve().parents if not p.stat().st_mode & 0o001]
            if closed:
                raise RabbitError(
                    f"the user {self._user} cannot reach {self.base}: {closed[0]} is closed to others "
                    "(chmod o+x it, or put the cluster elsewhere)"
                )
        os.chmod(self.base, 0o755)
        self._own(self.base)
        cookie = self.base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        os.chmod(cookie, 0o400)
        self._own(cookie)
        own_tls = Tls(self.base / "ca.pem", self.base / "server.pem", self.base / "server.key")
        for src, dst in ((tls.ca, own_tls.ca), (tls.cert, own_tls.cert), (tls.key, own_tls.key)):
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600 if dst.suffix == ".key" else 0o644)
            self._own(dst)
        (self.base / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self._own(self.base / "enabled_plugins")
        for i in range(self.size):
            d = self.node_dir(i)
            for sub in (d, d / "mnesia", d / "log"):
                sub.mkdir(parents=True, exist_ok=True)
                self._own(sub)
            conf = d / "rabbitmq.conf"
            conf.write_text(node_conf(self.ports[i], own_tls, self.names))
            self._own(conf)

    def node_dir(self, i: int) -> Path:
        return self.base / f"node{i + 1}"

    def _env(self, i: int) -> dict[str, str]:
        d = self.node_dir(i)
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TERM") or k.startswith("LC_")
        }
        env.update(
            HOME=str(self.base),  # the CLI and the node find the cluster's cookie here
            RABBITMQ_NODENAME=self.names[i],
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_DIST_PORT=str(self.ports[i].dist),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(d / "feature_flags"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> Cluster:
        """Start every node (they form the cluster together) and wait until all run in it."""
        for i in range(self.size):
            self.start_node(i, wait=False)
        for i in range(self.size):
            self.await_node(i, timeout)
        deadline = time.monotonic() + timeout
        while len(self.running()) < self.size:
            if time.monotonic() > deadline:
                raise RabbitError(f"the cluster did not form: running {self.running()}")
            time.sleep(1)
        return self

    def start_node(self, i: int, wait: bool = True, timeout: float = 120.0) -> None:
        log = self.node_dir(i) / "server.out"
        with log.open("ab") as out:
            self.procs[i] = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                env=self._env(i),
                user=self._user,
                group=self._user,
                start_new_session=True,  # the node's Erlang processes form a group of their own
            )
        if wait:
            self.await_node(i, timeout)

    def await_node(self, i: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self.procs[i]
            if proc is None or proc.poll() is not None:
                raise RabbitError(f"{self.names[i]} exited: {self.output(i)[-2000:]}")
            done = self.ctl(i, "await_startup", "--timeout", "5", check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RabbitError(
                    f"{self.names[i]} did not start in {timeout:.0f} s: {self.output(i)[-2000:]}"
                )
            time.sleep(0.5)

    def output(self, i: int) -> str:
        parts = []
        for path in (self.node_dir(i) / "server.out", self.node_dir(i) / "log" / f"{self.names[i]}.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text("utf-8", "replace"))
        return "\n".join(parts)

    def ctl(
        self, i: int, *args: str, check: bool = True, tool: str = "rabbitmqctl"
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(RABBIT_BIN / tool), "-n", self.names[i], *args],
            capture_output=True,
            text=True,
            env=self._env(i),
            user=self._user,
            group=self._user,
            cwd=self.base,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise RabbitError(
                f"{tool} {' '.join(args)} on {self.names[i]}: {(done.stderr or done.stdout).strip()}"
            )
        return done

    def running(self) -> list[str]:
        """The nodes that a live node sees running in the cluster."""
        for i in self.alive():
            done = self.ctl(i, "cluster_status", "--formatter", "json", check=False)
            if done.returncode == 0:
                with contextlib.suppress(ValueError):
                    return list(json.loads(done.stdout).get("running_nodes", []))
        return []

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is None]

    def import_definitions(self, data: Mapping[str, Any]) -> None:
        path = self.base / "definitions.json"
        path.write_text(json.dumps(data, indent=2))
        os.chmod(path, 0o600)
        self._own(path)
        self.ctl(self.alive()[0], "import_definitions", str(path))

    def quorum_status(self, queue: str, vhost: str = VHOST) -> list[dict[str, Any]]:
        """One row per member of a quorum queue (its node, its Raft state); [] if none answers."""
        for i in self.alive():
            done = self.ctl(
                i,
                "quorum_status",
                queue,
                "-p",
                vhost,
                "--formatter",
                "json",
                tool="rabbitmq-queues",
                check=False,
            )
            with contextlib.suppress(ValueError):
                rows = json.loads(done.stdout)
                if isinstance(rows, list):
                    return [row for row in rows if isinstance(row, dict)]
        return []

    def queue_members(self, queue: str, vhost: str = VHOST) -> list[str]:
        return [str(row.get("Node Name")) for row in self.quorum_status(queue, vhost)]

    def kill(self, i: int) -> None:
        """SIGKILL a node's whole process group: as a power cut does to a broker machine."""
        proc = self.procs[i]
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.procs[i] = None

    def stop(self) -> None:
        for i in self.alive():
            proc = self.procs[i]
            assert proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(i)
            self.procs[i] = None
        # the nodes' epmd outlives them; it is harmless, and shared with any other Erlang on the machine
