"""A real Mosquitto for the integration tests, configured by tools/brokerfiles.py.

``Broker`` writes a facility broker's files (CA, server certificate, passwords, ACL, the production
``mosquitto.conf`` with TLS on a free localhost port plus the loopback plain listener) into a
directory, starts ``mosquitto -c`` as a child process, and waits until it completes a verified TLS
handshake. It knows the accounts it created: devices in two facilities and one collector per
facility. ``reload()`` sends SIGHUP (Mosquitto re-reads its password file and ACL), ``restart()``
stops it cleanly (it saves its store) and starts it again on the same ports.

``Peer`` is a paho-mqtt (MQTT v5) client that records what happens to it, so that tests can wait
for a CONNACK, a PUBACK's reason code, a SUBACK or a message, each with a timeout.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tools import brokerfiles as bf
from tools.mosquitto import MOSQUITTO, Mosquitto, MosquittoError
from tools.ports import free_ports

HOST = "localhost"
FACILITY = "38001"
OTHER_FACILITY = "38002"
# Devices by facility: two in the first (so that one can try to pass for the other), one in the second.
DEVICES = ((FACILITY, "qr-0001"), (FACILITY, "qr-0002"), (OTHER_FACILITY, "qr-0101"))
START_TIMEOUT = 5.0
WAIT = 5.0  # the longest wait for something that must happen
NEVER_SESSION_EXPIRY = 0xFFFFFFFF  # MQTT v5: the session never expires (the broker may cap it)


class BrokerError(RuntimeError):
    """Mosquitto did not start, or stopped unexpectedly; the message holds its log."""


@dataclass(frozen=True)
class Account:
    """A broker login: a device (username = device id) or a facility's collector."""

    username: str
    password: str
    facility: str


class Broker:
    """A Mosquitto child process with the cccd-edge configuration, TLS, passwords and ACL on."""

    def __init__(self, directory: Path, *, mtls: bool = False) -> None:
        self.dir = directory
        self.mtls = mtls
        self.host = HOST
        self.port = 0
        self.plain_port = 0
        self.paths = bf.BrokerPaths.under(directory)
        self.ca = bf.make_ca(FACILITY)
        self.ca_path = self.paths.cafile
        self.log_path = directory / "mosquitto.log"
        self.devices = {d: Account(d, bf.new_password(), f) for f, d in DEVICES}
        self.collectors = {
            f: Account(bf.collector_username(f), bf.new_password(), f) for f in (FACILITY, OTHER_FACILITY)
        }
        self._server = bf.make_server_cert(self.ca, [HOST], ["127.0.0.1"])
        self._mosquitto: Mosquitto | None = None

    # --- files ----------------------------------------------------------------------------------

    def _conf(self) -> str:
        listener = bf.ListenerOptions(
            port=self.port, bind_address="127.0.0.1", mtls=self.mtls, local_port=self.plain_port
        )
        conf = bf.mosquitto_conf(self.paths, listener, facility=FACILITY, log_dest=f"file {self.log_path}")
        # Mosquitto started as root drops to the user `mosquitto`, which cannot read a test's
        # temporary directory: run it as whoever runs the tests (ignored when that is not root).
        return conf + f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"

    @staticmethod
    def _account_files(devices: Iterable[Account], collectors: Iterable[Account]) -> tuple[str, str]:
        devices, collectors = list(devices), list(collectors)
        acl = bf.acl_text(
            [(a.facility, a.username) for a in devices], [(a.username, a.facility) for a in collectors]
        )
        passwords = bf.password_lines({a.username: a.password for a in [*devices, *collectors]})
        return acl, passwords

    def write_accounts(self, devices: Iterable[Account], collectors: Iterable[Account]) -> None:
        """Rewrite the password file and ACL for exactly these accounts (then ``reload()``)."""
        acl, passwords = self._account_files(devices, collectors)
        bf.write_file_atomic(self.paths.acl_file, acl, bf.PUBLIC_MODE)
        bf.write_file_atomic(self.paths.password_file, passwords, bf.SECRET_MODE)

    def revoke(self, username: str) -> None:
        """Remove one account from the password file and ACL, as ``provision revoke`` does, and reload."""
        self.write_accounts(
            [a for a in self.devices.values() if a.username != username],
            [a for a in self.collectors.values() if a.username != username],
        )
        self.reload()

    def _write_all(self) -> None:
        acl, passwords = self._account_files(self.devices.values(), self.collectors.values())
        bf.write_broker_dir(
            self.paths,
            conf=self._conf(),
            acl=acl,
            passwords=passwords,
            ca_cert_pem=self.ca.cert_pem,
            server=self._server,
        )

    # --- process --------------------------------------------------------------------------------

    def start(self) -> None:
        """Pick free ports, write every file, start Mosquitto and wait until it speaks TLS."""
        for attempt in range(3):
            self.port, self.plain_port = free_ports(2)
            self._write_all()
            try:
                self._spawn()
                return
            except BrokerError:
                if attempt == 2 or "Address already in use" not in self.log():
                    raise

    def _spawn(self) -> None:
        self._mosquitto = Mosquitto(self.paths.conf, self.port, self.ca_path, self.host, self.log_path)
        self._mosquitto.out = self.dir / "mosquitto.out"
        try:
            self._mosquitto.start(START_TIMEOUT)
        except MosquittoError as exc:
            raise BrokerError(str(exc)) from None

    def served_certificate(self) -> str:
        """The certificate the TLS listener presents now, as PEM."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        with (
            socket.create_connection((self.host, self.port), timeout=WAIT) as raw,
            context.wrap_socket(raw, server_hostname=self.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return ssl.DER_cert_to_PEM_cert(der)

    def stop(self) -> None:
        """Stop Mosquitto cleanly (SIGTERM: it saves its store), killing it if it hangs."""
        if self._mosquitto is not None:
            self._mosquitto.stop()

    def restart(self) -> None:
        """Stop cleanly and start again on the same ports with the same files and store."""
        self.stop()
        self._spawn()

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its configuration, password file and ACL. Returns once it has,
        so what a client sends after this meets the new files."""
        assert self.running, "the broker is not running"
        try:
            self._mosquitto.reload(WAIT)  # type: ignore[union-attr]
        except MosquittoError as exc:
            raise BrokerError(str(exc)) from None

    @property
    def running(self) -> bool:
        return self._mosquitto is not None and self._mosquitto.running

    def log(self) -> str:
        """Mosquitto's log and what it printed on the console."""
        parts = [
            p.read_text("utf-8", "replace") for p in (self.dir / "mosquitto.out", self.log_path) if p.exists()
        ]
        return "\n".join(parts)

    # --- clients --------------------------------------------------------------------------------

    def broker_settings(self, account: Account) -> dict[str, Any]:
        """The ``broker`` section of a node configuration file (docs/PROTOCOL.md §7) for ``account``."""
        return {
            "host": self.host,
            "port": self.port,
            "tls": True,
            "ca": self.ca.cert_pem,
            "username": account.username,
            "password": account.password,
        }


def start_broker(directory: Path, *, mtls: bool = False) -> Broker:
    """A started broker in ``directory``; skips the test when Mosquitto is not installed."""
    if not shutil.which(MOSQUITTO):
        pytest.fail("mosquitto is not installed: `make test` installs it (apt-get install mosquitto)")
    broker = Broker(directory, mtls=mtls)
    broker.start()
    return broker


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class _State:
    connack: ReasonCode | None = None
    session_present: bool = False
    closed: bool = False
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)


class Peer:
    """An MQTT v5 client over TLS (or plain TCP) that records CONNACK, acknowledgements and messages."""

    def __init__(
        self,
        broker: Broker,
        username: str | None,
        password: str | None,
        *,
        client_id: str = "",
        tls: bool = True,
        ca_path: Path | None = None,
        cert: tuple[Path, Path] | None = None,
        port: int | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> None:
        self.broker = broker
        self.port = port if port is not None else (broker.port if tls else broker.plain_port)
        self.messages: queue.Queue[Message] = queue.Queue()
        self._state = _State()
        self._cond = threading.Condition()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls:
            certfile, keyfile = (str(cert[0]), str(cert[1])) if cert else (None, None)
            self._client.tls_set(ca_certs=str(ca_path or broker.ca_path), certfile=certfile, keyfile=keyfile)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # paho callbacks run in paho's network thread.

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._state.connack = reason
            self._state.session_present = bool(flags.session_present)
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        with self._cond:
            self._state.closed = True
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._state.pubacks[mid] = reason
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self._state.subacks[mid] = reasons
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self._cond:
            if not self._cond.wait_for(ready, timeout):
                raise TimeoutError(f"no {what} within {timeout} s")

    # --- connection -----------------------------------------------------------------------------

    def attempt(self, *, clean_start: bool = True, session_expiry: int = 0) -> str:
        """Connect and return what happened: paho's CONNACK reason ("Success", "Not authorized", ...),
        ``closed`` when the broker hung up without a CONNACK, or ``tls: <error>`` when the TLS
        handshake failed on our side."""
        v5 = self._client.protocol == MQTTProtocolVersion.MQTTv5
        props = Properties(PacketTypes.CONNECT) if v5 else None  # type: ignore[no-untyped-call]
        if props is not None:
            props.SessionExpiryInterval = session_expiry
        try:
            if v5:
                self._client.connect(
                    self.broker.host, self.port, keepalive=30, clean_start=clean_start, properties=props
                )
            else:
                self._client.connect(self.broker.host, self.port, keepalive=30)
        except OSError as exc:  # ssl.SSLError included
            _close_sockets_of(exc)
            return f"{'tls' if isinstance(exc, ssl.SSLError) else 'socket'}: {exc}"
        self._client.loop_start()
        self._wait(lambda: self._state.connack is not None or self._state.closed, "CONNACK")
        connack = self._state.connack
        return "closed" if connack is None else str(connack)

    def connect(self, *, clean_start: bool = True, session_expiry: int = 0) -> Peer:
        """Connect and insist on success."""
        outcome = self.attempt(clean_start=clean_start, session_expiry=session_expiry)
        if outcome != "Success":
            raise AssertionError(f"connection refused: {outcome}\n{self.broker.log()}")
        return self

    @property
    def session_present(self) -> bool:
        return self._state.session_present

    @property
    def closed(self) -> bool:
        return self._state.closed

    def wait_closed(self, timeout: float = WAIT) -> None:
        self._wait(lambda: self._state.closed, "disconnection", timeout)

    def close(self) -> None:
        """Disconnect (normally: no Last Will) and stop paho's thread."""
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()

    # --- traffic --------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> str:
        """Publish; for QoS 1 wait for the PUBACK and return its reason ("Success", "Not authorized")."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            info.wait_for_publish(WAIT)
            return "Success"
        self._wait(lambda: info.mid in self._state.pubacks, f"PUBACK for {topic}")
        return str(self._state.pubacks[info.mid])

    def subscribe(self, topic: str, qos: int = 1) -> str:
        """Subscribe and return the SUBACK's reason ("Granted QoS 1", "Not authorized", ...)."""
        _rc, mid = self._client.subscribe(topic, qos=qos)
        assert mid is not None
        self._wait(lambda: mid in self._state.subacks, f"SUBACK for {topic}")
        return str(self._state.subacks[mid][0])

    def next_message(self, timeout: float = WAIT) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None

    def until(self, topic: str, payload: bytes, timeout: float = WAIT) -> list[Message]:
        """Every message received up to and including (``topic``, ``payload``), in order.

        A barrier for negative checks: Mosquitto handles each client's packets in order and
        delivers to a subscriber in order, so a message that would have been delivered before the
        barrier message is in this list if it was delivered at all.
        """
        seen: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next_message(max(0.0, deadline - time.monotonic()))
            seen.append(msg)
            if msg.topic == topic and msg.payload == payload:
                return seen

    def drain(self, wait: float) -> list[Message]:
        """Whatever arrives within ``wait`` seconds."""
        seen: list[Message] = []
        deadline = time.monotonic() + wait
        with contextlib.suppress(TimeoutError):
            while (left := deadline - time.monotonic()) > 0:
                seen.append(self.next_message(left))
        return seen


def _close_sockets_of(exc: BaseException) -> None:
    """Close the sockets a failed connect left open in its frames.

    paho-mqtt 2.2 does not close the socket of a failed TLS handshake; left to the garbage
    collector it raises a ResourceWarning, which this test suite turns into an error.
    """
    tb = exc.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, socket.socket):
                value.close()
        tb = tb.tb_next


class Peers:
    """Creates peers for one test and closes them all at its end."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._all: list[Peer] = []

    def new(self, account: Account | None, **kwargs: Any) -> Peer:
        """A peer for ``account`` (None: anonymous), not yet connected."""
        username = account.username if account else None
        password = account.password if account else None
        peer = Peer(self.broker, username, password, **kwargs)
        self._all.append(peer)
        return peer

    def connect(
        self,
        account: Account,
        *,
        client_id: str = "",
        clean_start: bool = True,
        session_expiry: int = 0,
        **kwargs: Any,
    ) -> Peer:
        """A connected peer for ``account`` (the connection must succeed)."""
        return self.new(account, client_id=client_id, **kwargs).connect(
            clean_start=clean_start, session_expiry=session_expiry
        )

    def close_all(self) -> None:
        for peer in self._all:
            peer.close()
        self._all.clear()
