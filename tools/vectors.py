"""The contract vectors: fixed inputs and every derived output of the wire contract (v1).

``docs/contract-vectors.json`` is written by this module and checked by the tests of every side
(core under CPython and MicroPython, and later firmware, collector and simulator), so an outside
vendor can test a node of their own against it. All data is synthetic.

    python -m tools.vectors            # rewrite docs/contract-vectors.json
    python -m tools.vectors --check    # exit 1 if the file differs from what this code derives
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cccd import envelope, keys, pseudonym, schema
from tools.jsonview import to_json

PATH = Path(__file__).resolve().parent.parent / "docs" / "contract-vectors.json"

FACILITY = "38001"
DEVICE = "qr-0007"
DEVICE_SECRET = bytes(range(32))
PSEUDONYM_SECRET = bytes(range(0x40, 0x60))
PERSONAL_ID = "001090000001"  # synthetic: structure-valid (Hà Nội, male, born 1990), no one's
BHXH_NUMBER = "0109000001"  # synthetic
READ_SEQ = 42
RESULT_SEQ = 7


def build() -> dict[str, Any]:
    """Every vector, derived from the fixed inputs above by the protocol core."""
    k = keys.derive(DEVICE_SECRET)
    pid = pseudonym.pid(PSEUDONYM_SECRET, cccd=PERSONAL_ID)
    ident = {
        "cccd": PERSONAL_ID,
        "name": "Nguyễn Văn An",
        "dob": "1990-05-17",
        "sex": "M",
        "address": "Số 1 đường Lê Lợi, phường Điện Biên, thành phố Thanh Hóa, tỉnh Thanh Hóa",
        "issued": "2021-04-12",
    }
    read = schema.read(READ_SEQ, 1795000000000, "ntp", "qr", "cccd", pid, ident, warn=[])
    result = schema.result(READ_SEQ, "ok", "Thẻ BHYT hợp lệ\nĐến 31/12/2026", "000", "2026-12-31")
    return {
        "contract": "cccd/v1",
        "note": "Synthetic data. Byte strings are hex; in payload_json, bytes are written h'...'.",
        "keys": {
            "secret": DEVICE_SECRET.hex(),
            "up_key": k.up_key.hex(),
            "up_iv": k.up_iv.hex(),
            "down_key": k.down_key.hex(),
            "down_iv": k.down_iv.hex(),
        },
        "pseudonym": {
            "secret": PSEUDONYM_SECRET.hex(),
            "cccd": PERSONAL_ID,
            "pid": pid.hex(),
            "bhxh": BHXH_NUMBER,
            "pid_bhxh": pseudonym.pid(PSEUDONYM_SECRET, bhxh=BHXH_NUMBER).hex(),
        },
        "read": _message("read", read, READ_SEQ, k.up_key, k.up_iv),
        "result": _message("result", result, RESULT_SEQ, k.down_key, k.down_iv),
    }


def _message(kind: str, msg: dict[str, Any], seq: int, key: bytes, base_iv: bytes) -> dict[str, Any]:
    """One message of ``kind`` sealed as the ``seq``-th of its sender, with every step shown."""
    topic = schema.topic(FACILITY, DEVICE, kind)
    kid = DEVICE.encode()
    payload = schema.encode(kind, msg)
    piv = envelope.partial_iv(seq)
    return {
        "topic": topic,
        "kid": kid.hex(),
        "seq": seq,
        "partial_iv": piv.hex(),
        "nonce": envelope.nonce(base_iv, piv).hex(),
        "payload_json": to_json(msg),
        "payload_cbor": payload.hex(),
        "envelope": envelope.seal(key, base_iv, kid, seq, topic, payload).hex(),
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.vectors", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if PATH.read_text(encoding="utf-8") != text:
            print(f"{PATH} is out of date: run python -m tools.vectors", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text, encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
