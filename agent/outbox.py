"""The Raspberry Pi node's outbox: sealed reads kept in SQLite until the broker has them (PUBACK),
and the sequence numbers that make every nonce unique.

One SQLite file (WAL, ``synchronous=FULL``: a committed transaction survives power loss) with two
tables::

    reads(seq INTEGER PRIMARY KEY, payload BLOB)   oldest first; a row leaves only on ack(seq)
    meta(key TEXT PRIMARY KEY, value INTEGER)      'reserved': sequence numbers below it may have
                                                   been used; 'dropped': reads ever dropped;
                                                   'boot': the number of starts

Sequence numbers are reserved ahead, as OSCORE does and as the firmware's seqstore does in flash:
``next_seq`` hands out numbers below ``reserved`` and moves ``reserved`` up by ``reserve`` in one
committed write when they run out. After a restart numbering continues from ``reserved``: at most
``reserve`` numbers are skipped, none is ever repeated, so no nonce is used twice.

Bounded: at most ``capacity`` reads. Appending to a full outbox drops the oldest read, counted in
``dropped`` (persisted) and ``dropped_since_boot`` (telemetry's ``drop``), never silently.
Delivered in order: ``pending`` reads from the oldest; acknowledgements may arrive out of order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

RESERVE = 100
CAPACITY = 10_000


class Outbox:
    def __init__(self, path: Path | str, *, capacity: int = CAPACITY, reserve: int = RESERVE) -> None:
        if capacity < 1 or reserve < 1:
            raise ValueError("outbox: capacity and reserve are at least 1")
        self.capacity, self.reserve = capacity, reserve
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS reads (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('reserved', 0), ('dropped', 0), ('boot', 0)")
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'boot'")
        self.boot = self._meta("boot")  # this start's number, for status and telemetry
        self._next = self._meta("reserved")  # numbers before it may have been used before a restart
        self._limit = self._next
        self.dropped_since_boot = 0

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM reads").fetchone()[0])

    @property
    def dropped(self) -> int:
        return self._meta("dropped")

    def next_seq(self) -> int:
        """A sequence number never handed out before, across restarts and power loss."""
        if self._next >= self._limit:
            self._limit = self._next + self.reserve
            with self._db:
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'reserved'", (self._limit,))
        seq = self._next
        self._next += 1
        return seq

    def append(self, seq: int, payload: bytes) -> None:
        """Keep a sealed read until ack(seq); the oldest read goes (counted) when the outbox is full."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            excess = len(self) + 1 - self.capacity
            if excess > 0:
                self._db.execute(
                    "DELETE FROM reads WHERE seq IN (SELECT seq FROM reads ORDER BY seq LIMIT ?)", (excess,)
                )
                self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (excess,))
                self.dropped_since_boot += excess
            self._db.execute("INSERT INTO reads VALUES (?, ?)", (seq, payload))

    def pending(self, limit: int = 16) -> list[tuple[int, bytes]]:
        """The oldest reads not yet acknowledged, in order."""
        rows = self._db.execute("SELECT seq, payload FROM reads ORDER BY seq LIMIT ?", (limit,))
        return [(int(seq), bytes(payload)) for seq, payload in rows]

    def ack(self, seq: int) -> None:
        """The broker has the read ``seq`` (PUBACK): it leaves the outbox."""
        with self._db:
            self._db.execute("DELETE FROM reads WHERE seq = ?", (seq,))
