"""The BHXH gateway's client: a token, then KQNhanLichSuKCB2024 for each read.

- ``POST /api/token/take`` with the username and the MD5 hex of the password gives a token whose
  ``expires_in`` is an absolute UTC time. It is cached until that time minus ``margin``; however
  many checks wait for a new one, one request fetches it (an ``asyncio.Lock``).
- ``POST /api/egw/KQNhanLichSuKCB2024?token=…&id_token=…&username=…&password=…`` with ``maThe``,
  ``hoTen``, ``ngaySinh`` and the checking officer (``hoTenCb``, ``cccdCb``: required since 2024).
  An HTTP 401/403 or ``maKetQua`` 401 drops the token and asks once more with a new one.
- Network errors and timeouts are retried with capped, jittered backoff; after ``attempts`` the
  check raises ``GatewayUnavailableError`` (the counter stays ``pending``; the caller retries later).

The request URL carries the password hash and the token: neither ever appears in a log line, an
exception message or a metric label: the HTTP client's errors never carry the URL
(collector/forward/http.py). Tests use the fake gateway over real HTTP (sim/bhxh.py).
"""

import asyncio
import datetime
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.forward.http import Answer, HttpClient, HttpError, HttpTimeoutError

log = logging.getLogger("cccd.collector.bhxh")

TOKEN_PATH = "/api/token/take"
CHECK_PATH = "/api/egw/KQNhanLichSuKCB2024"


class GatewayError(Exception):
    """The gateway could not give an answer (never carries the URL or a secret)."""


class GatewayUnavailableError(GatewayError):
    """No answer after the retries: network, timeout, outage."""


class GatewayAuthError(GatewayError):
    """The gateway refused the facility's credentials."""


@dataclass(frozen=True)
class Officer:
    """The officer on whose behalf the counter checks (hoTenCb, cccdCb)."""

    name: str
    cccd: str


@dataclass(frozen=True)
class Token:
    access_token: str
    id_token: str
    expires_at: float  # Unix time


def parse_expiry(text: str) -> float:
    """``expires_in``: an absolute UTC time, ISO 8601 (with or without Z/offset/fraction)."""
    value = text.strip().replace("Z", "+00:00")
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


class BhxhClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        margin: float = 60.0,
        clock: Callable[[], float] = time.time,
        connections: int = 100,
    ) -> None:
        self._http = HttpClient(base_url, connections=connections, timeout=timeout)
        self._username = username
        self._password_md5 = hashlib.md5(password.encode("utf-8")).hexdigest()  # the API asks for MD5
        self._attempts = attempts
        self._margin = margin
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.token_fetches = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- token ------------------------------------------------------------------------------

    async def token(self) -> Token:
        """A valid token; fetched by one caller at a time when missing or about to expire."""
        current = self._token
        if current is not None and self._clock() < current.expires_at - self._margin:
            return current
        async with self._lock:
            current = self._token
            if current is not None and self._clock() < current.expires_at - self._margin:
                return current  # another caller fetched it while we waited
            self._token = await self._fetch_token()
            return self._token

    def _drop(self, token: Token) -> None:
        if self._token is token:
            self._token = None

    async def _fetch_token(self) -> Token:
        body = {"username": self._username, "password": self._password_md5}
        response = await self._send("POST", TOKEN_PATH, json=body)
        self.token_fetches += 1
        if response.status in (401, 403):
            raise GatewayAuthError("the gateway refused the facility's username or password")
        data = _json(response)
        key = data.get("APIKey") if isinstance(data, dict) else None
        if response.status != 200 or not isinstance(key, dict):
            raise GatewayUnavailableError(f"token request answered HTTP {response.status}")
        try:
            return Token(str(key["access_token"]), str(key["id_token"]), parse_expiry(str(key["expires_in"])))
        except (KeyError, ValueError):
            raise GatewayUnavailableError(
                "token answer without access_token, id_token or expires_in"
            ) from None

    # --- the check --------------------------------------------------------------------------

    async def check(self, ma_the: str, ho_ten: str, ngay_sinh: str, officer: Officer) -> dict[str, Any]:
        """The gateway's answer (its JSON object) for one patient."""
        body = {
            "maThe": ma_the,
            "hoTen": ho_ten,
            "ngaySinh": ngay_sinh,
            "hoTenCb": officer.name,
            "cccdCb": officer.cccd,
        }
        for renewed in (False, True):
            token = await self.token()
            params = {
                "token": token.access_token,
                "id_token": token.id_token,
                "username": self._username,
                "password": self._password_md5,
            }
            response = await self._send("POST", CHECK_PATH, params=params, json=body)
            data = _json(response)
            refused = response.status in (401, 403) or (
                isinstance(data, dict) and str(data.get("maKetQua")) == "401"
            )
            if refused and not renewed:
                self._drop(token)
                continue
            if isinstance(data, dict) and "maKetQua" in data:
                return data
            raise GatewayUnavailableError(f"check answered HTTP {response.status} without maKetQua")
        raise GatewayAuthError("the gateway refused a fresh token")

    async def _send(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request, retried on network errors and timeouts; errors without the URL's secrets."""
        for attempt in range(self._attempts):
            try:
                return await self._http.request(method, path, **kwargs)
            except HttpTimeoutError:
                why = "timed out"
            except HttpError as exc:
                why = str(exc)  # the HTTP client's texts never hold the URL
            log.info("BHXH gateway %s (attempt %d of %d)", why, attempt + 1, self._attempts)
            if attempt + 1 < self._attempts:
                await asyncio.sleep(random.uniform(0, min(2.0, 0.2 * 2**attempt)))
        raise GatewayUnavailableError(
            f"the BHXH gateway did not answer after {self._attempts} attempts ({why})"
        )


def _json(response: Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
