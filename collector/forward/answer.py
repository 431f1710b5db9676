"""The answer at the counter: a Result sealed for the device and published on its result topic.

The collector is the sender of the downlink, so it keeps a sequence number per device (the
envelope's Partial IV under the device's down key) and never uses one twice, across restarts too:
numbers are reserved ahead in the store (``down_seq``), ``RESERVE`` at a time, as OSCORE does.
"""

from collections.abc import Awaitable, Callable

from cccd import envelope, schema
from collector.db import Database
from collector.registry import Registry

RESERVE = 100

# (topic, payload): QoS 1, not retained; returns once the broker acknowledged it (raises if not)
Publish = Callable[[str, bytes], Awaitable[None]]


class PublishError(Exception):
    """The broker did not acknowledge a Result in time, or refused it."""


class Answers:
    def __init__(self, db: Database, registry: Registry, publish: Publish) -> None:
        self.db = db
        self.registry = registry
        self.publish = publish
        self._next: dict[tuple[str, str], tuple[int, int]] = {}  # device -> (next, reserved limit)

    def _seq(self, facility: str, device: str) -> int:
        key = (facility, device)
        nxt, limit = self._next.get(key, (0, 0))
        if nxt >= limit:
            with self.db.transaction() as tx:
                row = tx.execute(
                    "SELECT reserved FROM down_seq WHERE facility = ? AND device = ?", key
                ).fetchone()
                start = int(row[0]) if row else 0
                nxt, limit = max(nxt, start), max(nxt, start) + RESERVE
                tx.execute("DELETE FROM down_seq WHERE facility = ? AND device = ?", key)
                tx.execute(
                    "INSERT INTO down_seq (facility, device, reserved) VALUES (?, ?, ?)", (*key, limit)
                )
        self._next[key] = (nxt + 1, limit)
        return nxt

    async def send(
        self,
        facility: str,
        device: str,
        read_seq: int,
        status: str,
        text: str,
        code: str | None = None,
        valid_to: str | None = None,
    ) -> bool:
        """Seal and publish a Result, and wait for the broker's acknowledgement; False when the
        device has no key (revoked meanwhile)."""
        found = self.registry.keys_for(facility, device)
        if not found:
            return False
        k = found[0]
        payload = schema.encode("result", schema.result(read_seq, status, text, code or None, valid_to))
        topic = schema.topic(facility, device, "result")
        sealed = envelope.seal(
            k.down_key, k.down_iv, device.encode(), self._seq(facility, device), topic, payload
        )
        await self.publish(topic, sealed)
        return True
