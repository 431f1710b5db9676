"""The dashboard over real HTTP for the tests: a store (SQLite or PostgreSQL) written through one
connection, the dashboard reading it through its own read-only one, served on a free port in a
thread, and a clock the tests move. ``fill`` puts a known fleet, dead letters and BHXH alerts in
the store, with hostile text where stored text can be anything."""

import datetime
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from cccd import schema
from collector import fleet
from collector.db import Database, open_db
from collector.forward import jobs
from collector.keystore import Keystore
from collector.registry import Registry
from collector.web import auth, pages
from collector.web.server import Dashboard, WebServer
from collector.web.settings import WebSettings

FAC = "38001"
USER = "it-01"
PASSWORD = "mật khẩu đủ dài"
FAST = 10  # log2 N of the test users' scrypt: the KDF's cost is not under test here
ICT = datetime.timezone(datetime.timedelta(hours=7))
NOW = datetime.datetime(2026, 11, 20, 14, 0, tzinfo=ICT).timestamp()  # 14:00 in the facility
HOUR = 3600.0
DAY = 86400.0

HOSTILE_SITE = '<script>alert("site")</script> Quầy 2'
HOSTILE_DEVICE = 'x"><img src=x onerror=alert(1)>'
HOSTILE_MODEL = "GM65 <b>bold</b>"
HOSTILE_REASON = "the HIS refused: <i>Patient.name</i> N*** & more"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Desk:
    url: str
    writer: Database
    clock: Clock
    app: Dashboard

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)


@contextmanager
def desk(
    url: str, settings: WebSettings | None = None, throttle: auth.Throttle | None = None
) -> Iterator[Desk]:
    kek = secrets.token_bytes(32)
    writer = open_db(url)
    auth.Users(writer).add(USER, PASSWORD, now=NOW - DAY, log_n=FAST)
    reader = open_db(url)
    pages.read_only(reader)
    clock = Clock()
    store = pages.Store(reader, Registry(reader, Keystore(kek)), heartbeat=30.0, facilities=[FAC])
    app = Dashboard(store, auth.Users(reader), settings, clock=clock, throttle=throttle)
    server = WebServer(app, port=0).start()
    try:
        yield Desk(server.url, writer, clock, app)
    finally:
        server.stop()
        reader.close()
        writer.close()


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


def login(client: httpx.Client, name: str = USER, password: str = PASSWORD, nxt: str = "") -> httpx.Response:
    """Through the login form, as a browser does: the form first (its CSRF cookie and token)."""
    form = client.get("/login" + (f"?next={nxt}" if nxt else ""))
    assert form.status_code == 200
    data = {"name": name, "password": password, "csrf": form_token(form.text), "next": nxt}
    return client.post("/login", data=data)


# --- a known fleet ----------------------------------------------------------------------------


def _presence(tx: Database, device: str, state: fleet.DeviceState) -> None:
    tx.execute(
        "INSERT INTO presence_state (facility, device, body) VALUES (?, ?, ?)",
        (FAC, device, json.dumps(state.to_dict())),
    )


def _latest(tx: Database, device: str, kind: str, body: bytes) -> None:
    tx.execute(
        "INSERT INTO device_latest (facility, device, kind, received, body) VALUES (?, ?, ?, ?, ?)",
        (FAC, device, kind, NOW - 60, body),
    )


# The reads of qr-0001: seq -> (received, doc, src). Today at 14:00 (NOW) five reads since midnight.
READS = {
    7: (NOW - 3 * HOUR, "vneid", "qr"),  # no insurance check; its HIS registration is a dead letter
    8: (NOW - 2 * HOUR, "cccd", "qr"),  # BHXH answered 054: the officer is not registered
    9: (NOW - 2 * HOUR, "cccd", "qr"),  # insured (000, the card named)
    10: (NOW - 5 * DAY, "cccd", "qr"),  # 010: the card expired: the BHYT card was asked for
    11: (NOW - HOUR, "bhyt", "qr"),  # the BHYT card itself, insured
    12: (NOW - 10 * 60, "cancuoc", "nfc"),  # still being checked
}
CARD = {"gtTheTu": "01/01/2026", "gtTheDen": "31/12/2026", "maDKBD": "38001"}


def fill(db: Database) -> None:
    """qr-0001 online since 08:00 today (uptime today 6 h of 14: 42,9 %) and a day online three
    days ago (30 days, since it was provisioned ten days ago: 30 h of 240, 12,5 %); qr-0002, with a
    hostile site, offline for two hours; a hostile device id never seen. The ``READS`` and their
    checks: one dead letter with a hostile reason, one 054 answer. Rejected messages: two with a
    wrong tag today, one duplicate three days ago."""
    registry = Registry(db, Keystore(secrets.token_bytes(32)))
    registry.add(FAC, "qr-0001", "esp32", "Quầy 1 – Khoa Khám bệnh", now=NOW - 10 * DAY)
    registry.add(FAC, "qr-0002", "rpi", HOSTILE_SITE, now=NOW - 10 * DAY)
    registry.add(FAC, HOSTILE_DEVICE, "esp32", "Quầy 3", now=NOW - DAY)
    with db.transaction() as tx:
        _presence(
            tx,
            "qr-0001",
            fleet.DeviceState(
                boot=3,
                conn_ts=100,
                online_since=NOW - 6 * HOUR,
                last_seen=NOW - 5,
                heartbeat=30.0,
                clock=NOW - 5,
                history=[fleet.Interval(NOW - 3 * DAY, NOW - 2 * DAY)],
            ),
        )
        _presence(
            tx,
            "qr-0002",
            fleet.DeviceState(
                boot=1,
                conn_ts=50,
                ended=True,
                last_seen=NOW - 2 * HOUR,
                heartbeat=30.0,
                clock=NOW - 2 * HOUR,
                history=[fleet.Interval(NOW - 5 * HOUR, NOW - 2 * HOUR)],
            ),
        )
        readers = [
            {"type": "qr", "model": HOSTILE_MODEL, "std": True},
            {"type": "nfc", "model": "ACR122U", "std": False},
        ]
        inventory = schema.inventory("esp32-s3", readers, fw="1.4.2", site="Quầy 1")
        _latest(tx, "qr-0001", "inventory", schema.encode("inventory", inventory))
        telemetry = schema.telemetry(3600, 3, q=3, drop=2, fw="1.4.2")
        _latest(tx, "qr-0001", "telemetry", schema.encode("telemetry", telemetry))
        for seq, (received, doc, src) in READS.items():
            tx.execute(
                "INSERT INTO reads (facility, device, seq, received, ts, clk, src, doc, pid, warn)"
                " VALUES (?, ?, ?, ?, ?, 'ntp', ?, ?, ?, '[]')",
                (FAC, "qr-0001", seq, received, int(received * 1000), src, doc, bytes(16)),
            )
            kind = jobs.HIS if seq == 7 else jobs.INSURANCE
            jobs.enqueue(tx, FAC, "qr-0001", seq, kind, received)
        for received, reason in ((NOW - HOUR, "tag"), (NOW - 30, "tag"), (NOW - 3 * DAY, "duplicate")):
            tx.execute(
                "INSERT INTO quarantine (received, topic, reason, detail, size, digest)"
                " VALUES (?, ?, ?, '', 100, ?)",
                (received, f"cccd/v1/{FAC}/qr-0001/read", reason, bytes(32)),
            )
    (his,) = jobs.due(db, jobs.HIS, NOW)
    jobs.dead(db, his, HOSTILE_REASON, NOW - 2 * HOUR)
    checks = {job.seq: job for job in jobs.due(db, jobs.INSURANCE, NOW)}
    jobs.finish(db, checks[8], {"maKetQua": "054"}, NOW - HOUR)
    jobs.finish(db, checks[9], {"maKetQua": "000", **CARD}, NOW - HOUR)
    jobs.finish(db, checks[10], {"maKetQua": "010", **CARD}, NOW - 5 * DAY)
    jobs.finish(db, checks[11], {"maKetQua": "000", **CARD}, NOW - HOUR)
