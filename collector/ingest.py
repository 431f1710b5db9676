"""Ingest: what the collector does with each message the broker delivers.

``Ingest.handle_batch`` takes messages in the order they arrived and, in ONE transaction:
opens and verifies each read's envelope (the receiver's procedure of docs/PROTOCOL.md §4),
validates the payload, stores it unless ``(facility, device, seq)`` is already stored, and
quarantines what is rejected. Only after the commit does the caller acknowledge the messages to
the broker (``collector.mqtt``): a crash before the commit loses nothing (the broker delivers
again), a crash after it duplicates nothing (the store refuses the same seq twice).

Personal fields (the ``id`` map, ``raw``, ``chip``) are stored encrypted with the keystore,
bound to their row; the pseudonym, document kind, source and times stay in clear for statistics.
A rejection is counted by its reason and kept in ``quarantine`` with the topic, reason, size and
a SHA-256 of the payload: never the payload.
"""

import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cccd import cbor, envelope, schema
from cccd.errors import CoreError, EnvelopeError
from collector.db import Database
from collector.forward import jobs
from collector.keystore import Keystore
from collector.registry import Registry

STORED = "stored"
DUPLICATE = "duplicate"
ACCEPTED = "accepted"  # status, telemetry, inventory
REJECTED = "rejected"

INBOUND = ("read", "status", "telemetry", "inventory")
PERSONAL_KEYS = ("id", "raw", "chip")
# ``ts`` goes to a signed 64-bit column; the contract's uint may be larger (CBOR goes to 2^64 - 1).
MAX_TS = (1 << 63) - 1


@dataclass(frozen=True)
class Message:
    """One message as the broker delivered it; ``received`` is the collector's clock."""

    topic: str
    payload: bytes
    received: float
    token: Any = None  # what the transport needs to acknowledge it


@dataclass
class Outcome:
    message: Message
    status: str
    reason: str = ""
    facility: str = ""
    device: str = ""
    kind: str = ""
    body: dict[str, Any] = field(default_factory=dict)  # the decoded payload, personal fields removed


class Rejected(Exception):  # noqa: N818 - a rejection is an outcome, not an error
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


Listener = Callable[[Sequence[Outcome]], None]


class Ingest:
    """Verifies, de-duplicates and stores messages; tells listeners (fleet, metrics) after commit."""

    def __init__(
        self, db: Database, registry: Registry, keystore: Keystore, first_job: str | None = None
    ) -> None:
        self.db = db
        self.registry = registry
        self.keystore = keystore
        self.first_job = first_job  # the job kind queued for each stored read (jobs.INSURANCE...)
        self.listeners: list[Listener] = []

    def handle_batch(self, messages: Sequence[Message]) -> list[Outcome]:
        """Process messages in order in one transaction; returns their outcomes after the commit."""
        outcomes: list[Outcome] = []
        with self.db.transaction() as tx:
            for message in messages:
                outcomes.append(self._handle(tx, message))
        for listener in self.listeners:
            listener(outcomes)
        return outcomes

    def _handle(self, tx: Database, message: Message) -> Outcome:
        try:
            return self._accept(tx, message)
        except Rejected as exc:
            reason, detail = exc.reason, exc.detail
        except tx.errors:
            raise  # the store failed: roll back the batch, nothing is acknowledged, all comes again
        except Exception as exc:  # a bug must not turn one message into a poison that blocks the rest
            reason, detail = "internal", f"{type(exc).__name__} while handling the message"
        _quarantine(tx, message, reason, detail)
        outcome = Outcome(message, REJECTED, reason)
        with contextlib.suppress(CoreError):
            outcome.facility, outcome.device, outcome.kind = schema.parse_topic(message.topic)
        return outcome

    def _accept(self, tx: Database, message: Message) -> Outcome:
        try:
            facility, device, kind = schema.parse_topic(message.topic)
        except CoreError as exc:
            raise Rejected("topic", str(exc)) from None
        if kind not in INBOUND:
            raise Rejected("topic", f"collectors do not take {kind} messages")
        if kind == "read":
            return self._read(tx, message, facility, device)
        if not self.registry.keys_for(facility, device, message.received):
            raise Rejected("unknown_device", "not a provisioned, active device")
        body = _decode(kind, message.payload)
        tx.execute(
            "DELETE FROM device_latest WHERE facility = ? AND device = ? AND kind = ?",
            (facility, device, kind),
        )
        tx.execute(
            "INSERT INTO device_latest (facility, device, kind, received, body) VALUES (?, ?, ?, ?, ?)",
            (facility, device, kind, message.received, message.payload),
        )
        return Outcome(message, ACCEPTED, "", facility, device, kind, body)

    def _read(self, tx: Database, message: Message, facility: str, device: str) -> Outcome:
        sealed = _open(message, facility, device, self.registry)
        body = _decode("read", sealed.plaintext)
        if body["seq"] != sealed.seq:
            raise Rejected("seq_mismatch", "payload seq differs from the envelope's Partial IV")
        if body["ts"] > MAX_TS:  # PostgreSQL would fail the INSERT, and with it the whole batch
            raise Rejected("value", "read: 'ts' is beyond what the store holds")
        for k in PERSONAL_KEYS:
            body.pop(k, None)
        where = f"read/{facility}/{device}/{sealed.seq}"
        cur = tx.execute(
            "INSERT INTO reads (facility, device, seq, received, ts, clk, src, doc, pid, personal, warn)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (facility, device, seq) DO NOTHING",
            (
                facility,
                device,
                sealed.seq,
                message.received,
                body["ts"],
                body["clk"],
                body["src"],
                body["doc"],
                body["pid"],
                # the whole payload, encrypted: it is what holds the personal fields
                self.keystore.seal_personal(sealed.plaintext, where),
                ",".join(str(w) for w in body.get("warn", [])),
            ),
        )
        if cur.rowcount == 0:
            raise Rejected(DUPLICATE, "this device's sequence number is already stored")
        if self.first_job:  # in the same transaction: a stored read always gets its forwarding
            jobs.enqueue(tx, facility, device, sealed.seq, self.first_job, message.received)
        return Outcome(message, STORED, "", facility, device, "read", body)


def _open(message: Message, facility: str, device: str, registry: Registry) -> envelope.Sealed:
    """Open with the device's current key, then with its old one while a rotation's grace lasts."""
    candidates: list[tuple[bytes, bytes] | None] = [
        (k.up_key, k.up_iv) for k in registry.keys_for(facility, device, message.received)
    ]
    last = EnvelopeError("no key for this device", "unknown_kid")
    for pair in candidates or [None]:

        def find(
            _facility: str, _kid: bytes, pair: tuple[bytes, bytes] | None = pair
        ) -> tuple[bytes, bytes] | None:
            return pair

        try:
            return envelope.open_on_topic(message.payload, message.topic, find, (facility, device))
        except EnvelopeError as exc:
            last = exc
            if exc.reason != "tag":
                break
    raise Rejected(last.reason, str(last))


def _decode(kind: str, data: bytes) -> dict[str, Any]:
    try:
        return schema.decode(kind, data)
    except CoreError as exc:
        raise Rejected(exc.reason, str(exc)) from None


def _quarantine(tx: Database, message: Message, reason: str, detail: str) -> None:
    tx.execute(
        "INSERT INTO quarantine (received, topic, reason, detail, size, digest) VALUES (?, ?, ?, ?, ?, ?)",
        (
            message.received,
            message.topic[:200],
            reason,
            detail[:500],
            len(message.payload),
            hashlib.sha256(message.payload).digest(),
        ),
    )


def purge_personal(db: Database, retention_days: float, now: float | None = None) -> int:
    """Remove the personal fields of reads older than the retention; the statistics stay."""
    now = time.time() if now is None else now
    with db.transaction() as tx:
        cur = tx.execute(
            "UPDATE reads SET personal = NULL, purged = ? WHERE received < ? AND personal IS NOT NULL",
            (now, now - retention_days * 86400.0),
        )
        return int(cur.rowcount)


def personal_fields(
    db: Database, keystore: Keystore, facility: str, device: str, seq: int
) -> dict[str, Any] | None:
    """The decrypted personal fields of one stored read (None once purged)."""
    rows = db.query(
        "SELECT personal FROM reads WHERE facility = ? AND device = ? AND seq = ?", (facility, device, seq)
    )
    if not rows or rows[0][0] is None:
        return None
    plain = keystore.open_personal(bytes(rows[0][0]), f"read/{facility}/{device}/{seq}")
    value = cbor.loads(plain)
    assert isinstance(value, dict)
    return {str(k): v for k, v in value.items() if k in PERSONAL_KEYS}
