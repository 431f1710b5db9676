"""BER-TLV as the LDS uses it (ICAO Doc 9303 Part 10, ISO/IEC 8825-1): definite lengths only.

Hostile input is the normal case here: a chip can send anything. ``decode`` refuses indefinite
lengths, lengths beyond the data or beyond ``MAX_SIZE``, tags longer than 4 bytes and nesting deeper
than ``MAX_DEPTH``, always with ``ChipDataError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import ChipDataError

MAX_DEPTH = 16
MAX_SIZE = 1 << 20  # 1 MiB: more than any file we read (DG2, the face, is not read by default)


@dataclass(frozen=True)
class Tlv:
    """One data object: ``tag`` as the integer of its tag bytes (0x5F1F), ``value`` its content,
    ``raw`` the whole encoding (tag, length and value), ``depth`` its nesting level."""

    tag: int
    value: bytes
    raw: bytes
    depth: int = 0

    @property
    def constructed(self) -> bool:
        return bool(self.raw[0] & 0x20)

    def children(self) -> list[Tlv]:
        """The data objects inside a constructed object."""
        if not self.constructed:
            raise ChipDataError(f"tag {self.tag:X} is primitive, not constructed")
        return decode(self.value, depth=self.depth + 1)

    def child(self, tag: int) -> Tlv:
        """The first child with ``tag``; ``ChipDataError`` when there is none."""
        for c in self.children():
            if c.tag == tag:
                return c
        raise ChipDataError(f"tag {self.tag:X} has no {tag:X}")


def _read(data: bytes, i: int, depth: int) -> tuple[Tlv, int]:
    start, end = i, len(data)
    if i >= end:
        raise ChipDataError("TLV: no tag")
    tag = data[i]
    i += 1
    if tag & 0x1F == 0x1F:
        while True:
            if i >= end or i - start >= 4:
                raise ChipDataError("TLV: torn or oversized tag")
            tag = tag << 8 | data[i]
            i += 1
            if not data[i - 1] & 0x80:
                break
    if i >= end:
        raise ChipDataError("TLV: no length")
    first = data[i]
    i += 1
    if first == 0x80:
        raise ChipDataError("TLV: indefinite length")
    if first > 0x80:
        size = first & 0x7F
        if size > 4 or i + size > end:
            raise ChipDataError("TLV: torn or oversized length")
        length = int.from_bytes(data[i : i + size], "big")
        i += size
    else:
        length = first
    if length > MAX_SIZE or i + length > end:
        raise ChipDataError("TLV: length beyond the data")
    return Tlv(tag, data[i : i + length], data[start : i + length], depth), i + length


def iterate(data: bytes, depth: int = 0) -> Iterator[Tlv]:
    """The data objects of ``data``, one after another, all of it."""
    if depth > MAX_DEPTH:
        raise ChipDataError("TLV: nested too deep")
    if len(data) > MAX_SIZE:
        raise ChipDataError("TLV: data too large")
    i = 0
    while i < len(data):
        tlv, i = _read(data, i, depth)
        yield tlv


def decode(data: bytes, depth: int = 0) -> list[Tlv]:
    return list(iterate(data, depth))


def decode_one(data: bytes, tag: int | None = None) -> Tlv:
    """Exactly one data object filling ``data`` (trailing bytes refused), of ``tag`` if given."""
    objects = decode(data)
    if len(objects) != 1:
        raise ChipDataError(f"TLV: expected one object, found {len(objects)}")
    if tag is not None and objects[0].tag != tag:
        raise ChipDataError(f"TLV: expected tag {tag:X}, found {objects[0].tag:X}")
    return objects[0]


def ber_length(n: int) -> bytes:
    """A BER definite length."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(tag: int, value: bytes) -> bytes:
    """The encoding of one data object (tests and the length of a file's header)."""
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big") + ber_length(len(value)) + value


def integer(tlv: Tlv) -> int:
    if tlv.tag != 0x02 or not tlv.value or len(tlv.value) > 8:
        raise ChipDataError("TLV: not a small INTEGER")
    return int.from_bytes(tlv.value, "big", signed=True)


def oid(tlv: Tlv) -> str:
    """An OBJECT IDENTIFIER in dotted form."""
    if tlv.tag != 0x06 or not tlv.value or tlv.value[-1] & 0x80:
        raise ChipDataError("TLV: not an OBJECT IDENTIFIER")
    arcs: list[int] = []
    n = 0
    for b in tlv.value:
        n = n << 7 | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
