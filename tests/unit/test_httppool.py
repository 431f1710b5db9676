"""HttpPools: many requests in flight over several small httpx clients, against a real server."""

import asyncio

from collector.forward.httppool import HttpPools
from sim import citizens
from sim.bhxh import BhxhGateway
from sim.his import FhirHis


def test_requests_fill_the_first_client_then_spill_and_all_are_answered() -> None:
    his = FhirHis(latency=(0.2, 0.2))
    his.start()
    seen: list[list[int]] = []

    async def go() -> list[int]:
        pools = HttpPools(his.url + "/", connections=100, timeout=10, per_pool=32)
        assert pools.pools == 4  # 100 connections as 4 clients of 25
        try:

            async def one() -> int:
                request = pools.request("GET", "Patient", params={"identifier": "x"})
                task = asyncio.ensure_future(request)
                await asyncio.sleep(0)
                seen.append(list(pools._busy))
                return (await task).status_code

            return list(await asyncio.gather(*(one() for _ in range(60))))
        finally:
            await pools.aclose()

    try:
        codes = asyncio.run(go())
    finally:
        his.close()
    assert codes == [200] * 60  # every request answered
    assert max(b[0] for b in seen) == 25 and max(b[1] for b in seen) == 25  # filled in turn
    assert max(b[2] for b in seen) == 10 and max(b[3] for b in seen) == 0


def test_light_traffic_keeps_to_one_client() -> None:
    gw = BhxhGateway(citizens.population(5, seed=1), username="bv", password="pw")
    gw.start()

    async def go() -> list[int]:
        pools = HttpPools(gw.url, connections=100, timeout=10, per_pool=32)
        peaks = [0] * pools.pools
        try:
            for _ in range(20):
                task = asyncio.ensure_future(pools.request("GET", "/nope"))
                await asyncio.sleep(0)
                peaks = [max(p, b) for p, b in zip(peaks, pools._busy, strict=True)]
                await task
        finally:
            await pools.aclose()
        return peaks

    try:
        assert asyncio.run(go()) == [1, 0, 0, 0]
    finally:
        gw.stop()
