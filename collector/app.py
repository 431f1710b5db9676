"""The collector process: store, registry, ingest and the broker connection, run until told to stop.

``Collector`` wires the parts; ``run`` is what ``cccd-edge collector run`` calls. A failing store
stops the process with exit status 1 and nothing acknowledged (a supervisor such as systemd
restarts it; the broker delivers everything again).
"""

import logging
import signal
import threading
import time
from types import FrameType

from collector import config as config_mod
from collector.db import Database, open_db
from collector.ingest import Ingest, purge_personal
from collector.keystore import Keystore, load_kek
from collector.metrics import Metrics
from collector.mqtt import MqttSource
from collector.registry import Registry
from collector.tracker import FleetTracker

log = logging.getLogger("cccd.collector")

RETENTION_EVERY = 3600.0  # seconds between purges of expired personal fields
TICK_EVERY = 5.0  # seconds between heartbeat-silence checks and fleet snapshots
SETTLE = 5.0  # after (re)connecting, let retained statuses arrive before judging silence


class Collector:
    def __init__(self, cfg: config_mod.CollectorConfig) -> None:
        self.cfg = cfg
        self.db: Database = open_db(cfg.store.url)
        self.keystore = Keystore(load_kek(cfg.store.kek_file))
        self.registry = Registry(self.db, self.keystore)
        self.ingest = Ingest(self.db, self.registry, self.keystore)
        self.metrics = Metrics()
        self.tracker = FleetTracker(self.db, self.registry, self.metrics, cfg.heartbeat_interval)
        self.ingest.listeners.append(self.tracker.on_outcomes)
        self.source = MqttSource(cfg.broker, cfg.facilities, self.ingest.handle_batch, cfg.batch_size)

    def run(self, stop: threading.Event) -> int:
        if self.cfg.metrics_port:
            from prometheus_client import start_http_server  # noqa: PLC0415

            start_http_server(self.cfg.metrics_port, self.cfg.metrics_host, registry=self.metrics.registry)
        self.source.start()
        next_purge = next_tick = 0.0
        try:
            while not stop.wait(0.2):
                if self.source.failed is not None:
                    return 1
                now = time.time()
                if now >= next_tick:
                    if (
                        self.source.connected_since is not None
                        and now - self.source.connected_since >= SETTLE
                    ):
                        self.tracker.tick(now)
                    self.tracker.snapshot(now)
                    next_tick = now + TICK_EVERY
                if now >= next_purge:
                    purged = purge_personal(self.db, self.cfg.store.retention_days, now)
                    if purged:
                        log.info("retention: removed the personal fields of %d reads", purged)
                    next_purge = now + RETENTION_EVERY
            return 0
        finally:
            self.source.stop()
            self.db.close()


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
