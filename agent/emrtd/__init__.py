"""Reading the CCCD's chip as an eMRTD (ICAO Doc 9303): BAC, secure messaging, the LDS files and
passive authentication. Pure Python over a ``transmit(apdu) -> response`` seam; PC/SC is one
transport of it."""

from .bac import AccessKeys, Challenge, cccd_document_number, check_digit, mrz_information
from .errors import AccessDeniedError, CardError, ChipDataError, ChipError, SecureMessagingError
from .expiry import candidates as expiry_candidates
from .reader import ChipRead, ChipReader, read_chip
from .sm import SecureMessaging
from .sod import CscaStore, Outcome

__all__ = [
    "AccessDeniedError",
    "AccessKeys",
    "CardError",
    "Challenge",
    "ChipDataError",
    "ChipError",
    "ChipRead",
    "ChipReader",
    "CscaStore",
    "Outcome",
    "SecureMessaging",
    "SecureMessagingError",
    "cccd_document_number",
    "check_digit",
    "expiry_candidates",
    "mrz_information",
    "read_chip",
]
