"""The collector's store: one schema, SQLite (WAL) by default or PostgreSQL, with migrations.

``open_db(url)`` takes ``sqlite:///path/to/file.db`` (or a bare path) or ``postgresql://...``
(needs the ``postgres`` extra). SQL in this package is written once with ``?`` placeholders and
the few type names that differ spelled ``{blob}``, ``{real}``, ``{serial}``; the ``Database``
translates for its dialect. ``migrate()`` applies what is missing of ``MIGRATIONS`` in order,
each in its own transaction, and records the version.
"""

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: registry, reads, quarantine, fleet
    (
        """CREATE TABLE devices (
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            kind TEXT NOT NULL,
            site TEXT NOT NULL,
            state TEXT NOT NULL,
            secret {blob} NOT NULL,
            old_secret {blob},
            old_until {real},
            created {real} NOT NULL,
            updated {real} NOT NULL,
            PRIMARY KEY (facility, device))""",
        """CREATE TABLE facilities (
            facility TEXT PRIMARY KEY,
            pseudonym_secret {blob} NOT NULL,
            created {real} NOT NULL)""",
        """CREATE TABLE reads (
            id {serial},
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            seq BIGINT NOT NULL,
            received {real} NOT NULL,
            ts BIGINT NOT NULL,
            clk TEXT NOT NULL,
            src TEXT NOT NULL,
            doc TEXT NOT NULL,
            pid {blob} NOT NULL,
            personal {blob},
            warn TEXT NOT NULL,
            purged {real},
            UNIQUE (facility, device, seq))""",
        "CREATE INDEX reads_received ON reads (received)",
        """CREATE TABLE quarantine (
            id {serial},
            received {real} NOT NULL,
            topic TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            size INTEGER NOT NULL,
            digest {blob} NOT NULL)""",
        "CREATE INDEX quarantine_received ON quarantine (received)",
        """CREATE TABLE presence (
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            start {real} NOT NULL,
            stop {real},
            boot BIGINT NOT NULL)""",
        "CREATE INDEX presence_device ON presence (facility, device, start)",
        """CREATE TABLE device_latest (
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            kind TEXT NOT NULL,
            received {real} NOT NULL,
            body {blob} NOT NULL,
            PRIMARY KEY (facility, device, kind))""",
    ),
    # 2: presence is kept as each device's state (collector.fleet.DeviceState as JSON)
    (
        "DROP TABLE presence",
        """CREATE TABLE presence_state (
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (facility, device))""",
    ),
    # 3: the forwarders' jobs (one per read and destination) and the collector's downlink sequence
    (
        """CREATE TABLE jobs (
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_at {real} NOT NULL,
            created {real} NOT NULL,
            updated {real} NOT NULL,
            pending_sent INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            answer TEXT,
            PRIMARY KEY (facility, device, seq, kind))""",
        "CREATE INDEX jobs_due ON jobs (state, next_at)",
        """CREATE TABLE down_seq (
            facility TEXT NOT NULL,
            device TEXT NOT NULL,
            reserved BIGINT NOT NULL,
            PRIMARY KEY (facility, device))""",
    ),
    # 4: what a job carries to its destination (the HIS job: the insurance outcome, sealed with the
    # personal-data key), the destination's reference once done (an Encounter id), and whether a
    # forwarder has taken it (jobs.take)
    (
        "ALTER TABLE jobs ADD COLUMN payload {blob}",
        "ALTER TABLE jobs ADD COLUMN ref TEXT",
        "ALTER TABLE jobs ADD COLUMN leased INTEGER NOT NULL DEFAULT 0",
    ),
    # 5: the dashboard's users (collector/web): a name and an scrypt hash of the password
    (
        """CREATE TABLE web_users (
            name TEXT PRIMARY KEY,
            password TEXT NOT NULL,
            created {real} NOT NULL)""",
    ),
    # 6: period statistics (collector.stats: the monthly report, the dashboard) read one facility's
    # reads over a window; without it SQLite walks the facility's whole history by the UNIQUE
    # index (3 facilities x 3,000 reads a day for a year: 137 ms -> 20 ms for a month's reads per
    # day, 166 -> 62 ms by document; no measurable cost at ingest)
    ("CREATE INDEX reads_facility_received ON reads (facility, received)",),
)

_TYPES = {
    "sqlite": {"blob": "BLOB", "real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {
        "blob": "BYTEA",
        "real": "DOUBLE PRECISION",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}


class DatabaseError(Exception):
    """The store cannot be opened or migrated."""


class Database:
    """A connection with the dialect's SQL spelling; one writer at a time (a lock)."""

    def __init__(self, conn: Any, dialect: str, errors: tuple[type[Exception], ...]) -> None:
        self.conn = conn
        self.dialect = dialect
        self.errors = errors  # the driver's exceptions: the store failed, not the message
        self.lock = threading.RLock()

    def sql(self, text: str) -> str:
        text = text.format(**_TYPES[self.dialect])
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.sql(text), tuple(params))

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.cursor().executemany(self.sql(text), [tuple(r) for r in rows])

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self.execute(text, params).fetchall())

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        """Everything inside commits together or not at all."""
        with self.lock:
            try:
                yield self
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()

    def version(self) -> int:
        rows = self.query("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    def migrate(self) -> int:
        """Apply the missing migrations; returns the schema version."""
        with self.transaction():
            self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = self.version()
        for number, statements in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            with self.transaction():
                for statement in statements:
                    self.execute(statement)
                self.execute("DELETE FROM schema_version")
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            current = number
        return current

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def open_db(url: str, *, durable: bool = True, create: bool = True) -> Database:
    """Open (and migrate) the store named by ``url``; ``create=False`` refuses a SQLite file that
    does not exist yet (a command that only reads the store must not make an empty one).

    ``durable=False`` is for connections whose commits may be lost to a power cut (not to a crash
    of the process) because losing them only repeats work: the forwarders' job updates. A lost
    "done" sends a Result again or registers a visit again in the HIS, which is idempotent; a lost
    "queued" follow-on job goes with its "done". Such a commit costs microseconds instead of an
    fsync (about 1 ms here), and the forwarders commit several times per read. Reads are stored
    and acknowledged to the broker only through durable connections."""
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url, durable)
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    if not create and path != ":memory:" and not Path(path).is_file():
        raise DatabaseError(f"the SQLite store {path} does not exist")
    db = Database(_open_sqlite(path, durable), "sqlite", (sqlite3.Error,))
    db.migrate()
    return db


def _open_sqlite(path: str, durable: bool = True) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed read survives power loss; NORMAL (WAL): it survives a crash of the process
        conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the SQLite store {path}: {exc}") from None
    return conn


def _open_postgres(url: str, durable: bool = True) -> Database:
    try:
        import psycopg  # noqa: PLC0415 - optional: only with the postgres extra
    except ImportError:
        raise DatabaseError(
            "PostgreSQL needs the postgres extra: pip install 'cccd-edge[postgres]'"
        ) from None
    try:
        conn = psycopg.connect(url)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from None
    if not durable:
        conn.execute("SET synchronous_commit TO off")
        conn.commit()
    db = Database(conn, "postgresql", (psycopg.Error,))
    db.migrate()
    return db
