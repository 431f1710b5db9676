"""No personal data in plaintext anywhere the facility side keeps or shows it: a whole demo run
(two facilities, brokers, collectors with the insurance check and the HIS registration, the
dashboards' logs), then every log, store file and metrics page is searched for every synthetic
citizen's name (with and without diacritics), personal ID, old ID, card number and address. The
HIS's own store is the one place they belong, and the simulator's ground truth names citizens
only by their index."""

import unicodedata
import urllib.request

import pytest
from facility import wait

from sim.citizens import Citizen
from sim.scenario import Scenario
from tools.demo import Demo

pytestmark = pytest.mark.integration

EXEMPT = ("his.db", "truth.db")  # the HIS holds patients by design; the truth holds indexes


def _needles(c: Citizen) -> set[bytes]:
    found: set[str] = {c.cccd, c.name, c.address}
    bare = "".join(ch for ch in unicodedata.normalize("NFD", c.name) if not unicodedata.combining(ch))
    found.add(bare.replace("đ", "d").replace("Đ", "D"))
    if c.cmnd:
        found.add(c.cmnd)
    for card in (c.card, c.old_card):
        if card is not None:
            found.add(card.number)
    out = set()
    for text in found:
        out.add(text.encode("utf-8"))
        out.add(unicodedata.normalize("NFD", text).encode("utf-8"))
    return {n for n in out if len(n) >= 6}


def test_a_demo_run_leaves_no_personal_data_in_logs_stores_or_metrics() -> None:
    demo = Demo(Scenario(facilities=2, nodes=2, peak=3 * 3600.0, gateway_latency=(0.0, 0.2)), lambda _m: None)
    try:
        demo.start()
        assert demo.hall is not None
        wait(lambda: demo.tally().answered >= 20, 60, "reads answered")
        demo.drain()
        scanned = 0
        haystacks: dict[str, bytes] = {}
        for path in demo.base.rglob("*"):
            if path.is_file() and not path.name.startswith(EXEMPT):
                haystacks[str(path.relative_to(demo.base))] = path.read_bytes()
        for f in demo.facilities:
            with urllib.request.urlopen(f"http://127.0.0.1:{f.metrics_port}/metrics", timeout=5) as r:
                haystacks[f"metrics {f.code}"] = r.read()
        people = {
            demo.people[i]
            for (i,) in demo.hall.call(
                lambda: demo.hall.truth.db.execute("SELECT DISTINCT person FROM reads").fetchall()
            )
        }  # type: ignore[union-attr]
        assert len(people) >= 5
        for person in people:
            for needle in _needles(person):
                for where, data in haystacks.items():
                    scanned += 1
                    assert needle not in data, f"personal data of a synthetic citizen in {where}"
        assert any(name.endswith("collector.db") for name in haystacks) and scanned > 1000
    finally:
        demo.stop()
