"""The PN532 path: the agent's PN532 driver through a pseudo-terminal to the PN532 emulator, which
hands InDataExchange APDUs to the virtual CCCD chip; BAC and PACE reads, no card, a card removed."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from agent.cardpoll import poll_pn532
from agent.emrtd import AccessKeys, ChipError, CscaStore, read_chip
from agent.outbox import Outbox
from agent.pn532 import ACK, MAX_LE, Pn532, frame
from agent.service import Agent
from agent.uplink import NodeConfig, Uplink
from cccd import qr
from sim import citizens
from sim.chip import TestPki, VirtualChip, chip_files, sample_citizen
from sim.pn532 import Pn532Emulator

PKI = TestPki.generate()
PERSON = sample_citizen(9)
FILES = chip_files(PERSON, PKI)
KEYS = AccessKeys.from_mrz(*FILES.bac)
STORE = CscaStore([PKI.csca])


@pytest.fixture
def board() -> Iterator[tuple[Pn532Emulator, Pn532]]:
    emulator = Pn532Emulator().start()
    port = serial.Serial(emulator.port, 115200, timeout=0.05)
    pn532 = Pn532(port)
    pn532.wake()
    yield emulator, pn532
    port.close()
    emulator.stop()


def test_frames_are_the_manuals() -> None:
    assert frame(bytes.fromhex("D4141401")) == bytes.fromhex("0000FF04FCD4141401" + "03" + "00")
    assert bytes.fromhex("0000FF00FF00") == ACK


def test_no_card_then_a_bac_read(board: tuple[Pn532Emulator, Pn532]) -> None:
    emulator, pn532 = board
    assert not pn532.find_card()
    emulator.chip = VirtualChip(FILES)
    assert pn532.find_card()
    read = read_chip(pn532.transmit, KEYS, STORE, max_le=MAX_LE)
    assert read.chip == "authenticated" and read.identity is not None
    assert read.identity.personal_id == PERSON.cccd and emulator.exchanges == read.round_trips


def test_a_pace_read(board: tuple[Pn532Emulator, Pn532]) -> None:
    emulator, pn532 = board
    emulator.chip = VirtualChip(FILES)
    assert pn532.find_card()
    read = read_chip(pn532.transmit, (), STORE, can=PERSON.cccd[-6:], max_le=MAX_LE)
    assert (read.chip, read.attempts) == ("authenticated", 0)


def test_the_card_removed_mid_read(board: tuple[Pn532Emulator, Pn532]) -> None:
    emulator, pn532 = board
    emulator.chip = VirtualChip(FILES)
    assert pn532.find_card()

    def transmit(apdu: bytes) -> bytes:
        if emulator.exchanges == 5:
            emulator.chip = None
        return pn532.transmit(apdu)

    with pytest.raises(ChipError, match="removed"):
        read_chip(transmit, KEYS, STORE, max_le=MAX_LE)


def test_the_agent_reads_a_card_brought_to_the_pn532(tmp_path: Path) -> None:
    emulator = Pn532Emulator().start()
    port = serial.Serial(emulator.port, 115200, timeout=0.05)
    config = NodeConfig(
        "pi-0002", "38001", "localhost", 8883, True, "", "pi-0002", "pw", bytes(32), bytes(32)
    )
    shown: list[str] = []
    with Outbox(tmp_path / "outbox.db") as outbox:
        agent = Agent(Uplink(config, outbox), STORE, display=shown.append, max_le=MAX_LE)
        agent.on_scan(qr.parse(citizens.qr_bytes(PERSON, PERSON.doc), now=(2026, 11, 1)))

        async def bring_card() -> None:
            poller = asyncio.create_task(poll_pn532(agent.card, Pn532(port), interval=0.02))
            await asyncio.sleep(0.1)
            emulator.chip = VirtualChip(FILES)
            for _ in range(200):
                if len(outbox) == 2:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # left in the field: not read twice
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

        asyncio.run(bring_card())
        assert len(outbox) == 2 and shown == ["Đang kiểm tra...", "Chip hợp lệ"]
    port.close()
    emulator.stop()
