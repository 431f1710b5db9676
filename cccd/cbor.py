"""Deterministic CBOR (RFC 8949) for the types of the wire contract.

Encoding follows the core deterministic rules of RFC 8949 §4.2.1: the shortest head for every
integer and length, definite lengths only, map keys sorted by the bytewise order of their
encodings, floats in the shortest of half/single/double precision that keeps the value.

Types: int (up to 64 bits either sign), bytes, str, list/tuple, dict, bool, None, float and
``Tag``. Decoding is strict where a lax decoder would be a risk: indefinite lengths, duplicate map
keys, lengths beyond the input, nesting deeper than ``max_depth`` and input longer than
``max_size`` each raise ``CBORError`` with the reason; no other exception escapes ``loads``.
"""

import struct

from cccd.errors import CBORError

MAX_SIZE = 65536
MAX_DEPTH = 16
_U64 = 1 << 64


class Tag:
    """A tagged data item: ``Tag(16, [...])`` is a COSE_Encrypt0."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: int, value: object) -> None:
        self.tag = tag
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tag) and other.tag == self.tag and other.value == self.value

    __hash__ = None  # type: ignore[assignment]  # mutable value, like a list

    def __repr__(self) -> str:
        return "Tag(%d, %r)" % (self.tag, self.value)


# --- encoding ------------------------------------------------------------------------------


def dumps(obj: object) -> bytes:
    """The deterministic encoding of ``obj``; ``CBORError`` for a type or value CBOR can't hold."""
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def _head(out: bytearray, major: int, n: int) -> None:
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out.extend(n.to_bytes(2, "big"))
    elif n < 0x100000000:
        out.append(mt | 26)
        out.extend(n.to_bytes(4, "big"))
    elif n < _U64:
        out.append(mt | 27)
        out.extend(n.to_bytes(8, "big"))
    else:
        raise CBORError("integer does not fit in 64 bits", "range")


def _encode(out: bytearray, obj: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CBORError("nesting deeper than %d" % MAX_DEPTH, "depth")
    # bool before int: CPython's bool is an int (MicroPython's is not).
    if obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif obj is None:
        out.append(0xF6)
    elif isinstance(obj, int):
        if obj >= 0:
            _head(out, 0, obj)
        else:
            _head(out, 1, -1 - obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(out, 2, len(obj))
        out.extend(obj)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        _head(out, 3, len(raw))
        out.extend(raw)
    elif isinstance(obj, (list, tuple)):
        _head(out, 4, len(obj))
        for item in obj:
            _encode(out, item, depth + 1)
    elif isinstance(obj, dict):
        _encode_map(out, obj, depth)
    elif isinstance(obj, Tag):
        _head(out, 6, obj.tag)
        _encode(out, obj.value, depth + 1)
    elif isinstance(obj, float):
        _encode_float(out, obj)
    else:
        raise CBORError("cannot encode type %s" % type(obj).__name__, "type")


# Encoded text keys, kept: a node encodes maps with the same few keys all day, and on MicroPython
# every fresh encoding is heap garbage. Bounded, and only short keys.
_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_MAX = 256


def _encoded_key(key: object, depth: int) -> bytes:
    if isinstance(key, str):
        kb = _KEY_CACHE.get(key)
        if kb is not None:
            return kb
    buf = bytearray()
    _encode(buf, key, depth)
    kb = bytes(buf)
    if isinstance(key, str) and len(kb) <= 24 and len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[key] = kb
    return kb


def _first(pair: tuple[bytes, object]) -> bytes:
    return pair[0]


def _encode_map(out: bytearray, obj: dict[object, object], depth: int) -> None:
    pairs = [(_encoded_key(key, depth + 1), value) for key, value in obj.items()]
    pairs.sort(key=_first)
    _head(out, 5, len(pairs))
    for kb, value in pairs:
        out.extend(kb)
        _encode(out, value, depth + 1)


def _encode_float(out: bytearray, x: float) -> None:
    if x != x:  # noqa: PLR0124  # NaN: the canonical quiet NaN in half precision
        out.extend(b"\xf9\x7e\x00")
        return
    for code, fmt in ((0xF9, ">e"), (0xFA, ">f")):
        try:
            packed = struct.pack(fmt, x)
        except (OverflowError, ValueError):
            continue
        if struct.unpack(fmt, packed)[0] == x:
            out.append(code)
            out.extend(packed)
            return
    out.append(0xFB)
    out.extend(struct.pack(">d", x))


# --- decoding ------------------------------------------------------------------------------


def loads(data: bytes, max_size: int = MAX_SIZE, max_depth: int = MAX_DEPTH) -> object:
    """Decode exactly one data item that fills ``data``; ``CBORError`` for anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CBORError("CBOR input must be bytes", "type")
    if len(data) > max_size:
        raise CBORError("input of %d bytes exceeds the limit of %d" % (len(data), max_size), "too_large")
    data = bytes(data)
    try:
        obj, end = _decode(data, 0, max_depth)
    except IndexError:
        raise CBORError("input ends inside a data item", "truncated") from None
    if end != len(data):
        raise CBORError("%d bytes after the data item" % (len(data) - end), "trailing")
    return obj


def _argument(data: bytes, i: int, info: int) -> tuple[int, int]:
    """The head's argument (a value or a length) and the index after it."""
    if info < 24:
        return info, i
    if info > 27:
        if info == 31:
            raise CBORError("indefinite lengths are not accepted", "indefinite")
        raise CBORError("reserved additional information %d" % info, "malformed")
    size = 1 << (info - 24)
    if i + size > len(data):
        raise CBORError("input ends inside a head", "truncated")
    return int.from_bytes(data[i : i + size], "big"), i + size


def _take(data: bytes, i: int, n: int) -> tuple[bytes, int]:
    if n > len(data) - i:
        raise CBORError("declared length %d exceeds the remaining input" % n, "truncated")
    return data[i : i + n], i + n


def _decode(data: bytes, i: int, depth: int) -> tuple[object, int]:
    if depth < 0:
        raise CBORError("nesting too deep", "depth")
    ib = data[i]
    major = ib >> 5
    info = ib & 0x1F
    i += 1
    if major == 7:
        return _decode_simple(data, i, info)
    if info < 24:  # the common case, inline: a small value or a short length
        n = info
    else:
        n, i = _argument(data, i, info)
    if major == 0:
        return n, i
    if major in (2, 3):
        end = i + n
        if end > len(data):
            raise CBORError("declared length %d exceeds the remaining input" % n, "truncated")
        if major == 2:
            return data[i:end], end
        try:
            return data[i:end].decode("utf-8"), end
        except UnicodeError:
            raise CBORError("text string is not valid UTF-8", "utf8") from None
    if major == 1:
        return -1 - n, i
    if major == 4:
        return _decode_array(data, i, n, depth)
    if major == 5:
        return _decode_map(data, i, n, depth)
    value, i = _decode(data, i, depth - 1)
    return Tag(n, value), i


def _decode_array(data: bytes, i: int, n: int, depth: int) -> tuple[list[object], int]:
    if n > len(data) - i:  # every item takes at least one byte
        raise CBORError("array of %d items exceeds the remaining input" % n, "truncated")
    items = []
    for _ in range(n):
        item, i = _decode(data, i, depth - 1)
        items.append(item)
    return items, i


def _decode_map(data: bytes, i: int, n: int, depth: int) -> tuple[dict[object, object], int]:
    if 2 * n > len(data) - i:
        raise CBORError("map of %d pairs exceeds the remaining input" % n, "truncated")
    out: dict[object, object] = {}
    for _ in range(n):
        key, i = _decode(data, i, depth - 1)
        if not isinstance(key, (int, str, bytes)) or isinstance(key, bool):
            raise CBORError("map key of type %s is not accepted" % type(key).__name__, "key")
        if key in out:
            raise CBORError("duplicate map key", "duplicate")
        out[key], i = _decode(data, i, depth - 1)
    return out, i


def _decode_simple(data: bytes, i: int, info: int) -> tuple[object, int]:
    if info == 20:
        return False, i
    if info == 21:
        return True, i
    if info == 22:
        return None, i
    if 25 <= info <= 27:
        size = 1 << (info - 24)
        raw, i = _take(data, i, size)
        return struct.unpack((">e", ">f", ">d")[info - 25], raw)[0], i
    if info == 31:
        raise CBORError("unexpected break code", "malformed")
    raise CBORError("unsupported simple value %d" % info, "unsupported")
