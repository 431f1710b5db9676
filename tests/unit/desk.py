"""A reception counter for the forwarder tests: one registered node whose scans go through the
real ingest into a store, and whose Results are opened as the node opens them."""

import datetime
import time
from pathlib import Path

from cccd import envelope, keys, pseudonym, qr, schema
from collector.db import Database, open_db
from collector.forward import jobs
from collector.forward.answer import Answers
from collector.forward.bhxh import Officer
from collector.ingest import Ingest, Message
from collector.keystore import Keystore
from collector.registry import Registry
from sim import citizens

TODAY = datetime.date(2026, 11, 22)
FAC, DEV = "38001", "qr-0007"
OFFICER = Officer("Phạm Thị Hoa", "001185000123")  # synthetic
TOPIC = schema.topic(FAC, DEV, "read")


class Counter:
    def __init__(self, tmp: Path, first_job: str | None = jobs.INSURANCE) -> None:
        self.db: Database = open_db(f"sqlite:///{tmp / 'c.db'}")
        self.keystore = Keystore(bytes(range(32)))
        self.registry = Registry(self.db, self.keystore)
        self.keys = keys.derive(self.registry.add(FAC, DEV, "esp32", "Quầy 1"))
        self.ingest = Ingest(self.db, self.registry, self.keystore, first_job=first_job)
        self.sent: list[tuple[str, bytes]] = []
        self.answers = Answers(self.db, self.registry, self.publish)
        self.seq = 0

    async def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))

    def scan(self, c: citizens.Citizen) -> int:
        s = qr.parse(citizens.qr_bytes(c, c.doc), now=(TODAY.year, TODAY.month, TODAY.day))
        pid = pseudonym.pid(self.registry.pseudonym_secret(FAC), cccd=s.ident["cccd"])
        self.seq += 1
        payload = schema.encode("read", schema.read(self.seq, 1, "ntp", "qr", s.doc, pid, s.ident))
        sealed = envelope.seal(self.keys.up_key, self.keys.up_iv, DEV.encode(), self.seq, TOPIC, payload)
        self.ingest.handle_batch([Message(TOPIC, sealed, time.time())])
        return self.seq

    def results(self) -> list[tuple[int, dict[str, object]]]:
        """(Partial IV, Result) of everything published, opened as the node opens it."""
        out = []
        for topic, data in self.sent:
            assert topic == schema.topic(FAC, DEV, "result")
            s = envelope.parse(data)
            out.append((s.seq, schema.decode("result", s.open(self.keys.down_key, self.keys.down_iv, topic))))
        return out
