"""The cryptolib stand-in (tests/mpy/stubs/cryptolib.py) agrees with the cryptography package.

Random keys, IVs and data, ECB and CBC, every key size (AES-192 through the block cipher: the
device's ``aes()`` takes 16- and 32-byte keys only). The known-answer vectors are in
tests/core/test_aes_stub.py, which also runs under MicroPython.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st
from mpytier import load_stub

cryptolib = load_stub("cryptolib")

keys = st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
ivs = st.binary(min_size=16, max_size=16)
data = st.integers(min_value=0, max_value=8).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n))


def _reference(key: bytes, mode: modes.Mode, block: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), mode)
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(block) + ctx.finalize()


@given(keys, data)
def test_ecb(key: bytes, plain: bytes) -> None:
    cipher = _reference(key, modes.ECB(), plain)
    assert cryptolib.aes(key, 1).encrypt(plain) == cipher
    assert cryptolib.aes(key, 1).decrypt(cipher) == plain


@given(keys, ivs, data, st.integers(min_value=0, max_value=8))
def test_cbc_in_one_call_and_in_two(key: bytes, iv: bytes, plain: bytes, cut: int) -> None:
    cipher = _reference(key, modes.CBC(iv), plain)
    assert cryptolib.aes(key, 2, iv).encrypt(plain) == cipher
    assert cryptolib.aes(key, 2, iv).decrypt(cipher) == plain
    cut = min(16 * cut, len(plain))
    enc = cryptolib.aes(key, 2, iv)
    assert enc.encrypt(plain[:cut]) + enc.encrypt(plain[cut:]) == cipher
    dec = cryptolib.aes(key, 2, iv)
    assert dec.decrypt(cipher[:cut]) + dec.decrypt(cipher[cut:]) == plain


@given(st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)), ivs)
def test_block_cipher_every_key_size(key: bytes, block: bytes) -> None:
    rk = cryptolib._expand_key(key)
    state = bytearray(block)
    scratch = bytearray(16)
    cryptolib._encrypt_block(rk, state, scratch)
    assert bytes(state) == _reference(key, modes.ECB(), block)
    cryptolib._decrypt_block(rk, state, scratch)
    assert bytes(state) == block


def test_inputs_may_be_any_buffer() -> None:
    key = bytes(range(32))
    plain = bytes(range(48))
    cipher = _reference(key, modes.ECB(), plain)
    for buf in (plain, bytearray(plain), memoryview(plain)):
        assert cryptolib.aes(key, 1).encrypt(buf) == cipher
    assert cryptolib.aes(bytearray(key), 2, bytearray(16)).encrypt(plain) == _reference(
        key, modes.CBC(bytes(16)), plain
    )
