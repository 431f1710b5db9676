"""Registration in a HIS that speaks HL7 v2.5: ADT^A04 over MLLP, original acknowledgment mode.

The message (``adt_a04``), text with ``\\r`` between segments, UTF-8 (MSH-18 ``UNICODE UTF-8``):

- MSH: ``CCCD-EDGE`` / the facility → the HIS's application / facility (when configured), ``ADT^A04^ADT_A01``,
  the message control ID, processing ``P``, version ``2.5``, country ``VNM``. MSH-15/16 stay empty:
  original acknowledgment mode, one ACK per message.
- EVN: recorded now, the event occurred when the card was read.
- PID: PID-3 the patient's identifiers, each with its table 0203 identifier type and, as the
  assigning authority's universal ID, the VN Core naming system the FHIR connector uses too:

  ========  =========  ====================================================================
  CCCD      ``NNVNM``  table 0203's ``NNxxx``, "national person identifier" of the country
                       ISO 3166 alpha-3 ``xxx``: the 12-digit personal ID is exactly that
                       (lifelong, one per citizen), and ``NNVNM`` says which nation's, where
                       the generic ``NI`` would not. Authority ``BCA`` (Ministry of Public Security).
  CMND      ``CZ``     the old identity card's number is a document's number, not the lifelong
                       personal ID; ``CZ`` (citizenship card) is table 0203's card type nearest to
                       it, and matches VN Core's ``citizen_id`` naming system. Authority ``BCA``.
  BHYT      ``HC``     the 15-character card number: a health card number, issued by the
                       national health insurance (``MC`` and ``MA`` name US programmes, ``SN`` /
                       ``MB`` a subscriber of some plan). Authority ``BHXH``.
  ========  =========  ====================================================================

  PID-5 the name as written on the card, family name first (its first word) ``^`` the rest
  (middle and given names, in their order), type ``L`` (legal); PID-7 ``YYYYMMDD`` or ``YYYY``;
  PID-8 ``M`` / ``F`` (``U`` for anything else); PID-11 the address whole in the street line,
  country ``VNM``, type ``H``.
- PD1 (when the card names one): PD1-3 the initial-registration facility (maDKBD, KCBBĐ) as the
  organisation identifier, type ``FI``. HL7 defines PD1-3 as the "primary care" facility the
  patient chose when enrolling in their insurance plan, which is what a KCBBĐ is; a field of IN1
  would have to be misused (none means it), and a Z-segment is ignored by any HIS not told of it.
- PV1: class ``O`` (outpatient), PV1-3 the counter (its node) at the facility, PV1-19 the visit
  number (``Visit.key``, type ``VN``), PV1-44 when the card was read.
- IN1 (when the insurance check found a valid card): plan ``BHYT``, company ``BHXH``
  "Bảo hiểm xã hội Việt Nam", effective / expiration dates (IN1-12/13), insured = the patient
  (IN1-17 ``SEL``), policy number IN1-36 = the card number.

Every value is NFC-normalised and escaped: ``\\F\\ \\S\\ \\R\\ \\E\\ \\T\\`` for the delimiters,
``\\Xhh\\`` for every control character (CR, LF, and the MLLP frame bytes 0x0B / 0x1C among them),
so no data can end a field, a segment or the frame. Lengths are not cut: names and addresses
are bounded where the read is parsed (100 and 300 characters).

The message control ID (MSH-10) is derived from the visit's key (``message_control_id``): a
message sent again after a crash carries the same ID, and the HIS de-duplicates on it.

The ACK (HL7 v2.5, 2.9.2 and table 0008), read from MSA-1, refined by the ERR segment's error code
(ERR-3, table 0357; ERR-1.4 from HIS of v2.3/2.4):

- ``AA`` (and ``CA``) → registered: ``register`` returns the control ID;
- ``AE``, application error: the HIS found the message's content in error; unchanged, it fails
  again → ``HisRejectedError``, unless the code says the trouble is the HIS's own (206 record
  locked, 207 internal error) → ``HisUnavailableError``;
- ``AR``, application reject: in v2.5 "for reasons unrelated to its content or format (system
  down, internal error)", the sender decides whether to resend → ``HisUnavailableError``;
  but ``AR`` is also the answer of the accept validation of MSH (200-203: unsupported message
  type, event, processing ID, version) and some HIS send it for content errors (100-105): with
  those codes resending will not help → ``HisRejectedError``;
- ``CE`` → unavailable, ``CR`` → rejected (enhanced mode's codes, in case a HIS sends them).

A rejection carries the HIS's explanation (ERR-8, ERR-7, ERR-3's text or MSA-3) for IT, cut
to 300 characters, its personal values masked (``his.mask``: the visit's own values, with or
without diacritics, and anything shaped like an ID): the HIS may quote the patient.

No connection, a reset, a timeout, a frame torn or garbled, an ACK of another message (MSA-2 is
not our control ID) → ``HisUnavailableError``.

Connections: at most ``connections`` (default 1: many HIS listen for one), kept open between
messages, one message in flight on each (original mode). A connection that fails is closed and
the next message opens a new one; a kept connection the HIS closed while idle is found out and
the message is sent again once on a new connection (the same control ID: safe). The timeout
bounds one message's exchange, not the wait for a free connection.

Logs (logger ``cccd.collector.hl7v2``): control IDs, ACK codes and error codes; never a
message's content, never the HIS's text.
"""

import asyncio
import base64
import contextlib
import datetime
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import hl7

from collector.forward.his import (
    SID_CITIZEN_ID,
    SID_INSURANCE_NUMBER,
    SID_NATIONAL_ID,
    HisRejectedError,
    HisUnavailableError,
    Visit,
    mask,
)

log = logging.getLogger("cccd.collector.hl7v2")

SENDING_APPLICATION = "CCCD-EDGE"
VERSION = "2.5"
CHARSET = "UNICODE UTF-8"
ID_CCCD = "NNVNM"
ID_CMND = "CZ"
ID_BHYT = "HC"
INSURER_ID = "BHXH"
INSURER_NAME = "Bảo hiểm xã hội Việt Nam"
PLAN = "BHYT"
MAX_ACK = 64 * 1024  # bytes: an ACK is a few hundred
START = b"\x0b"
END = b"\x1c\r"
_VN = datetime.timezone(datetime.timedelta(hours=7))

# ERR-3 codes (table 0357) that decide an AE or AR against the code's default reading.
_TRANSIENT = frozenset({"206", "207"})  # application record locked, application internal error
_PERMANENT = frozenset({"100", "101", "102", "103", "104", "105", "200", "201", "202", "203"})

# HL7 escape sequences (2.7): the delimiters, and every control character as hexadecimal data.
_ESCAPES = {ord(c): f"\\{e}\\" for c, e in zip("\\|^~&", "EFSRT", strict=True)}
_ESCAPES.update({c: f"\\X{c:02X}\\" for c in (*range(0x20), 0x7F)})
_ISO_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})-([0-9]{2}))?")


# --- the message --------------------------------------------------------------------------------


def message_control_id(visit: Visit) -> str:
    """MSH-10 of the visit's ADT^A04: 20 characters (MSH-10's length) of base32 of a SHA-256 of
    its key, 100 bits: the same visit always gets the same ID, two visits never share one."""
    digest = hashlib.sha256(f"cccd-edge/adt-a04/{visit.key}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:20]


def escape(value: str) -> str:
    """``value`` NFC-normalised, as HL7 field data: no delimiter, no control character left."""
    text = unicodedata.normalize("NFC", value)
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be sent
    return text.translate(_ESCAPES)


def _rep(*components: str | tuple[str, ...]) -> str:
    """One field (repetition): components joined by ``^``, a tuple's subcomponents by ``&``."""
    parts = [
        "&".join(escape(s) for s in c).rstrip("&") if isinstance(c, tuple) else escape(c) for c in components
    ]
    return "^".join(parts).rstrip("^")


def _segment(name: str, fields: dict[int, str]) -> str:
    """A segment from its non-empty fields, by position."""
    values = [fields.get(i, "") for i in range(1, max(fields) + 1)]
    return "|".join([name, *values]).rstrip("|")


def _hl7_date(iso: str, what: str) -> str:
    """``YYYY-MM-DD`` → ``YYYYMMDD``, ``YYYY`` → ``YYYY``; ValueError (naming ``what``) else."""
    match = _ISO_DATE.fullmatch(iso)
    if match is None:
        raise ValueError(f"{what} is neither YYYY-MM-DD nor YYYY")
    if match[2] is not None:
        try:
            datetime.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            raise ValueError(f"{what} is not a real date") from None
    return iso.replace("-", "")


def _hl7_time(moment: datetime.datetime, what: str) -> str:
    if moment.utcoffset() is None:
        raise ValueError(f"{what} has no time zone")
    return moment.strftime("%Y%m%d%H%M%S%z")


def _identifiers(visit: Visit) -> str:
    ids = []
    if visit.cccd:
        ids.append(_rep(visit.cccd, "", "", ("BCA", SID_NATIONAL_ID, "URI"), ID_CCCD))
    if visit.cmnd:
        ids.append(_rep(visit.cmnd, "", "", ("BCA", SID_CITIZEN_ID, "URI"), ID_CMND))
    if visit.card:
        ids.append(_rep(visit.card, "", "", (INSURER_ID, SID_INSURANCE_NUMBER, "URI"), ID_BHYT))
    if not ids:
        raise ValueError("the visit has no patient identifier (CCCD, CMND or BHYT card): PID-3 is required")
    return "~".join(ids)


def _name(name: str) -> tuple[str, str]:
    """(family, the rest): the family name is the first word of a Vietnamese name."""
    family, _, rest = unicodedata.normalize("NFC", name).strip().partition(" ")
    return family, rest


def _pid(visit: Visit) -> str:
    family, rest = _name(visit.name)
    fields = {
        1: "1",
        3: _identifiers(visit),
        5: _rep(family, rest, "", "", "", "", "L") if family else "",
        7: _hl7_date(visit.dob, "the date of birth") if visit.dob else "",
        8: visit.sex if visit.sex in ("M", "F") else "U",
    }
    if visit.address:
        fields[11] = _rep(visit.address, "", "", "", "", "VNM", "H")
    return _segment("PID", fields)


def _in1(visit: Visit) -> list[str]:
    cov = visit.coverage
    if cov is None:
        return []
    fields = {
        1: "1",
        2: _rep(PLAN, "Bảo hiểm y tế", "L"),
        3: _rep(INSURER_ID),
        4: _rep(INSURER_NAME),
        17: "SEL",
        36: _rep(cov.card),
    }
    if cov.valid_from:
        fields[12] = _hl7_date(cov.valid_from, "the card's start date")
    if cov.valid_to:
        fields[13] = _hl7_date(cov.valid_to, "the card's end date")
    return [_segment("IN1", fields)]


def adt_a04(
    visit: Visit,
    *,
    now: datetime.datetime,
    control_id: str | None = None,
    sending_facility: str | None = None,
    receiving_application: str = "",
    receiving_facility: str = "",
) -> str:
    """The ADT^A04 (register an outpatient) of ``visit``, HL7 v2.5, segments ended by ``\\r``.

    ``sending_facility`` defaults to the visit's facility code, ``control_id`` to
    ``message_control_id(visit)``. Raises ValueError, naming the field but not its value, for
    what cannot be sent: no identifier, a date that is not ISO, a time without its zone."""
    msh = _segment(
        "MSH",
        {
            1: "^~\\&",
            2: _rep(SENDING_APPLICATION),
            3: _rep(visit.facility if sending_facility is None else sending_facility),
            4: _rep(receiving_application),
            5: _rep(receiving_facility),
            6: _hl7_time(now, "now"),
            8: "ADT^A04^ADT_A01",
            9: _rep(message_control_id(visit) if control_id is None else control_id),
            10: "P",
            11: VERSION,
            16: "VNM",
            17: CHARSET,
        },
    )  # MSH-1 is the "|" after the name: the keys here are one less than the field numbers
    arrived = _hl7_time(visit.arrived, "the arrival time")
    evn = _segment("EVN", {1: "A04", 2: _hl7_time(now, "now"), 6: arrived})
    segments = [msh, evn, _pid(visit)]
    kcbbd = visit.coverage.kcbbd if visit.coverage is not None else None
    if kcbbd:
        segments.append(_segment("PD1", {3: _rep("", "", "", "", "", "", "FI", "", "", kcbbd)}))
    pv1 = {
        1: "1",
        2: "O",
        3: _rep(visit.device, "", "", visit.facility),
        19: _rep(visit.key, "", "", "", "VN"),
        44: arrived,
    }
    segments.append(_segment("PV1", pv1))
    segments.extend(_in1(visit))
    return "\r".join(segments) + "\r"


# --- the acknowledgment --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """What an ACK says: MSA-1, MSA-2, the error code (table 0357) and the HIS's text."""

    code: str
    control_id: str
    error: str
    text: str


class AckError(Exception):
    """The answer is not an HL7 acknowledgment (the text is ours, never the answer's)."""


def _get(message: Any, path: str) -> str:
    try:
        value = message[path]
    except (KeyError, IndexError):
        return ""
    return value if isinstance(value, str) else str(value)


def parse_ack(frame: bytes) -> Ack:
    """The ACK in an MLLP frame's content; AckError when it is not one."""
    try:
        text = frame.decode("utf-8")
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises what it meets (IndexError, ParseException, …)
        raise AckError("the answer is not an HL7 message") from exc
    code, control_id = _get(message, "MSA.F1").strip().upper(), _get(message, "MSA.F2")
    if not code:
        raise AckError("the answer has no MSA segment")
    error = _get(message, "ERR.F3.R1.C1") or _get(message, "ERR.F1.R1.C4.S1")
    texts = (
        _get(message, "ERR.F8"),
        _get(message, "ERR.F7"),
        _get(message, "ERR.F3.R1.C2") or _get(message, "ERR.F1.R1.C4.S2"),
        _get(message, "MSA.F3"),
    )
    return Ack(code, control_id, error.strip(), next((t for t in texts if t.strip()), ""))


def redact(text: str, visit: Visit, limit: int = 300) -> str:
    """The HIS's ``text`` fit for a log or a dead letter: on one line, personal values masked as
    the FHIR connector masks them (and the birth date in HL7's form), at most ``limit`` characters."""
    out = " ".join(unicodedata.normalize("NFC", text).split())
    if len(visit.dob) == 10:
        out = out.replace(visit.dob.replace("-", ""), "***")
    out = mask(out, visit)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def verdict(ack: Ack, visit: Visit) -> None:
    """Nothing when ``ack`` says the HIS registered the visit; else raises (see the docstring)."""
    if ack.code in ("AA", "CA"):
        return
    about = f"{ack.code} {ack.error}".strip()
    if ack.code not in ("AE", "AR", "CE", "CR"):
        raise HisUnavailableError(f"the HIS answered an unknown acknowledgment code ({ack.code[:8]!r})")
    rejected = ack.code in ("AE", "CR")
    if ack.error in _TRANSIENT:
        rejected = False
    elif ack.error in _PERMANENT:
        rejected = True
    said = redact(ack.text, visit)
    detail = f"{about}: {said}" if said else about
    if rejected:
        raise HisRejectedError(detail)
    raise HisUnavailableError(f"the HIS could not process the registration now ({detail})")


# --- MLLP ----------------------------------------------------------------------------------------


class _NoAnswerError(Exception):
    """The connection ended before a byte of the answer came."""


class _Link:
    """One MLLP connection: a frame out, a frame back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> "_Link":
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_ACK)
        return cls(reader, writer)

    def alive(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    async def exchange(self, frame: bytes) -> bytes:
        try:
            self.writer.write(frame)
            await self.writer.drain()
            block = await self.reader.readuntil(END)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _NoAnswerError from None
            raise AckError("the connection ended inside the answer's frame") from None
        except asyncio.LimitOverrunError:
            raise AckError(f"the answer's frame is longer than {MAX_ACK} bytes") from None
        except (ConnectionResetError, BrokenPipeError):
            raise _NoAnswerError from None
        if not block.startswith(START):
            raise AckError("the answer is not an MLLP frame")
        return block[1 : -len(END)]

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class Hl7v2Connector:
    """The HIS as an HL7 v2.5 MLLP listener at ``host:port`` (see the module's docstring)."""

    name = "hl7v2"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        sending_facility: str | None = None,
        receiving_application: str = "",
        receiving_facility: str = "",
        connections: int = 1,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sending_facility = sending_facility
        self.receiving_application = receiving_application
        self.receiving_facility = receiving_facility
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Link] = []
        self._closed = False

    async def register(self, visit: Visit) -> str:
        """Send the visit's ADT^A04 and wait for its ACK; returns the message control ID."""
        if self._closed:
            raise RuntimeError("the HL7 v2 connector is closed")
        control_id = message_control_id(visit)
        try:
            text = adt_a04(
                visit,
                now=datetime.datetime.now(_VN),
                control_id=control_id,
                sending_facility=self.sending_facility,
                receiving_application=self.receiving_application,
                receiving_facility=self.receiving_facility,
            )
        except ValueError as exc:
            raise HisRejectedError(f"not sent: {exc}") from None
        async with self._slots:
            ack = await self._send(START + text.encode("utf-8") + END, control_id)
        log.debug("ADT^A04 %s: %s %s", control_id, ack.code, ack.error)
        verdict(ack, visit)
        return control_id

    async def _send(self, frame: bytes, control_id: str) -> Ack:
        """One frame out and its ACK back, on a kept connection or a new one."""
        link: _Link | None = None
        failure = ""
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    link, reused = await self._checkout()
                    try:
                        ack = parse_ack(await link.exchange(frame))
                    except _NoAnswerError:
                        if not reused:
                            raise
                        await link.close()  # the HIS had closed it while idle: once more, anew
                        link = None
                        continue
                    if ack.control_id != control_id:
                        raise AckError("the HIS acknowledged another message (MSA-2 is not our control ID)")
                    await self._checkin(link)
                    link = None
                    return ack
        except TimeoutError:
            failure = f"no answer from the HIS within {self.timeout:g} s"
        except _NoAnswerError:
            failure = "the HIS closed the connection without answering"
        except AckError as exc:
            failure = str(exc)
        except OSError as exc:
            failure = f"cannot reach the HIS at {self.host}:{self.port} ({type(exc).__name__})"
        finally:
            if link is not None:
                link.abort()  # out of step with the HIS (or cancelled): never used again
        if link is not None:
            await link.close()
        log.info("ADT^A04 %s: %s", control_id, failure)
        raise HisUnavailableError(failure)

    async def _checkout(self) -> tuple[_Link, bool]:
        while self._idle:
            link = self._idle.pop()
            if link.alive():
                return link, True
            await link.close()
        return await _Link.open(self.host, self.port), False

    async def _checkin(self, link: _Link) -> None:
        if self._closed or not link.alive():
            await link.close()
        else:
            self._idle.append(link)

    async def aclose(self) -> None:
        """Close the kept connections; a registration in flight closes its own when done."""
        self._closed = True
        idle, self._idle = self._idle, []
        for link in idle:
            await link.close()
