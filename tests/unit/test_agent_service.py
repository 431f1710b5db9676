"""The node's flow at the counter, in-process: a QR scan becomes a sealed Read and keys the chip
read of the card placed next (PACE with the CAN, BAC with the expiry candidates), whose Read carries
the chip's outcome; a forged chip is shown as such; a card without a QR scan first is refused."""

import datetime
from pathlib import Path

from agent.emrtd import ChipError, CscaStore
from agent.outbox import Outbox
from agent.service import KEY_TTL, Agent, clock_source
from agent.uplink import NodeConfig, Uplink
from cccd import envelope, keys, qr, schema
from sim import citizens
from sim.chip import TestPki, VirtualChip, chip_files, expiry

PKI = TestPki.generate()
TODAY = datetime.date(2026, 11, 1)
PERSON = next(c for c in citizens.population(20, seed=8, today=TODAY) if expiry(c.dob, c.issued))
CONFIG = NodeConfig(
    "pi-0001", "38001", "127.0.0.1", 8883, True, "", "pi-0001", "pw", bytes(32), bytes(range(32))
)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _agent(tmp_path: Path) -> tuple[Agent, Outbox, list[str], Clock]:
    outbox = Outbox(tmp_path / "outbox.db")
    shown: list[str] = []
    clock = Clock()
    return (
        Agent(Uplink(CONFIG, outbox), CscaStore([PKI.csca]), display=shown.append, clock=clock),
        outbox,
        shown,
        clock,
    )


def _reads(outbox: Outbox) -> list[dict[str, object]]:
    k = keys.derive(CONFIG.secret)
    topic = CONFIG.topic("read")
    return [
        schema.decode("read", envelope.parse(data).open(k.up_key, k.up_iv, topic))
        for _, data in outbox.pending()
    ]


def _scan() -> qr.Scan:
    return qr.parse(citizens.qr_bytes(PERSON, PERSON.doc), now=(TODAY.year, TODAY.month, TODAY.day))


def test_a_qr_scan_then_the_card(tmp_path: Path) -> None:
    agent, outbox, shown, _ = _agent(tmp_path)
    agent.on_scan(_scan())
    read = agent.on_card(VirtualChip(chip_files(PERSON, PKI)).transmit)
    assert read is not None and (read.chip, read.attempts) == ("authenticated", 0)  # PACE with the CAN
    qr_read, chip_read = _reads(outbox)
    assert (qr_read["src"], chip_read["src"]) == ("qr", "nfc")
    assert qr_read["pid"] == chip_read["pid"] and chip_read["chip"]["aa"] == "passed"  # type: ignore[index]
    assert shown == ["Đang kiểm tra...", "Chip hợp lệ"]
    outbox.close()


def test_a_bac_only_card_is_opened_with_the_expiry_candidates(tmp_path: Path) -> None:
    agent, outbox, _, _ = _agent(tmp_path)
    agent.on_scan(_scan())
    read = agent.on_card(VirtualChip(chip_files(PERSON, PKI, pace=False)).transmit)
    assert read is not None and read.chip == "authenticated" and read.attempts >= 1
    outbox.close()


def test_a_forged_chip_is_shown_and_flagged(tmp_path: Path) -> None:
    agent, outbox, shown, _ = _agent(tmp_path)
    files = chip_files(PERSON, PKI)
    forged = files.with_file(0x010D, files.files[0x010D].replace(b"Kinh", b"Kinx"))
    agent.on_scan(_scan())
    agent.on_card(VirtualChip(forged).transmit)
    assert shown[-1] == "Chip sai chữ ký"
    assert _reads(outbox)[-1]["warn"] == ["chip_failed"]
    outbox.close()


def test_a_card_needs_a_fresh_qr_scan_first(tmp_path: Path) -> None:
    agent, outbox, shown, clock = _agent(tmp_path)
    assert agent.on_card(VirtualChip(chip_files(PERSON, PKI)).transmit) is None
    agent.on_scan(_scan())
    clock.now += KEY_TTL + 1
    assert agent.on_card(VirtualChip(chip_files(PERSON, PKI)).transmit) is None
    assert shown.count("Quét mã QR trước") == 2 and len(outbox) == 1
    outbox.close()


def test_a_card_taken_away_mid_read_publishes_nothing(tmp_path: Path) -> None:
    agent, outbox, shown, _ = _agent(tmp_path)
    agent.on_scan(_scan())
    chip = VirtualChip(chip_files(PERSON, PKI))

    def transmit(apdu: bytes) -> bytes:
        if chip.commands == 9:
            raise ChipError("the card stopped answering (removed?)")
        return chip.transmit(apdu)

    assert agent.on_card(transmit) is None
    assert len(outbox) == 1 and shown[-1] == "Lỗi đọc chip"  # only the QR's Read
    outbox.close()


def test_the_clock_source(tmp_path: Path) -> None:
    assert clock_source(tmp_path / "synchronized") == "rtc"
    (tmp_path / "synchronized").touch()
    assert clock_source(tmp_path / "synchronized") == "ntp"


def test_the_lights_follow_the_counter(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory  # noqa: PLC0415

    from agent.lights import Lights  # noqa: PLC0415

    lights = Lights(pin_factory=MockFactory())
    outbox = Outbox(tmp_path / "outbox.db")
    agent = Agent(Uplink(CONFIG, outbox), CscaStore([PKI.csca]), display=lambda text: None, light=lights.show)
    agent.on_scan(_scan())
    assert lights.level == "amber" and lights.leds["amber"].is_lit and not lights.leds["green"].is_lit
    agent.show_result({"seq": 0, "status": "ok", "text": "Thẻ BHYT hợp lệ"})
    assert lights.level == "green" and lights.beeps == 1
    agent.on_scan(_scan())  # the next patient; the answer for the first one comes again, late
    agent.show_result({"seq": 0, "status": "reject", "text": "Không có BHYT"})
    assert lights.level == "amber" and agent.late_results == 1
    files = chip_files(PERSON, PKI)
    agent.on_card(
        VirtualChip(files.with_file(0x010D, files.files[0x010D].replace(b"Kinh", b"Kinx"))).transmit
    )
    assert lights.level == "red" and lights.leds["red"].is_lit and lights.beeps == 4
    lights.close()
    outbox.close()
