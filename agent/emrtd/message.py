"""A chip read as the wire contract's Read (DESIGN.md): ``src`` ``nfc``, the pseudonym of the
personal ID, the identity map, the ``chip`` outcome, and what the parsers doubted in ``warn``.

An identity field the contract would refuse (a date DG13 wrote in another format, an over-long
text) is left out and named in ``warn`` (``dropped_<field>``): the read still goes through.
"""

from __future__ import annotations

from typing import Any

from cccd import pseudonym, schema
from cccd.errors import SchemaError

from .errors import ChipDataError
from .reader import ChipRead

CANCUOC_FROM = "2024-07-01"  # cards issued from this day are the Căn cước (law 2023)


def read_message(chip: ChipRead, seq: int, ts: int, clk: str, pseudonym_secret: bytes) -> dict[str, Any]:
    """The Read of ``chip``; ``ChipDataError`` when the chip gave no personal ID at all."""
    ident = chip.ident()
    if "cccd" not in ident:
        raise ChipDataError("the chip holds no 12-digit personal ID")
    warn = [*chip.mrz.warn, *(chip.identity.warn if chip.identity else ())]
    for name, (_, check) in schema.IDENTITY.items():
        if name in ident and not check(ident[name]):
            del ident[name]
            warn.append(f"dropped_{name}")
    if chip.chip != "authenticated":
        warn.append(f"chip_{chip.chip}")
    doc = "cancuoc" if ident.get("issued", "") >= CANCUOC_FROM else "cccd"
    pid = pseudonym.pid(pseudonym_secret, cccd=ident["cccd"])
    try:
        return schema.read(seq, ts, clk, "nfc", doc, pid, ident, chip.summary(), warn=warn[:16] or None)
    except SchemaError as exc:  # a bug of ours: every field was checked above
        raise ChipDataError(f"the chip read does not make a valid Read: {exc}") from exc
