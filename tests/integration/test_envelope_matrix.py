"""The envelope tamper and replay matrix: one row per attack on a read, in one table.

Each row of ``ROWS`` is an attack on the uplink of node qr-0001 (docs/PROTOCOL.md §4, the receiver's
procedure; ../shared/DESIGN.md, "an unknown, tampered or replayed message is rejected and counted,
never crashes anything"), what the collector must do with it (store it, or reject it with a reason),
and whether it can travel through the real broker. docs/SECURITY.md lists the rows for a reviewer.

Two tiers run the same rows:

- ``test_attack_in_process``: every row alone, through ``collector.ingest.Ingest`` with the running
  collector's metrics listener, a good read before and after it;
- ``test_every_attack_through_mosquitto_and_the_collector``: every row the broker lets through,
  published by real nodes to a real Mosquitto and taken in by a real collector process, with one
  restart of the collector for the replay that spans it.

For each row both assert: the outcome; the quarantine row of the attack (found by the SHA-256 of its
payload) with the reason, and the same reason counted once in ``cccd_rejects_total``; the stored
reads exactly those expected, each with the ``ts`` of the first payload of its seq (nothing lost,
nothing stored twice or overwritten); and no personal field of the synthetic citizen in the logs,
the quarantine or the metrics.

Attacks the broker stops before the collector (``real=False`` here) have their broker side tested in
test_broker_acl.py: a device publishing outside its own topics, a revoked device's login, a message
above the broker's size limit.
"""

import datetime
import hashlib
import json
import logging
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from facility import FAC, Node, Site, wait
from prometheus_client.parser import text_string_to_metric_families

from cccd import cbor, envelope, keys, pseudonym, schema
from cccd.cbor import Tag
from collector import ingest as ing
from collector.db import open_db
from collector.ingest import Ingest, Message
from collector.keystore import Keystore
from collector.metrics import REJECT_REASONS, Metrics
from collector.registry import Registry
from collector.tracker import FleetTracker
from sim import citizens
from tools import provision
from tools.ports import free_port

DEV, PEER, GONE = "qr-0001", "qr-0002", "qr-0003"
TS0 = 1795000000000
PERSON = citizens.population(1, seed=8, today=datetime.date(2026, 11, 1))[0]  # synthetic


def topic_for(device: str = DEV, kind: str = "read", facility: str = FAC) -> str:
    return schema.topic(facility, device, kind)


@dataclass(frozen=True)
class Secrets:
    """Device secrets as the attacker (or a broken node) may hold them."""

    dev: bytes  # qr-0001, current
    dev_old: bytes  # qr-0001 before its rotation, still in its grace
    peer: bytes  # qr-0002, current
    peer_old: bytes  # qr-0002 before its rotation, grace over
    pseudonym: bytes  # the facility's


@dataclass(frozen=True)
class Send:
    data: bytes
    topic: str = topic_for()


class Forge:
    """Reads of the synthetic citizen, sealed right or bent."""

    def __init__(self, s: Secrets) -> None:
        self.s = s

    def body(self, seq: int, **over: object) -> dict[str, object]:
        p = PERSON
        ident = {"cccd": p.cccd, "name": p.name, "dob": p.dob.isoformat(), "sex": p.sex, "address": p.address}
        pid = pseudonym.pid(self.s.pseudonym, cccd=PERSON.cccd)
        read = schema.read(
            seq, TS0 + seq, "ntp", "qr", PERSON.doc, pid, ident, raw=PERSON.cccd + "|" + PERSON.name
        )
        read.update(over)
        return read

    def seal(
        self,
        seq: int,
        payload: bytes | None = None,
        *,
        secret: bytes | None = None,
        kid: str = DEV,
        on: str = topic_for(),
        down: bool = False,
    ) -> bytes:
        k = keys.derive(self.s.dev if secret is None else secret)
        key, iv = (k.down_key, k.down_iv) if down else (k.up_key, k.up_iv)
        data = cbor.dumps(self.body(seq)) if payload is None else payload
        return envelope.seal(key, iv, kid.encode(), seq, on, data)

    def on(self, seq: int, device: str = DEV, facility: str = FAC, secret: bytes | None = None) -> Send:
        """A read with kid ``device``, sealed for that device's topic in ``facility`` and sent there."""
        where = topic_for(device, facility=facility)
        return Send(self.seal(seq, secret=secret, kid=device, on=where), where)

    def sealed_body(self, seq: int, **over: object) -> bytes:
        return self.seal(seq, cbor.dumps(self.body(seq, **over)))

    def rebuilt(self, seq: int, protected: bytes | None = None, unprotected: object = None) -> bytes:
        """The read ``seq`` with one part of the COSE structure replaced."""
        parts = cbor.loads(self.seal(seq)).value
        if protected is not None:
            parts[0] = protected
        if unprotected is not None:
            parts[1] = unprotected
        return cbor.dumps(Tag(envelope.COSE_ENCRYPT0, parts))


def flip(data: bytes, at: int, bit: int = 0x01) -> bytes:
    out = bytearray(data)
    out[at] ^= bit
    return bytes(out)


def piv_at(data: bytes) -> int:
    """The offset of the Partial IV's last byte (its bstr follows the unprotected label 6)."""
    head = data.index(b"\x06", 12)  # after the tag, array head and the protected bstr
    return head + 1 + (data[head + 1] & 0x1F)


@dataclass(frozen=True)
class Row:
    id: str
    attack: str
    make: Callable[[Forge, int], Send | list[Send]]  # given the row's base seq; setup first, attack last
    reason: str | None  # None: the attack's read is stored
    real: bool = True  # the broker lets it through to the collector
    restart: bool = False  # the collector restarts between the setup and the attack


def _result(f: Forge, n: int) -> bytes:
    payload = schema.encode("result", schema.result(n, "ok", "Hợp lệ"))
    return f.seal(n, payload, on=topic_for(kind="result"), down=True)


ROWS = (
    # --- bits changed on the way --------------------------------------------------------------
    Row(
        "flip-alg",
        "a bit of the protected header (alg 31 -> 30)",
        lambda f, n: Send(flip(f.seal(n), 6)),
        "alg",
    ),
    Row(
        "flip-kid",
        "a bit of the kid (qr-0001 -> qr-0000)",
        lambda f, n: Send(f.seal(n).replace(b"qr-0001", b"qr-0000")),
        "kid",
    ),
    Row(
        "flip-piv",
        "a bit of the Partial IV (another nonce)",
        lambda f, n: Send(flip(f.seal(n), piv_at(f.seal(n)))),
        "tag",
    ),
    Row("flip-ciphertext", "a bit of the ciphertext", lambda f, n: Send(flip(f.seal(n), -40)), "tag"),
    Row("flip-tag", "a bit of the CCM tag", lambda f, n: Send(flip(f.seal(n), -1, 0x80)), "tag"),
    Row(
        "flip-cose-tag",
        "a bit of the CBOR tag (16 -> 17)",
        lambda f, n: Send(flip(f.seal(n), 0)),
        "malformed",
    ),
    Row("truncated", "the last byte cut off", lambda f, n: Send(f.seal(n)[:-1]), "malformed"),
    Row("trailing-bytes", "a byte appended", lambda f, n: Send(f.seal(n) + b"\x00"), "malformed"),
    Row("empty", "an empty payload", lambda f, n: Send(b""), "malformed"),
    Row("not-cose", "bytes that are no envelope", lambda f, n: Send(b"\x00\xff not cose"), "malformed"),
    Row(
        "untagged",
        "the COSE array without tag 16",
        lambda f, n: Send(cbor.dumps(cbor.loads(f.seal(n)).value)),
        "malformed",
    ),
    # --- headers changed ---------------------------------------------------------------------
    Row(
        "alg-changed",
        "alg A128GCM (1) in the protected header",
        lambda f, n: Send(f.rebuilt(n, cbor.dumps({1: 1}))),
        "alg",
    ),
    Row(
        "alg-unprotected",
        "alg repeated in the unprotected header",
        lambda f, n: Send(f.rebuilt(n, unprotected={1: 31, 4: b"qr-0001", 6: envelope.partial_iv(n)})),
        "header",
    ),
    Row(
        "content-type-protected",
        "a content type (3) added to the protected header",
        lambda f, n: Send(f.rebuilt(n, cbor.dumps({1: 31, 3: 60}))),
        "header",
    ),
    Row(
        "piv-not-shortest",
        "the Partial IV with a leading zero byte",
        lambda f, n: Send(f.rebuilt(n, unprotected={4: b"qr-0001", 6: b"\x00" + envelope.partial_iv(n)})),
        "header",
    ),
    Row(
        "piv-too-long",
        "a 6-byte Partial IV (beyond 2^40 - 1)",
        lambda f, n: Send(f.rebuilt(n, unprotected={4: b"qr-0001", 6: b"\x01" + n.to_bytes(5, "big")})),
        "header",
    ),
    Row(
        "kid-missing",
        "no kid",
        lambda f, n: Send(f.rebuilt(n, unprotected={6: envelope.partial_iv(n)})),
        "header",
    ),
    Row(
        "unprotected-extra",
        "content type (3), a full IV (5) and an unknown label added to the unprotected header: not"
        " authenticated, ignored (only kid and Partial IV are read); the contract is silent",
        lambda f, n: Send(
            f.rebuilt(
                n, unprotected={3: 60, 4: b"qr-0001", 5: bytes(13), 6: envelope.partial_iv(n), 99: b"x"}
            )
        ),
        None,
    ),
    # --- keys and identities -------------------------------------------------------------------
    Row(
        "kid-of-peer",
        "qr-0001 names qr-0002 as kid, on its own topic",
        lambda f, n: Send(f.seal(n, kid=PEER)),
        "kid",
    ),
    Row(
        "kid-of-peer-on-peer-topic",
        "qr-0001 seals with its key as qr-0002, on qr-0002's topic (the broker refuses the publish)",
        lambda f, n: f.on(n, PEER),
        "tag",
        real=False,
    ),
    Row(
        "topic-of-peer",
        "qr-0002 republishes qr-0001's sealed read on its own topic",
        lambda f, n: Send(f.seal(n), topic_for(PEER)),
        "kid",
    ),
    Row(
        "other-facility-aad",
        "sealed for facility 38002's topic, published on 38001's",
        lambda f, n: Send(f.seal(n, on=topic_for(facility="38002"))),
        "tag",
    ),
    Row(
        "other-facility-topic",
        "a read of facility 38002, where qr-0001 is not provisioned (not subscribed; the ACL refuses)",
        lambda f, n: f.on(n, facility="38002"),
        "unknown_kid",
        real=False,
    ),
    Row(
        "unknown-device",
        "kid and topic of a device never provisioned (it has no broker account)",
        lambda f, n: f.on(n, "qr-0099"),
        "unknown_kid",
        real=False,
    ),
    Row(
        "revoked-device",
        "a read of a revoked device (its broker login is refused at once)",
        lambda f, n: f.on(n, GONE),
        "unknown_kid",
        real=False,
    ),
    Row(
        "stranger-key",
        "the right kid, a key the registry does not know",
        lambda f, n: Send(f.seal(n, secret=bytes(32))),
        "tag",
    ),
    Row("down-key", "sealed with the collector -> node key", lambda f, n: Send(f.seal(n, down=True)), "tag"),
    Row(
        "reflected-result",
        "a Result sent to the node, republished as a read",
        lambda f, n: Send(_result(f, n)),
        "tag",
    ),
    Row(
        "old-key-in-grace",
        "sealed with the secret before a rotation, grace running",
        lambda f, n: Send(f.seal(n, secret=f.s.dev_old)),
        None,
    ),
    Row(
        "old-key-after-grace",
        "qr-0002 seals with its secret before a rotation whose grace is over",
        lambda f, n: f.on(n, PEER, secret=f.s.peer_old),
        "tag",
    ),
    # --- sequence numbers and replays ----------------------------------------------------------
    Row(
        "exact-replay",
        "a stored read again (QoS 1 duplicate or replay)",
        lambda f, n: [Send(f.seal(n + 1))] * 2,
        "duplicate",
    ),
    Row(
        "same-seq-other-payload",
        "another payload with a stored seq (nonce reuse by a broken node); the first stays",
        lambda f, n: [Send(f.seal(n + 1)), Send(f.sealed_body(n + 1, ts=TS0 + n + 500, raw="other"))],
        "duplicate",
    ),
    Row(
        "replay-after-restart",
        "a stored read again after the collector restarted",
        lambda f, n: [Send(f.seal(n + 1))] * 2,
        "duplicate",
        restart=True,
    ),
    Row(
        "rolled-back-seq",
        "a lower seq never stored, after a higher one (late from the outbox: no window in the contract)",
        lambda f, n: [Send(f.seal(n + 5)), Send(f.seal(n + 2))],
        None,
    ),
    Row("seq-max", "the last seq, 2^40 - 1", lambda f, n: Send(f.seal(envelope.MAX_SEQ - n)), None),
    Row(
        "seq-mismatch",
        "payload seq differs from the Partial IV",
        lambda f, n: Send(f.seal(n, cbor.dumps(f.body(n + 1)))),
        "seq_mismatch",
    ),
    # --- size and kind -------------------------------------------------------------------------
    Row(
        "oversized-envelope",
        "an envelope above 8 KiB (below the broker's 16 KiB)",
        lambda f, n: Send(f.seal(n, bytes(9000))),
        "too_large",
    ),
    Row(
        "oversized-payload",
        "a well-sealed Read above 4 KiB",
        lambda f, n: Send(f.sealed_body(n, pad="x" * 4200)),
        "too_large",
    ),
    Row(
        "read-on-telemetry-topic",
        "a sealed read published as telemetry",
        lambda f, n: Send(f.seal(n), topic_for(kind="telemetry")),
        "type",
    ),
    Row(
        "plain-on-read-topic",
        "plain CBOR telemetry published as a read",
        lambda f, n: Send(schema.encode("telemetry", schema.telemetry(n, 1)), topic_for()),
        "malformed",
    ),
    Row(
        "result-inside",
        "a Result sealed as a read",
        lambda f, n: Send(f.seal(n, schema.encode("result", schema.result(n, "ok", "x")))),
        "missing",
    ),
    # --- well sealed, bad inside ---------------------------------------------------------------
    Row("inner-not-cbor", "the plaintext is not CBOR", lambda f, n: Send(f.seal(n, b"\xff\xfe")), "cbor"),
    Row(
        "inner-trailing",
        "a byte after the Read map",
        lambda f, n: Send(f.seal(n, cbor.dumps(f.body(n)) + b"\x00")),
        "cbor",
    ),
    Row(
        "inner-duplicate-key",
        "a map with a key twice",
        lambda f, n: Send(f.seal(n, b"\xa2\x61v\x01\x61v\x01")),
        "cbor",
    ),
    Row(
        "inner-not-map", "the plaintext is an array", lambda f, n: Send(f.seal(n, cbor.dumps([1, n]))), "type"
    ),
    Row(
        "inner-missing-pid",
        "no pid",
        lambda f, n: Send(f.seal(n, cbor.dumps({k: v for k, v in f.body(n).items() if k != "pid"}))),
        "missing",
    ),
    Row(
        "inner-bad-id",
        "an 11-digit cccd in id",
        lambda f, n: Send(f.sealed_body(n, id={"cccd": PERSON.cccd[:11]})),
        "value",
    ),
    Row("inner-version-2", "v = 2", lambda f, n: Send(f.sealed_body(n, v=2)), "version"),
    Row(
        "inner-ts-overflow",
        "ts = 2^64 - 1 (beyond the store's BIGINT)",
        lambda f, n: Send(f.sealed_body(n, ts=2**64 - 1)),
        "value",
    ),
    Row(
        "inner-warn-not-text",
        "warn holds a map, not text",
        lambda f, n: Send(f.sealed_body(n, warn=[{"cccd": PERSON.cccd}])),
        "value",
    ),
)


def base_of(index: int) -> int:
    return 100 * (index + 1)


def sends(row: Row, f: Forge, base: int) -> list[Send]:
    made = row.make(f, base)
    return made if isinstance(made, list) else [made]


def stored_by(row: Row, f: Forge, base: int) -> set[tuple[str, int]]:
    """The reads the row leaves stored: its good reads around it (base - 1, base + 9), its setup,
    and its attack when that is a valid read."""
    made = sends(row, f, base)
    out = {(DEV, base - 1), (DEV, base + 9)}
    for s in made[:-1]:
        out.add((DEV, envelope.parse(s.data).seq))
    if row.reason is None:
        out.add((schema.parse_topic(made[-1].topic)[1], envelope.parse(made[-1].data).seq))
    return out


def needles() -> list[str]:
    return [PERSON.cccd, PERSON.name, PERSON.address]


def counted(text: str) -> tuple[Counter[str], float]:
    """Rejections by reason and the number of reads counted, from a metrics exposition."""
    rejects: Counter[str] = Counter()
    reads = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cccd_rejects_total":
                rejects[sample.labels["reason"]] += int(sample.value)
            elif sample.name == "cccd_reads_total":
                reads += sample.value
    return +rejects, reads


def test_the_matrix_is_well_formed() -> None:
    assert len({r.id for r in ROWS}) == len(ROWS)
    f = Forge(Secrets(bytes(32), bytes(32), bytes(32), bytes(32), bytes(32)))
    attacks = [sends(r, f, base_of(i))[-1] for i, r in enumerate(ROWS)]
    assert len({a.data for a in attacks}) == len(ROWS), "an attack's digest must find its quarantine row"
    assert {r.reason for r in ROWS} - {None} <= REJECT_REASONS  # else counted as "other"


def test_docs_security_lists_every_row_with_its_reason() -> None:
    """docs/SECURITY.md is the reviewer's copy of ``ROWS``: they must not disagree."""
    lines = (Path(__file__).resolve().parents[2] / "docs" / "SECURITY.md").read_text("utf-8").splitlines()
    cells = {c[0].strip("| `"): c for c in (line.split(" | ") for line in lines) if len(c) == 5}
    for row in ROWS:
        assert row.id in cells, f"{row.id} is not in docs/SECURITY.md"
        assert cells[row.id][3] == ("—" if row.reason is None else f"`{row.reason}`"), row.id
        assert cells[row.id][4] == ("both |" if row.real else "in-process |"), row.id


# --- in process -----------------------------------------------------------------------------------


class InProcess:
    """The collector's ingest, registry and metrics listener on a fresh SQLite store."""

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path / 'collector.db'}"
        self.ks = Keystore(bytes(range(32)))
        self.db = open_db(self.url)
        reg = Registry(self.db, self.ks)
        dev_old = reg.add(FAC, DEV, "esp32", "Quầy 1")
        dev = reg.rotate(FAC, DEV, grace=3600.0)
        peer_old = reg.add(FAC, PEER, "esp32", "Quầy 2")
        peer = reg.rotate(FAC, PEER, grace=0.0)
        reg.add(FAC, GONE, "esp32", "Quầy 3")
        reg.revoke(FAC, GONE)
        self.secrets = Secrets(dev, dev_old, peer, peer_old, reg.pseudonym_secret(FAC))
        self.start()

    def start(self) -> None:
        """A collector (re)started on the same store: new registry cache, new counters."""
        self.registry = Registry(self.db, self.ks)
        self.ingest = Ingest(self.db, self.registry, self.ks)
        self.metrics = Metrics()
        self.ingest.listeners.append(FleetTracker(self.db, self.registry, self.metrics, 60.0).on_outcomes)

    def send(self, batch: list[Send]) -> list[ing.Outcome]:
        return self.ingest.handle_batch([Message(s.topic, s.data, time.time()) for s in batch])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[InProcess]:
    made = InProcess(tmp_path)
    yield made
    made.db.close()


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[r.id for r in ROWS])
def test_attack_in_process(index: int, collector: InProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    row, base, f = ROWS[index], base_of(index), Forge(collector.secrets)
    *setup, attack = sends(row, f, base)
    before = collector.send([Send(f.seal(base - 1)), *setup])
    if row.restart:
        collector.start()
    outcome, after = collector.send([attack, Send(f.seal(base + 9))])

    assert [o.status for o in [*before, after]] == [ing.STORED] * (len(before) + 1)
    if row.reason is None:
        assert outcome.status == ing.STORED
    else:
        assert (outcome.status, outcome.reason) == (ing.REJECTED, row.reason)
    quarantine = collector.db.query("SELECT reason, digest, detail FROM quarantine")
    digest = hashlib.sha256(attack.data).digest()
    assert [(r[0], bytes(r[1])) for r in quarantine] == ([] if row.reason is None else [(row.reason, digest)])
    exposition = collector.metrics.render().decode()
    rejects, reads = counted(exposition)
    assert rejects == (Counter() if row.reason is None else Counter({row.reason: 1}))
    stored = set(collector.db.query("SELECT device, seq FROM reads"))
    assert stored == stored_by(row, f, base)
    assert reads == len(stored) - len(before) * row.restart  # counters restart with the collector
    assert all(ts == TS0 + seq for seq, ts in collector.db.query("SELECT seq, ts FROM reads"))
    said = caplog.text + "".join(r[2] for r in quarantine) + exposition
    assert not [n for n in needles() if n in said]


# --- through the real broker and collector --------------------------------------------------------


def _secret_of(node_config: Path) -> bytes:
    return bytes.fromhex(json.loads(node_config.read_text())["secret"])


def _exposition(site: Site) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{site.metrics_port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.integration
def test_every_attack_through_mosquitto_and_the_collector(tmp_path: Path) -> None:
    site = Site(tmp_path, metrics_port=free_port())
    home = site.home.path
    nodes: dict[str, Node] = {}
    try:
        dev_old = bytes.fromhex(site.node["secret"])
        dev_cfg = provision.rotate(home, FAC, DEV, grace=3600.0)
        peer_old = _secret_of(provision.device(home, FAC, PEER, "esp32", "Quầy 2"))
        peer_cfg = provision.rotate(home, FAC, PEER, grace=0.0)  # rewrites the same file
        site.broker.reload()
        nodes.update(
            {d: Node(json.loads(p.read_text()), site.ca) for d, p in ((DEV, dev_cfg), (PEER, peer_cfg))}
        )
        secrets = Secrets(
            _secret_of(dev_cfg),
            dev_old,
            _secret_of(peer_cfg),
            peer_old,
            bytes.fromhex(site.node["pseudonym_secret"]),
        )
        f = Forge(secrets)
        rows = [(i, r) for i, r in enumerate(ROWS) if r.real]
        for node in nodes.values():
            node.connect()

        def publish(batch: list[Send]) -> None:
            for s in batch:
                _f, device, kind = schema.parse_topic(s.topic)
                nodes[device].publish_raw(kind, s.data)

        def settle(seq: int) -> None:
            """A good read from each node, last: once both are stored, all before them was handled."""
            publish([f.on(seq), f.on(seq, PEER, secret=secrets.peer)])
            wait(lambda: {(DEV, seq), (PEER, seq)} <= set(site.stored()), 20, f"the reads {seq}")

        site.start_collector()
        site.wait_subscribed()
        # Before the restart: the setup of the rows that span it, nothing rejected.
        publish([s for i, r in rows if r.restart for s in sends(r, f, base_of(i))[:-1]])
        settle(1)
        site.collector.stop()
        site.start_collector()
        site.wait_subscribed(2)
        for i, r in rows:
            *setup, attack = sends(r, f, base_of(i))
            publish(
                [
                    Send(f.seal(base_of(i) - 1)),
                    *([] if r.restart else setup),
                    attack,
                    Send(f.seal(base_of(i) + 9)),
                ]
            )
        settle(2)

        expected = {(DEV, 1), (PEER, 1), (DEV, 2), (PEER, 2)}
        for i, r in rows:
            expected |= stored_by(r, f, base_of(i))
        assert set(site.stored()) == expected
        assert len(site.stored()) == len(expected)  # each once
        assert all(ts == TS0 + seq for seq, ts in site.query("SELECT seq, ts FROM reads"))
        by_digest: dict[bytes, list[str]] = {}
        for reason, digest in site.query("SELECT reason, digest FROM quarantine"):
            by_digest.setdefault(bytes(digest), []).append(reason)
        for i, r in rows:
            got = by_digest.pop(hashlib.sha256(sends(r, f, base_of(i))[-1].data).digest(), [])
            assert got == ([] if r.reason is None else [r.reason]), r.id
        assert by_digest == {}, "quarantined beyond the attacks"
        exposition = _exposition(site)
        rejects, reads = counted(exposition)
        assert rejects == Counter(r.reason for _i, r in rows if r.reason is not None)
        restart_setup = sum(len(sends(r, f, base_of(i))) - 1 for i, r in rows if r.restart)
        assert reads == len(expected) - 2 - restart_setup  # the counters restarted after those
        log = site.collector.output()
        broker_log = (home / "broker" / "mosquitto.log").read_text("utf-8", "replace")
        assert "subscribed" in log and not [n for n in needles() if n in log + broker_log + exposition]
    finally:
        for node in nodes.values():
            node.close()
        site.stop()
