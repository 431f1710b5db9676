"""The forwarders as the running collector runs them: a thread of the ingest worker process with
its own event loop, store connection and broker connection for the Results.

Results are published at QoS 1 and the job is recorded as done only once the broker has
acknowledged the Result: if the broker is away the job stays queued and its answer is sent again.
"""

import asyncio
import logging
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig
from collector.db import open_db
from collector.forward.answer import Answers
from collector.forward.bhxh import BhxhClient, Officer
from collector.forward.runner import InsuranceRunner
from collector.keystore import Keystore, load_kek
from collector.metrics import Metrics
from collector.registry import Registry

log = logging.getLogger("cccd.collector.forward")

IDLE = 0.05  # seconds between looks at the job queue when it is empty
PUBLISH_TIMEOUT = 10.0


class PublishError(Exception):
    """The broker did not acknowledge a Result in time."""


class ResultPublisher:
    """A broker connection of the collector's account that only publishes Results."""

    def __init__(self, cfg: CollectorConfig) -> None:
        s = cfg.broker
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id + "-results",
            clean_session=True,
        )
        if s.username:
            self.client.username_pw_set(s.username, s.password)
        if s.tls:
            self.client.tls_set(ca_certs=s.ca or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.reconnect_delay_set(1, 30)
        self.client.connect_async(s.host, s.port, keepalive=30)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(PUBLISH_TIMEOUT)
        if not info.is_published():
            raise PublishError("the broker did not acknowledge a Result")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class ForwarderThread(threading.Thread):
    def __init__(self, cfg: CollectorConfig, metrics: Metrics | None = None) -> None:
        super().__init__(name="cccd-forwarders", daemon=True)
        assert cfg.bhxh is not None
        self.cfg = cfg
        self.metrics = metrics
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        cfg, b = self.cfg, self.cfg.bhxh
        assert b is not None
        db = open_db(cfg.store.url)
        keystore = Keystore(load_kek(cfg.store.kek_file))
        publisher = ResultPublisher(cfg)
        client = BhxhClient(b.url, b.username, b.password, timeout=b.timeout, connections=b.concurrency)
        answers = Answers(db, Registry(db, keystore), publisher.publish)
        runner = InsuranceRunner(
            db,
            keystore,
            client,
            Officer(b.officer_name, b.officer_cccd),
            answers,
            concurrency=b.concurrency,
            pending_after=b.pending_after,
            on_alert=self.metrics.alert if self.metrics is not None else None,
        )
        try:
            while not self.stopping.is_set():
                try:
                    runner.dispatch()
                except Exception as exc:  # the store is away: try again soon
                    log.warning("insurance checks paused: %s", exc)
                    await asyncio.sleep(1.0)
                await asyncio.sleep(IDLE)
        finally:
            await client.aclose()
            publisher.close()
            db.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
