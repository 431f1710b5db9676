"""The fleet as the running collector keeps it: ``collector.fleet``'s rules fed by ingest, kept in
the store, and shown as metrics.

``FleetTracker.on_outcomes`` is an ingest listener (called after each batch's commit): it counts
reads and rejections, feeds status births and deaths and heartbeats to ``Presence``, and saves
the state of every device that changed (table ``presence_state``, one JSON document per device),
so a restarted collector continues where it stopped. ``tick`` applies heartbeat silence; the
caller ticks only while its own broker connection is up (otherwise every device would look
silent). ``snapshot`` joins the registry, presence and the latest telemetry and inventory.
"""

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cccd import schema
from collector import fleet
from collector.db import Database
from collector.ingest import REJECTED, STORED, Outcome
from collector.metrics import Metrics
from collector.registry import Registry

# Closed intervals kept (in memory and in presence_state): this month and all of the last (two
# months are at most 62 days), whose report is due by the 15th (seed 000); 40 days lost its first
# days by then.
KEEP_HISTORY = 62 * 86400.0


class FleetTracker:
    def __init__(self, db: Database, registry: Registry, metrics: Metrics, heartbeat: float) -> None:
        self.db = db
        self.registry = registry
        self.metrics = metrics
        self.presence = self._load(heartbeat)
        # (facility, device, kind) -> (payload, decoded): ``latest`` decodes only what changed
        self._decoded: dict[tuple[str, str, str], tuple[bytes, dict[str, Any]]] = {}

    def _load(self, heartbeat: float) -> fleet.Presence:
        presence = fleet.Presence(heartbeat=heartbeat)
        for facility, device, body in self.db.query("SELECT facility, device, body FROM presence_state"):
            presence.devices[(facility, device)] = fleet.DeviceState.from_dict(json.loads(body))
        return presence

    # --- fed by ingest ------------------------------------------------------------------------

    def on_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        now = time.time()
        changed: set[fleet.DeviceKey] = set()
        reads: Counter[tuple[str, str, str]] = Counter()
        rejects: Counter[tuple[str, str]] = Counter()
        for o in outcomes:
            key = (o.facility, o.device)
            if o.status == REJECTED:
                rejects[(o.facility or "unknown", o.reason)] += 1
            elif o.status == STORED:
                reads[(o.facility, o.body["doc"], o.body["src"])] += 1
                self.metrics.observe_ingest(now - o.message.received)
            elif o.kind == "status":
                b = o.body
                self.presence.on_status(key, b["state"], b["boot"], b["ts"], o.message.received)
                changed.add(key)
            elif o.kind == "telemetry":
                self.presence.on_telemetry(key, o.body["boot"], o.message.received)
                changed.add(key)
        for (facility, doc, src), n in reads.items():
            # Counted as pending: the insurance check gives each read its final outcome.
            self.metrics.read(facility, doc, src, "pending", n)
        for (facility, reason), n in rejects.items():
            self.metrics.reject(facility, reason, n)
        self._save(changed)

    def reload(self) -> None:
        """Take the presence from the store again: another collector kept the fleet meanwhile
        (RabbitMQ's single active consumer, collector.amqp); harmless otherwise, every change
        being saved as it happens."""
        self.presence = self._load(self.presence.heartbeat)

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.presence.prune(now - KEEP_HISTORY)
        self._save({change.key for change in self.presence.tick(now)})

    def _save(self, keys: set[fleet.DeviceKey]) -> None:
        if not keys:
            return
        with self.db.transaction() as tx:
            for facility, device in sorted(keys):
                body = json.dumps(self.presence.devices[(facility, device)].to_dict())
                tx.execute("DELETE FROM presence_state WHERE facility = ? AND device = ?", (facility, device))
                tx.execute(
                    "INSERT INTO presence_state (facility, device, body) VALUES (?, ?, ?)",
                    (facility, device, body),
                )

    # --- what operators see ---------------------------------------------------------------------

    def latest(self, kind: str) -> dict[fleet.DeviceKey, dict[str, Any]]:
        """The latest decoded message of ``kind`` (telemetry, inventory) of every device (shared
        with the next call: read them, do not change them). A message is decoded once: with 5,000
        nodes, decoding them all again made each snapshot take a third of a second, every tick,
        in the process that ingests the reads."""
        out: dict[fleet.DeviceKey, dict[str, Any]] = {}
        rows = self.db.query("SELECT facility, device, body FROM device_latest WHERE kind = ?", (kind,))
        for facility, device, body in rows:
            payload = bytes(body)
            cached = self._decoded.get((facility, device, kind))
            if cached is None or cached[0] != payload:
                cached = (payload, schema.decode(kind, payload))
                self._decoded[(facility, device, kind)] = cached
            out[(facility, device)] = cached[1]
        return out

    def snapshot(self, now: float | None = None) -> fleet.FleetSnapshot:
        now = time.time() if now is None else now
        provisioned = [
            {"facility": d.facility, "device": d.device, "kind": d.kind, "site": d.site}
            | {"state": d.state, "created": d.created}
            for d in self.registry.devices()
        ]
        snap = fleet.snapshot(
            provisioned, self.presence, self.latest("inventory"), self.latest("telemetry"), now
        )
        self.metrics.fleet(snap)
        return snap
