"""AMQP in and Results out: the collector's edge to a RabbitMQ cluster (pika).

Where a site runs RabbitMQ instead of Mosquitto (broker_config/rabbitmq/README.md), the reader
nodes still speak MQTT, to RabbitMQ's MQTT plugin; what they publish lands, by the plugin's
topic-to-routing-key rule ('/' becomes '.'), in two quorum queues per facility, replicated on a
majority of the cluster's nodes:

- ``cccd.v1.<facility>.reads``: the reads. Every collector consumes it: competing consumers,
  each read goes to one of them, and a read whose collector died unacknowledged goes to another
  (the store's key makes a second delivery harmless: it is counted as a duplicate).
- ``cccd.v1.<facility>.fleet``: status, telemetry and inventory, with a single active consumer:
  one collector keeps the fleet (heartbeat silence needs every heartbeat in one place); when it
  dies another takes over, from the presence kept in the store.

``AmqpSource`` has the shape of ``collector.mqtt.MqttSource``: batches to a ``Store``,
acknowledged (``basic.ack`` with ``multiple``) only after the store committed them, in order.
``connected_since`` is the time since this collector began keeping the fleet (the caller judges
heartbeat silence only then); ``None`` while another collector keeps it.

``AmqpResultPublisher`` publishes Results to ``amq.topic`` with publisher confirms, from the
forwarders' event loop (pika's asyncio adapter), where the MQTT plugin hands them to the node.
Both try the cluster's nodes in turn (``[broker] nodes``) and move to another when theirs dies.
"""

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.asyncio_connection import AsyncioConnection

from collector.config import BrokerSettings
from collector.forward.answer import PublishError
from collector.ingest import Message
from collector.pipeline import Store

log = logging.getLogger("cccd.collector.amqp")

GATHER = 0.005  # seconds a batch waits for more messages
RETRY = 1.0  # seconds between rounds of connection attempts
FLEET_KINDS = ("status", "telemetry", "inventory")


def reads_queue(facility: str) -> str:
    return f"cccd.v1.{facility}.reads"


def fleet_queue(facility: str) -> str:
    return f"cccd.v1.{facility}.fleet"


_SWAP = str.maketrans({"/": ".", ".": "/"})


def routing_key(topic: str) -> str:
    """The routing key RabbitMQ's MQTT plugin gives an MQTT topic ('/' and '.' swapped)."""
    return topic.translate(_SWAP)


def mqtt_topic(key: str) -> str:
    """The MQTT topic of a routing key (the inverse of ``routing_key``)."""
    return key.translate(_SWAP)


def connection_parameters(s: BrokerSettings, heartbeat: int = 30) -> list[pika.ConnectionParameters]:
    """One set of parameters per cluster node, in the order they are tried."""
    credentials = pika.PlainCredentials(s.username, s.password)
    out = []
    for node in s.nodes:
        host, _, port = node.rpartition(":")
        ssl_options = None
        if s.tls:
            context = ssl.create_default_context(cafile=s.ca or None)
            ssl_options = pika.SSLOptions(context, host)
        out.append(
            pika.ConnectionParameters(
                host=host,
                port=int(port),
                virtual_host=s.vhost,
                credentials=credentials,
                ssl_options=ssl_options,
                heartbeat=heartbeat,
                connection_attempts=1,
                socket_timeout=5,
                blocked_connection_timeout=60,
            )
        )
    return out


class QueueMissingError(Exception):
    """A facility's queue is not on the cluster: its definitions were not imported."""


class AmqpSource:
    """Consumes a facility's reads (competing) and fleet messages (single active consumer)."""

    def __init__(
        self,
        settings: BrokerSettings,
        facilities: Sequence[str],
        store: Store,
        batch_size: int = 200,
        depth: int = 1,
        heartbeat_interval: float = 30.0,
    ) -> None:
        self.settings = settings
        self.facilities = list(facilities)
        self.store = store
        self.batch_size = batch_size
        self.depth = depth
        self.params = connection_parameters(settings)
        self.fleet_gap = 2 * heartbeat_interval  # no fleet message for this long: another keeps it
        self.connected_since: float | None = None
        self._fleet_last = 0.0
        self._arrived: list[Message] = []  # token: the delivery tag
        self._stopping = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cccd-collector-amqp", daemon=True)

    # --- the consumer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                connection = pika.BlockingConnection(self.params)
            except pika.exceptions.AMQPError as exc:
                log.warning("no RabbitMQ node answered (%s); trying again", type(exc).__name__)
                self._stopping.wait(RETRY)
                continue
            try:
                self._consume(connection)
            except QueueMissingError as exc:
                log.error("%s", exc)
                self._stopping.wait(5 * RETRY)
            except (pika.exceptions.AMQPError, OSError, ssl.SSLError) as exc:
                log.warning("lost the RabbitMQ node (%s); moving to another", type(exc).__name__)
            except BaseException as exc:  # the store failed: acknowledge nothing more, stop
                log.error("could not store the messages: %s", exc)
                self._failed = exc
                self._stopping.set()
            finally:
                self.connected_since = None
                with contextlib.suppress(Exception):
                    connection.close()

    def _on_message(self, _ch: Any, method: Any, _props: Any, body: bytes) -> None:
        topic = mqtt_topic(method.routing_key)
        self._arrived.append(Message(topic, body, time.time(), method.delivery_tag))
        if topic.rsplit("/", 1)[-1] in FLEET_KINDS:
            now = time.time()
            if self.connected_since is None or now - self._fleet_last > self.fleet_gap:
                self.connected_since = now  # this collector keeps the fleet from now on
            self._fleet_last = now

    def _consume(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self.settings.prefetch)
        for facility in self.facilities:
            for queue in (reads_queue(facility), fleet_queue(facility)):
                try:
                    channel.queue_declare(queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    raise QueueMissingError(
                        f"the queue {queue} is not on the cluster: import the facility's definitions "
                        "(broker_config/rabbitmq/README.md)"
                    ) from None
                channel.basic_consume(queue, self._on_message)
        log.info("consuming the reads of %s from RabbitMQ", ", ".join(self.facilities))
        inflight: deque[int] = deque()  # the last delivery tag of each batch handed to the store
        self._arrived = []
        try:
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=GATHER if inflight else 0.2)
                arrived, self._arrived = self._arrived, []
                for start in range(0, len(arrived), self.batch_size):
                    chunk = arrived[start : start + self.batch_size]
                    self.store.submit(chunk)
                    inflight.append(chunk[-1].token)
                while inflight and (len(inflight) >= self.depth or not arrived):
                    self.store.wait()
                    channel.basic_ack(inflight.popleft(), multiple=True)
                if self.connected_since is not None and time.time() - self._fleet_last > self.fleet_gap:
                    self.connected_since = None  # the fleet went quiet here: another collector has it
        finally:
            # batches handed to the store are committed whatever happens to the channel; what was
            # not acknowledged, RabbitMQ delivers again (to us or another collector)
            acked = channel.is_open
            while inflight:
                self.store.wait()
                tag = inflight.popleft()
                if acked:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        channel.basic_ack(tag, multiple=True)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    @property
    def failed(self) -> BaseException | None:
        return self._failed


class AmqpResultPublisher:
    """Results to ``amq.topic`` with publisher confirms, from the running event loop."""

    def __init__(self, settings: BrokerSettings, timeout: float = 10.0) -> None:
        self.params = connection_parameters(settings)
        self.timeout = timeout
        self._connection: AsyncioConnection | None = None
        self._channel: Any = None
        self._ready: asyncio.Future[None] | None = None
        self._tag = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}

    async def _open(self) -> Any:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        if self._ready is None or self._ready.done():
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            AsyncioConnection.create_connection(self.params, self._on_connection, custom_ioloop=loop)
        await asyncio.wait_for(asyncio.shield(self._ready), self.timeout)
        return self._channel

    def _fail_ready(self, why: str) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(PublishError(why))

    def _on_connection(self, result: Any) -> None:
        if not isinstance(result, AsyncioConnection):
            self._fail_ready(f"no RabbitMQ node answered ({type(result).__name__})")
            return
        self._connection = result
        result.add_on_close_callback(self._on_closed)
        result.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        channel.add_on_close_callback(self._on_closed)

        def confirming(_frame: Any) -> None:
            self._channel = channel
            self._tag = 0
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)

        channel.confirm_delivery(self._on_confirm, callback=confirming)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            [t for t in self._waiting if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        refused = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            future = self._waiting.pop(tag, None)
            if future is not None and not future.done():
                if refused:
                    future.set_exception(PublishError("RabbitMQ refused a Result"))
                else:
                    future.set_result(None)

    def _on_closed(self, _what: Any, reason: Any) -> None:
        log.warning("the Results' RabbitMQ connection closed (%s)", reason)
        self._channel = None
        self._fail_ready(str(reason))
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(PublishError("the RabbitMQ connection closed before the confirm"))
        if self._connection is not None and not self._connection.is_closed:
            with contextlib.suppress(Exception):
                self._connection.close()

    async def publish(self, topic: str, payload: bytes) -> None:
        try:
            channel = await self._open()
        except TimeoutError:
            raise PublishError("no RabbitMQ node could be reached for the Results") from None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tag += 1
        self._waiting[self._tag] = future
        channel.basic_publish("amq.topic", routing_key(topic), payload, pika.BasicProperties(delivery_mode=2))
        try:
            await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise PublishError("RabbitMQ did not confirm a Result") from None

    async def aclose(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            with contextlib.suppress(Exception):
                self._connection.close()
