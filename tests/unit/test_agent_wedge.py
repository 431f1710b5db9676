"""Keyboard-wedge QR scanners: the key events of a scanner typing a CCCD code (Vietnamese as Alt +
keypad byte codes) decode to the very bytes it scanned, and cccd.qr reads the citizen's own text."""

import datetime

from agent.qr import SerialScanner
from agent.wedge import KeyDecoder, keystrokes
from cccd import qr
from sim import citizens

PEOPLE = citizens.population(8, seed=6, today=datetime.date(2026, 11, 1))


def _type(decoder: KeyDecoder, data: bytes) -> list[bytes]:
    out = [decoder.feed(code, value) for code, value in keystrokes(data)]
    return [o for o in out if o is not None]


def test_a_typed_code_is_the_scanned_bytes() -> None:
    person = next(p for p in PEOPLE if not p.name.isascii())
    data = citizens.qr_bytes(person, person.doc)
    (code,) = _type(KeyDecoder(), data)
    assert code == data  # the scanner's own bytes: no Windows-1252 mojibake on this path
    scan = qr.parse(code, now=(2026, 11, 1))
    assert (scan.ident["cccd"], scan.ident["name"]) == (person.cccd, person.name)


def test_wedge_codes_through_the_scanner_become_scans() -> None:
    scans: list[qr.Scan] = []
    scanner = SerialScanner("unused", scans.append)
    decoder = KeyDecoder()
    for person in PEOPLE[:4]:
        for code in _type(decoder, citizens.qr_bytes(person, person.doc)):
            scanner.handle(code)
    assert [s.ident["cccd"] for s in scans] == [p.cccd for p in PEOPLE[:4]]
    assert [s.ident["name"] for s in scans] == [p.name for p in PEOPLE[:4]]


def test_shift_and_repeats_and_empty_lines() -> None:
    decoder = KeyDecoder()
    assert _type(decoder, b"Ab|9:") == [b"Ab|9:"]
    assert decoder.feed(28, 1) is None  # Enter alone: no code
    assert decoder.feed(30, 2) is None  # auto-repeat is not typing
