"""The collector's Result publisher against the real broker: many Results in flight at once, each
awaited until its PUBACK, and a clear failure when the broker is away."""

import asyncio
import queue
from pathlib import Path
from typing import Any

import pytest
from facility import Node, Site

from collector import config
from collector.forward.service import PublishError, ResultPublisher

pytestmark = pytest.mark.integration


def test_hundreds_of_results_in_flight_all_arrive_then_an_absent_broker_fails_them(tmp_path: Path) -> None:
    site = Site(tmp_path)
    node = Node(site.node, site.ca)
    received: queue.Queue[bytes] = queue.Queue()
    node.client.on_message = lambda _c, _u, msg: received.put(bytes(msg.payload))
    node.connect()
    node.client.subscribe(node.topic_of("result"), qos=1)
    publisher = ResultPublisher(config.load(site.home.path / "collector.toml"), timeout=3.0)
    try:

        async def burst(n: int) -> None:
            await asyncio.gather(*(publisher.publish(node.topic_of("result"), b"r%d" % i) for i in range(n)))

        asyncio.run(asyncio.wait_for(burst(300), 30))
        got = set()
        while len(got) < 300:
            got.add(received.get(timeout=10))
        assert got == {b"r%d" % i for i in range(300)}

        site.broker.stop()

        async def lost() -> Any:
            return await publisher.publish(node.topic_of("result"), b"late")

        with pytest.raises(PublishError, match="did not acknowledge"):
            asyncio.run(lost())
    finally:
        publisher.close()
        node.close()
        site.stop()
