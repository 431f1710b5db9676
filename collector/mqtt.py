"""MQTT in: the collector's edge to the broker (paho-mqtt 2.x, manual acknowledgement).

The session outlives the process: a fixed client id with ``clean_session=False``, so the broker
keeps queueing QoS 1 messages while the collector is down and delivers again whatever it had
sent but not seen acknowledged. Messages are acknowledged only after ``Ingest`` committed them:
paho's ``manual_ack=True`` and ``Client.ack(mid, qos)``, in the order they arrived (MQTT requires
PUBACKs in order).

paho's network thread only queues messages; one dispatch thread takes them in batches (up to
``batch_size``, or what arrived within a few milliseconds), hands each to a ``Store``
(``collector.pipeline``) to be committed in one transaction, and acknowledges a batch once the
store says it is committed. With the ingest worker process up to ``depth`` batches are in flight,
so receiving and committing overlap; acknowledgements still follow commits, in order.
"""

import logging
import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import BrokerSettings
from collector.ingest import INBOUND, Message
from collector.pipeline import Store

log = logging.getLogger("cccd.collector.mqtt")

_STOP = object()
GATHER = 0.005  # seconds a batch waits for more messages


def subscriptions(facilities: Sequence[str], shared_group: str) -> list[str]:
    """The topic filters of a collector serving ``facilities``."""
    filters = [f"cccd/v1/{facility}/+/{kind}" for facility in facilities for kind in INBOUND]
    if shared_group:
        return [f"$share/{shared_group}/{f}" for f in filters]
    return filters


class MqttSource:
    """Connects, subscribes, batches deliveries into ``handler`` and acknowledges after it returns."""

    def __init__(
        self,
        settings: BrokerSettings,
        facilities: Sequence[str],
        store: Store,
        batch_size: int = 200,
        depth: int = 1,
    ) -> None:
        self.settings = settings
        self.filters = subscriptions(facilities, settings.shared_group)
        self.store = store
        self.batch_size = batch_size
        self.depth = depth
        self.connected_since: float | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name="cccd-collector-ingest", daemon=True)
        self._failed: BaseException | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # --- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        client.subscribe([(f, 1) for f in self.filters])
        s = self.settings
        log.info("connected to %s:%d as %s", s.host, s.port, s.client_id)
        self.connected_since = time.time()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        refused = [f for f, r in zip(self.filters, reasons, strict=False) if r.is_failure]
        if refused:
            log.error(
                "the broker refused the subscriptions %s: check the collector's ACL", ", ".join(refused)
            )
        else:
            log.info("subscribed to %d topic filters", len(self.filters))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected_since = None
        log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Message(msg.topic, bytes(msg.payload), time.time(), (msg.mid, msg.qos)))

    # --- the worker ---------------------------------------------------------------------------

    def _gather(self, block: bool) -> list[Message] | None:
        """The next batch: [] if nothing came (when not blocking), None when told to stop."""
        try:
            first = self._queue.get(timeout=None if block else GATHER)
        except queue.Empty:
            return []
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.monotonic() + GATHER
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _work(self) -> None:
        inflight: deque[list[Message]] = deque()
        try:
            while True:
                batch = self._gather(block=not inflight)
                if batch is None:
                    while inflight:
                        self._commit_oldest(inflight)
                    return
                if batch:
                    self.store.submit(batch)
                    inflight.append(batch)
                if inflight and (len(inflight) >= self.depth or not batch):
                    self._commit_oldest(inflight)
        except BaseException as exc:  # the store failed: acknowledge nothing more, stop
            log.error("could not store the messages: %s", exc)
            self._failed = exc
            self.client.disconnect()

    def _commit_oldest(self, inflight: deque[list[Message]]) -> None:
        self.store.wait()
        for message in inflight.popleft():
            mid, qos = message.token
            self.client.ack(mid, qos)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def failed(self) -> BaseException | None:
        return self._failed
