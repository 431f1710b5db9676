"""Cards on a PC/SC reader: wait for one, hand it to ``on_card`` once, wait until it is taken away.

pyscard blocks, so each PC/SC step runs in a worker thread (``on_card`` sends its own chip I/O to
one, as ``Agent.card`` does); between polls the loop sleeps ``interval``.
A card read once is not read again while it stays on the reader (the receptionist leaves it there
while the screen shows the answer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .emrtd import ChipError
from .emrtd.pcsc import PcscTransport
from .emrtd.reader import Transmit
from .pn532 import Pn532

log = logging.getLogger(__name__)

_SELECT_APP = bytes.fromhex("00A4040C07A0000002471001")


async def poll_cards(
    on_card: Callable[[Transmit], Awaitable[Any]],
    reader: str | None = None,
    *,
    interval: float = 0.3,
    transport: Callable[[str | None], PcscTransport] = PcscTransport,
) -> None:
    """Until cancelled: every card placed on ``reader`` goes to ``on_card(transmit)`` once."""
    while True:
        card = transport(reader)
        try:
            await asyncio.to_thread(card.connect)
        except ChipError:
            await asyncio.sleep(interval)
            continue
        try:
            await on_card(card.transmit)
            while True:  # until the card is taken away
                await asyncio.sleep(interval)
                await asyncio.to_thread(card.transmit, _SELECT_APP)
        except ChipError:
            log.debug("card removed")
        finally:
            card.close()


async def poll_pn532(
    on_card: Callable[[Transmit], Awaitable[Any]], board: Pn532, *, interval: float = 0.3
) -> None:
    """Until cancelled: every card brought to the PN532's field goes to ``on_card`` once."""
    await asyncio.to_thread(board.wake)
    while True:
        try:
            if not await asyncio.to_thread(board.find_card):
                await asyncio.sleep(interval)
                continue
            await on_card(board.transmit)
            while await asyncio.to_thread(board.find_card):  # until the card leaves the field
                await asyncio.sleep(interval)
        except ChipError as exc:
            log.info("PN532: %s", exc)
            await asyncio.sleep(interval)
