"""The agent's serial QR scanner through a pseudo-terminal, as pyserial reads a USB scanner: codes
ended by CR LF, by CR, or by silence; damaged codes repaired by the core; a doubled read on two
lines is one scan; garbage and oversized frames are counted, never passed on."""

import asyncio
import datetime
import os
import tty

import serial

from agent.qr import MAX_FRAME, Framer, SerialScanner
from cccd import qr
from sim import citizens

PEOPLE = citizens.population(6, seed=4, today=datetime.date(2026, 11, 1))


def test_the_framer_splits_on_line_ends_and_bounds_frames() -> None:
    framer = Framer()
    assert framer.feed(b"abc\r\ndef\rgh") == [b"abc", b"def"]
    assert framer.flush() == [b"gh"] and framer.flush() == []
    assert framer.feed(b"x" * (MAX_FRAME + 1) + b"\r\n") == [] and framer.oversized == 1


async def _scan_through_a_pty(chunks: list[bytes]) -> tuple[list[qr.Scan], SerialScanner]:
    master, slave = os.openpty()
    tty.setraw(slave)
    scans: list[qr.Scan] = []
    scanner = SerialScanner(os.ttyname(slave), scans.append, idle=0.05, open_port=serial.Serial)
    task = asyncio.create_task(scanner.run())
    try:
        await asyncio.sleep(0.1)
        for chunk in chunks:
            os.write(master, chunk)
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        os.close(master)
        os.close(slave)
    return scans, scanner


def test_codes_from_a_serial_scanner_become_scans() -> None:
    a, b, c = PEOPLE[:3]
    chunks = [
        citizens.qr_bytes(a, a.doc) + b"\r\n",
        citizens.qr_bytes(b, b.doc, "mojibake") + b"\r",
        citizens.qr_bytes(c, c.doc),  # no line end: the silence ends it
        citizens.qr_bytes(a, a.doc) + b"\r\n" + citizens.qr_bytes(a, a.doc) + b"\r\n",  # doubled, two lines
        b"not a citizen's code\r\n",
    ]
    scans, scanner = asyncio.run(_scan_through_a_pty(chunks))
    assert [s.ident["cccd"] for s in scans] == [a.cccd, b.cccd, c.cccd, a.cccd]
    assert scanner.repeats == 1 and sum(scanner.rejected.values()) == 1
