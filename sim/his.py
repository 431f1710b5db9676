"""A fake hospital information system (HIS): a FHIR R4 server for what the collector sends it.

Patient, Coverage and Encounter, stored in SQLite (a file, or memory), under the base
``url`` = ``http://host:port/fhir``, in JSON (``application/fhir+json``; ``application/json`` is
accepted too):

``GET  [base]/metadata``
    the CapabilityStatement.
``POST [base]/[type]``
    create, the id assigned by the server (a body's id is ignored). With ``If-None-Exist:
    identifier=…``: no match creates (201), one match answers it unchanged (200), several 412.
``GET  [base]/[type]/[id]``, ``GET [base]/[type]/[id]/_history/[vid]``
    read, vread.
``PUT  [base]/[type]/[id]``
    update; the body's id must be the URL's (else 400); an unknown id is created (201).
``PUT  [base]/[type]?identifier=…``
    conditional update: no match creates (201; with the body's id when it has one and that id is
    free), one match updates it (200; a body id other than the match's: 400), several: 412.
``GET  [base]/[type]?identifier=…``
    search: a ``searchset`` Bundle (``_count`` limits the entries, ``total`` counts all).

``identifier`` is a token: ``system|value``, ``value`` (any system), ``|value`` (no system),
``system|`` (any value); several ORed with commas; the parameter repeated ANDs. ``\\`` escapes
``,`` ``|`` ``$`` ``\\``. Any other search parameter is refused (400), as HAPI does: a
conditional update that ignored a criterion could overwrite the wrong resource.

Every write answers with ``ETag: W/"<versionId>"``, ``Last-Modified``, ``Location:
[base]/[type]/[id]/_history/[vid]`` and the resource (``Prefer: return=minimal``: no body;
``minimal=True`` makes that the default, as some servers have it). A write whose content equals
the stored one makes no new version. ``meta.versionId`` and ``meta.lastUpdated`` are the server's.

What a real server checks, and the answer (an OperationOutcome, severity ``error``, an issue
``code`` and ``diagnostics`` that say which element was wrong and how, never echoing a value
that was sent — only ids and reference targets):

- 400: a body that is not UTF-8, not JSON (or has duplicate keys, NaN, nesting deeper than the
  parser allows), not an object, of another ``resourceType`` than the URL's; FHIR JSON's own
  rules (no ``null``, no empty string, object or array, no control character but tab, CR, LF);
  the R4B model's validation (fhir.resources) and the required codes it does not check
  (Patient.gender, Coverage.status, Encounter.status); a bad id; a bad or unknown search
  parameter; a chunked body or a bad Content-Length (411 / 400);
- 401: no or a wrong bearer token, when the HIS was given one;
- 413: a body over ``MAX_BODY`` (1 MiB); 415: another content type; 404: an unknown type, id or
  path; 405: another method; 406: ``_format`` other than JSON;
- 422: a literal reference (``Type/id``, or an absolute one to this server) that does not
  resolve; Coverage.beneficiary and Encounter.subject that are not a literal reference to one of
  our Patients (this HIS's rule); a write of a type ``set_reject`` names (a business rule);
- 412: several matches for a conditional create or update.

Faults for tests: ``set_latency(low, high)`` delays every answer; ``set_error_rate(rate)`` answers
that share of requests 500 before doing anything, or with ``after=True`` does the write and then
answers 500 (the answer lost: what exactly-once must survive); ``set_outage("refuse")`` (or True)
closes the listening socket and the open connections: connection refused until ``set_outage
(False)`` listens again on the same port; ``set_outage("503")`` answers every request 503.

Counters: requests answered, by (method, type, status); ``count(type)``, ``resources(type)``,
``find(type, system, value)`` and ``read(type, id)`` look into the store (exactly-once checks).

Logs (logger ``cccd.sim.his``, DEBUG): method, path without the query string, status. Never a
body, a query string (identifiers) or an exception text. Nothing answers with a stack trace.
"""

import collections
import contextlib
import datetime
import email.utils
import hmac
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from sim import httpd

log = logging.getLogger("cccd.sim.his")

BASE_PATH = "/fhir"
TYPES = ("Patient", "Coverage", "Encounter")
MAX_BODY = 1024 * 1024
MAX_ENTRIES = 100  # entries of a transaction Bundle
FHIR_JSON = "application/fhir+json"
OUTAGES = ("refuse", "503")

_ID = r"[A-Za-z0-9\-.]{1,64}"
_ID_RE = re.compile(_ID)
_REF_RE = re.compile(rf"([A-Z][A-Za-z]{{1,63}})/({_ID})(?:/_history/{_ID})?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Patient", "gender"): frozenset({"male", "female", "other", "unknown"}),
    ("Coverage", "status"): frozenset({"active", "cancelled", "draft", "entered-in-error"}),
    ("Encounter", "status"): frozenset(
        {
            "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
            "entered-in-error", "unknown",
        }
    ),
}  # fmt: skip
_SUBJECT = {"Coverage": "beneficiary", "Encounter": "subject"}  # must name one of our Patients
_SEARCH_PARAMS = frozenset({"identifier", "_count", "_format"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
    type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (type, id));
CREATE TABLE IF NOT EXISTS history (
    type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (type, id, version));
CREATE TABLE IF NOT EXISTS ident (
    type TEXT NOT NULL, id TEXT NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ident_value ON ident (type, value);
CREATE INDEX IF NOT EXISTS ident_id ON ident (type, id);
CREATE TABLE IF NOT EXISTS sequence (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
"""


class _FhirError(Exception):
    """A request answered with an OperationOutcome."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics


class _MethodError(_FhirError):
    """A method the path does not take: 405 with Allow."""

    def __init__(self, allow: str) -> None:
        super().__init__(405, "not-supported", f"Method not allowed here: {allow or 'none is'}")
        self.allow = allow


@dataclass
class _Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome of one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def _error_answer(problem: _FhirError) -> _Answer:
    headers = {"Allow": problem.allow} if isinstance(problem, _MethodError) else {}
    return _Answer(problem.status, outcome(problem.code, problem.diagnostics), headers)


# --- the store ----------------------------------------------------------------------------------


class _Store:
    """Current versions, their history and an identifier index, in one SQLite connection."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()  # held across a conditional interaction's search and write
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, kind: str, rid: str, version: int | None = None) -> dict[str, Any] | None:
        with self.lock:
            if version is None:
                row = self._db.execute(
                    "SELECT body FROM resource WHERE type=? AND id=?", (kind, rid)
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT body FROM history WHERE type=? AND id=? AND version=?", (kind, rid, version)
                ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self._db.execute(
                "SELECT body FROM resource WHERE type=? ORDER BY rowid", (kind,)
            ).fetchall()
        return [dict(json.loads(body)) for (body,) in rows]

    def count(self, kind: str) -> int:
        with self.lock:
            return int(self._db.execute("SELECT COUNT(*) FROM resource WHERE type=?", (kind,)).fetchone()[0])

    def search(self, kind: str, tokens: list[tuple[str | None, str | None]]) -> set[str]:
        """Ids of ``kind`` with an identifier matching any of ``tokens`` ((system, value); None:
        any; system "": none)."""
        found: set[str] = set()
        with self.lock:
            for system, value in tokens:
                sql, args = "SELECT id FROM ident WHERE type=?", [kind]
                if system is not None:
                    sql, args = sql + " AND system=?", [*args, system]
                if value is not None:
                    sql, args = sql + " AND value=?", [*args, value]
                found.update(rid for (rid,) in self._db.execute(sql, args))
        return found

    def next_id(self) -> str:
        with self._tx() as db:
            while True:
                row = db.execute("SELECT next FROM sequence WHERE name='id'").fetchone()
                number = 1 if row is None else int(row[0])
                db.execute("INSERT OR REPLACE INTO sequence VALUES ('id', ?)", (number + 1,))
                taken = db.execute("SELECT 1 FROM resource WHERE id=?", (str(number),)).fetchone()
                if taken is None:
                    return str(number)

    def save(self, kind: str, rid: str, resource: dict[str, Any], now: float) -> tuple[dict[str, Any], bool]:
        """Store ``resource`` as the next version of ``kind/rid`` unless its content is the stored
        one's. Returns (what is stored, whether a new version was made)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT version, body FROM resource WHERE type=? AND id=?", (kind, rid)
            ).fetchone()
            if row is not None and _content(json.loads(row[1])) == _content(resource):
                return dict(json.loads(row[1])), False
            version = 1 if row is None else int(row[0]) + 1
            stored = {**resource, "id": rid}
            meta = dict(stored.get("meta") or {})
            meta["versionId"] = str(version)
            meta["lastUpdated"] = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(
                timespec="milliseconds"
            )
            stored["meta"] = meta
            text = json.dumps(stored, ensure_ascii=False)
            db.execute("INSERT OR REPLACE INTO resource VALUES (?, ?, ?, ?)", (kind, rid, version, text))
            db.execute("INSERT INTO history VALUES (?, ?, ?, ?)", (kind, rid, version, text))
            db.execute("DELETE FROM ident WHERE type=? AND id=?", (kind, rid))
            for ident in stored.get("identifier") or ():
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    system = ident.get("system") if isinstance(ident.get("system"), str) else ""
                    db.execute("INSERT INTO ident VALUES (?, ?, ?, ?)", (kind, rid, system, ident["value"]))
            return stored, True


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource without what the server sets: id, meta.versionId, meta.lastUpdated."""
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


# --- FHIR search tokens -------------------------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    """``text`` cut at every ``sep`` not escaped by a backslash (escapes kept)."""
    parts, current, escaped = [], [], False
    for c in text:
        if escaped:
            current.append(c)
            escaped = False
        elif c == "\\":
            current.append(c)
            escaped = True
        elif c == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_token(text: str) -> list[tuple[str | None, str | None]]:
    """A token search value: the (system, value) alternatives (None: any; system "": none)."""
    out: list[tuple[str | None, str | None]] = []
    for item in _split(text, ","):
        pieces = [_unescape(piece) for piece in _split(item, "|")]
        if len(pieces) > 2:
            raise _FhirError(400, "invalid", "identifier: a token has at most one unescaped '|'")
        system = pieces[0] if len(pieces) == 2 else None
        value = pieces[-1] or None
        if value is None and not system:
            raise _FhirError(400, "invalid", "identifier: an empty token")
        out.append((system, value))
    return out


def _criteria(query: str, *, require: bool) -> tuple[list[list[tuple[str | None, str | None]]], int | None]:
    """A search query: the identifier tokens (each repetition ANDed) and ``_count``."""
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=32)
    except ValueError:  # bad percent-encoding or UTF-8, too many fields
        raise _FhirError(
            400, "invalid", "The query string cannot be read (encoding, or too many fields)"
        ) from None
    tokens: list[list[tuple[str | None, str | None]]] = []
    count: int | None = None
    for name, value in pairs:
        if name not in _SEARCH_PARAMS:
            shown = name if re.fullmatch(r"[A-Za-z_:\-.]{1,40}", name) else "(unreadable)"
            raise _FhirError(
                400, "not-supported", f"Unknown search parameter {shown!r}: only identifier here"
            )
        if name == "identifier":
            tokens.append(parse_token(value))
        elif name == "_count":
            if not re.fullmatch(r"[0-9]{1,6}", value):
                raise _FhirError(400, "invalid", "_count must be a whole number")
            count = int(value)
        elif value not in ("json", "application/json", FHIR_JSON):
            raise _FhirError(406, "not-supported", "Only JSON is served here")
    if require and not tokens:
        raise _FhirError(400, "invalid", "A conditional interaction needs identifier criteria")
    return tokens, count


# --- validation ---------------------------------------------------------------------------------


def _models() -> dict[str, Any]:
    from fhir.resources.R4B import get_fhir_model_class  # noqa: PLC0415 - 0.2 s, only when serving

    return {kind: get_fhir_model_class(kind) for kind in TYPES}


def _decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400."""
    if not body:
        raise _FhirError(400, "required", "The request has no body: send the resource")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _FhirError(400, "structure", "The body is not valid UTF-8") from None

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        data = json.loads(text, object_pairs_hook=unique, parse_constant=no_constant)
    except (ValueError, RecursionError):
        raise _FhirError(400, "structure", "The body is not valid JSON (or has a duplicate key)") from None
    if not isinstance(data, dict):
        raise _FhirError(400, "structure", "The body is not a JSON object")
    return data


def _json_rules(value: Any, where: str) -> None:
    """FHIR JSON's rules the models do not check: no null, nothing empty, no control character."""
    if value is None:
        raise _FhirError(400, "structure", f"{where}: null is not allowed in FHIR JSON")
    if isinstance(value, str):
        if not value:
            raise _FhirError(400, "structure", f"{where}: an empty string is not allowed")
        if _CONTROL_RE.search(value):
            raise _FhirError(400, "structure", f"{where}: a control character is not allowed in a string")
    elif isinstance(value, dict | list):
        if not value:
            raise _FhirError(400, "structure", f"{where}: an empty object or array is not allowed")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _json_rules(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{_safe_name(key)}")


def _resolve(value: Any, resolved: dict[str, str]) -> Any:
    """``value`` with every reference to an earlier transaction entry's fullUrl replaced."""
    if isinstance(value, dict):
        return {
            k: resolved.get(v, v) if k == "reference" and isinstance(v, str) else _resolve(v, resolved)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve(v, resolved) for v in value]
    return value


def _safe_name(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key) else "(a bad key)"


def _element(kind: str, loc: tuple[int | str, ...]) -> str:
    path = kind
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{_safe_name(str(part))}"
    return path


def _references(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(element, reference) of every Reference.reference in a resource."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield where, ref
        for key, item in value.items():
            yield from _references(item, f"{where}.{_safe_name(key)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _references(item, f"{where}[{i}]")


# --- the server ---------------------------------------------------------------------------------


class FhirHis(httpd.Service):
    """The fake HIS: ``start()`` serves it on ``url`` from a daemon thread; ``stop()`` ends it,
    keeping the store, the counters and the port for a later ``start()``; ``close()`` (or leaving
    the ``with`` block) also closes the store.

    ``db``: an SQLite file (kept across runs) or ``":memory:"`` (the default). ``token``: when
    given, every request but ``metadata`` must carry ``Authorization: Bearer <token>`` (else 401).
    ``minimal``: writes answer without a body unless ``Prefer: return=representation``.
    ``transactions=False``: a server without the transaction interaction (its CapabilityStatement
    does not declare it; ``POST [base]`` answers 405), as many HIS are. Every setter works while
    it runs. ``clock`` gives Unix time (meta.lastUpdated).
    """

    def __init__(
        self,
        *,
        db: str | os.PathLike[str] = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: tuple[float, float] = (0.0, 0.0),
        error_rate: float = 0.0,
        outage: bool | str | None = None,
        minimal: bool = False,
        token: str | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        transactions: bool = True,
    ) -> None:
        self._models = _models()
        self._transactions = transactions
        super().__init__(host, port, lambda address: _Server(address, self), "fake-his", latency, seed)
        self._minimal = minimal
        self._token = token
        self._clock = clock
        self._lock = threading.Lock()  # settings and counters
        self._rng = random.Random(seed)
        self._counts: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self._error_rate = 0.0
        self._error_after = False
        self._outage: str | None = None
        self._reject: dict[str, str] = {}
        self.set_error_rate(error_rate)
        self._outage = _outage_mode(outage)
        self._serving = False  # started, and not stopped (it may still refuse: an outage)
        self._closed = False
        self._store = _Store(os.fspath(db))  # last: nothing to close when an argument is wrong

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> "FhirHis":
        """Serve on ``host:port`` (port 0: a free one, kept for later restarts). Returns self."""
        with self._life:
            if self._closed:
                raise RuntimeError("this fake HIS is closed: make a new one")
            if self._serving:
                return self
            self._serving = True
            self._stopping.clear()
            self._listener.start()  # binds the port even in an outage, to know it
            if self.outage == "refuse":
                self._listener.stop()
        log.info("fake HIS (FHIR R4) on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving; open connections are shut down. The store and the counters are kept."""
        with self._life:
            self._serving = False
        super().stop()

    def close(self) -> None:
        """Stop, and close the store."""
        self.stop()
        with self._life:
            if not self._closed:
                self._closed = True
                self._store.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The FHIR base: ``http://host:port/fhir``, no trailing slash."""
        return self.origin + BASE_PATH

    # --- settings (thread-safe) ---------------------------------------------------------------

    def set_error_rate(self, rate: float, *, after: bool = False) -> None:
        """The share of requests answered 500. ``after``: a write is done first, then its answer
        is replaced by the 500 (a lost answer); other requests fail before anything happens."""
        if not 0 <= rate <= 1:
            raise ValueError("error_rate is a fraction between 0 and 1")
        with self._lock:
            self._error_rate = float(rate)
            self._error_after = after

    def set_outage(self, mode: bool | str | None) -> None:
        """``"refuse"`` (or True): nothing listens, connections are refused; ``"503"``: every
        request is answered 503; False / None: serve again (on the same port)."""
        new = _outage_mode(mode)
        with self._life:
            with self._lock:
                self._outage = new
            if self._serving and new == "refuse":
                self._listener.stop()
            elif self._serving:
                self._listener.start()

    def set_reject(
        self, kind: str, diagnostics: str | None = "Rejected by a business rule of this HIS"
    ) -> None:
        """Refuse every write of ``kind`` with a 422 and ``diagnostics``; None lifts the rule."""
        if kind not in TYPES:
            raise ValueError(f"{kind!r} is not one of {', '.join(TYPES)}")
        with self._lock:
            if diagnostics is None:
                self._reject.pop(kind, None)
            else:
                self._reject[kind] = diagnostics

    @property
    def error_rate(self) -> float:
        with self._lock:
            return self._error_rate

    @property
    def outage(self) -> str | None:
        with self._lock:
            return self._outage

    # --- counters and the store ---------------------------------------------------------------

    def counters(self) -> dict[tuple[str, str, int], int]:
        """Requests answered, by (method, type, status); type ``metadata``, or ``other`` for any
        path that is not one of TYPES."""
        with self._lock:
            return dict(self._counts)

    def requests(self, method: str | None = None, kind: str | None = None, status: int | None = None) -> int:
        """How many requests were answered, of ``method``, ``kind`` and ``status`` when given."""
        with self._lock:
            return sum(
                n
                for (m, k, s), n in self._counts.items()
                if method in (None, m) and kind in (None, k) and status in (None, s)
            )

    def count(self, kind: str) -> int:
        """How many resources of ``kind`` the HIS holds."""
        return self._store.count(kind)

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """The resources of ``kind``, in the order they were first stored."""
        return self._store.all(kind)

    def encounters(self) -> list[dict[str, Any]]:
        return self.resources("Encounter")

    def read(self, kind: str, rid: str) -> dict[str, Any] | None:
        return self._store.read(kind, rid)

    def find(self, kind: str, system: str | None, value: str) -> list[dict[str, Any]]:
        """The resources of ``kind`` with the identifier ``system|value`` (system None: any)."""
        ids = self._store.search(kind, [(system, value)])
        found = (self._store.read(kind, rid) for rid in sorted(ids))
        return [r for r in found if r is not None]

    # --- what the handler asks ----------------------------------------------------------------

    def _count(self, method: str, kind: str, status: int) -> None:
        with self._lock:
            self._counts[(method, kind, status)] += 1

    def _injected(self) -> bool:
        with self._lock:
            return self._error_rate > 0 and self._rng.random() < self._error_rate

    def _handle(self, method: str, parts: list[str], query: str, headers: Message, body: bytes) -> _Answer:
        """One request, routed; ``parts``: the path below the base."""
        if self.outage is not None:
            return _Answer(503, outcome("transient", "The HIS is unavailable (outage)"), {"Retry-After": "1"})
        if self._token is not None and parts != ["metadata"] and not self._authorized(headers):
            challenge = {"WWW-Authenticate": 'Bearer realm="fake-his"'}
            return _Answer(401, outcome("login", "A valid bearer token is required"), challenge)
        with self._lock:
            after = self._error_after
        failing = self._injected()
        if failing and not (after and method in ("POST", "PUT")):
            return _Answer(500, outcome("exception", "Injected failure"))
        try:
            answer = self._route(method, parts, query, headers, body)
        except _FhirError as problem:
            answer = _error_answer(problem)
        if failing and answer.status < 300:
            return _Answer(500, outcome("exception", "Injected failure after the write"))
        return answer

    def _authorized(self, headers: Message) -> bool:
        sent = (headers.get("Authorization") or "").encode("utf-8", "replace")
        return hmac.compare_digest(sent, f"Bearer {self._token}".encode())

    def _route(self, method: str, parts: list[str], query: str, headers: Message, body: bytes) -> _Answer:
        if parts == ["metadata"]:
            if method != "GET":
                raise _MethodError("GET")
            return _Answer(200, self.capability())
        if not parts and method == "POST":
            if not self._transactions:
                raise _MethodError("")  # nothing is allowed at the base: no transaction, no batch
            return self._transaction(headers, body)
        if not parts or parts[0] not in TYPES:
            raise _FhirError(
                404, "not-supported", "Unknown resource type or path: this HIS serves " + ", ".join(TYPES)
            )
        kind = parts[0]
        if len(parts) > 1 and not _ID_RE.fullmatch(parts[1]):
            raise _FhirError(400, "invalid", "A resource id is 1 to 64 of A-Z a-z 0-9 - .")
        if len(parts) == 1:
            if method == "GET":
                return self._search(kind, query)
            if method == "POST":
                return self._create(kind, headers, body)
            if method == "PUT":
                return self._conditional_update(kind, query, headers, body)
            raise _MethodError("GET, POST, PUT")
        if len(parts) == 2:
            if method == "GET":
                return self._read(kind, parts[1], None)
            if method == "PUT":
                return self._update(kind, parts[1], headers, body)
            raise _MethodError("GET, PUT")
        if len(parts) == 4 and parts[2] == "_history" and re.fullmatch(r"[0-9]{1,9}", parts[3]):
            if method != "GET":
                raise _MethodError("GET")
            return self._read(kind, parts[1], int(parts[3]))
        raise _FhirError(404, "not-supported", "Unknown path")

    # --- interactions -------------------------------------------------------------------------

    def _read(self, kind: str, rid: str, version: int | None) -> _Answer:
        resource = self._store.read(kind, rid, version)
        if resource is None:
            which = f"{kind}/{rid}" + ("" if version is None else f" version {version}")
            raise _FhirError(404, "not-found", f"{which} is not known")
        return _Answer(200, resource, _version_headers(resource))

    def _search(self, kind: str, query: str) -> _Answer:
        tokens, count = _criteria(query, require=False)
        if tokens:
            found = [
                self._store.read(kind, rid) for rid in sorted(self._matches(kind, tokens), key=_id_order)
            ]
        else:
            found = list(self._store.all(kind))
        resources = [r for r in found if r is not None]
        shown = resources if count is None else resources[:count]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": f"{self.url}/{kind}" + (f"?{query}" if query else "")}],
        }
        if shown:
            bundle["entry"] = [
                {"fullUrl": f"{self.url}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in shown
            ]
        return _Answer(200, bundle)

    def _matches(self, kind: str, tokens: list[list[tuple[str | None, str | None]]]) -> set[str]:
        result: set[str] | None = None
        for alternatives in tokens:
            ids = self._store.search(kind, alternatives)
            result = ids if result is None else result & ids
        return result or set()

    def _create(self, kind: str, headers: Message, body: bytes) -> _Answer:
        resource = self._incoming(kind, headers, body)
        condition = headers.get("If-None-Exist")
        with self._store.lock:
            if condition is not None:
                tokens, _ = _criteria(condition.strip().lstrip("?"), require=True)
                matches = self._matches(kind, tokens)
                if len(matches) > 1:
                    raise _FhirError(
                        412, "multiple-matches", f"{len(matches)} {kind} resources match If-None-Exist"
                    )
                existing = self._store.read(kind, matches.pop()) if matches else None
                if existing is not None:
                    return self._written(kind, existing, 200, headers)
            resource.pop("id", None)
            self._check_write(kind, resource)
            stored, _ = self._store.save(kind, self._store.next_id(), resource, self._clock())
        return self._written(kind, stored, 201, headers)

    def _update(self, kind: str, rid: str, headers: Message, body: bytes) -> _Answer:
        resource = self._incoming(kind, headers, body)
        if resource.get("id") != rid:
            raise _FhirError(400, "invalid", f"The resource's id must be the URL's ({rid}) in an update")
        with self._store.lock:
            self._check_write(kind, resource)
            existed = self._store.read(kind, rid) is not None
            stored, _ = self._store.save(kind, rid, resource, self._clock())
        return self._written(kind, stored, 200 if existed else 201, headers)

    def _conditional_update(self, kind: str, query: str, headers: Message, body: bytes) -> _Answer:
        resource = self._incoming(kind, headers, body)
        tokens, _ = _criteria(query, require=True)
        with self._store.lock:
            stored, status = self._put_matching(kind, tokens, resource)
        return self._written(kind, stored, status, headers)

    def _put_matching(
        self, kind: str, tokens: list[list[tuple[str | None, str | None]]], resource: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """A conditional update (under the store's lock): the stored resource and 200 or 201."""
        given = resource.get("id")
        matches = self._matches(kind, tokens)
        if len(matches) > 1:
            raise _FhirError(412, "multiple-matches", f"{len(matches)} {kind} resources match the criteria")
        if matches:
            rid = matches.pop()
            if given is not None and given != rid:
                raise _FhirError(
                    400, "invalid", f"The resource's id is not the one of the {kind} the criteria match"
                )
            status = 200
        elif given is not None:
            if self._store.read(kind, str(given)) is not None:
                raise _FhirError(400, "invalid", f"{kind}/{given} exists and does not match the criteria")
            rid, status = str(given), 201
        else:
            rid, status = self._store.next_id(), 201
        self._check_write(kind, resource)
        stored, _ = self._store.save(kind, rid, resource, self._clock())
        return stored, status

    def _transaction(self, headers: Message, body: bytes) -> _Answer:
        """``POST [base]`` with a transaction Bundle of conditional updates (``PUT Type?criteria``),
        applied in order; a reference to an earlier entry's ``fullUrl`` (``urn:uuid:...``) becomes
        that entry's ``Type/id``. Any entry refused: the whole answer is that error. (A real
        server rolls the transaction back; this fake keeps the entries before it, each being
        idempotent, so a retry ends in the same state.)"""
        data = self._parsed(headers, body)
        if data.get("resourceType") != "Bundle" or data.get("type") != "transaction":
            raise _FhirError(400, "invalid", "POST to the base takes a Bundle of type transaction")
        entries = data.get("entry")
        if not isinstance(entries, list) or not entries or len(entries) > MAX_ENTRIES:
            raise _FhirError(400, "invalid", f"A transaction has 1 to {MAX_ENTRIES} entries")
        resolved: dict[str, str] = {}
        answers = []
        with self._store.lock:
            for n, entry in enumerate(entries):
                request = entry.get("request") if isinstance(entry, dict) else None
                method = request.get("method") if isinstance(request, dict) else None
                url = request.get("url") if isinstance(request, dict) else None
                kind, _, query = url.partition("?") if isinstance(url, str) else ("", "", "")
                if method != "PUT" or kind not in TYPES or not query:
                    raise _FhirError(
                        400,
                        "not-supported",
                        f"entry {n}: this HIS takes conditional updates (PUT Type?criteria)",
                    )
                resource = _resolve(entry.get("resource"), resolved)
                if not isinstance(resource, dict) or resource.get("resourceType") != kind:
                    raise _FhirError(400, "invalid", f"entry {n}: the resource is not a {kind}")
                self._checked(kind, resource)
                tokens, _ = _criteria(query, require=True)
                stored, status = self._put_matching(kind, tokens, resource)
                full = entry.get("fullUrl")
                if isinstance(full, str) and full.startswith("urn:uuid:"):
                    resolved[full] = f"{kind}/{stored['id']}"
                location = f"{kind}/{stored['id']}/_history/{stored['meta']['versionId']}"
                answers.append(
                    {
                        "response": {
                            "status": "201 Created" if status == 201 else "200 OK",
                            "location": location,
                        }
                    }
                )
        return _Answer(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers})

    def _written(self, kind: str, stored: dict[str, Any], status: int, headers: Message) -> _Answer:
        out = _version_headers(stored)
        out["Location"] = f"{self.url}/{kind}/{stored['id']}/_history/{stored['meta']['versionId']}"
        prefer = (headers.get("Prefer") or "").replace(" ", "").lower()
        minimal = "return=minimal" in prefer or (self._minimal and "return=representation" not in prefer)
        if "return=operationoutcome" in prefer:
            return _Answer(
                status, outcome("informational", f"{kind}/{stored['id']} stored", "information"), out
            )
        return _Answer(status, None if minimal else stored, out)

    # --- checks -------------------------------------------------------------------------------

    def _incoming(self, kind: str, headers: Message, body: bytes) -> dict[str, Any]:
        """The request's resource, parsed and validated as a FHIR server would, or a _FhirError."""
        data = self._parsed(headers, body)
        sent = data.get("resourceType")
        if sent != kind:
            shown = sent if isinstance(sent, str) and re.fullmatch(r"[A-Za-z]{1,64}", sent) else "(none)"
            raise _FhirError(400, "invalid", f"resourceType {shown} does not match the URL's {kind}")
        self._checked(kind, data)
        return data

    def _parsed(self, headers: Message, body: bytes) -> dict[str, Any]:
        """The request's body as FHIR JSON in UTF-8, or a _FhirError."""
        media = (headers.get("Content-Type") or "").split(";")
        if media[0].strip().lower() not in (FHIR_JSON, "application/json"):
            raise _FhirError(415, "not-supported", f"Send {FHIR_JSON}")
        charset = [p.strip().lower() for p in media[1:] if p.strip().lower().startswith("charset=")]
        if charset and charset[0] not in ("charset=utf-8", 'charset="utf-8"'):
            raise _FhirError(415, "not-supported", "Only UTF-8 is accepted")
        return _decode(body)

    def _checked(self, kind: str, data: dict[str, Any]) -> None:
        if "id" in data and not (isinstance(data["id"], str) and _ID_RE.fullmatch(data["id"])):
            raise _FhirError(400, "invalid", f"{kind}.id is not a valid id")
        _json_rules(data, kind)
        self._validate(kind, data)

    def _validate(self, kind: str, data: dict[str, Any]) -> None:
        from pydantic import ValidationError  # noqa: PLC0415 - fhir.resources' own dependency

        try:
            self._models[kind].model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False, include_context=False)
            said = "; ".join(f"{_element(kind, e['loc'])}: {e['msg']}" for e in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise _FhirError(400, "structure", f"Invalid {kind}: {said}{more}") from None
        except (ValueError, TypeError, RecursionError):
            raise _FhirError(400, "structure", f"Invalid {kind}") from None
        for (of, element), codes in _REQUIRED_CODES.items():
            if of == kind and element in data and data[element] not in codes:
                raise _FhirError(
                    400, "code-invalid", f"{kind}.{element}: not a code of its required value set"
                )

    def _check_write(self, kind: str, resource: dict[str, Any]) -> None:
        """This HIS's rules on a write: references resolve, the subject is our Patient."""
        with self._lock:
            rule = self._reject.get(kind)
        if rule is not None:
            raise _FhirError(422, "business-rule", rule)
        subject = _SUBJECT.get(kind)
        if subject is not None:
            ref = resource.get(subject, {}).get("reference")
            target = self._local(ref) if isinstance(ref, str) else None
            if target is None or target[0] != "Patient":
                raise _FhirError(
                    422, "processing", f"{kind}.{subject} must reference a Patient of this HIS (Patient/<id>)"
                )
        for where, ref in _references(resource, kind):
            target = self._local(ref)
            if target is None:
                continue
            if target[0] not in TYPES or self._store.read(*target) is None:
                raise _FhirError(
                    422, "processing", f"{where}: {target[0]}/{target[1]} is not known to this HIS"
                )

    def _local(self, ref: str) -> tuple[str, str] | None:
        """(type, id) of a reference to this server; None for a contained or external one."""
        if ref.startswith("#") or ref.startswith("urn:"):
            return None
        if "://" in ref:
            if not ref.startswith(self.url + "/"):
                return None
            ref = ref[len(self.url) + 1 :]
        found = _REF_RE.fullmatch(ref)
        if found is None:
            raise _FhirError(422, "processing", "A reference is neither Type/id nor an absolute URL")
        return found[1], found[2]

    def capability(self) -> dict[str, Any]:
        """The CapabilityStatement of ``GET [base]/metadata``."""
        interactions = ("read", "vread", "update", "create", "search-type")
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2025-01-01",
            "kind": "instance",
            "software": {"name": "cccd-edge fake HIS"},
            "implementation": {"description": "A fake HIS for tests and demos", "url": self.url},
            "fhirVersion": "4.0.1",
            "format": [FHIR_JSON, "json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": kind,
                            "interaction": [{"code": code} for code in interactions],
                            "versioning": "versioned",
                            "updateCreate": True,
                            "conditionalCreate": True,
                            "conditionalUpdate": True,
                            "searchParam": [{"name": "identifier", "type": "token"}],
                        }
                        for kind in TYPES
                    ],
                    "interaction": [{"code": "transaction"}] if self._transactions else [],
                }
            ],
        }


def _outage_mode(mode: bool | str | None) -> str | None:
    if mode is None or mode is False:
        return None
    if mode is True:
        return "refuse"
    if mode not in OUTAGES:
        raise ValueError(f"outage is False, True, or one of {', '.join(OUTAGES)}")
    return mode


def _version_headers(resource: dict[str, Any]) -> dict[str, str]:
    meta = resource.get("meta") or {}
    out = {"ETag": f'W/"{meta.get("versionId", "1")}"'}
    with contextlib.suppress(KeyError, ValueError, TypeError):
        moment = datetime.datetime.fromisoformat(meta["lastUpdated"])
        out["Last-Modified"] = email.utils.format_datetime(moment.astimezone(datetime.UTC), usegmt=True)
    return out


def _id_order(rid: str) -> tuple[int, str]:
    return (int(rid), "") if rid.isdigit() else (1 << 62, rid)


# --- HTTP ---------------------------------------------------------------------------------------


class _Server(httpd.Server):
    def __init__(self, address: tuple[str, int], his: FhirHis) -> None:
        self.his = his
        super().__init__(address, _Handler)


_BODY_ERRORS = {
    "chunked": _FhirError(411, "structure", "Send the body with a Content-Length, not chunked"),
    "length": _FhirError(400, "structure", "A bad Content-Length"),
    "large": _FhirError(413, "too-long", f"The body is larger than {MAX_BODY} bytes"),
}


class _Handler(httpd.Handler):
    server: _Server
    server_version = "cccd-edge-fake-his"
    drain_limit = 8 * MAX_BODY

    def do_HEAD(self) -> None:  # noqa: N802 - the base class's naming
        self.dispatch("HEAD")  # answered without a body (_reply)

    def dispatch(self, method: str) -> None:
        his = self.server.his
        path, _, query = self.path.partition("?")
        parts = [p for p in path[len(BASE_PATH) :].split("/") if p] if _under_base(path) else None
        kind = "other" if not parts else parts[0] if parts[0] in (*TYPES, "metadata") else "other"
        try:
            try:
                body = self.read_body(MAX_BODY)
            except httpd.BodyError as exc:
                answer = _error_answer(_BODY_ERRORS[exc.reason])
            else:
                his._delay()
                if parts is None:
                    answer = _error_answer(
                        _FhirError(404, "not-supported", f"Not a FHIR endpoint: the base is {BASE_PATH}")
                    )
                else:
                    answer = his._handle(method, parts, query, self.headers, body)
            self._reply(method, kind, answer)
        except (httpd.GoneError, OSError):
            self.close_connection = True
        except Exception as exc:  # never a stack trace to the client, never a body in the log
            log.warning("%s %s failed: %s", method, path[:100], type(exc).__name__)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._reply(
                    method, kind, _Answer(500, outcome("exception", "Internal error of the fake HIS"))
                )

    def _reply(self, method: str, kind: str, answer: _Answer) -> None:
        self.server.his._count(method, kind, answer.status)
        log.debug("%s %s -> %d", method, getattr(self, "path", "").partition("?")[0][:100], answer.status)
        payload = b"" if answer.body is None else json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        self.send_response(answer.status)
        if answer.body is not None:
            self.send_header("Content-Type", f"{FHIR_JSON}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the base class sends for a request that breaks HTTP: an OperationOutcome."""
        self.close_connection = self.unread = True
        answer = _Answer(code, outcome("structure", f"The HTTP request cannot be read ({code})"))
        with contextlib.suppress(OSError):
            self._reply(self.command or "-", "other", answer)


def _under_base(path: str) -> bool:
    return path == BASE_PATH or path.startswith(BASE_PATH + "/")


def banner(his: FhirHis, db: str) -> str:
    """What ``cccd-edge sim his`` prints: where it listens and what it answers."""
    lines = [
        f"fake HIS (FHIR R4) on {his.url} — store {db}",
        f"  GET  {BASE_PATH}/metadata                          the CapabilityStatement",
        f"  POST {BASE_PATH}/[type]                            create (If-None-Exist: identifier=…)",
        f"  GET  {BASE_PATH}/[type]/[id], PUT the same         read, update",
        f"  PUT  {BASE_PATH}/[type]?identifier=system|value    conditional update",
        f"  GET  {BASE_PATH}/[type]?identifier=system|value    search",
        f"  POST {BASE_PATH}                                   a transaction of conditional updates",
        f"  types: {', '.join(TYPES)}",
    ]
    return "\n".join(lines) + "\n"
