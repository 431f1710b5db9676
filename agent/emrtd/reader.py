"""Reading a CCCD chip: PACE with the CAN where EF.CardAccess offers it (CCCD chips do), else BAC
with the MRZ information (each expiry candidate in turn); the eMRTD application; EF.COM, DG1, DG13
and EF.SOD under secure messaging; passive authentication.

The reader talks to the chip through one seam, ``transmit(apdu) -> response`` (the response's data
and status word): a PC/SC connection (``pcsc.py``), or the virtual chip of ``sim/chip`` in tests. It
never selects the MF (CCCD chips answer 6D00). Files are read by short EF identifier (one command
selects and reads), with the largest Le the chip accepts: the first READ BINARY asks for
``max_le`` (256), and a chip that answers 6700 (wrong length) or 6Cxx (the right length) is asked
again with less; the Le found is kept for the rest of the read.

Round trips of a CCCD read, measured against the virtual chip (DG1 95 bytes, DG13 ~400, SOD ~1000
with the simulator's EC-P256 test DS; a chip accepting Le up to 224): with BAC 12 for DG1 + DG13 +
SOD -- SELECT, GET CHALLENGE, EXTERNAL AUTHENTICATE, EF.COM 1 + 1 (Le 256 refused), DG1 1, DG13 2,
SOD 4 -- and 4 more where the chip has DG14/DG15 (one read each, INTERNAL AUTHENTICATE, the longer SOD). With
PACE, 5 more than BAC: EF.CardAccess (select, read, one Le refusal), MSE:Set AT and 4 GENERAL
AUTHENTICATE instead of GET CHALLENGE and EXTERNAL AUTHENTICATE, the refusal no longer on EF.COM.
Issue 7's budget is 25 for DG1 + DG13 + SOD (tests/unit/test_emrtd_reader.py holds it).

Benchmark through pcscd and vpcd (tests/integration/test_chip_pcsc.py, best of 5 on the 2-core
build machine): DG1 + DG13 + SOD with BAC 12 round trips, 1,902 APDU bytes, 4 ms; with PACE 17
round trips, 2,273 bytes, 40 ms (the pure-Python curve arithmetic of both sides). A USB reader's
air interface adds its own time per round trip; fewer round trips is what the reader controls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import aa, lds, pace, sod
from .bac import AccessKeys, Challenge
from .errors import AccessDeniedError, CardError, ChipDataError, SecureMessagingError
from .sm import SecureMessaging

Transmit = Callable[[bytes], bytes]
log = logging.getLogger(__name__)

AID = bytes.fromhex("A0000002471001")
SFI_COM, SFI_SOD = 0x1E, 0x1D
MAX_FILE = 64 * 1024  # the files we read are under 2 KiB; DG2 (not read) is the big one
_LE_STEPS = (256, 224, 192, 128, 64, 32)
SW_OK, SW_END_OF_FILE = 0x9000, 0x6282


@dataclass(frozen=True)
class ChipRead:
    """What a chip read gave: the parsed files, passive authentication, and the raw files (by DG
    number; 0 for EF.SOD) for whoever needs to keep the evidence."""

    com: lds.Com
    mrz: lds.Mrz
    identity: lds.VnIdentity | None
    passive: sod.PassiveAuthentication
    active: aa.ActiveOutcome | None  # None: the chip has no DG15
    raw: Mapping[int, bytes] = field(repr=False)
    round_trips: int = 0
    apdu_bytes: int = 0  # command and response APDUs, all bytes
    attempts: int = 1  # BAC attempts: 1 + the expiry candidates the chip refused; 0: PACE

    def ident(self) -> dict[str, str]:
        """The Read's ``id`` map (DESIGN.md): from DG13, the personal ID from DG1 when DG13 lacks it;
        a key only when known."""
        v = self.identity
        pairs = {"cccd": (v.personal_id if v else None) or self.mrz.personal_id}
        if v is not None:
            pairs |= {
                "cmnd": v.old_id,
                "name": v.name,
                "dob": v.birth,
                "sex": v.sex if v.sex in ("M", "F") else None,
            }
            pairs |= {"address": v.residence, "issued": v.issued, "expires": v.expires}
        return {k: value for k, value in pairs.items() if value}

    @property
    def chip(self) -> str:
        """``authenticated`` / ``failed`` / ``no_trust_anchor``."""
        return self.passive.outcome.value

    def summary(self) -> dict[str, Any]:
        """The Read's ``chip`` field: data groups read and the passive authentication outcome."""
        out: dict[str, Any] = {"dg": list(self.passive.groups), "pa": self.chip}
        if self.active is not None:
            out["aa"] = self.active.value
        if self.passive.reason:
            out["pa_reason"] = self.passive.reason
        return out


def _sw(response: bytes) -> tuple[bytes, int]:
    if len(response) < 2:
        raise CardError("the chip's answer is shorter than a status word", 0)
    return response[:-2], int.from_bytes(response[-2:], "big")


class ChipReader:
    """Reads one chip through ``transmit``; ``store`` holds the trusted CSCA certificates."""

    def __init__(
        self,
        transmit: Transmit,
        store: sod.CscaStore,
        *,
        random: Callable[[int], bytes] = os.urandom,
        max_le: int = 256,
    ) -> None:
        self._transmit = transmit
        self._store = store
        self._random = random
        self._le = max_le
        self._sm: SecureMessaging | None = None
        self.round_trips = 0
        self.bytes_sent = self.bytes_received = 0  # APDU bytes, both ways (the benchmark's figures)

    # -- plain and protected exchanges ------------------------------------------------------------
    def _exchange(self, apdu: bytes) -> bytes:
        self.round_trips += 1
        response = self._transmit(apdu)
        self.bytes_sent += len(apdu)
        self.bytes_received += len(response)
        return response

    def _plain(self, apdu: bytes) -> tuple[bytes, int]:
        return _sw(self._exchange(apdu))

    def _protected(self, apdu: bytes) -> tuple[bytes, int]:
        assert self._sm is not None
        response = self._exchange(self._sm.protect(apdu))
        data, sw = self._sm.unprotect(response)
        if len(response) == 2 and sw in (SW_OK, 0x6987, 0x6988):
            self._sm = None
            raise SecureMessagingError(f"the chip ended secure messaging ({sw:04X})")
        return data, sw

    # -- the steps ----------------------------------------------------------------------------------
    def select_application(self) -> None:
        _, sw = self._plain(b"\x00\xa4\x04\x0c" + bytes([len(AID)]) + AID)
        if sw != SW_OK:
            raise CardError("this card has no eMRTD application (not a chip CCCD)", sw)

    def authenticate(self, keys: AccessKeys) -> None:
        """BAC: GET CHALLENGE, EXTERNAL AUTHENTICATE, then secure messaging."""
        rnd_icc, sw = self._plain(b"\x00\x84\x00\x00\x08")
        if sw != SW_OK or len(rnd_icc) != 8:
            raise CardError("GET CHALLENGE failed", sw)
        challenge = Challenge(rnd_icc, self._random(8), self._random(16))
        data = challenge.command_data(keys)
        answer, sw = self._plain(b"\x00\x82\x00\x00\x28" + data + b"\x28")
        if sw != SW_OK:
            raise AccessDeniedError(
                f"the chip refused basic access control ({sw:04X}): check the document number "
                "(the last 9 digits of the personal ID), the date of birth and the expiry date"
            )
        self._sm = challenge.session(keys, answer)

    def _read_binary(self, p1: int, p2: int, le: int) -> tuple[bytes, int]:
        """READ BINARY, lowering Le while the chip refuses it."""
        while True:
            data, sw = self._protected(bytes([0x00, 0xB0, p1, p2, le & 0xFF]))
            if sw == 0x6700 or (sw >> 8 == 0x6C and 0 < sw & 0xFF < le):
                le = sw & 0xFF if sw >> 8 == 0x6C else next((s for s in _LE_STEPS if s < le), 0)
                if not le:
                    raise CardError("READ BINARY: the chip accepts no length", sw)
                self._le = min(self._le, le)
                continue
            return data, sw

    def read_file(self, sfi: int) -> bytes:
        """A whole file by short EF identifier: the first chunk tells the length from its TLV header."""
        first, sw = self._read_binary(0x80 | sfi, 0, self._le)
        if sw not in (SW_OK, SW_END_OF_FILE):
            raise CardError(f"reading file {sfi:02X}", sw)
        total = _file_length(first)
        data = bytearray(first[:total])
        while len(data) < total:
            offset = len(data)
            if offset > 0x7FFF:
                raise ChipDataError("file beyond READ BINARY's offsets")
            chunk, sw = self._read_binary(offset >> 8, offset & 0xFF, min(self._le, total - offset))
            if sw not in (SW_OK, SW_END_OF_FILE) or not chunk:
                raise CardError(f"reading file {sfi:02X} at offset {offset}", sw)
            data += chunk
        return bytes(data[:total])

    def card_access(self) -> list[pace.PaceInfo]:
        """The PACE protocols EF.CardAccess offers (selected directly, never through the MF); none
        when the chip has no EF.CardAccess (a BAC-only chip)."""
        _, sw = self._plain(b"\x00\xa4\x02\x0c\x02\x01\x1c")
        if sw != SW_OK:
            return []
        for le in _LE_STEPS:  # a small file (tens of bytes): one read at the largest Le accepted
            data, sw = self._plain(bytes([0x00, 0xB0, 0x00, 0x00, le & 0xFF]))
            if sw >> 8 == 0x6C:
                data, sw = self._plain(bytes([0x00, 0xB0, 0x00, 0x00, sw & 0xFF]))
            if sw != 0x6700:
                self._le = min(self._le, len(data) if sw >> 8 == 0x6C else le)
                break
        if sw not in (SW_OK, SW_END_OF_FILE):
            return []
        return pace.parse_card_access(data)

    def open_pace(self, can: str) -> bool:
        """PACE with the CAN when EF.CardAccess offers the CCCD's protocol; False when it does not
        (then BAC). A wrong CAN raises ``AccessDeniedError``."""
        offered = [i for i in self.card_access() if i.oid == pace.ECDH_GM_AES_128 and i.parameter_id == 13]
        if not offered:
            return False
        self._sm = pace.run(self._plain, pace.can_password(can), pace.CAN, offered[0])
        _, sw = self._protected(b"\x00\xa4\x04\x0c" + bytes([len(AID)]) + AID)
        if sw != SW_OK:
            raise CardError("this card has no eMRTD application (not a chip CCCD)", sw)
        return True

    def open(self, keys: Sequence[AccessKeys], can: str | None = None) -> int:
        """PACE with ``can`` where the chip offers it; else select the application and run BAC with
        each key in turn (the expiry candidates of ``expiry.candidates``) until the chip accepts
        one. The number of BAC attempts (0 after PACE). The last refusal is raised when none fits."""
        if can is not None:
            try:
                if self.open_pace(can):
                    return 0
            except AccessDeniedError:
                if not keys:
                    raise
                log.info("PACE refused the CAN; BAC with the MRZ information")
        if not keys:
            raise ValueError("no BAC key to try")
        self.select_application()
        for attempt, key in enumerate(keys, 1):
            try:
                self.authenticate(key)
                return attempt
            except AccessDeniedError:
                if attempt == len(keys):
                    raise
        raise AssertionError("unreachable")

    def active_authentication(self, dg15: bytes, dg14: bytes | None) -> aa.ActiveOutcome:
        """INTERNAL AUTHENTICATE with a fresh challenge, checked against DG15's key."""
        challenge = self._random(8)
        response, sw = self._protected(b"\x00\x88\x00\x00\x08" + challenge + b"\x00")
        if sw != SW_OK:
            return aa.ActiveOutcome.FAILED
        try:
            return aa.verify(dg15, dg14, challenge, response)
        except ChipDataError:
            return aa.ActiveOutcome.FAILED

    def read(self, keys: AccessKeys | Sequence[AccessKeys] = (), can: str | None = None) -> ChipRead:
        """The whole read: PACE (with ``can``) or BAC (with ``keys``), EF.COM, DG1, DG13 (when
        listed), EF.SOD, passive authentication. A chip that fails passive authentication is
        returned with ``chip == "failed"``, never raised: the counter must see it flagged."""
        attempts = self.open([keys] if isinstance(keys, AccessKeys) else keys, can)
        com = lds.parse_com(self.read_file(SFI_COM))
        groups = {1: self.read_file(1)}
        for n in (13, 14, 15):
            if n in com.groups:
                groups[n] = self.read_file(n)
        sod_data = self.read_file(SFI_SOD)
        passive = sod.passive_authentication(sod_data, groups, self._store)
        active = self.active_authentication(groups[15], groups.get(14)) if 15 in groups else None
        return ChipRead(
            com=com,
            mrz=lds.parse_dg1(groups[1]),
            identity=lds.parse_dg13(groups[13]) if 13 in groups else None,
            passive=passive,
            active=active,
            raw={**groups, 0: sod_data},
            round_trips=self.round_trips,
            apdu_bytes=self.bytes_sent + self.bytes_received,
            attempts=attempts,
        )


def _file_length(head: bytes) -> int:
    """Header plus value length of the TLV a file starts with, from its first bytes."""
    tag_len = 1
    if head[:1] and head[0] & 0x1F == 0x1F:
        while tag_len < min(len(head), 4) and head[tag_len] & 0x80:
            tag_len += 1
        tag_len += 1
    if len(head) <= tag_len:
        raise ChipDataError("file too short for its TLV header")
    first = head[tag_len]
    if first == 0x80 or first > 0x84:
        raise ChipDataError("file header: indefinite or oversized length")
    size = first & 0x7F if first & 0x80 else 0
    if len(head) < tag_len + 1 + size:
        raise ChipDataError("file too short for its TLV header")
    length = int.from_bytes(head[tag_len + 1 : tag_len + 1 + size], "big") if size else first
    total = tag_len + 1 + size + length
    if total > MAX_FILE:
        raise ChipDataError(f"file of {total} bytes is larger than any CCCD file")
    return total


def read_chip(
    transmit: Transmit,
    keys: AccessKeys | Sequence[AccessKeys],
    store: sod.CscaStore,
    *,
    can: str | None = None,
    **options: Any,
) -> ChipRead:
    return ChipReader(transmit, store, **options).read(keys, can)
