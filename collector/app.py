"""The collector process: the broker connection here, the store in an ingest worker process.

``Collector`` wires the parts; ``run`` is what ``cccd-edge collector run`` calls. A failing store
(or a dead worker) stops the process with exit status 1 and nothing more acknowledged (a
supervisor such as systemd restarts it; the broker delivers again what was not acknowledged).
"""

import logging
import signal
import threading
import time
from types import FrameType

from prometheus_client import start_http_server

from collector import config as config_mod
from collector.amqp import AmqpSource
from collector.db import Database, open_db
from collector.ingest import Ingest
from collector.keystore import Keystore, load_kek
from collector.metrics import Metrics
from collector.mqtt import MqttSource
from collector.pipeline import StoreFailedError, WorkerStore
from collector.registry import Registry
from collector.tracker import FleetTracker

log = logging.getLogger("cccd.collector")

TICK_EVERY = 5.0  # seconds between heartbeat-silence checks, fleet snapshots and retention


class Parts:
    """What owns the store: database, keystore, registry, ingest, fleet, metrics."""

    def __init__(self, cfg: config_mod.CollectorConfig) -> None:
        self.cfg = cfg
        self.db: Database = open_db(cfg.store.url)
        self.keystore = Keystore(load_kek(cfg.store.kek_file))
        self.registry = Registry(self.db, self.keystore)
        self.ingest = Ingest(self.db, self.registry, self.keystore, first_job=cfg.first_job())
        self.metrics = Metrics()
        self.tracker = FleetTracker(self.db, self.registry, self.metrics, cfg.heartbeat_interval)
        self.ingest.listeners.append(self.tracker.on_outcomes)

    def serve_metrics(self) -> None:
        if self.cfg.metrics_port:
            start_http_server(self.cfg.metrics_port, self.cfg.metrics_host, registry=self.metrics.registry)


class Collector:
    """The broker connection in this process; the store in an ingest worker process."""

    def __init__(self, cfg: config_mod.CollectorConfig) -> None:
        self.cfg = cfg
        # Fail here, with a clear error, on a bad store or key; the worker process opens its own.
        load_kek(cfg.store.kek_file)
        open_db(cfg.store.url).close()
        self.store = WorkerStore(cfg)
        self.source: MqttSource | AmqpSource
        if cfg.broker.transport == "amqp":
            self.source = AmqpSource(
                cfg.broker, cfg.facilities, self.store, cfg.batch_size, 2, cfg.heartbeat_interval
            )
        else:
            self.source = MqttSource(cfg.broker, cfg.facilities, self.store, cfg.batch_size, depth=2)

    def run(self, stop: threading.Event) -> int:
        self.source.start()
        next_tick = 0.0
        try:
            while not stop.wait(0.2):
                if self.source.failed is not None:
                    return 1
                now = time.time()
                if now >= next_tick:
                    since = self.source.connected_since
                    self.store.tick(now, None if since is None else now - since)
                    next_tick = now + TICK_EVERY
            return 0
        except StoreFailedError as exc:
            log.error("%s", exc)
            return 1
        finally:
            self.source.stop()
            self.store.close()


def run(config_path: str) -> int:
    cfg = config_mod.load(config_path)
    collector = Collector(cfg)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("collector for %s started", ", ".join(cfg.facilities))
    return collector.run(stop)
