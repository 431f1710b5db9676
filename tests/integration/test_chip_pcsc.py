"""The agent's chip reader through the real PC/SC stack: pyscard -> libpcsclite -> pcscd -> the vpcd
driver -> TCP -> the virtual CCCD chip of sim/chip, exactly as it reads a USB reader."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pcsc import Pcscd

from agent.cardpoll import poll_cards
from agent.emrtd import AccessDeniedError, AccessKeys, ChipError
from agent.emrtd.__main__ import main as emrtd_tool
from agent.emrtd.pcsc import PcscTransport
from agent.emrtd.reader import read_chip
from agent.emrtd.sod import CscaStore
from agent.outbox import Outbox
from agent.service import Agent
from agent.uplink import NodeConfig, Uplink
from cccd import qr
from sim import citizens
from sim.chip import ChipFiles, TestPki, VirtualChip, VpcdCard, chip_files, sample_citizen

pytestmark = pytest.mark.integration

PKI = TestPki.generate()
PERSON = sample_citizen(5)
FILES = chip_files(PERSON, PKI)
KEYS = AccessKeys.from_mrz(*FILES.bac)
STORE = CscaStore([PKI.csca])


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd")).start()
    yield daemon
    daemon.stop()


def _insert(pcscd: Pcscd, files: ChipFiles) -> tuple[VpcdCard, PcscTransport]:
    """The card in the virtual reader, and an open PC/SC connection to it."""
    card = VpcdCard(VirtualChip(files), port=pcscd.port).start()
    return card, _connect(pcscd, card)


def _connect(pcscd: Pcscd, card: VpcdCard) -> PcscTransport:
    """A PC/SC connection to the card, once pcscd's polling has found it (and has seen the last
    test's card go: a probe APDU must reach this one)."""
    transport = PcscTransport(pcscd.reader)
    deadline = time.monotonic() + 10
    while True:
        try:
            transport.connect()
            transport.transmit(bytes.fromhex("00A4040C07A0000002471001"))
            transport.reset()
            return transport
        except ChipError:
            transport.close()
            if time.monotonic() > deadline:
                card.stop()
                raise
            time.sleep(0.1)


@pytest.fixture
def inserted(pcscd: Pcscd) -> Iterator[tuple[VpcdCard, PcscTransport]]:
    card, transport = _insert(pcscd, FILES)
    yield card, transport
    transport.close()
    card.stop()


def test_a_full_read_through_pcscd_authenticates(inserted: tuple[VpcdCard, PcscTransport]) -> None:
    _, transport = inserted
    started = time.monotonic()
    read = read_chip(transport.transmit, KEYS, STORE)
    elapsed = time.monotonic() - started
    assert read.chip == "authenticated"
    assert read.identity is not None and read.identity.personal_id == PERSON.cccd
    assert read.round_trips <= 25
    print(f"PC/SC read: {read.round_trips} round trips in {elapsed * 1000:.0f} ms")


def test_pace_with_the_can_through_pcscd(inserted: tuple[VpcdCard, PcscTransport]) -> None:
    """PACE-ECDH-GM-AES-CBC-CMAC-128 with the CAN (the last 6 digits of the personal ID), as the
    virtual chip offers it in EF.CardAccess, then AES secure messaging for the whole read."""
    _, transport = inserted
    read = read_chip(transport.transmit, (), STORE, can=PERSON.cccd[-6:])
    assert (read.chip, read.attempts) == ("authenticated", 0)
    assert read.round_trips <= 25


def test_an_altered_dg13_through_pcscd_is_flagged(pcscd: Pcscd) -> None:
    altered = FILES.with_file(0x010D, FILES.files[0x010D].replace(b"Kinh", b"Kinx"))
    card, transport = _insert(pcscd, altered)
    try:
        read = read_chip(transport.transmit, KEYS, STORE)
    finally:
        transport.close()
        card.stop()
    assert read.chip == "failed"


def test_a_wrong_document_number_through_pcscd(inserted: tuple[VpcdCard, PcscTransport]) -> None:
    _, transport = inserted
    _, birth, end = FILES.bac
    with pytest.raises(AccessDeniedError):
        read_chip(transport.transmit, AccessKeys.from_mrz("000000000", birth, end), STORE)


def test_the_card_removed_mid_read_is_a_clean_error(pcscd: Pcscd) -> None:
    card, transport = _insert(pcscd, FILES)
    sent = 0

    def transmit(apdu: bytes) -> bytes:
        nonlocal sent
        sent += 1
        if sent == 6:
            card.stop()
        return transport.transmit(apdu)

    try:
        with pytest.raises(ChipError, match="removed"):
            read_chip(transmit, KEYS, STORE)
    finally:
        transport.close()
        # vpcd (vsmartcard 3.3) takes no new card after one vanished mid-command: a fresh pcscd for the next
        pcscd.restart()


def test_le_256_through_pcscd(pcscd: Pcscd) -> None:
    """A chip that accepts Le 256: the protected answer (285 bytes) passes pcscd and vpcd whole."""
    card = VpcdCard(VirtualChip(FILES, max_le=256), port=pcscd.port).start()
    transport = _connect(pcscd, card)
    try:
        read = read_chip(transport.transmit, KEYS, STORE)
    finally:
        transport.close()
        card.stop()
    in_process = read_chip(VirtualChip(FILES, max_le=256).transmit, KEYS, STORE)
    assert (read.chip, read.round_trips) == ("authenticated", in_process.round_trips)


def test_the_agent_reads_a_card_placed_on_the_reader(pcscd: Pcscd, tmp_path: Path) -> None:
    """The node's card poller: the receptionist scans the QR, places the card; one chip Read."""
    config = NodeConfig(
        "pi-0001", "38001", "127.0.0.1", 8883, True, "", "pi-0001", "pw", bytes(32), bytes(32)
    )
    shown: list[str] = []
    with Outbox(tmp_path / "outbox.db") as outbox:
        agent = Agent(Uplink(config, outbox), STORE, display=shown.append)
        agent.on_scan(qr.parse(citizens.qr_bytes(PERSON, PERSON.doc)))

        async def place_card() -> None:
            card, probe = _insert(pcscd, FILES)  # pcscd has seen the last test's card go
            probe.close()
            poller = asyncio.create_task(poll_cards(agent.card, pcscd.reader, interval=0.1))
            try:
                deadline = time.monotonic() + 15
                while len(outbox) < 2:
                    assert time.monotonic() < deadline, (shown, poller.done() and poller.exception())
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # left on the reader: not read twice
            finally:  # the poller first: vpcd takes no new card after one vanished mid-command
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
                card.stop()

        asyncio.run(place_card())
        assert len(outbox) == 2 and shown == ["Đang kiểm tra...", "Chip hợp lệ"]


@pytest.mark.parametrize("access", ["bac", "pace"])
def test_benchmark_dg1_dg13_sod_through_pcscd(pcscd: Pcscd, access: str) -> None:
    """Issue 7's benchmark: APDU round trips and bytes for DG1 + DG13 + SOD (a chip without
    DG14/DG15), and the time through pcscd (best of 5); the goal is at most 25 round trips."""
    files = chip_files(PERSON, PKI, aa=False)
    card, transport = _insert(pcscd, files)
    times = []
    try:
        for _ in range(5):
            transport.reset()  # as a card placed anew: no session left from the last read
            started = time.monotonic()
            keys = AccessKeys.from_mrz(*files.bac)
            read = read_chip(
                transport.transmit, keys, STORE, can=PERSON.cccd[-6:] if access == "pace" else None
            )
            times.append(time.monotonic() - started)
    finally:
        transport.close()
        card.stop()
    assert read.chip == "authenticated" and read.passive.groups == (1, 13) and read.round_trips <= 25
    print(
        f"{access}: {read.round_trips} round trips, {read.apdu_bytes} APDU bytes, {min(times) * 1000:.0f} ms"
    )


def test_the_read_tool_through_pcscd(
    inserted: tuple[VpcdCard, PcscTransport], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``python -m agent.emrtd read``: keys from a QR file, JSON out, personal fields masked."""
    _, transport = inserted
    transport.close()  # the tool opens its own connection
    qr_file = tmp_path / "qr.txt"
    qr_file.write_bytes(citizens.qr_bytes(PERSON, PERSON.doc))
    assert emrtd_tool(["read", "--reader", "Virtual PCD 00 00", "--qr-file", str(qr_file), "-v"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["chip"]["pa"] == "no_trust_anchor" and report["id"]["cccd"] != PERSON.cccd
    assert report["id"]["cccd"][-1] == PERSON.cccd[-1] and "SW 9000" in captured.err
