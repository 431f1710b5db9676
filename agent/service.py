"""The Raspberry Pi node: QR scans and chip reads become sealed Reads in the outbox, the uplink
delivers them, the counter's display shows what happened.

A CCCD's chip needs a key the card itself does not tell: its CAN (the last 6 digits of the
personal ID) for PACE, or document number, birth and expiry dates for BAC. The receptionist scans
the card's QR code first (a Read of its own, ``src`` ``qr``); a card placed on the chip reader in
the next ``KEY_TTL`` seconds is read with the keys that QR gives (PACE with the CAN; BAC with each
expiry candidate of the renewal rules), and its Read (``src`` ``nfc``) carries the chip's outcome.
A chip that fails passive authentication is shown as such, never as a good read.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cccd import pseudonym, qr, schema

from .emrtd import AccessKeys, ChipError, CscaStore, expiry_candidates, read_chip
from .emrtd.message import read_message
from .emrtd.reader import ChipRead, Transmit
from .lights import STATUS_LEVEL
from .uplink import Uplink

log = logging.getLogger(__name__)

KEY_TTL = 120.0  # seconds a QR scan's keys wait for its card
# what the counter's display says of a chip (at most 16 characters a line)
CHIP_TEXT = {"authenticated": "Chip hợp lệ", "failed": "Chip sai chữ ký", "no_trust_anchor": "Không có CSCA"}


def _ms() -> int:
    return int(time.time() * 1000)


def clock_source(synchronized: Path = Path("/run/systemd/timesync/synchronized")) -> str:
    """The Read's ``clk``: ``ntp`` once systemd-timesyncd has synchronised the clock since boot,
    else ``rtc`` (a Pi has no battery clock unless a module is fitted: its time may be stale)."""
    return "ntp" if synchronized.exists() else "rtc"


class Agent:
    def __init__(
        self,
        uplink: Uplink,
        store: CscaStore,
        *,
        display: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        max_le: int = 256,
        light: Callable[[str], None] = lambda level: None,
    ) -> None:
        self.uplink = uplink
        self.store = store
        self.display = display
        self.clock = clock
        self.max_le = max_le  # the largest Le the chip reader carries (a PN532: pn532.MAX_LE)
        self.light = light  # Lights.show on a Pi with LEDs: green / amber / red
        self._keys: tuple[float, dict[str, Any]] | None = None
        self.reads = 0  # Reads submitted since start (telemetry's `reads`)
        # Results for a read other than the counter's latest: counted, not shown (after an outage
        # the answers of earlier patients arrive; they must not replace the current one's)
        self.late_results = 0
        self._latest: int | None = None  # seq of the read last submitted at the counter
        self.uplink.on_result = self.show_result
        self.uplink.counters = self.counters

    def counters(self) -> dict[str, Any]:
        """Telemetry's counters."""
        return {"reads": self.reads}

    def show_result(self, result: dict[str, Any]) -> None:
        if result["seq"] != self._latest:
            self.late_results += 1
            return
        self.display(str(result["text"]))
        self.light(STATUS_LEVEL.get(str(result["status"]), "amber"))

    def on_scan(self, scan: qr.Scan) -> int | None:
        """A QR scan: its Read goes to the outbox; its identity keys the next chip read."""
        ident = scan.ident
        if "cccd" in ident:
            secret, kind = self.uplink.config.pseudonym_secret, {"cccd": ident["cccd"]}
        elif "bhyt" in ident and len(str(ident["bhyt"])) >= 10:
            secret, kind = self.uplink.config.pseudonym_secret, {"bhxh": str(ident["bhyt"])[-10:]}
        else:
            self.display("Mã QR không dùng được")
            self.light("red")
            return None
        pid = pseudonym.pid(secret, **kind)
        seq = self.uplink.submit(
            lambda s: schema.read(
                s, _ms(), clock_source(), "qr", scan.doc, pid, ident, warn=scan.warn[:16] or None
            )
        )
        if "cccd" in ident:
            self._keys = (self.clock(), ident)
        self._latest = seq
        self.reads += 1
        self.display("Đang kiểm tra...")
        self.light("amber")
        return seq

    def chip_keys(self) -> tuple[list[AccessKeys], str | None]:
        """BAC keys (one per expiry candidate) and the CAN, from the last QR scan if fresh."""
        if self._keys is None or self.clock() - self._keys[0] > KEY_TTL:
            return [], None
        ident = self._keys[1]
        pid = str(ident["cccd"])
        dob, issued = str(ident.get("dob", "")), str(ident.get("issued", ""))
        keys: list[AccessKeys] = []
        if len(dob) == 10 and len(issued) == 10:
            born, since = datetime.date.fromisoformat(dob), datetime.date.fromisoformat(issued)
            birth = born.strftime("%y%m%d")
            keys = [AccessKeys.from_mrz(pid[3:], birth, e) for e in expiry_candidates(born, since)]
        return keys, pid[-6:]

    def read_card(self, transmit: Transmit) -> ChipRead | None:
        """Read the card on the reader with the last scan's keys (blocking: chip I/O only)."""
        keys, can = self.chip_keys()
        if not keys and can is None:
            self.display("Quét mã QR trước")
            self.light("red")
            return None
        try:
            return read_chip(transmit, keys, self.store, can=can, max_le=self.max_le)
        except ChipError as exc:
            log.info("chip read failed: %s", type(exc).__name__)
            self.display("Lỗi đọc chip")
            self.light("red")
            return None

    def submit_card(self, read: ChipRead) -> int:
        """The chip's Read into the outbox, its outcome on the display."""
        config = self.uplink.config
        seq = self.uplink.submit(
            lambda s: read_message(read, s, _ms(), clock_source(), config.pseudonym_secret)
        )
        self._latest = seq
        self.reads += 1
        self.display(CHIP_TEXT[read.chip])
        self.light("red" if read.chip == "failed" else "amber")  # the insurance answer is still to come
        return seq

    def on_card(self, transmit: Transmit) -> ChipRead | None:
        """A card on the chip reader: read it, submit its Read (all in the caller's thread)."""
        read = self.read_card(transmit)
        if read is not None:
            self.submit_card(read)
        return read

    async def card(self, transmit: Transmit) -> ChipRead | None:
        """``on_card`` for the event loop: the chip I/O in a worker thread, the outbox in the loop's."""
        read = await asyncio.to_thread(self.read_card, transmit)
        if read is not None:
            self.submit_card(read)
        return read
