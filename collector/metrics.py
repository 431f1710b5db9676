"""Prometheus metrics of the collector, in a registry of their own.

``Metrics`` owns a ``CollectorRegistry`` (never the process-wide default one, so that tests and
several collectors in one process do not share counters) and offers what the collector calls:

    cccd_reads_total{facility,doc,src,outcome}    reads taken in, by the outcome sent to the node
    cccd_rejects_total{facility,reason}           messages rejected, by reason code
    cccd_ingest_seconds                           time to handle one message (1 ms .. 5 s buckets)
    cccd_devices_online{facility}                 devices online now
    cccd_outbox_depth{facility,device}            reads waiting in the node's outbox (latest heartbeat)
    cccd_outbox_drops{facility,device}            reads the node dropped since boot (latest heartbeat)
    cccd_uptime_ratio{facility,device,window}     uptime today and this month (``day`` / ``month``)

Label values are never personal data, and never free text: a facility is 5 digits, a device
``[a-z0-9-]{1,32}``, and ``doc``, ``src``, ``outcome`` and ``reason`` come from closed lists; any
other value is counted as ``other`` (or ``unknown`` for facility and device). That also bounds the
number of series whatever a sender puts in a topic.

The fleet gauges are rendered from the latest ``FleetSnapshot`` as one whole: a device that leaves
the registry leaves the metrics, and a scrape never sees half of an update.
"""

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from cccd import schema
from collector.fleet import FleetSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what ``render`` produces

INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The reason codes of a rejection: the receiver's procedure (docs/PROTOCOL.md §4), the schema's
# reasons (cccd.schema), and the collector's own.
ENVELOPE_REASONS = ("too_large", "malformed", "alg", "header", "kid", "unknown_kid", "tag", "envelope")
SCHEMA_REASONS = ("schema", "topic", "cbor", "missing", "type", "value", "version")
COLLECTOR_REASONS = ("duplicate", "unknown_device", "seq_mismatch", "internal")
REJECT_REASONS = frozenset(ENVELOPE_REASONS + SCHEMA_REASONS + COLLECTOR_REASONS)

# The outcome of a read: the Result status sent back to the node.
OUTCOMES = frozenset(schema.STATUSES)
DOCS = frozenset(schema.DOCS)
SOURCES = frozenset(schema.SOURCES)

JOB_KINDS = frozenset({"insurance", "his"})
DESTINATIONS = frozenset({"bhxh", "fhir", "hl7v2"})
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
JOB_STATES = frozenset({"queued", "done", "dead"})
ALERT_CODES = frozenset({"054", "055", "205"})

OTHER = "other"
UNKNOWN = "unknown"

_FACILITY = re.compile(r"[0-9]{5}")
_DEVICE = re.compile(r"[a-z0-9-]{1,32}")


def _facility(value: str) -> str:
    return value if _FACILITY.fullmatch(value) else UNKNOWN


def _device(value: str) -> str:
    return value if _DEVICE.fullmatch(value) else UNKNOWN


def _one_of(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


class _FleetGauges:
    """A custom collector: the fleet gauges of the latest snapshot, rendered at scrape time."""

    def __init__(self) -> None:
        self.snapshot: FleetSnapshot | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        online, depth, drops, ratio = self._families()
        snap = self.snapshot  # one reference: a concurrent update does not mix two snapshots
        if snap is not None:
            for summary in snap.facilities:
                online.add_metric([_facility(summary.facility)], summary.online)
            for row in snap.devices:
                labels = [_facility(row.facility), _device(row.device)]
                if row.outbox is not None:
                    depth.add_metric(labels, row.outbox)
                if row.drops is not None:
                    drops.add_metric(labels, row.drops)
                ratio.add_metric([*labels, "day"], row.uptime_day)
                ratio.add_metric([*labels, "month"], row.uptime_month)
        return [online, depth, drops, ratio]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("cccd_devices_online", "Devices online now.", labels=["facility"]),
            GaugeMetricFamily(
                "cccd_outbox_depth",
                "Reads waiting in the node's outbox, from its latest heartbeat.",
                labels=["facility", "device"],
            ),
            GaugeMetricFamily(
                "cccd_outbox_drops",
                "Reads the node dropped since its boot, from its latest heartbeat.",
                labels=["facility", "device"],
            ),
            GaugeMetricFamily(
                "cccd_uptime_ratio",
                "Share of the window the device was online; the window ends now.",
                labels=["facility", "device", "window"],
            ),
        ]


class Metrics:
    """The collector's metrics; ``render`` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._reads = Counter(
            "cccd_reads",
            "Reads taken in, by document, source and the outcome sent to the node.",
            ["facility", "doc", "src", "outcome"],
            registry=self.registry,
        )
        self._rejects = Counter(
            "cccd_rejects",
            "Messages rejected, by reason code.",
            ["facility", "reason"],
            registry=self.registry,
        )
        self._ingest = Histogram(
            "cccd_ingest_seconds",
            "Time to handle one message, seconds.",
            buckets=INGEST_BUCKETS,
            registry=self.registry,
        )
        self._fleet = _FleetGauges()
        self.registry.register(self._fleet)
        self._jobs = Gauge(
            "cccd_jobs",
            "Forwarder jobs by destination and state (queued, done, dead: dead letters need IT).",
            ["kind", "state"],
            registry=self.registry,
        )
        self._alerts = Counter(
            "cccd_bhxh_alerts",
            "BHXH answers that need IT: 054/055 (the officer identity), 205 (a malformed request).",
            ["code"],
            registry=self.registry,
        )

        self._circuit = Gauge(
            "cccd_circuit_state",
            "The circuit breaker of each destination: 0 closed, 1 half-open (probing), 2 open.",
            ["destination"],
            registry=self.registry,
        )

    def circuit(self, destination: str, state: str) -> None:
        self._circuit.labels(_one_of(destination, DESTINATIONS)).set(CIRCUIT_STATES.get(state, 2))

    def jobs(self, kind: str, counts: dict[str, int]) -> None:
        """The number of jobs of ``kind`` in each state."""
        for state, n in counts.items():
            self._jobs.labels(_one_of(kind, JOB_KINDS), _one_of(state, JOB_STATES)).set(n)

    def alert(self, code: str) -> None:
        self._alerts.labels(_one_of(code, ALERT_CODES)).inc()

    def read(self, facility: str, doc: str, src: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` reads; ``outcome`` is the Result status (ok, warn, reject, pending, error)."""
        self._reads.labels(
            _facility(facility), _one_of(doc, DOCS), _one_of(src, SOURCES), _one_of(outcome, OUTCOMES)
        ).inc(n)

    def reject(self, facility: str, reason: str, n: int = 1) -> None:
        """Count ``n`` rejected messages by their reason code; facility ``unknown`` if the topic had none."""
        self._rejects.labels(_facility(facility), _one_of(reason, REJECT_REASONS)).inc(n)

    def observe_ingest(self, seconds: float) -> None:
        """Record how long handling one message took."""
        self._ingest.observe(max(0.0, seconds))

    def fleet(self, snapshot: FleetSnapshot) -> None:
        """Replace the fleet gauges with those of ``snapshot``."""
        self._fleet.snapshot = snapshot

    def render(self) -> bytes:
        """The metrics in the Prometheus text exposition format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
