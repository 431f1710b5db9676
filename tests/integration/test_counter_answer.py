"""The answer at the counter, end to end: a node's read through the real broker to the real
collector process, its insurance check with the fake BHXH gateway over HTTP, and the Result back
on the node's own result topic, sealed with its down key."""

import datetime
import queue
from pathlib import Path
from typing import Any

import pytest
from facility import Node, Site

from cccd import envelope, schema
from sim import citizens
from sim.bhxh import BhxhGateway

pytestmark = pytest.mark.integration

TODAY = datetime.date.today()
OFFICER = ("Phạm Thị Hoa", "001185000123")  # synthetic


def bhxh_section(gw: BhxhGateway, pending_after: float = 0.2) -> str:
    return (
        f'[bhxh]\nurl = "{gw.url}"\nusername = "bv"\npassword = "pw"\n'
        f'officer_name = "{OFFICER[0]}"\nofficer_cccd = "{OFFICER[1]}"\npending_after = {pending_after}\n'
    )


def _listen(node: Node) -> "queue.Queue[tuple[int, dict[str, Any]]]":
    results: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
    topic = node.topic_of("result")

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        sealed = envelope.parse(bytes(msg.payload))
        results.put(
            (sealed.seq, schema.decode("result", sealed.open(node.keys.down_key, node.keys.down_iv, topic)))
        )

    node.client.on_message = on_message
    node.client.subscribe(topic, qos=1)
    return results


def test_the_counter_gets_pending_then_the_insurance_answer(tmp_path: Path) -> None:
    people = citizens.population(40, seed=11, today=TODAY)
    insured = next(c for c in people if c.insurance == "valid")
    unknown = citizens.population(1, seed=999, today=TODAY)[0]  # not in the gateway's records
    gw = BhxhGateway(people, username="bv", password="pw", officers=[OFFICER])
    gw.start()
    site = Site(tmp_path)
    try:
        site.configure(bhxh_section(gw))
        site.start_collector()
        site.wait_subscribed()
        node = Node(site.node, site.ca)
        node.connect()
        results = _listen(node)

        node.publish_raw("read", node.read_of(insured, 1, TODAY))
        piv, first = results.get(timeout=20)
        assert (first["seq"], first["status"], first["code"]) == (1, "ok", "000")

        node.publish_raw("read", node.read_of(unknown, 2, TODAY))
        _piv, second = results.get(timeout=20)
        assert (second["seq"], second["status"], second["code"]) == (2, "reject", "050")
        assert str(second["text"]).endswith("BHYT + giấy tờ")

        gw.set_latency(1.0)
        node.publish_raw("read", node.read_of(insured, 3, TODAY))
        piv3, pending = results.get(timeout=20)
        piv4, final = results.get(timeout=20)
        assert (pending["seq"], pending["status"]) == (3, "pending")
        assert (final["seq"], final["status"]) == (3, "ok")
        assert piv < piv3 < piv4  # the collector's downlink sequence only grows
        node.close()
    finally:
        site.stop()
        gw.stop()
