"""The forwarders' HTTP client, for the BHXH gateway and a FHIR HIS: aiohttp, and what both need.

Why aiohttp: its client costs about a tenth of httpx's CPU per request (a GET against the fake
HIS, 16 in flight: 0.12–0.13 ms against 1.1–1.2 ms; ``cccd-edge bench nodered`` found httpx and
its pool, httpcore, to be most of the forwarders' CPU). aiohttp's pool hands a free connection
out in constant time, so one client serves however many are in flight (httpcore's bookkeeping grew
with the connections open, and needed clients of 8–16 connections side by side).

What this module adds around it:

- ``Answer``: the status, the headers and the whole body, read at once. A body longer than
  ``max_body`` is not read on: the request fails (``AnswerTooLargeError``), whatever the server
  sends.
- No secret or identifier leaves in an error: the URLs carry tokens, a password hash and patients'
  identifiers. Every failure becomes an ``HttpError`` whose text says what happened (timed out,
  the class of the network error), never the URL or aiohttp's own text. aiohttp logs no request.
- The query string is encoded here (``urlencode``) and handed to aiohttp as already encoded, so
  what is sent is exactly what was built (FHIR's ``\\|`` and ``,`` in a token search included).
- No proxy from the environment: the destinations are on the facility's network or named in the
  configuration.
- The session is opened on the first request, inside the event loop that uses it.
"""

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl

MAX_BODY = 1 << 20  # bytes of an answer read at most (a BHXH answer or a transaction-response: a few kB)


class HttpError(Exception):
    """No usable answer; the text never holds the URL."""


class HttpTimeoutError(HttpError):
    """No answer within the timeout (connecting, sending, waiting, reading)."""


class AnswerTooLargeError(HttpError):
    """The answer's body is longer than ``max_body``."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names case-insensitive
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not (JSON, or UTF-8)."""
        return json.loads(self.body)


class HttpClient:
    """Requests to one base URL, at most ``connections`` open at once (more wait for one)."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connections = max(1, connections)
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self.headers,
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """``base_url/path?query``: ``path`` "" is the base itself."""
        url = self.base_url + ("/" + path.lstrip("/") if path else "")
        return url + ("?" + urlencode(params) if params else "")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        max_body: int | None = None,
    ) -> Answer:
        """One request and its whole answer; ``HttpError`` when there is none. ``max_body``:
        this answer's bound, when not the client's."""
        headers = {}
        if json is not None:
            content = _dumps(json)
            headers["Content-Type"] = "application/json; charset=utf-8"
        target = yarl.URL(self.url(path, params), encoded=True)
        try:
            async with self._opened().request(method, target, data=content, headers=headers) as response:
                body = await _body(response, self.max_body if max_body is None else max_body)
                return Answer(response.status, response.headers, body)
        except TimeoutError:
            raise HttpTimeoutError("timed out") from None
        except aiohttp.ClientError as exc:  # the class only: aiohttp's text may hold the URL
            raise HttpError(type(exc).__name__) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
            await asyncio.sleep(0)  # let the transports' close callbacks run before the loop ends


async def _body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise AnswerTooLargeError(f"an answer of {declared} bytes (at most {limit})")
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLargeError(f"an answer longer than {limit} bytes")
    return bytes(body)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
