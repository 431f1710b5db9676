"""A read sealed by the ESP32 firmware under MicroPython is stored by the collector's own ingest.

The collector's registry provisions the device; its secrets go into the node configuration file
(docs/PROTOCOL.md §7) that the firmware reads under the MicroPython WebAssembly port. There the
scanner assembles frames, the read cycle seals them into the flash outbox, and what the outbox
holds is handed back here as the broker would deliver it: the collector opens, checks and stores
every read once, with the pseudonym the facility's secret gives.
"""

import json
from pathlib import Path

import pytest

from cccd import pseudonym, schema
from collector import ingest as ing
from collector.db import open_db
from collector.ingest import Ingest, Message
from collector.keystore import Keystore
from collector.registry import Registry
from tools import micropython

pytestmark = pytest.mark.micropython

ROOT = Path(__file__).resolve().parents[2]
FAC = "38001"
DEV = "qr-0007"
PERSONAL_ID = "001090012345"  # synthetic, structure-valid
QR = f"{PERSONAL_ID}|123456789|Nguyễn Văn A|01011990|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|01012021"

FIRMWARE_RUN = """
import json
from firmware.node import ReadCycle, load_config
from firmware.outbox import Outbox
from firmware.scanner import Scanner
from firmware.seqstore import SeqStore


class UART:
    def __init__(self, data):
        self.data = data

    def any(self):
        return len(self.data)

    def read(self):
        data, self.data = self.data, b""
        return data


class Clock:
    def unix_ms(self):
        return 1795357512000

    def quality(self):
        return "ntp"


cfg = load_config("/conf/node.json")
node = ReadCycle(cfg, Outbox("/outbox"), SeqStore("/seq"), Clock())
qr = %(qr)r.encode()
scanner = Scanner(UART(qr + b"\\r" + qr + b"\\rjunk\\r"))
outcomes = [node.read(f) for f in scanner.poll(0)]
scanner = Scanner(UART(qr + b"\\r"))  # the next patient with the same card: a new read
outcomes += [node.read(f) for f in scanner.poll(10000)]
print("OUT " + json.dumps({
    "ok": [o.ok for o in outcomes],
    "records": [[seq, sealed.hex()] for seq, sealed in node.outbox.pending(10)],
}))
"""


def test_reads_sealed_by_the_firmware_are_stored_by_the_collector(tmp_path: Path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'c.db'}")
    ks = Keystore(bytes(range(32)))
    reg = Registry(db, ks)
    secret = reg.add(FAC, DEV, "esp32", "Quầy 3", now=1000.0)
    conf = tmp_path / "conf"
    conf.mkdir()
    node_json = {
        "device": DEV,
        "facility": FAC,
        "site": "Quầy 3",
        "broker": {"host": "broker.bv.local", "port": 8883, "tls": True, "ca": "", "username": DEV},
        "secret": secret.hex(),
        "pseudonym_secret": reg.pseudonym_secret(FAC).hex(),
    }
    (conf / "node.json").write_text(json.dumps(node_json, ensure_ascii=False), encoding="utf-8")
    run = micropython.run(
        FIRMWARE_RUN % {"qr": QR},
        mounts=[
            (ROOT / "cccd", "/lib/cccd"),
            (ROOT / "firmware", "/lib/firmware"),
            (ROOT / "tests" / "mpy" / "stubs", "/stubs"),
            (conf / "node.json", "/conf"),
        ],
        sys_path=["/stubs"],
    ).check()
    out = json.loads(run.stdout.split("OUT ", 1)[1])
    assert out["ok"] == [True, False, True]  # the double scan suppressed, the junk rejected
    records = [(seq, bytes.fromhex(h)) for seq, h in out["records"]]
    assert [seq for seq, _ in records] == [0, 1]

    ingest = Ingest(db, reg, ks)
    topic = schema.topic(FAC, DEV, "read")
    outcomes = ingest.handle_batch([Message(topic, sealed, 2000.0) for _, sealed in records])
    assert [o.status for o in outcomes] == [ing.STORED, ing.STORED]
    assert [o.body["seq"] for o in outcomes] == [0, 1]
    pid = pseudonym.pid(reg.pseudonym_secret(FAC), cccd=PERSONAL_ID)
    assert all(o.body["pid"] == pid and o.body["doc"] == "cccd" for o in outcomes)
    fields = ing.personal_fields(db, ks, FAC, DEV, 0)
    assert fields is not None and fields["id"]["name"] == "Nguyễn Văn A"
    again = ingest.handle_batch([Message(topic, records[0][1], 2001.0)])  # redelivered after a cut
    assert again[0].status == ing.REJECTED and again[0].reason == "duplicate"
    db.close()
