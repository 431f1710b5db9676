"""A virtual CCCD chip: the files of a synthetic citizen (``files``), signed under a test PKI
(``pki``), answering APDUs in-process (``VirtualChip.transmit``) or through pcscd's vpcd driver
(``VpcdCard``)."""

from .card import AID, ATR, VirtualChip
from .files import ChipFiles, chip_files, expiry, sample_citizen
from .pki import TestPki, master_list
from .vpcd import VpcdCard

__all__ = [
    "AID",
    "ATR",
    "ChipFiles",
    "TestPki",
    "VirtualChip",
    "VpcdCard",
    "chip_files",
    "expiry",
    "master_list",
    "sample_citizen",
]
