"""The exceptions of the protocol core, one tree for the whole package.

    ValueError
     └── CoreError          anything the core rejects; ``reason`` is a short machine code
          ├── CBORError     malformed, truncated, too deep, too large or unsupported CBOR
          ├── EnvelopeError a COSE_Encrypt0 that does not parse or does not open
          ├── SchemaError   a payload or topic that breaks the wire contract
          └── QRError       a rejected scan (cccd.qr), with a Vietnamese display text

Every message is for an engineer and never contains personal data: the reason, the field name
and sizes, never the value that was read.
"""


class CoreError(ValueError):
    """Base of every rejection of the protocol core; ``reason`` is the code that metrics count."""

    reason = "invalid"

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        if reason:
            self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class CBORError(CoreError):
    reason = "cbor"


class EnvelopeError(CoreError):
    reason = "envelope"


class SchemaError(CoreError):
    reason = "schema"
