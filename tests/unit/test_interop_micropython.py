"""Envelopes cross between MicroPython and pycose: what a node seals, any COSE library opens."""

import json
from pathlib import Path

import pytest
from pycose.algorithms import AESCCM16128256
from pycose.headers import KID, Algorithm, PartialIV
from pycose.keys import SymmetricKey
from pycose.messages import Enc0Message

from cccd import envelope, keys
from tools import micropython

pytestmark = pytest.mark.micropython

ROOT = Path(__file__).resolve().parents[2]
SECRET = bytes(range(32))
TOPIC = "cccd/v1/38001/qr-0007/read"
SEQS = (0, 1, 255, 256, 70000, envelope.MAX_SEQ)
SIZES = (0, 1, 16, 17, 300)


def _mpy(code: str) -> str:
    result = micropython.run(
        code,
        mounts=[(ROOT / "cccd", "/lib/cccd"), (ROOT / "tests" / "mpy" / "stubs", "/stubs")],
        sys_path=["/stubs"],
    ).check()
    return result.stdout


def _key() -> SymmetricKey:
    k = keys.derive(SECRET)
    cose_key = SymmetricKey(k=k.up_key)
    cose_key.base_iv = k.up_iv
    return cose_key


def test_envelopes_sealed_under_micropython_open_with_pycose() -> None:
    out = _mpy(
        f"""
import json
from binascii import hexlify
from cccd import envelope, keys
k = keys.derive(bytes(range(32)))
rows = []
for seq in {SEQS!r}:
    for n in {SIZES!r}:
        payload = bytes([(seq + i) & 0xFF for i in range(n)])
        sealed = envelope.seal(k.up_key, k.up_iv, b"qr-0007", seq, {TOPIC!r}, payload)
        rows.append([seq, n, hexlify(sealed).decode()])
print(json.dumps(rows))
"""
    )
    rows = json.loads(out.strip().splitlines()[-1])
    assert len(rows) == len(SEQS) * len(SIZES)
    for seq, n, hexed in rows:
        msg = Enc0Message.decode(bytes.fromhex(hexed))
        msg.key = _key()
        msg.external_aad = TOPIC.encode()
        assert msg.decrypt() == bytes((seq + i) & 0xFF for i in range(n))
        assert msg.get_attr(PartialIV) == envelope.partial_iv(seq)


def test_envelopes_sealed_by_pycose_open_under_micropython() -> None:
    sealed = []
    for seq in SEQS:
        msg = Enc0Message(
            phdr={Algorithm: AESCCM16128256},
            uhdr={KID: b"qr-0007", PartialIV: envelope.partial_iv(seq)},
            payload=f"payload {seq}".encode(),
            external_aad=TOPIC.encode(),
        )
        msg.key = _key()
        sealed.append(msg.encode().hex())
    out = _mpy(
        f"""
import json
from binascii import unhexlify
from cccd import envelope, keys
k = keys.derive(bytes(range(32)))
opened = []
for hexed in {sealed!r}:
    s = envelope.parse(unhexlify(hexed))
    opened.append([s.seq, s.open(k.up_key, k.up_iv, {TOPIC!r}).decode()])
print(json.dumps(opened))
"""
    )
    assert json.loads(out.strip().splitlines()[-1]) == [[seq, f"payload {seq}"] for seq in SEQS]
