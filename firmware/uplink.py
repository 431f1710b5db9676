"""The outbox's way to the broker: in order, at least once, removed from flash only on PUBACK.

:class:`Uplink` publishes the oldest unacknowledged reads (QoS 1), up to ``window`` in flight, and
acknowledges each in the outbox when its PUBACK comes. When the session dies the reads in flight
simply stay in the outbox: the next session (:meth:`attach`) publishes them again. A read whose
PUBACK was lost on the way is therefore published twice; the collector keeps
``(facility, device, seq)`` unique, so the second copy changes nothing. Once a PUBACK is in, the
read is gone from flash and never sent again.
"""

import asyncio

WINDOW = 4  # reads in flight: enough to fill a 100 ms round trip at a counter's pace


class Uplink:
    def __init__(self, outbox, topic, window=WINDOW, event=None):
        self.outbox = outbox
        self.topic = topic
        self.window = window
        self.session = None
        self.published = 0  # PUBLISH packets sent since boot, repeats included
        self._inflight = {}  # packet id → sequence number
        self._wake = event if event is not None else asyncio.Event()  # tests give a stand-in

    def attach(self, session):
        """A new session: whatever was in flight on the old one goes out again."""
        self.session = session
        self._inflight = {}
        session.on_puback = self._puback
        self._wake.set()

    def kick(self):
        """A new read is in the outbox."""
        self._wake.set()

    def _puback(self, pid):
        seq = self._inflight.pop(pid, None)
        if seq is not None:
            self.outbox.ack(seq)
            self._wake.set()

    async def pump(self):
        """Publish while the session lives; ends with the session's OSError."""
        session = self.session
        while True:
            self._wake.clear()  # before the awaits below: a PUBACK meanwhile wakes the wait at once
            busy = set(self._inflight.values())
            free = self.window - len(self._inflight)
            if free > 0:
                for seq, sealed in self.outbox.pending(self.window):
                    if free == 0:
                        break
                    if seq in busy:
                        continue
                    pid = await session.publish(self.topic, sealed, qos=1)
                    self._inflight[pid] = seq
                    self.published += 1
                    free -= 1
            await self._wake.wait()
