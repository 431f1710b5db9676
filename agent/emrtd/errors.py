"""The exceptions of chip reading, one tree::

    ChipError                 anything that stops a chip read; ``str()`` is a sentence for a person
    ├── AccessDeniedError     BAC refused: the MRZ information (document number, DOB, expiry) is wrong
    ├── SecureMessagingError  a response's MAC, SSC or data objects do not check out
    ├── CardError             the chip answered a command with an error status word (``sw``)
    └── ChipDataError         a file's content is malformed (TLV, MRZ, DG13, SOD)

Transport failures (a card removed, a reader gone) are translated into ``ChipError`` once, at the
transport's edge (``reader.py``). No message carries personal data.
"""

from __future__ import annotations


class ChipError(Exception):
    """A chip read failed."""


class AccessDeniedError(ChipError):
    """The chip refused basic access control: wrong document number, birth or expiry date."""


class SecureMessagingError(ChipError):
    """A protected response did not verify."""


class CardError(ChipError):
    """The chip answered with an error status word."""

    def __init__(self, what: str, sw: int) -> None:
        super().__init__(f"{what}: the chip answered {sw:04X}")
        self.sw = sw


class ChipDataError(ChipError, ValueError):
    """A file read from the chip is malformed."""
