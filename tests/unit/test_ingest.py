"""Ingest without the broker: verification, de-duplication, quarantine, encryption at rest."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from cccd import cbor, envelope, keys, pseudonym, schema
from collector import ingest as ing
from collector.db import Database, open_db
from collector.ingest import Ingest, Message
from collector.keystore import Keystore, KeystoreError
from collector.registry import Registry, RegistryError

FAC = "38001"
DEV = "qr-0007"
NAME = "Trần Thị Bích Ngọc"  # synthetic
PERSONAL_ID = "001190000002"  # synthetic, structure-valid
TOPIC = schema.topic(FAC, DEV, "read")


@pytest.fixture
def parts(store_url: str) -> Iterator[tuple[Database, Registry, Ingest, bytes]]:
    db = open_db(store_url)
    ks = Keystore(bytes(range(32)))
    reg = Registry(db, ks)
    secret = reg.add(FAC, DEV, "esp32", "Quầy 3", now=1000.0)
    yield db, reg, Ingest(db, reg, ks), secret
    db.close()


def read_payload(seq: int, reg: Registry) -> bytes:
    pid = pseudonym.pid(reg.pseudonym_secret(FAC), cccd=PERSONAL_ID)
    ident = {"cccd": PERSONAL_ID, "name": NAME, "dob": "1990-02-03", "sex": "F"}
    return schema.encode("read", schema.read(seq, 1795000000000, "ntp", "qr", "cccd", pid, ident, raw="x|y"))


def sealed(secret: bytes, seq: int, payload: bytes, topic: str = TOPIC) -> bytes:
    k = keys.derive(secret)
    return envelope.seal(k.up_key, k.up_iv, DEV.encode(), seq, topic, payload)


def msg(data: bytes, topic: str = TOPIC, at: float = 2000.0) -> Message:
    return Message(topic, data, at)


def test_a_read_is_stored_once_with_personal_fields_encrypted(tmp_path: Path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'c.db'}")
    ks = Keystore(bytes(range(32)))
    reg = Registry(db, ks)
    secret = reg.add(FAC, DEV, "esp32", "Quầy 3", now=1000.0)
    ingest = Ingest(db, reg, ks)
    data = sealed(secret, 1, read_payload(1, reg))
    first, again = ingest.handle_batch([msg(data), msg(data)])
    assert first.status == ing.STORED and first.body["doc"] == "cccd" and "id" not in first.body
    assert again.status == ing.REJECTED and again.reason == "duplicate"
    assert db.query("SELECT COUNT(*) FROM reads")[0][0] == 1
    fields = ing.personal_fields(db, ingest.keystore, FAC, DEV, 1)
    assert fields is not None and fields["id"]["name"] == NAME and fields["raw"] == "x|y"
    files = [tmp_path / "c.db", tmp_path / "c.db-wal"]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    db.close()
    raw += (tmp_path / "c.db").read_bytes()
    assert NAME.encode() not in raw and PERSONAL_ID.encode() not in raw
    assert b"Quy" in raw or "Quầy".encode() in raw  # the scan of the files is real: clear text is found


def test_rejections_are_counted_by_reason_and_quarantined_without_plaintext(parts) -> None:
    db, reg, ingest, secret = parts
    good = sealed(secret, 5, read_payload(5, reg))
    tampered = bytearray(good)
    tampered[-3] ^= 1
    other = keys.derive(bytes(32))
    cases = {
        "tag": msg(bytes(tampered)),
        "unknown_kid": msg(
            sealed(secret, 5, read_payload(5, reg), "cccd/v1/38002/qr-0007/read"),
            "cccd/v1/38002/qr-0007/read",
        ),
        "kid": msg(good, "cccd/v1/38001/qr-0008/read"),
        "malformed": msg(b"\xa1\x01"),
        "too_large": msg(bytes(envelope.MAX_ENVELOPE + 1)),
        "topic": msg(good, "cccd/v1/38001/QR/read"),
        "missing": msg(sealed(secret, 6, cbor.dumps({"v": 1}))),
        "value": msg(sealed(secret, 10, cbor.dumps({**cbor.loads(read_payload(10, reg)), "src": "fax"}))),
        "cbor": msg(sealed(secret, 11, b"\xa1")),
        "seq_mismatch": msg(sealed(secret, 7, read_payload(8, reg))),
    }
    cases["tag_other_key"] = msg(envelope.seal(other.up_key, other.up_iv, DEV.encode(), 9, TOPIC, b"\xa0"))
    outcomes = ingest.handle_batch(list(cases.values()))
    reasons = [o.reason for o in outcomes]
    assert reasons == [
        "tag",
        "unknown_kid",
        "kid",
        "malformed",
        "too_large",
        "topic",
        "missing",
        "value",
        "cbor",
        "seq_mismatch",
        "tag",
    ]
    assert all(o.status == ing.REJECTED for o in outcomes)
    rows = db.query("SELECT reason, detail, size FROM quarantine ORDER BY id")
    assert [r[0] for r in rows] == reasons
    for _reason, detail, _size in rows:
        assert NAME not in detail and PERSONAL_ID not in detail
    assert db.query("SELECT COUNT(*) FROM reads")[0][0] == 0


def test_a_ts_beyond_the_store_is_rejected_not_a_poison_batch(parts) -> None:
    """An authentic read whose ts (a CBOR uint) does not fit the BIGINT column: PostgreSQL failed the
    INSERT, which rolled back the batch and stopped the collector, and the broker delivered it again."""
    db, reg, ingest, secret = parts
    body = cbor.loads(read_payload(2, reg))
    huge = sealed(secret, 2, cbor.dumps({**body, "ts": ing.MAX_TS + 1}))
    ok = msg(sealed(secret, 1, read_payload(1, reg)))
    a, b = ingest.handle_batch([msg(huge), ok])
    assert (a.reason, b.status) == ("value", ing.STORED)
    assert db.query("SELECT seq FROM reads") == [(1,)]


def test_a_revoked_device_is_refused(parts) -> None:
    _db, reg, ingest, secret = parts
    reg.revoke(FAC, DEV, now=1500.0)
    (out,) = ingest.handle_batch([msg(sealed(secret, 1, read_payload(1, reg)))])
    assert out.reason == "unknown_kid"
    with pytest.raises(RegistryError):
        reg.revoke(FAC, DEV)


def test_rotation_keeps_the_old_secret_only_during_the_grace(parts) -> None:
    _db, reg, ingest, old = parts
    new = reg.rotate(FAC, DEV, grace=600.0, now=2000.0)
    a, b = ingest.handle_batch(
        [
            msg(sealed(old, 1, read_payload(1, reg)), at=2500.0),
            msg(sealed(new, 2, read_payload(2, reg)), at=2500.0),
        ]
    )
    assert (a.status, b.status) == (ing.STORED, ing.STORED)
    reg.forget_cache()
    (late,) = ingest.handle_batch([msg(sealed(old, 3, read_payload(3, reg)), at=2700.0)])
    assert late.reason == "tag"


def test_status_telemetry_inventory_of_known_devices(parts) -> None:
    db, _reg, ingest, _secret = parts
    t = lambda kind: schema.topic(FAC, DEV, kind)  # noqa: E731
    outcomes = ingest.handle_batch(
        [
            msg(schema.encode("status", schema.status("online", 3, 1795000000)), t("status")),
            msg(schema.encode("telemetry", schema.telemetry(60, 3, q=2, drop=0)), t("telemetry")),
            msg(schema.encode("inventory", schema.inventory("esp32-s3", [{"type": "qr"}])), t("inventory")),
            msg(b"\xff", t("telemetry")),
            msg(schema.encode("status", schema.status("online", 1, 1)), "cccd/v1/38001/qr-0099/status"),
            msg(b"\xa0", t("result")),
        ]
    )
    assert [o.status for o in outcomes[:3]] == [ing.ACCEPTED] * 3
    assert outcomes[1].body["q"] == 2
    assert [o.reason for o in outcomes[3:]] == ["cbor", "unknown_device", "topic"]
    assert db.query("SELECT COUNT(*) FROM device_latest")[0][0] == 3


def test_retention_purges_personal_fields_and_keeps_statistics(parts) -> None:
    db, reg, ingest, secret = parts
    ingest.handle_batch([msg(sealed(secret, 1, read_payload(1, reg)), at=1000.0)])
    ingest.handle_batch([msg(sealed(secret, 2, read_payload(2, reg)), at=1000.0 + 40 * 86400)])
    assert ing.purge_personal(db, 30, now=1000.0 + 40 * 86400) == 1
    assert ing.personal_fields(db, ingest.keystore, FAC, DEV, 1) is None
    assert ing.personal_fields(db, ingest.keystore, FAC, DEV, 2) is not None
    assert db.query("SELECT COUNT(*), COUNT(DISTINCT pid) FROM reads")[0] == (2, 1)


def test_a_bug_quarantines_one_message_and_the_batch_goes_on(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    _db, reg, ingest, secret = parts
    good = msg(sealed(secret, 1, read_payload(1, reg)))
    monkeypatch.setattr(ing, "_decode", lambda kind, data: 1 / 0)
    (bad,) = ingest.handle_batch([good])
    assert bad.reason == "internal"
    monkeypatch.undo()
    (ok,) = ingest.handle_batch([good])
    assert ok.status == ing.STORED


def test_a_store_failure_rolls_back_the_whole_batch(parts) -> None:
    db, reg, ingest, secret = parts
    db.conn.execute("DROP TABLE quarantine")
    batch = [msg(sealed(secret, 1, read_payload(1, reg))), msg(b"\x00")]
    with pytest.raises(db.errors):
        ingest.handle_batch(batch)
    assert db.query("SELECT COUNT(*) FROM reads")[0][0] == 0


def test_keystore_binds_values_to_their_place_and_key() -> None:
    ks = Keystore(bytes(range(32)))
    blob = ks.seal_secret(b"s" * 32, "device/38001/a")
    assert ks.open_secret(blob, "device/38001/a") == b"s" * 32
    with pytest.raises(KeystoreError):
        ks.open_secret(blob, "device/38001/b")
    with pytest.raises(KeystoreError):
        Keystore(bytes(32)).open_secret(blob, "device/38001/a")
    with pytest.raises(KeystoreError):
        ks.open_personal(blob, "device/38001/a")
