"""The collector's Result publisher against the real broker: many Results in flight at once, each
awaited until its PUBACK, and a clear failure when the broker is away."""

import asyncio
import queue
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from facility import Node, Site

from collector import config
from collector.forward.service import PublishError, ResultPublisher

pytestmark = pytest.mark.integration


def run(site: Site, node: Node, publisher: ResultPublisher, scenario: Callable[[], Awaitable[None]]) -> None:
    """``scenario`` in an event loop (a minute at most); then the publisher, node and site closed."""

    async def closing() -> None:
        try:
            await scenario()
        finally:
            await publisher.aclose()

    try:
        asyncio.run(asyncio.wait_for(closing(), 60))
    finally:
        node.close()
        site.stop()


def test_hundreds_of_results_in_flight_all_arrive_then_an_absent_broker_fails_them(tmp_path: Path) -> None:
    site = Site(tmp_path)
    node = Node(site.node, site.ca)
    received: queue.Queue[bytes] = queue.Queue()
    node.client.on_message = lambda _c, _u, msg: received.put(bytes(msg.payload))
    node.connect()
    node.client.subscribe(node.topic_of("result"), qos=1)
    publisher = ResultPublisher(config.load(site.home.path / "collector.toml"), timeout=3.0)

    async def scenario() -> None:
        await asyncio.gather(*(publisher.publish(node.topic_of("result"), b"r%d" % i) for i in range(300)))
        got = set()
        while len(got) < 300:
            got.add(await asyncio.to_thread(received.get, timeout=10))
        assert got == {b"r%d" % i for i in range(300)}

        site.broker.stop()
        with pytest.raises(PublishError, match="did not acknowledge"):
            await publisher.publish(node.topic_of("result"), b"late")
        with pytest.raises(PublishError, match="did not acknowledge"):  # and while it stays away
            await publisher.publish(node.topic_of("result"), b"later")

        site.broker.start()  # back: the next Result opens a new connection
        for _ in range(300):
            if node.client.is_connected():
                break
            await asyncio.sleep(0.1)
        node.client.subscribe(node.topic_of("result"), qos=1)
        await asyncio.sleep(0.5)
        await publisher.publish(node.topic_of("result"), b"back")
        while (got_back := await asyncio.to_thread(received.get, timeout=10)) != b"back":
            assert got_back in got  # what the node's session had not acknowledged, again

    run(site, node, publisher, scenario)


def test_results_that_keep_coming_while_it_connects_share_one_connection(tmp_path: Path) -> None:
    """A Result that came after the opening had finished, before any waiter took its client, used
    to open a second connection under the same client id: the broker then closed the first with
    its Results in flight."""
    site = Site(tmp_path)
    node = Node(site.node, site.ca)
    node.connect()
    publisher = ResultPublisher(config.load(site.home.path / "collector.toml"), timeout=5.0)
    opened = 0
    real_open = publisher._open

    async def counted_open():  # type: ignore[no-untyped-def]
        nonlocal opened
        opened += 1
        return await real_open()

    publisher._open = counted_open  # type: ignore[method-assign]

    async def scenario() -> None:
        sent = []
        for i in range(400):  # one more Result at every turn of the loop
            sent.append(asyncio.ensure_future(publisher.publish(node.topic_of("result"), b"r%d" % i)))
            await asyncio.sleep(0)
        await asyncio.gather(*sent)  # every one acknowledged: none was on a closed connection

    run(site, node, publisher, scenario)
    assert opened == 1
