"""The Raspberry Pi node's link to the facility broker: sealed reads out of the outbox, results in.

``Uplink.submit`` seals a Read (COSE_Encrypt0 with the node's up key, its sequence number from the
outbox) and keeps it in the outbox; ``Uplink.run`` connects (TLS, the node's account, the contract's
Last Will), announces ``online`` and its Inventory (both retained), sends a Telemetry heartbeat,
publishes every pending read in order at QoS 1 and removes each only after its PUBACK, and hands
every Result for this node to ``on_result``. A lost connection is retried with capped, jittered
backoff; reads wait in the outbox meanwhile, across restarts too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from cccd import envelope, keys, schema
from cccd.errors import CoreError

from .outbox import Outbox

log = logging.getLogger(__name__)

FIRMWARE = "cccd-edge-agent 0.1"


@dataclass(frozen=True)
class NodeConfig:
    """The node configuration file that provisioning writes (DESIGN.md)."""

    device: str
    facility: str
    host: str
    port: int
    tls: bool
    ca: str
    username: str
    password: str
    secret: bytes
    pseudonym_secret: bytes
    site: str = ""

    def __repr__(self) -> str:  # secrets never in logs
        return f"NodeConfig(device={self.device!r}, facility={self.facility!r})"

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> NodeConfig:
        broker = cfg["broker"]
        return cls(
            cfg["device"],
            cfg["facility"],
            broker["host"],
            int(broker["port"]),
            bool(broker.get("tls", True)),
            broker.get("ca", ""),
            broker["username"],
            broker["password"],
            bytes.fromhex(cfg["secret"]),
            bytes.fromhex(cfg["pseudonym_secret"]),
            str(cfg.get("site", ""))[:100],
        )

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def topic(self, kind: str) -> str:
        return schema.topic(self.facility, self.device, kind)


def _now_ms() -> int:
    return int(time.time() * 1000)


def hardware() -> str:
    """The board's model (a Raspberry Pi names itself in the device tree), else the machine type."""
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")[:64]
    except OSError:
        return f"linux-{platform.machine()}"[:64]


class Uplink:
    """``readers``: the Inventory's reader list; ``counters()``: the Telemetry's ``reads``, ``rej``
    and ``rdr`` fields; a heartbeat every ``heartbeat`` seconds."""

    def __init__(
        self,
        config: NodeConfig,
        outbox: Outbox,
        on_result: Callable[[dict[str, Any]], None] = lambda r: None,
        *,
        readers: list[dict[str, Any]] | None = None,
        counters: Callable[[], dict[str, Any]] = dict,
        heartbeat: float = 60.0,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.on_result = on_result
        self.readers = readers if readers is not None else [{"type": "nfc", "model": "PC/SC", "std": True}]
        self.counters = counters
        self.heartbeat = heartbeat
        self._started = time.monotonic()
        self._keys = keys.derive(config.secret)
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()

    def submit(self, build: Callable[[int], dict[str, Any]]) -> int:
        """Seal the Read that ``build(seq)`` returns and keep it until the broker has it."""
        seq = self.outbox.next_seq()
        topic = self.config.topic("read")
        payload = schema.encode("read", build(seq))
        sealed = envelope.seal(
            self._keys.up_key, self._keys.up_iv, self.config.device.encode(), seq, topic, payload
        )
        self.outbox.append(seq, sealed)
        self._wake.set()
        return seq

    def _client(self) -> aiomqtt.Client:
        tls = None
        if self.config.tls:
            tls = ssl.create_default_context(cadata=self.config.ca or None)
        will = schema.encode("status", schema.status("offline", self.outbox.boot, _now_ms()))
        return aiomqtt.Client(
            self.config.host,
            self.config.port,
            username=self.config.username,
            password=self.config.password,
            identifier=self.config.device,
            tls_context=tls,
            will=aiomqtt.Will(self.config.topic("status"), will, qos=1, retain=True),
        )

    async def run(self) -> None:
        """Connect, deliver and listen, reconnecting until cancelled."""
        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    attempt = 0
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                attempt += 1
                delay = random.uniform(0, 1.5 ** min(10, attempt))
                log.warning("broker connection lost (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _session(self, client: aiomqtt.Client) -> None:
        online = schema.encode("status", schema.status("online", self.outbox.boot, _now_ms()))
        await client.publish(self.config.topic("status"), online, qos=1, retain=True)
        await client.subscribe(self.config.topic("result"), qos=1)
        inventory = schema.inventory(hardware(), self.readers, fw=FIRMWARE, site=self.config.site or None)
        await client.publish(
            self.config.topic("inventory"), schema.encode("inventory", inventory), qos=1, retain=True
        )
        self.connected.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._telemetry(client), name=f"uplink[{self.config.device}].telemetry")
            tg.create_task(self._deliver(client), name=f"uplink[{self.config.device}].deliver")
            tg.create_task(self._receive(client), name=f"uplink[{self.config.device}].receive")

    async def _telemetry(self, client: aiomqtt.Client) -> None:
        while True:
            beat = schema.telemetry(
                int(time.monotonic() - self._started),
                self.outbox.boot,
                q=len(self.outbox),
                drop=self.outbox.dropped_since_boot,
                fw=FIRMWARE,
                **self.counters(),
            )
            await client.publish(self.config.topic("telemetry"), schema.encode("telemetry", beat), qos=0)
            await asyncio.sleep(self.heartbeat)

    async def _deliver(self, client: aiomqtt.Client) -> None:
        topic = self.config.topic("read")
        while True:
            self._wake.clear()
            for seq, sealed in self.outbox.pending():
                await client.publish(topic, sealed, qos=1)  # returns on PUBACK
                self.outbox.ack(seq)
            if not self.outbox.pending(1):
                await self._wake.wait()

    async def _receive(self, client: aiomqtt.Client) -> None:
        def down_key(_facility: str, _kid: bytes) -> tuple[bytes, bytes]:
            return self._keys.down_key, self._keys.down_iv

        async for message in client.messages:
            topic = str(message.topic)
            try:
                opened = envelope.open_on_topic(bytes(message.payload), topic, down_key)
                result = schema.decode("result", opened.plaintext)
            except (CoreError, ValueError, TypeError) as exc:  # a bad message is dropped, never fatal
                log.warning("result on %s refused: %s", topic, type(exc).__name__)
                continue
            self.on_result(result)
