"""The messages of the wire contract (v1): topics, payload builders and validators.

Topics are ``cccd/v1/{facility}/{device}/{kind}``: the facility is the 5-digit mã cơ sở KCB, the
device matches ``[a-z0-9-]{1,32}``. Payloads are CBOR maps with text keys; a receiver ignores keys
it does not know, and rejects a known key with the wrong type or value.

``encode(kind, msg)`` validates and serialises; ``decode(kind, data)`` parses and validates. Both
raise ``SchemaError`` whose ``reason`` names what broke (``topic``, ``too_large``, ``cbor``,
``missing``, ``type``, ``value``) and whose message names the field, never its value.
"""

from cccd.cbor import dumps, loads
from cccd.errors import CBORError, SchemaError

try:  # annotations only: MicroPython neither has typing nor evaluates annotations
    from typing import Any, Callable
except ImportError:
    pass

VERSION = 1
PREFIX = "cccd/v1/"
KINDS = ("read", "result", "status", "telemetry", "inventory", "config")
MAX_DEVICE = 32
MAX_SEQ = (1 << 40) - 1
PID_LEN = 16
DISPLAY_LINES = 2
DISPLAY_WIDTH = 16

# Largest accepted payload per kind, in bytes of CBOR: a Read carries the raw scan (<= 1 KiB).
MAX_PAYLOAD = {
    "read": 4096,
    "result": 512,
    "status": 128,
    "telemetry": 1024,
    "inventory": 2048,
    "config": 2048,
}

CLOCKS = ("ntp", "rtc", "none")
SOURCES = ("qr", "nfc")
DOCS = ("cccd", "cancuoc", "bhyt", "vneid")
STATUSES = ("ok", "warn", "reject", "pending", "error")
STATES = ("online", "offline")
READER_TYPES = ("qr", "nfc")
READER_HEALTH = ("ok", "error")


# --- topics --------------------------------------------------------------------------------


def _is_facility(s: object) -> bool:
    return isinstance(s, str) and len(s) == 5 and _digits(s)


def _is_device(s: object) -> bool:
    if not isinstance(s, str) or not 0 < len(s) <= MAX_DEVICE:
        return False
    return all(("a" <= c <= "z") or ("0" <= c <= "9") or c == "-" for c in s)


def topic(facility: str, device: str, kind: str) -> str:
    """The topic of one message kind of one device."""
    if not _is_facility(facility):
        raise SchemaError("facility must be 5 digits", "topic")
    if not _is_device(device):
        raise SchemaError("device must match [a-z0-9-]{1,%d}" % MAX_DEVICE, "topic")
    if kind not in KINDS:
        raise SchemaError("unknown message kind", "topic")
    return PREFIX + facility + "/" + device + "/" + kind


def parse_topic(t: str) -> tuple[str, str, str]:
    """(facility, device, kind) of a contract topic; ``SchemaError`` for any other string."""
    if not isinstance(t, str) or len(t) > 64 or not t.startswith(PREFIX):
        raise SchemaError("not a cccd/v1 topic", "topic")
    parts = t[len(PREFIX) :].split("/")
    if len(parts) != 3:
        raise SchemaError("topic must have facility/device/kind", "topic")
    facility, device, kind = parts
    topic(facility, device, kind)  # validates
    return facility, device, kind


# --- field checks --------------------------------------------------------------------------


def _digits(s: str) -> bool:
    for c in s:  # a loop, not all(<generator>): no heap allocation on MicroPython
        if not "0" <= c <= "9":
            return False
    return len(s) > 0


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


def is_date(s: object) -> bool:
    """``YYYY-MM-DD`` that exists in the calendar, or ``YYYY`` alone (only the year known)."""
    if not isinstance(s, str):
        return False
    if len(s) == 4:
        return _digits(s) and s >= "1800"
    if len(s) != 10 or s[4] != "-" or s[7] != "-":
        return False
    y, m, d = s[:4], s[5:7], s[8:]
    if not (_digits(y) and _digits(m) and _digits(d)):
        return False
    month = int(m)
    return y >= "1800" and 1 <= month <= 12 and 1 <= int(d) <= _days_in_month(int(y), month)


def fits_display(text: object) -> bool:
    """At most two lines of at most 16 characters: what the node's display shows."""
    if not isinstance(text, str):
        return False
    lines = text.split("\n")
    return len(lines) <= DISPLAY_LINES and all(len(line) <= DISPLAY_WIDTH for line in lines)


def _text(limit: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str) and len(v) <= limit


def _enum(values: tuple[str, ...]) -> Callable[[object], bool]:
    return lambda v: v in values


def _digit_text(*lengths: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str) and len(v) in lengths and _digits(v)


def _bytes(n: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, bytes) and len(v) == n


def _is_bhyt(v: object) -> bool:
    """A 15-character card number (2 letters, benefit digit, province, BHXH number) or 10 digits."""
    if not isinstance(v, str):
        return False
    if len(v) == 10:
        return _digits(v)
    return len(v) == 15 and v[:2].isalpha() and v[:2].upper() == v[:2] and _digits(v[2:])


def _is_bool(v: object) -> bool:
    return v is True or v is False


def _is_rssi(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -200 <= v <= 0


def _is_map(v: object) -> bool:
    return isinstance(v, dict)


def _is_warn(v: object) -> bool:
    """An array of text, at most 16 entries."""
    if not isinstance(v, list) or len(v) > 16:
        return False
    for w in v:  # noqa: SIM110 - a loop, not all(<generator>): no heap allocation on MicroPython
        if not isinstance(w, str):
            return False
    return True


# Field specs: name -> (required, check). Keys not listed are ignored, as the contract says.
IDENTITY = {
    "cccd": (False, _digit_text(12)),
    "cmnd": (False, _digit_text(9)),
    "name": (False, _text(100)),
    "dob": (False, is_date),
    "sex": (False, _enum(("M", "F"))),
    "address": (False, _text(300)),
    "issued": (False, is_date),
    "expires": (False, is_date),
    "bhyt": (False, _is_bhyt),
    "kcbbd": (False, _digit_text(5)),
    "bhyt_from": (False, is_date),
    "bhyt_to": (False, is_date),
}

READER = {
    "type": (True, _enum(READER_TYPES)),
    "model": (False, _text(64)),
    "std": (False, _is_bool),
}

FIELDS = {
    "read": {
        "v": (True, _is_uint),
        "seq": (True, _is_uint),
        "ts": (True, _is_uint),
        "clk": (True, _enum(CLOCKS)),
        "src": (True, _enum(SOURCES)),
        "doc": (True, _enum(DOCS)),
        "pid": (True, _bytes(PID_LEN)),
        "id": (True, _is_map),
        "chip": (False, _is_map),
        "raw": (False, _text(1024)),
        "warn": (False, _is_warn),
    },
    "result": {
        "v": (True, _is_uint),
        "seq": (True, _is_uint),
        "status": (True, _enum(STATUSES)),
        "code": (False, _digit_text(3)),
        "text": (True, fits_display),
        "valid_to": (False, is_date),
    },
    "status": {
        "state": (True, _enum(STATES)),
        "boot": (True, _is_uint),
        "ts": (True, _is_uint),
    },
    "telemetry": {
        "v": (True, _is_uint),
        "up": (True, _is_uint),
        "boot": (True, _is_uint),
        "mem": (False, _is_uint),
        "rssi": (False, _is_rssi),
        "q": (False, _is_uint),
        "drop": (False, _is_uint),
        "reads": (False, _is_uint),
        "rej": (False, _is_uint),
        "fw": (False, _text(32)),
        "rdr": (False, _is_map),
    },
    "inventory": {
        "v": (True, _is_uint),
        "hw": (True, _text(64)),
        "serial": (False, _text(64)),
        "mac": (False, _text(17)),
        "fw": (False, _text(32)),
        "site": (False, _text(100)),
        "readers": (True, lambda v: isinstance(v, list) and len(v) <= 8),
    },
    "config": {},
}


def _check_fields(
    spec: dict[str, tuple[bool, Callable[[object], bool]]], msg: dict[str, Any], where: str
) -> None:
    for name, (required, check) in spec.items():
        if name not in msg:
            if required:
                raise SchemaError("%s: missing %r" % (where, name), "missing")
        elif not check(msg[name]):
            raise SchemaError("%s: %r has the wrong type or value" % (where, name), "value")


def validate(kind: str, msg: object) -> dict[str, Any]:
    """Check a decoded payload against the contract; returns it unchanged."""
    if kind not in FIELDS:
        raise SchemaError("unknown message kind", "topic")
    if not isinstance(msg, dict):
        raise SchemaError("%s: payload is not a map" % kind, "type")
    for key in msg:
        if not isinstance(key, str):
            raise SchemaError("%s: keys must be text" % kind, "type")
    _check_fields(FIELDS[kind], msg, kind)
    if "v" in msg and msg["v"] != VERSION:
        raise SchemaError("%s: unsupported version" % kind, "version")
    if "seq" in msg and msg["seq"] > MAX_SEQ:
        raise SchemaError("%s: 'seq' out of range" % kind, "value")
    if kind == "read":
        _check_fields(IDENTITY, msg["id"], "read.id")
    elif kind == "inventory":
        for reader in msg["readers"]:
            if not isinstance(reader, dict):
                raise SchemaError("inventory.readers: entry is not a map", "type")
            _check_fields(READER, reader, "inventory.readers")
    elif kind == "telemetry" and "rdr" in msg:
        for health in msg["rdr"].values():
            if health not in READER_HEALTH:
                raise SchemaError("telemetry.rdr: health must be ok or error", "value")
    return msg


def encode(kind: str, msg: dict[str, Any]) -> bytes:
    """Validate and serialise a payload; ``SchemaError`` if it breaks the contract or its limit."""
    validate(kind, msg)
    try:
        data = dumps(msg)
    except CBORError as exc:
        raise SchemaError("%s: %s" % (kind, exc), "cbor") from None
    if len(data) > MAX_PAYLOAD[kind]:
        raise SchemaError("%s: %d bytes exceeds %d" % (kind, len(data), MAX_PAYLOAD[kind]), "too_large")
    return data


def decode(kind: str, data: bytes) -> dict[str, Any]:
    """Parse and validate a payload of ``kind``."""
    limit = MAX_PAYLOAD.get(kind)
    if limit is None:
        raise SchemaError("unknown message kind", "topic")
    if len(data) > limit:
        raise SchemaError("%s: %d bytes exceeds %d" % (kind, len(data), limit), "too_large")
    try:
        msg = loads(data, limit, 8)
    except CBORError as exc:
        raise SchemaError("%s: %s" % (kind, exc), "cbor") from None
    return validate(kind, msg)


# --- builders ------------------------------------------------------------------------------


def _drop_none(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if v is not None}


def read(
    seq: int,
    ts: int,
    clk: str,
    src: str,
    doc: str,
    pid: bytes,
    ident: dict[str, Any],
    chip: dict[str, Any] | None = None,
    raw: str | None = None,
    warn: list[str] | None = None,
) -> dict[str, Any]:
    """A Read: one accepted scan, with the pseudonym and the identity the parser found."""
    msg = {"v": VERSION, "seq": seq, "ts": ts, "clk": clk, "src": src, "doc": doc, "pid": pid}
    msg["id"] = ident
    msg.update(_drop_none({"chip": chip, "raw": raw, "warn": warn}))
    return validate("read", msg)


def result(
    seq: int, status: str, text: str, code: str | None = None, valid_to: str | None = None
) -> dict[str, Any]:
    """A Result: the collector's answer to the read ``seq``, shown on the node's display."""
    msg = {"v": VERSION, "seq": seq, "status": status, "text": text}
    msg.update(_drop_none({"code": code, "valid_to": valid_to}))
    return validate("result", msg)


def status(state: str, boot: int, ts: int) -> dict[str, Any]:
    """A Status: the birth message on connect, and the same with ``offline`` as Last Will."""
    return validate("status", {"state": state, "boot": boot, "ts": ts})


def telemetry(up: int, boot: int, **fields: object) -> dict[str, Any]:
    """A Telemetry heartbeat; ``fields`` among mem, rssi, q, drop, reads, rej, fw, rdr."""
    msg: dict[str, object] = {"v": VERSION, "up": up, "boot": boot}
    msg.update(_drop_none(fields))
    return validate("telemetry", msg)


def inventory(hw: str, readers: list[dict[str, Any]], **fields: object) -> dict[str, Any]:
    """An Inventory descriptor; ``fields`` among serial, mac, fw, site."""
    msg: dict[str, object] = {"v": VERSION, "hw": hw, "readers": readers}
    msg.update(_drop_none(fields))
    return validate("inventory", msg)
