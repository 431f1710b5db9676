"""Deterministic CBOR: RFC 8949 Appendix A encodings, map order, and strict decoding."""

from binascii import unhexlify

from mpcheck import raises

from cccd.cbor import MAX_DEPTH, Tag, dumps, loads
from cccd.errors import CBORError

# (value, encoding) from RFC 8949 Appendix A, restricted to what deterministic encoding writes.
APPENDIX_A = (
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    (Tag(1, 1363896240), "c11a514b67b0"),
)


def test_appendix_a_encodings():
    for value, hexed in APPENDIX_A:
        assert dumps(value) == unhexlify(hexed), hexed


def test_appendix_a_decodings():
    for value, hexed in APPENDIX_A:
        assert loads(unhexlify(hexed)) == value, hexed


def test_long_strings_and_arrays_use_the_shortest_head():
    assert dumps("x" * 24)[:2] == b"\x78\x18"
    assert dumps(b"x" * 256)[:3] == b"\x59\x01\x00"
    assert dumps(list(range(70000)))[:5] == b"\x9a\x00\x01\x11\x70"


def test_special_floats():
    assert dumps(float("inf")) == b"\xf9\x7c\x00"
    assert dumps(float("-inf")) == b"\xf9\xfc\x00"
    assert dumps(float("nan")) == b"\xf9\x7e\x00"
    assert loads(b"\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00") == 1.5  # a lax sender's double


def test_map_keys_sorted_by_encoded_bytes():
    # RFC 8949 §4.2.1: 10, 100, -1, "z", "aa" sorts as 0a, 1864, 20, 617a, 626161
    encoded = dumps({"aa": 5, "z": 4, -1: 3, 100: 2, 10: 1})
    assert encoded == unhexlify("a50a01186402200361" + "7a04626161" + "05")


def test_insertion_order_does_not_change_the_encoding():
    a = {"v": 1, "seq": 7, "pid": b"\x00" * 16, "id": {"name": "A", "dob": "1990"}}
    b = {"id": {"dob": "1990", "name": "A"}, "pid": b"\x00" * 16, "seq": 7, "v": 1}
    assert dumps(a) == dumps(b)


def test_vietnamese_text_round_trips_as_utf8():
    name = "Nguy\u1ec5n Th\u1ecb \u0110\u00e0o"
    assert loads(dumps(name)) == name
    assert dumps(name)[1:] == name.encode("utf-8")


def test_unsupported_types_and_ranges_raise_cbor_error():
    raises(CBORError, dumps, object())
    raises(CBORError, dumps, {1, 2})
    raises(CBORError, dumps, 1 << 64)
    raises(CBORError, dumps, -(1 << 64) - 1)


def test_too_deep_to_encode():
    deep = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    assert raises(CBORError, dumps, deep).reason == "depth"


MALFORMED = (
    ("", "truncated"),
    ("18", "truncated"),
    ("1b00", "truncated"),
    ("43aabb", "truncated"),
    ("83010203ff", "trailing"),
    ("8301", "truncated"),
    ("a16161", "truncated"),
    ("5f42010243030405ff", "indefinite"),
    ("9f01ff", "indefinite"),
    ("1c", "malformed"),
    ("ff", "malformed"),
    ("f7", "unsupported"),
    ("f820", "unsupported"),
    ("62c328", "utf8"),
    ("a2616101616102", "duplicate"),
    ("a18001", "key"),
    ("a1f501", "key"),
    ("9b7fffffffffffffff", "truncated"),
    ("bb7fffffffffffffff", "truncated"),
    ("5b7fffffffffffffff", "truncated"),
    ("c6", "truncated"),
)


def test_malformed_input_gives_a_reason():
    for hexed, reason in MALFORMED:
        exc = raises(CBORError, loads, unhexlify(hexed))
        assert exc.reason == reason, (hexed, exc.reason)


def test_every_truncation_of_a_valid_item_is_rejected():
    data = dumps({"v": 1, "id": {"name": "Tr\u1ea7n", "list": [1, 2, b"abc"]}, "t": Tag(16, [1])})
    for n in range(len(data)):
        raises(CBORError, loads, data[:n])


def test_too_deep_to_decode():
    assert raises(CBORError, loads, b"\x81" * 40 + b"\x00").reason == "depth"
    assert loads(b"\x81" * 3 + b"\x00", 100, 3) == [[[0]]]
    raises(CBORError, loads, b"\x81" * 4 + b"\x00", 100, 3)


def test_too_large_is_refused_before_parsing():
    assert raises(CBORError, loads, bytes(101), 100).reason == "too_large"


def test_non_bytes_input():
    assert raises(CBORError, loads, "text").reason == "type"


def test_tags_round_trip():
    obj = Tag(16, [b"\xa1\x01\x18\x1f", {4: b"kid"}, b"ct"])
    assert loads(dumps(obj)) == obj
    assert dumps(obj)[0] == 0xD0
