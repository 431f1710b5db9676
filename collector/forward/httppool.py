"""Many HTTP requests in flight to one destination, without httpcore's pool becoming the cost.

httpx's connection pool (httpcore) re-examines every waiting request against every connection
whenever a request starts or ends: the work per request grows with requests x connections. At
the BHXH gateway's 1–3 s per check and 100 checks/s, 300–400 are in flight at once, and profiling
the collector (py-spy, ``cccd-edge bench counter``) found most of its CPU in that bookkeeping.
``HttpPools`` spreads the requests over several small clients (``per_pool`` connections each):
each request goes to the first client with a free connection, so light traffic keeps to one
client and heavy traffic fills them in turn; the cost per request then grows with ``per_pool``.
``PER_POOL`` is measured with ``cccd-edge bench counter`` (20 nodes, 100 reads/s, 2 cores). First
chosen at 64: at 32 a client, the p99 to the answer with a fast gateway doubled (bursts spilled
into cold clients); at 100 and more, the "pending" p99 with a 1–3 s gateway went past 0.5 s (the
quadratic pool). Measured again after the forwarders got a process of their own, 16 met both goals
as well as 64 did (final p99 105–112 ms, pending p99 148–156 ms, two runs each), with less of
the forwarders' CPU spent on each request's bookkeeping (``bench nodered``: docs/BENCHMARKS.md).
"""

import math
from typing import Any

import httpx

PER_POOL = 16


class HttpPools:
    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        per_pool: int = PER_POOL,
    ) -> None:
        count = max(1, math.ceil(connections / per_pool))
        size = math.ceil(connections / count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._clients = [
            httpx.AsyncClient(
                base_url=base_url, timeout=timeout, transport=transport, limits=limits, headers=headers
            )
            for _ in range(count if transport is None else 1)  # one injected transport: one client
        ]
        self._busy = [0] * len(self._clients)
        self._size = size

    @property
    def pools(self) -> int:
        return len(self._clients)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        busy = self._busy
        i = next((n for n, b in enumerate(busy) if b < self._size), None)
        if i is None:  # all full: queue where the wait is shortest
            i = min(range(len(busy)), key=busy.__getitem__)
        self._busy[i] += 1
        try:
            return await self._clients[i].request(method, url, **kwargs)
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
