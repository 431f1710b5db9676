"""How the command line shows CBOR values as JSON: bytes as ``h'…'`` (CBOR diagnostic notation),
tags as ``{"tag": n, "value": …}``. One convention for every command and for the contract vectors."""

from typing import Any

from cccd.cbor import Tag


def to_json(obj: Any) -> Any:
    """A JSON-serialisable copy of a decoded CBOR value."""
    if isinstance(obj, (bytes, bytearray)):
        return "h'" + bytes(obj).hex() + "'"
    if isinstance(obj, Tag):
        return {"tag": obj.tag, "value": to_json(obj.value)}
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj
