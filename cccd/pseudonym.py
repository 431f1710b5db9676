"""The keyed pseudonym of a patient: what travels instead of the personal ID.

``pid`` = the first 16 bytes of HMAC-SHA256(facility pseudonym secret, ``cccd:`` + the 12-digit
personal ID), or of ``bhxh:`` + the 10-digit BHXH number when no personal ID was read. The prefix
separates the two domains, so a personal ID and a BHXH number never share a pseudonym. A plain hash
of a 12-digit number is no pseudonym: 10^12 candidates are brute-forced in hours; without the
facility secret this one cannot be.
"""

from cccd.keys import hmac_sha256

PID_LEN = 16
MIN_SECRET_LEN = 16


def _digits(value: str, n: int) -> bool:
    return isinstance(value, str) and len(value) == n and all("0" <= c <= "9" for c in value)


def pid(secret: bytes, cccd: str | None = None, bhxh: str | None = None) -> bytes:
    """The 16-byte pseudonym for a 12-digit personal ID, else for a 10-digit BHXH number."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < MIN_SECRET_LEN:
        raise ValueError("the pseudonym secret must be at least %d bytes" % MIN_SECRET_LEN)
    if cccd is not None:
        if not _digits(cccd, 12):
            raise ValueError("a personal ID has 12 digits")
        msg = "cccd:" + cccd
    elif bhxh is not None:
        if not _digits(bhxh, 10):
            raise ValueError("a BHXH number has 10 digits")
        msg = "bhxh:" + bhxh
    else:
        raise ValueError("a pseudonym needs a personal ID or a BHXH number")
    return hmac_sha256(bytes(secret), msg.encode())[:PID_LEN]
