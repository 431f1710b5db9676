"""Topics and payloads of the wire contract: builders, validators, limits."""

from mpcheck import raises

from cccd import schema
from cccd.cbor import dumps
from cccd.errors import SchemaError

PID = bytes(range(16))
IDENT = {"cccd": "001090000001", "name": "Nguy\u1ec5n V\u0103n An", "dob": "1990-01-01", "sex": "M"}


def _read(**over):
    msg = schema.read(42, 1790000000000, "ntp", "qr", "cccd", PID, dict(IDENT))
    msg.update(over)
    return msg


def test_topic_round_trip():
    t = schema.topic("38001", "qr-0007", "read")
    assert t == "cccd/v1/38001/qr-0007/read"
    assert schema.parse_topic(t) == ("38001", "qr-0007", "read")


def test_bad_topics_are_rejected():
    bad = (
        "cccd/v1/3800/qr-0007/read",
        "cccd/v1/38001/QR-0007/read",
        "cccd/v1/38001/qr_0007/read",
        "cccd/v1/38001/qr-0007/reads",
        "cccd/v1/38001/+/read",
        "cccd/v1/38001/#",
        "cccd/v2/38001/qr-0007/read",
        "cccd/v1/38001/qr-0007/read/extra",
        "cccd/v1/38001//read",
        "cccd/v1/38001/" + "a" * 33 + "/read",
        "cccd/v1/3800\u0661/qr/read",
        "",
    )
    for t in bad:
        assert raises(SchemaError, schema.parse_topic, t).reason == "topic", t
    raises(SchemaError, schema.topic, "38001", "", "read")
    raises(SchemaError, schema.topic, "38001", "a/b", "read")


def test_read_builds_validates_and_round_trips():
    msg = _read(raw="x", warn=["bom"])
    data = schema.encode("read", msg)
    assert schema.decode("read", data) == msg


def test_unknown_keys_are_ignored():
    msg = _read(future_field=[1, 2, 3])
    assert schema.decode("read", dumps(msg))["future_field"] == [1, 2, 3]


def test_missing_and_wrong_fields_are_named_without_values():
    for key in ("v", "seq", "ts", "clk", "src", "doc", "pid", "id"):
        msg = _read()
        del msg[key]
        exc = raises(SchemaError, schema.validate, "read", msg)
        assert exc.reason == "missing" and repr(key) in str(exc)
    wrong = (
        {"clk": "gps"},
        {"src": "barcode"},
        {"doc": "passport"},
        {"pid": b"short"},
        {"seq": -1},
        {"seq": True},
        {"ts": "now"},
        {"id": []},
        {"raw": "x" * 1025},
        {"warn": "bom"},
        {"warn": ["bom", b"bytes"]},
        {"warn": [{"cccd": "001190000002"}]},
    )
    for over in wrong:
        exc = raises(SchemaError, schema.validate, "read", _read(**over))
        assert exc.reason == "value", over


def test_identity_fields_are_checked_and_values_never_echoed():
    bad_ids = (
        {"cccd": "00109000000"},
        {"cmnd": "12345678"},
        {"dob": "1990-02-30"},
        {"dob": "90-01-01"},
        {"sex": "male"},
        {"bhyt": "DN4790123456789X"},
        {"kcbbd": "01-043"},
        {"bhyt_to": "2025-13-01"},
    )
    for ident in bad_ids:
        msg = _read(id=ident)
        exc = raises(SchemaError, schema.validate, "read", msg)
        for value in ident.values():
            assert value not in str(exc)


def test_dates():
    for good in ("2024-02-29", "2000-02-29", "1990", "1999-12-31"):
        assert schema.is_date(good), good
    for bad in ("2023-02-29", "1900-02-29", "2024-00-10", "2024-1-10", "199O", "", None, 1990):
        assert not schema.is_date(bad), bad


def test_version_other_than_1_is_refused():
    assert raises(SchemaError, schema.validate, "read", _read(v=2)).reason == "version"


def test_result_text_must_fit_the_display():
    ok = schema.result(42, "ok", "Th\u1ebb h\u1ee3p l\u1ec7\n\u0110\u1ebfn 31/12/2026", "000", "2026-12-31")
    assert schema.decode("result", schema.encode("result", ok)) == ok
    raises(SchemaError, schema.result, 42, "ok", "x" * 17)
    raises(SchemaError, schema.result, 42, "ok", "a\nb\nc")
    raises(SchemaError, schema.result, 42, "fine", "a")
    raises(SchemaError, schema.result, 42, "ok", "a", "0000")


def test_status_telemetry_inventory():
    st = schema.status("online", 3, 1790000000)
    assert schema.decode("status", schema.encode("status", st)) == st
    raises(SchemaError, schema.status, "sleeping", 3, 1)
    tel = schema.telemetry(
        3600, 3, mem=50000, rssi=-61, q=0, drop=0, reads=12, rej=1, fw="0.1.0", rdr={"qr": "ok"}
    )
    assert schema.decode("telemetry", schema.encode("telemetry", tel)) == tel
    raises(SchemaError, schema.telemetry, 1, 1, rssi=5)
    raises(SchemaError, schema.telemetry, 1, 1, rdr={"qr": "broken"})
    inv = schema.inventory(
        "esp32-s3", [{"type": "qr", "model": "GM65", "std": True}], mac="aa:bb:cc:dd:ee:ff"
    )
    assert schema.decode("inventory", schema.encode("inventory", inv)) == inv
    raises(SchemaError, schema.inventory, "esp32", [{"model": "GM65"}])
    raises(SchemaError, schema.inventory, "esp32", ["qr"])


def test_config_is_any_map_of_settings():
    assert schema.decode("config", dumps({"beep": False, "future": 1})) == {"beep": False, "future": 1}
    assert raises(SchemaError, schema.decode, "config", dumps([1])).reason == "type"
    assert raises(SchemaError, schema.decode, "config", dumps({1: 2})).reason == "type"


def test_decode_refuses_oversized_and_malformed_payloads():
    assert raises(SchemaError, schema.decode, "status", bytes(129)).reason == "too_large"
    assert raises(SchemaError, schema.decode, "status", b"\xa1").reason == "cbor"
    assert raises(SchemaError, schema.decode, "nope", b"\xa0").reason == "topic"
    big = _read(raw="x" * 1024, warn=["w" * 200] * 16)
    assert raises(SchemaError, schema.encode, "read", big).reason == "too_large"


def test_non_map_payloads():
    for data in (dumps(1), dumps("x"), dumps(None), dumps([])):
        assert raises(SchemaError, schema.decode, "read", data).reason == "type"
