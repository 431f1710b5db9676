"""A fake HIS that takes HL7 v2.5 ADT^A04 registrations over MLLP, as a hospital's HIS would.

It listens on TCP (``start()``: a daemon thread, one more per connection), reads MLLP frames
(0x0B, the message, 0x1C 0x0D), parses each message with python-hl7, checks it, stores the
registration in SQLite and answers an ACK (original mode: MSH, MSA, and ERR when it refuses).

De-duplication is on the message control ID (MSH-10), as HL7 v2 receivers do: a message whose
control ID is already stored is answered ``AA`` again and not stored twice. It does not
de-duplicate on anything else: the same visit sent under two control IDs is two registrations
(the sender's control ID must be stable for exactly-once to hold).

What it answers, the first rule that applies:

=======================================================  ====  =====  ===================================
the message                                              MSA   ERR-3  counted as
=======================================================  ====  =====  ===================================
not UTF-8, not HL7, no MSH                               AR    100    ``AR``, ``unparsable``
MSH-9 not ``ADT^A04``                                    AR    200    ``AR`` (201 for another ADT event)
MSH-11 not ``P`` / ``T``                                 AR    202    ``AR``
MSH-12 not 2.5 (2.5 or 2.5.1)                            AR    203    ``AR``
MSH-10 missing or longer than 20                         AR    101    ``AR``
control ID already stored                                AA           ``AA``, ``duplicate``
injected failure (``error_rate``)                        AR    207    ``AR``, ``injected``
EVN, PID or PV1 missing                                  AE    100    ``AE``
content: PID-3 (one identifier at least; NNVNM 12        AE    101    ``AE``
digits, CZ 9 or 12, HC 2 letters + 13 digits), PID-5     102
family name, PID-7 a date, PID-8 table 0001, PV1-2       103
table 0004, PV1-19 visit number, IN1-2/3, IN1 dates
otherwise: stored                                        AA           ``AA``
=======================================================  ====  =====  ===================================

The ERR segment carries the error's location (ERR-2), code and name (ERR-3), severity ``E``,
and a sentence for people (ERR-8, also in MSA-3 for HIS of older versions). It never quotes
the data.

Framing: bytes outside a frame are skipped (counted once per run, ``garbage``); more than
``max_frame`` of them, or a frame longer than ``max_frame`` (``oversized``), close the
connection; a frame cut by the end of the connection or by a new start byte is ``torn``.
Several frames in one packet and one frame over many packets are read as they come.

Faults, settable while it runs: ``set_latency`` (every answer waits), ``set_outage`` (the port
is closed: connections are refused, open ones reset; a message waiting out its latency is
dropped unprocessed), ``set_error_rate`` (AR 207, not stored), ``set_drop_before_ack`` (the
message is processed and stored, then the connection is closed without an answer: the HIS
acted and the sender never heard; counted ``dropped``).

Nothing ever answers with a stack trace; logs (``cccd.sim.hl7his``, DEBUG) carry control IDs and
answer codes, never the message's content.
"""

import collections
import contextlib
import dataclasses
import datetime
import json
import logging
import random
import re
import socket
import socketserver
import sqlite3
import struct
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hl7

from sim.httpd import Latency

log = logging.getLogger("cccd.sim.hl7his")

MAX_FRAME = 1024 * 1024
IDLE = 300.0  # seconds a connection may stay silent
_START, _END = b"\x0b", b"\x1c\r"
_VN = datetime.timezone(datetime.timedelta(hours=7))
_SEX = frozenset({"F", "M", "O", "U", "A", "N"})  # table 0001
_PATIENT_CLASS = frozenset({"E", "I", "O", "P", "R", "B", "C", "N", "U"})  # table 0004
_DTM = re.compile(
    r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,4})?)?)?)?)?)?(?:[+-][0-9]{4})?"
)
_ID_RULES = {"NNVNM": r"[0-9]{12}", "CZ": r"[0-9]{9}|[0-9]{12}", "HC": r"[A-Z]{2}[0-9]{13}"}
_ERRORS = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "207": "Application internal error",
}  # table 0357
# What our own texts may hold: HL7 delimiters in them are escaped, control characters become spaces.
_OWN_TEXT = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"})


@dataclass(frozen=True)
class Registration:
    """One stored ADT^A04: what the HIS keeps of it, and the message itself."""

    control_id: str
    visit_key: str  # PV1-19
    family: str
    given: str
    dob: str  # PID-7 as sent
    sex: str
    address: str
    identifiers: Mapping[str, str]  # identifier type (PID-3.5) → value
    location: str  # PV1-3.1: the counter
    arrived: str  # PV1-44 as sent
    plan: str  # IN1-2.1, "" without IN1
    card: str  # IN1-36
    valid_from: str  # IN1-12
    valid_to: str  # IN1-13
    kcbbd: str  # PD1-3.10
    received: float  # Unix time
    message: str


@dataclass(frozen=True)
class _Answer:
    code: str  # MSA-1
    error: str = ""  # ERR-3 (table 0357)
    where: str = ""  # ERR-2: segment^sequence^field
    text: str = ""  # ERR-8 and MSA-3


class _Refusal(Exception):  # noqa: N818 - a verdict, not an error of ours
    def __init__(self, code: str, error: str, where: str, text: str) -> None:
        super().__init__(text)
        self.answer = _Answer(code, error, where, text)


def _field(message: Any, path: str) -> str:
    """One value by python-hl7's accessor (``PID.F5.R1.C1``), unescaped; "" when absent."""
    try:
        value = message[path]
    except (KeyError, IndexError):
        return ""
    return value if isinstance(value, str) else str(value)


def _repeats(message: Any, segment: str, field: int) -> int:
    try:
        seg = message.segment(segment)
    except KeyError:
        return 0
    return len(seg(field)) if len(seg) > field else 0


def _has(message: Any, segment: str) -> bool:
    try:
        message.segment(segment)
    except KeyError:
        return False
    return True


def _is_date(text: str, required: bool) -> bool:
    """An HL7 DT / DTM: YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ], its date a real one."""
    if not text:
        return not required
    match = _DTM.fullmatch(text)
    if match is None:
        return False
    try:
        datetime.date(int(match[1]), int(match[2] or 1), int(match[3] or 1))
    except ValueError:
        return False
    return True


def _check_header(message: Any) -> str:
    """MSH's accept validation; returns the control ID, or raises _Refusal (AR)."""
    kind, event = _field(message, "MSH.F9.R1.C1"), _field(message, "MSH.F9.R1.C2")
    if kind != "ADT":
        raise _Refusal("AR", "200", "MSH^1^9", "only ADT messages are taken here")
    if event != "A04":
        raise _Refusal("AR", "201", "MSH^1^9", "only the A04 event (register a patient) is taken here")
    if _field(message, "MSH.F11.R1.C1") not in ("P", "T"):
        raise _Refusal("AR", "202", "MSH^1^11", "processing ID must be P or T")
    if _field(message, "MSH.F12.R1.C1") not in ("2.5", "2.5.1"):
        raise _Refusal("AR", "203", "MSH^1^12", "only HL7 version 2.5 is taken here")
    control_id = _field(message, "MSH.F10")
    if not control_id or len(control_id) > 20:
        raise _Refusal("AR", "101", "MSH^1^10", "the message control ID is missing or longer than 20")
    return control_id


def _check_content(message: Any) -> None:
    """The registration's content; raises _Refusal (AE) at the first fault."""
    for segment in ("EVN", "PID", "PV1"):
        if not _has(message, segment):
            raise _Refusal("AE", "100", segment, f"the {segment} segment is missing")
    ids = 0
    for rep in range(1, _repeats(message, "PID", 3) + 1):
        value = _field(message, f"PID.F3.R{rep}.C1")
        kind = _field(message, f"PID.F3.R{rep}.C5")
        if not value:
            continue
        ids += 1
        rule = _ID_RULES.get(kind)
        if rule is not None and not re.fullmatch(rule, value):
            raise _Refusal("AE", "102", f"PID^1^3^{rep}", f"a {kind} identifier is not well formed")
    if ids == 0:
        raise _Refusal("AE", "101", "PID^1^3", "the patient has no identifier")
    if not _field(message, "PID.F5.R1.C1").strip():
        raise _Refusal("AE", "101", "PID^1^5", "the patient's family name is missing")
    if not _is_date(_field(message, "PID.F7"), required=True):
        raise _Refusal("AE", "102", "PID^1^7", "the date of birth is missing or not a date")
    if _field(message, "PID.F8") not in _SEX | {""}:
        raise _Refusal("AE", "103", "PID^1^8", "administrative sex is not in table 0001")
    if _field(message, "PV1.F2") not in _PATIENT_CLASS:
        raise _Refusal("AE", "103", "PV1^1^2", "patient class is not in table 0004")
    if not _field(message, "PV1.F19.R1.C1"):
        raise _Refusal("AE", "101", "PV1^1^19", "the visit number is missing")
    if _has(message, "IN1"):
        for number, what in ((2, "insurance plan"), (3, "insurance company")):
            if not _field(message, f"IN1.F{number}.R1.C1"):
                raise _Refusal("AE", "101", f"IN1^1^{number}", f"the {what} is missing")
        for number in (12, 13):
            if not _is_date(_field(message, f"IN1.F{number}"), required=False):
                raise _Refusal("AE", "102", f"IN1^1^{number}", "a coverage date is not a date")


def _registration(message: Any, control_id: str, text: str) -> Registration:
    ids = {}
    for rep in range(1, _repeats(message, "PID", 3) + 1):
        value = _field(message, f"PID.F3.R{rep}.C1")
        if value:
            ids[_field(message, f"PID.F3.R{rep}.C5")] = value
    return Registration(
        control_id=control_id,
        visit_key=_field(message, "PV1.F19.R1.C1"),
        family=_field(message, "PID.F5.R1.C1"),
        given=_field(message, "PID.F5.R1.C2"),
        dob=_field(message, "PID.F7"),
        sex=_field(message, "PID.F8"),
        address=_field(message, "PID.F11.R1.C1"),
        identifiers=ids,
        location=_field(message, "PV1.F3.R1.C1"),
        arrived=_field(message, "PV1.F44"),
        plan=_field(message, "IN1.F2.R1.C1"),
        card=_field(message, "IN1.F36"),
        valid_from=_field(message, "IN1.F12"),
        valid_to=_field(message, "IN1.F13"),
        kcbbd=_field(message, "PD1.F3.R1.C10"),
        received=time.time(),
        message=text,
    )


def _own(text: str) -> str:
    """One of our own texts (or a value echoed back) as HL7 field data."""
    return " ".join(text.split()).translate(_OWN_TEXT)


class Hl7His:
    """The fake HIS: ``start()`` listens on ``host:port``, ``stop()`` ends it (see the module).

    ``path``: the SQLite database of registrations (":memory:" by default; a file keeps them
    across instances). ``application`` / ``facility``: MSH-3 / MSH-4 of its ACKs. Settings
    change while it runs (thread-safe). ``stop()`` then ``start()`` listens on the same port.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        application: str = "HIS",
        facility: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: tuple[float, float] = (0.0, 0.0),
        error_rate: float = 0.0,
        outage: bool = False,
        drop_before_ack: bool = False,
        max_frame: int = MAX_FRAME,
        seed: int | None = None,
    ) -> None:
        if max_frame < 1024:
            raise ValueError("max_frame must be at least 1024 bytes")
        self.path = str(path)
        self.application = application
        self.facility = facility
        self.max_frame = max_frame
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._counts: collections.Counter[str] = collections.Counter()
        self._latency = Latency(*latency, seed=seed)
        self._error_rate = 0.0
        self._outage = outage
        self._drop = drop_before_ack
        self.set_error_rate(error_rate)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._finalizer = weakref.finalize(self, self._db.close)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS registrations (control_id TEXT PRIMARY KEY, visit_key TEXT NOT NULL,"
            " data TEXT NOT NULL, received REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS registrations_visit ON registrations (visit_key)")
        self._running = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._interrupt = threading.Event()  # set on stop and outage: a latency wait ends
        self._conns: set[socket.socket] = set()

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> "Hl7His":
        """Listen (port 0: a free one, kept for later restarts; during an outage the port is
        chosen, then closed). Returns self."""
        if self._running:
            return self
        self._running = True
        self._listen()
        if self.outage:
            self._unlisten()
        log.info("fake HIS (HL7 v2 MLLP) on %s:%d", self._host, self._port)
        return self

    def stop(self) -> None:
        """Stop listening; open connections are reset. Registrations and counters are kept."""
        self._running = False
        self._unlisten()

    def close(self) -> None:
        """Stop, and close the database (an in-memory one is gone)."""
        self.stop()
        self._finalizer()

    def __enter__(self) -> "Hl7His":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        if self._server is not None:
            return
        server = _Server((self._host, self._port), self)
        self._port = server.server_address[1]
        self._interrupt.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="hl7-his", daemon=True
        )
        self._thread.start()

    def _unlisten(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._interrupt.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    # --- settings (thread-safe) ---------------------------------------------------------------

    def set_latency(self, low: float, high: float | None = None) -> None:
        """Every answer waits a uniform random time in [low, high] seconds (high defaults to low)."""
        self._latency.set(low, high)

    def set_error_rate(self, rate: float) -> None:
        """The fraction of messages answered AR 207 (application internal error), not stored."""
        if not 0 <= rate <= 1:
            raise ValueError("error_rate is a fraction between 0 and 1")
        with self._lock:
            self._error_rate = float(rate)

    def set_outage(self, on: bool) -> None:
        """While on, the port is closed (connections refused) and open connections are reset."""
        with self._lock:
            self._outage = bool(on)
        if not self._running:
            return
        if on:
            self._unlisten()
        else:
            self._listen()

    def set_drop_before_ack(self, on: bool) -> None:
        """While on, each message is processed, then its connection closed without an answer."""
        with self._lock:
            self._drop = bool(on)

    @property
    def outage(self) -> bool:
        with self._lock:
            return self._outage

    # --- what tests ask -----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Events by name: the answers (``AA``, ``AE``, ``AR``), ``duplicate``, ``injected``,
        ``unparsable``, ``dropped``, ``garbage``, ``torn``, ``oversized``, ``connections``,
        ``lost`` (a message dropped unprocessed by an outage or a stop)."""
        with self._lock:
            return dict(self._counts)

    def count(self) -> int:
        """How many registrations are stored."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM registrations").fetchone()[0])

    def registrations(self) -> list[Registration]:
        """Every stored registration, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM registrations ORDER BY received, rowid").fetchall()
        return [Registration(**json.loads(row[0])) for row in rows]

    def find(self, visit_key: str) -> Registration | None:
        """The first registration of the visit whose PV1-19 is ``visit_key``."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM registrations WHERE visit_key = ? ORDER BY received, rowid LIMIT 1",
                (visit_key,),
            ).fetchone()
        return None if row is None else Registration(**json.loads(row[0]))

    def _count(self, *events: str) -> None:
        with self._lock:
            self._counts.update(events)

    # --- one message --------------------------------------------------------------------------

    def _wait(self) -> bool:
        """Wait out the latency; False when an outage or a stop came meanwhile."""
        self._latency.wait(self._interrupt)
        return self._running and not self.outage

    def _process(self, frame: bytes) -> tuple[bytes, bool]:
        """(the ACK's bytes, whether to send it) for one frame's content."""
        try:
            text = frame.decode("utf-8")
            message = hl7.parse(text)
            if _field(message, "MSH.F1") != "|":
                raise ValueError("no MSH")
        except Exception:  # python-hl7 raises what it meets
            self._count("unparsable")
            return self._ack(None, "", _Answer("AR", "100", "MSH", "not an HL7 v2 message")), True
        control_id = ""
        try:
            control_id = _check_header(message)
            answer = self._decide(message, control_id, text)
        except _Refusal as refusal:
            answer = refusal.answer
        except Exception as exc:  # a bug of ours: an answer all the same, never a trace
            log.warning("message %s failed: %s", control_id or "-", type(exc).__name__)
            answer = _Answer("AR", "207", "", "internal error")
        with self._lock:
            drop = self._drop
        log.debug("%s -> %s %s%s", control_id or "-", answer.code, answer.error, " (dropped)" if drop else "")
        return self._ack(message, control_id, answer), not drop

    def _decide(self, message: Any, control_id: str, text: str) -> _Answer:
        with self._lock:
            known = self._db.execute(
                "SELECT 1 FROM registrations WHERE control_id = ?", (control_id,)
            ).fetchone()
            injected = self._error_rate > 0 and self._rng.random() < self._error_rate
        if known is not None:
            self._count("duplicate")
            return _Answer("AA")
        if injected:
            self._count("injected")
            return _Answer("AR", "207", "", "the HIS could not store the registration now, try again")
        _check_content(message)
        reg = _registration(message, control_id, text)
        data = json.dumps(dataclasses.asdict(reg), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO registrations (control_id, visit_key, data, received)"
                " VALUES (?, ?, ?, ?)",
                (control_id, reg.visit_key, data, reg.received),
            )
        return _Answer("AA")

    def _ack(self, message: Any, control_id: str, answer: _Answer) -> bytes:
        """The ACK of ``message`` (None: not parsable) with ``answer``, framed."""
        self._count(answer.code)
        now = datetime.datetime.now(_VN).strftime("%Y%m%d%H%M%S%z")
        theirs = ("", "") if message is None else (_field(message, "MSH.F3"), _field(message, "MSH.F4"))
        ack_id = f"A{time.time_ns() % 10**19}"
        msh = [
            "MSH", "^~\\&", _own(self.application), _own(self.facility), _own(theirs[0]), _own(theirs[1]),
            now, "", "ACK^A04^ACK", ack_id, "P", "2.5", "", "", "", "", "", "UNICODE UTF-8",
        ]  # fmt: skip
        segments = [
            "|".join(msh),
            "|".join(["MSA", answer.code, _own(control_id), _own(answer.text)]).rstrip("|"),
        ]
        if answer.error:
            name = _ERRORS.get(answer.error, "")
            err = [
                "ERR",
                "",
                answer.where,
                f"{answer.error}^{_own(name)}^HL70357",
                "E",
                "",
                "",
                "",
                _own(answer.text),
            ]
            segments.append("|".join(err))
        return _START + ("\r".join(segments) + "\r").encode("utf-8") + _END


# --- MLLP over TCP ------------------------------------------------------------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], his: Hl7His) -> None:
        self.his = his
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s dropped", client_address[0] if client_address else "?")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server
    request: socket.socket

    def setup(self) -> None:
        self.his = self.server.his
        with self.his._lock:
            self.his._conns.add(self.request)
        self.his._count("connections")
        self.request.settimeout(IDLE)

    def finish(self) -> None:
        with self.his._lock:
            self.his._conns.discard(self.request)

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            for frame in self._frames():
                if not self.his._wait():
                    self.his._count("lost")
                    return
                reply, send = self.his._process(frame)
                if not send:
                    self.his._count("dropped")
                    return
                self.request.sendall(reply)

    def _frames(self) -> Iterator[bytes]:
        """The frames' contents as they come; ends (after counting why) when the connection must."""
        buf = bytearray()
        limit = self.his.max_frame
        skipped = 0  # bytes of the current run outside any frame
        while True:
            start = buf.find(_START)
            skip = len(buf) if start < 0 else start
            if skip:
                if not skipped:
                    self.his._count("garbage")
                skipped += skip
                del buf[:skip]
                if skipped > limit:
                    return
            if start < 0:
                if not self._fill(buf):
                    return
                continue
            skipped = 0
            end, again = buf.find(_END, 1), buf.find(_START, 1)
            if again > 0 and (end < 0 or again < end):
                self.his._count("torn")  # a new frame began before this one ended
                del buf[:again]
            elif end > 0:
                yield bytes(buf[1:end])
                del buf[: end + len(_END)]
            elif len(buf) > limit:
                self.his._count("oversized")
                return
            elif not self._fill(buf):
                self.his._count("torn")
                return

    def _fill(self, buf: bytearray) -> bool:
        """Read more into ``buf``; False at the connection's end or after IDLE seconds of silence."""
        try:
            chunk = self.request.recv(65536)
        except TimeoutError:
            return False
        buf.extend(chunk)
        return bool(chunk)


def banner(his: Hl7His) -> str:
    """What ``cccd-edge sim his`` prints about the MLLP listener."""
    lines = [
        f"fake HIS (HL7 v2.5 ADT^A04) on mllp://{his.host}:{his.port} — store {his.path}",
        "  frames 0x0B … 0x1C 0x0D, UTF-8; ACK AA, AE (content) or AR (header; 207 injected) with ERR",
        "  de-duplicated on MSH-10: a message sent again is acknowledged AA and stored once",
    ]
    return "\n".join(lines) + "\n"
