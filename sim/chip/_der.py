"""Just enough DER to write the chip's files: a data object, and the universal types we use."""

from __future__ import annotations


def tlv(tag: int, *parts: bytes) -> bytes:
    value = b"".join(parts)
    n = len(value)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big") + length + value


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, *parts)


def set_of(*parts: bytes) -> bytes:
    return tlv(0x31, *sorted(parts))  # DER: a SET OF in the order of its encodings


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk, rest = [arc & 0x7F], arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def utf8(text: str) -> bytes:
    return tlv(0x0C, text.encode("utf-8"))


def printable(text: str) -> bytes:
    return tlv(0x13, text.encode("ascii"))
