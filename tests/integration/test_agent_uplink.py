"""The Raspberry Pi agent end to end, without hardware: chips of the virtual CCCD read through the
agent's reader, sealed into its SQLite outbox, and delivered by its uplink through the facility's
real Mosquitto to the real collector process, which answers each with a Result.

The agent is restarted with reads in its outbox: all are delivered, and stored exactly once."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path
from typing import Any

import pytest
from facility import Site

from agent.emrtd import AccessKeys, CscaStore, read_chip
from agent.emrtd.message import read_message
from agent.outbox import Outbox
from agent.uplink import NodeConfig, Uplink
from sim import citizens
from sim.bhxh import BhxhGateway
from sim.chip import TestPki, VirtualChip, chip_files, expiry

pytestmark = pytest.mark.integration

PKI = TestPki.generate()
PEOPLE = [
    c for c in citizens.population(30, seed=21, today=datetime.date(2026, 11, 1)) if expiry(c.dob, c.issued)
][:3]


def _chip_read(person: citizens.Citizen) -> Any:
    files = chip_files(person, PKI)
    return read_chip(VirtualChip(files).transmit, AccessKeys.from_mrz(*files.bac), CscaStore([PKI.csca]))


async def _deliver(config: NodeConfig, path: Path, expected: set[int]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with Outbox(path) as outbox:
        uplink = Uplink(config, outbox, results.append)
        task = asyncio.create_task(uplink.run())
        deadline = time.monotonic() + 30
        while len(outbox) or not expected <= {r["seq"] for r in results}:
            assert time.monotonic() < deadline, f"outbox {len(outbox)}, results {[r['seq'] for r in results]}"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return results


def test_chip_reads_reach_the_collector_once_across_an_agent_restart(tmp_path: Path) -> None:
    officer = ("Phạm Thị Hoa", "001185000123")  # synthetic
    gateway = BhxhGateway(PEOPLE, username="bv", password="pw", officers=[officer])
    gateway.start()
    site = Site(tmp_path)
    try:
        site.configure(
            f'[bhxh]\nurl = "{gateway.url}"\nusername = "bv"\npassword = "pw"\n'
            f'officer_name = "{officer[0]}"\nofficer_cccd = "{officer[1]}"\n'
        )
        site.start_collector()
        site.wait_subscribed()
        config = NodeConfig.from_dict(site.node)
        path = tmp_path / "agent-outbox.db"
        with Outbox(path) as outbox:  # the agent reads three cards, then loses power before sending
            uplink = Uplink(config, outbox)
            now = int(time.time() * 1000)
            reads = [_chip_read(p) for p in PEOPLE]
            seqs = [
                uplink.submit(lambda seq, r=r: read_message(r, seq, now, "ntp", config.pseudonym_secret))
                for r in reads
            ]
        results = asyncio.run(_deliver(config, path, set(seqs)))  # restarted: everything goes out
        assert sorted(site.stored()) == [(config.device, s) for s in seqs]
        answered = {r["seq"]: r for r in results}
        assert set(answered) >= set(seqs)  # the counter sees an answer for each card
        assert all(answered[s]["status"] in ("ok", "warn", "reject") for s in seqs)
        with Outbox(path) as outbox:
            assert len(outbox) == 0 and outbox.boot == 3
        kinds = {
            k for (k,) in site.query("SELECT kind FROM device_latest WHERE device = ?", (config.device,))
        }
        assert kinds >= {"status", "inventory", "telemetry"}  # the fleet sees the node
    finally:
        site.stop()
        gateway.stop()
