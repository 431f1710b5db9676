"""``python -m agent --config node.json``: the Raspberry Pi reader node.

systemd runs it (agent/cccd-edge-agent.service).

Options: ``--outbox`` (the SQLite outbox, default /var/lib/cccd-edge/outbox.db), ``--serial PORT``
(a serial QR scanner), ``--wedge DEVICE`` (a keyboard-wedge QR scanner, evdev), ``--pcsc [NAME]``
(read chips on the PC/SC reader whose name contains NAME), ``--pn532 PORT`` (read chips on a PN532
board on that UART), ``--csca FILE`` (trusted CSCA certificates: PEM, or an ICAO master list in
DER), ``--lights`` (green, amber and red LEDs and a buzzer on the GPIO).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from .cardpoll import poll_cards, poll_pn532
from .emrtd import CscaStore
from .lights import Lights
from .outbox import Outbox
from .pn532 import MAX_LE, Pn532
from .qr import SerialScanner
from .service import Agent
from .uplink import NodeConfig, Uplink
from .wedge import WedgeScanner


def _store(path: Path | None) -> CscaStore:
    if path is None:
        return CscaStore()
    data = path.read_bytes()
    return CscaStore.from_pem(data) if b"-----BEGIN" in data else CscaStore.from_master_list(data)


async def _main(args: argparse.Namespace) -> None:
    config = NodeConfig.load(args.config)
    args.outbox.parent.mkdir(parents=True, exist_ok=True)
    with Outbox(args.outbox) as outbox:
        readers: list[dict[str, object]] = [{"type": "qr", "model": "serial"}] if args.serial else []
        readers += [{"type": "qr", "model": "keyboard wedge"}] if args.wedge else []
        readers += [{"type": "nfc", "model": "PC/SC", "std": True}] if args.pcsc is not None else []
        readers += [{"type": "nfc", "model": "PN532", "std": True}] if args.pn532 else []
        uplink = Uplink(config, outbox, readers=readers)
        light = Lights().show if args.lights else (lambda level: None)
        agent = Agent(uplink, _store(args.csca), max_le=MAX_LE if args.pn532 else 256, light=light)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(agent.uplink.run(), name="agent.uplink")
            if args.serial:
                tg.create_task(SerialScanner(args.serial, agent.on_scan).run(), name="agent.qr")
            if args.wedge:
                wedge = WedgeScanner(args.wedge, SerialScanner(args.wedge, agent.on_scan).handle)
                tg.create_task(wedge.run(), name="agent.wedge")
            if args.pcsc is not None:
                tg.create_task(poll_cards(agent.card, args.pcsc or None), name="agent.chip")
            if args.pn532:
                import serial  # noqa: PLC0415  (the agent extra)

                board = Pn532(serial.Serial(args.pn532, 115200, timeout=0.05))
                tg.create_task(poll_pn532(agent.card, board), name="agent.pn532")


def main(argv: list[str] | None = None, prog: str = "python -m agent") -> None:
    parser = argparse.ArgumentParser(
        prog=prog, description="The Raspberry Pi reader node (QR and CCCD chip)."
    )
    parser.add_argument("--config", type=Path, required=True, help="the node configuration file")
    parser.add_argument("--outbox", type=Path, default=Path("/var/lib/cccd-edge/outbox.db"))
    parser.add_argument("--serial", help="serial port of a QR scanner, e.g. /dev/ttyACM0")
    parser.add_argument("--wedge", help="evdev device of a keyboard-wedge QR scanner (/dev/input/by-id/...)")
    parser.add_argument(
        "--pcsc", nargs="?", const="", help="read chips on this PC/SC reader (default: the first)"
    )
    parser.add_argument("--lights", action="store_true", help="LEDs on BCM 17/27/22, buzzer on 23 (gpiozero)")
    parser.add_argument("--pn532", help="serial port of a PN532 board (UART), e.g. /dev/ttyS0")
    parser.add_argument("--csca", type=Path, help="trusted CSCA certificates (PEM or ICAO master list)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
