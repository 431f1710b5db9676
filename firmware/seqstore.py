"""Sequence numbers reserved ahead in flash: a nonce is never used twice, across power loss too.

The envelope's nonce is derived from the sender's sequence number (DESIGN.md), so a number used
before a power cut must never be used again after it. As OSCORE does (RFC 8613 appendix B.1.1),
the store writes a *reservation* — "every number below R may have been used" — before it hands
out any number below R, and a restart continues from R: at most ``reserve`` numbers are skipped
per restart, none is repeated, and flash is written once per ``reserve`` reads.

The reservation is one line of ASCII digits ending in "\\n", written atomically
(:func:`firmware.outbox.write_atomic`: a ``.tmp`` file renamed over the file). A torn or missing
file is never read as a number larger than what was completely written; when neither the file
nor its ``.tmp`` holds a complete reservation the store starts from ``floor`` (give it the
outbox's highest sequence number + 1, which survives independently).
"""

from firmware.outbox import read_atomic, write_atomic

RESERVE = 100
MAX_SEQ = (1 << 40) - 1  # cccd.envelope.MAX_SEQ: five bytes of Partial IV


def _parse(text):
    if len(text) < 2 or not text.endswith("\n"):
        return None
    digits = text[:-1]
    for c in digits:
        if not "0" <= c <= "9":
            return None
    return int(digits)


class SeqStore:
    """Sequence numbers from the reservation file ``path``; ``floor``: the lowest allowed next."""

    def __init__(self, path, reserve=RESERVE, floor=0):
        if reserve < 1:
            raise ValueError("seqstore: reserve at least 1")
        self.path = path
        self.reserve = reserve
        reserved = read_atomic(path, _parse)
        start = reserved if reserved is not None else 0
        self._next = max(start, floor)
        self._reserved = self._next  # nothing reserved in this run yet

    def next(self):
        """The next sequence number, never handed out before (the reservation is in flash first)."""
        seq = self._next
        if seq > MAX_SEQ:
            raise OverflowError("seqstore: sequence numbers exhausted")
        if seq >= self._reserved:
            reserved = min(seq + self.reserve, MAX_SEQ + 1)
            write_atomic(self.path, "%d\n" % reserved)
            self._reserved = reserved
        self._next = seq + 1
        return seq

    def floor(self, seq):
        """Never hand out a number below ``seq`` (e.g. the outbox's highest + 1 after recovery)."""
        self._next = max(self._next, seq)

    @property
    def reserved(self):
        return self._reserved
