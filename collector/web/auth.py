"""Who may see the dashboard: users, their password hashes, sessions, and the login throttle.

Passwords
---------
Hashed with scrypt (``hashlib.scrypt``, RFC 7914) at OWASP's recommended cost, N = 2**17, r = 8,
p = 1: 128 MiB and about 0.5 s per hash on the facility server (measured here: 0.48 s on one
core). scrypt is memory-hard like Argon2id, so guessing on a GPU is as costly as on the server,
and it is in the standard library: no compiled dependency (argon2-cffi) on the facility server
for a handful of IT accounts. The stored form names its parameters and salt
(``scrypt$17$8$1$<salt>$<hash>``, base64), so the cost can be raised later without breaking old
hashes. Passwords are NFC-normalised first: a Vietnamese keyboard may send composed or decomposed
letters for the same password. Comparison is constant-time (``hmac.compare_digest``), and an
unknown name costs the same hash as a known one, so timing does not tell which names exist.

Sessions
--------
Server-side, in the dashboard process's memory: the cookie carries a random 256-bit token, the
process keeps only its SHA-256 with the user, the CSRF token, and the times. A session ends after
``idle`` seconds without a request (30 min) or ``lifetime`` seconds after login (12 h), at logout,
or when the dashboard restarts (everyone logs in again). Nothing is written to the store: the
dashboard's connection to it is read-only.

Throttle
--------
Password guessing is slowed twice: a user name is locked for ``LOCKOUT`` seconds after
``MAX_FAILURES`` failed logins within that time, whatever the password tried next (the right one
too), and a client address may fail at most ``MAX_ADDRESS_FAILURES`` times in that time before
its logins are refused. Both forget old failures, and both are bounded in memory.
"""

import base64
import functools
import hashlib
import hmac
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

from collector.db import Database

SCRYPT_LOG_N = 17  # N = 131072: OWASP's recommended minimum with r = 8, p = 1
SCRYPT_R = 8
SCRYPT_P = 1
SALT_LEN = 16
HASH_LEN = 32
MIN_PASSWORD = 10  # characters

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

IDLE = 30 * 60.0  # seconds without a request before a session ends
LIFETIME = 12 * 3600.0  # seconds after login, whatever the activity
MAX_SESSIONS = 1000

MAX_FAILURES = 5  # failed logins of one name within LOCKOUT seconds lock that name
MAX_ADDRESS_FAILURES = 20  # failed logins from one address within LOCKOUT seconds
LOCKOUT = 15 * 60.0
MAX_TRACKED = 10_000  # names and addresses remembered by the throttle

# Two hashes at a time at most: each takes 128 MiB, and the server has two cores.
_KDF_SLOTS = threading.BoundedSemaphore(2)


class UserError(Exception):
    """A user cannot be added or removed (bad name, weak password, exists, unknown)."""


# --- passwords ----------------------------------------------------------------------------


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    with _KDF_SLOTS:
        return hashlib.scrypt(
            unicodedata.normalize("NFC", password).encode("utf-8"),
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=256 * r * n * p,
            dklen=HASH_LEN,
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, log_n: int = SCRYPT_LOG_N) -> str:
    """The stored form of a password: ``scrypt$<log2 N>$<r>$<p>$<salt>$<hash>``."""
    salt = secrets.token_bytes(SALT_LEN)
    digest = _scrypt(password, salt, log_n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${log_n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored form; False for a malformed one."""
    try:
        scheme, log_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or not (10 <= int(log_n) <= 20 and 1 <= int(r) <= 16 and 1 <= int(p) <= 4):
            return False  # not ours, or a cost that would take the server's memory
        expected = base64.b64decode(digest, validate=True)
        found = _scrypt(password, base64.b64decode(salt, validate=True), int(log_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


@functools.cache
def _dummy() -> str:
    """A hash to check unknown names against, as slow as a real one."""
    return hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str) -> None:
    if len(unicodedata.normalize("NFC", password)) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


# --- users in the store -------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    created: float


class Users:
    """The dashboard's accounts, in the store's ``web_users`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, password: str, now: float | None = None, *, log_n: int = SCRYPT_LOG_N) -> None:
        if not NAME.fullmatch(name):
            raise UserError("a user name is 1 to 64 of a-z 0-9 . _ - and starts with a letter or digit")
        check_new_password(password)
        stored = hash_password(password, log_n=log_n)
        with self.db.transaction() as tx:
            if tx.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)).fetchone() is not None:
                raise UserError(f"the user {name} exists already: remove it first to set a new password")
            tx.execute(
                "INSERT INTO web_users (name, password, created) VALUES (?, ?, ?)",
                (name, stored, time.time() if now is None else now),
            )

    def remove(self, name: str) -> None:
        with self.db.transaction() as tx:
            if tx.execute("DELETE FROM web_users WHERE name = ?", (name,)).rowcount != 1:
                raise UserError(f"there is no user {name}")

    def all(self) -> list[User]:
        rows = self.db.query("SELECT name, created FROM web_users ORDER BY name")
        return [User(str(r[0]), float(r[1])) for r in rows]

    def exists(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM web_users WHERE name = ?", (name,)))

    def check(self, name: str, password: str) -> bool:
        """Whether the name exists and the password is its own; as slow for an unknown name."""
        rows = self.db.query("SELECT password FROM web_users WHERE name = ?", (name,))
        if not rows:
            verify_password(password, _dummy())
            return False
        return verify_password(password, str(rows[0][0]))


# --- sessions -----------------------------------------------------------------------------


@dataclass
class Session:
    user: str
    csrf: str
    created: float
    seen: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Sessions:
    """Logged-in sessions by the SHA-256 of their cookie token (rules: module docstring)."""

    def __init__(self, idle: float = IDLE, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.limit = limit
        self._by_digest: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, user: str, now: float) -> tuple[str, Session]:
        """A new session for ``user``: its cookie token and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            while len(self._by_digest) >= self.limit:
                self._by_digest.popitem(last=False)  # the oldest login goes first
            self._by_digest[_digest(token)] = session
        return token, session

    def get(self, token: str, now: float) -> Session | None:
        """The live session of a cookie token (its idle time starts again), or None."""
        with self._lock:
            key = _digest(token)
            session = self._by_digest.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._by_digest[key]
                return None
            session.seen = max(session.seen, now)
            return session

    def end(self, token: str) -> None:
        with self._lock:
            self._by_digest.pop(_digest(token), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_digest)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.seen > self.idle or now - session.created > self.lifetime

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._by_digest.items() if self._expired(s, now)]:
            del self._by_digest[key]


# --- the login throttle -------------------------------------------------------------------


class _Failures:
    """Failure times per key within a window, for at most ``MAX_TRACKED`` keys."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._times: OrderedDict[str, list[float]] = OrderedDict()

    def recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._times.get(key, []) if now - t < self.window]
        if times:
            self._times[key] = times
        else:
            self._times.pop(key, None)
        return times

    def add(self, key: str, now: float) -> None:
        self._times[key] = [*self.recent(key, now), now]
        self._times.move_to_end(key)
        while len(self._times) > MAX_TRACKED:
            self._times.popitem(last=False)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


class Throttle:
    """Failed logins by name and by client address (rules: module docstring)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        max_address_failures: int = MAX_ADDRESS_FAILURES,
        lockout: float = LOCKOUT,
    ) -> None:
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self._names = _Failures(lockout)
        self._addresses = _Failures(lockout)
        self._lock = threading.Lock()

    def refused(self, name: str, address: str, now: float) -> bool:
        """Whether a login of ``name`` from ``address`` is refused without checking the password."""
        with self._lock:
            return (
                len(self._names.recent(name, now)) >= self.max_failures
                or len(self._addresses.recent(address, now)) >= self.max_address_failures
            )

    def failed(self, name: str, address: str, now: float) -> None:
        with self._lock:
            self._names.add(name, now)
            self._addresses.add(address, now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._names.clear(name)
