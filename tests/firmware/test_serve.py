"""The node's main loop (firmware/app.py ``serve``) under a real asyncio event loop — CPython's,
since the WebAssembly port's asyncio runs on JavaScript's loop and cannot be waited for. Patients
keep coming while the link is cut, Wi-Fi fails once, and the link comes back: every read arrives,
in order, none acknowledged is sent twice, the watchdog is fed throughout, no reboot."""

try:
    import asyncio

    asyncio.run  # noqa: B018 - the MicroPython tier has no asyncio.run: nothing to do there
except AttributeError:
    asyncio = None

from fwcheck import FakeBroker, FakeUART, Scratch
from test_app import Panel
from test_node import QR, FixedClock, _config

from cccd import envelope
from firmware.app import Node, serve

OTHER_QR = QR.replace("001090012345", "001090054321")


class FakeWDT:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


def _reads(broker):
    return [envelope.parse(p[1]).seq for p in broker.published if p[0].endswith("/read")]


def test_reads_survive_a_cut_link_and_a_wifi_failure():
    if asyncio is None:
        return
    with Scratch() as d:
        uart = FakeUART()
        node = Node(_config(d), d, uart, FixedClock(), feedback=Panel())
        first, second = FakeBroker(), FakeBroker()
        first.ack_limit = 4  # the birth, the inventory and two reads; then PUBACKs die with the link
        links = [first, None, second]  # None: Wi-Fi does not come up
        wdt = FakeWDT()

        async def open_link():
            broker = links.pop(0)
            if broker is None:
                raise OSError("wifi: not connected")
            return broker.reader, broker, "24:6f:28:00:00:01", lambda: -60

        async def scenario():
            task = asyncio.ensure_future(serve(node, open_link, wdt, backoff=lambda a, r: 20))
            codes = [QR, OTHER_QR] * 3
            for i, code in enumerate(codes):  # six patients, each more than 3 s apart
                uart.send(code.encode() + b"\r")
                await asyncio.sleep(0.05)
                if i == 2:
                    first.cut()
            while len(node.outbox) or links:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
            task.cancel()
            node.scanning.cancel()

        asyncio.run(asyncio.wait_for(scenario(), 10))
        assert node.cycle.reads == 6 and node.link_failures >= 2
        first_seqs, second_seqs = _reads(first), _reads(second)
        assert first_seqs[:2] == [0, 1]
        assert second_seqs == sorted(second_seqs) and 0 not in second_seqs and 1 not in second_seqs
        assert set(first_seqs) | set(second_seqs) == set(range(6))  # every read arrived
        assert wdt.fed > 10
        status = [p for p in second.published if p[0].endswith("/status")]
        assert status and status[0][3]  # a new birth on the new session
        node.outbox.close()
