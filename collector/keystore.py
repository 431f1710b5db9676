"""Encryption at rest: the key-encryption key (KEK) and the fields it protects.

The collector keeps device secrets, facility pseudonym secrets and the personal fields of reads
encrypted with AES-256-GCM under keys derived from one 32-byte KEK. The KEK comes from a file
(``kek_file``, 64 hex digits, mode 0600) or the environment variable ``CCCD_KEK`` (64 hex digits);
it is never stored in the database.

Every ciphertext is bound to where it lives by its associated data (e.g. ``device/38001/qr-0007``),
so a ciphertext copied to another row does not decrypt. Format: version byte 1, 12-byte nonce,
ciphertext with its 16-byte tag.
"""

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cccd.keys import hkdf

KEK_ENV = "CCCD_KEK"
KEK_LEN = 32
_VERSION = b"\x01"
_NONCE_LEN = 12


class KeystoreError(Exception):
    """The KEK is missing or malformed, or a stored ciphertext does not decrypt."""


def load_kek(kek_file: str | Path | None = None) -> bytes:
    """The KEK from ``kek_file`` if given, else from $CCCD_KEK."""
    if kek_file is not None:
        path = Path(kek_file)
        try:
            text = path.read_text("ascii").strip()
        except (OSError, UnicodeError) as exc:
            raise KeystoreError(f"cannot read the key-encryption key file {path}: {exc}") from None
        source = str(path)
    else:
        text = os.environ.get(KEK_ENV, "").strip()
        source = "$" + KEK_ENV
        if not text:
            raise KeystoreError(f"no key-encryption key: set {KEK_ENV} or kek_file in the collector config")
    try:
        kek = bytes.fromhex(text)
    except ValueError:
        raise KeystoreError(f"the key-encryption key in {source} is not hex") from None
    if len(kek) != KEK_LEN:
        raise KeystoreError(f"the key-encryption key in {source} must be {KEK_LEN} bytes (64 hex digits)")
    return kek


def new_kek_file(path: str | Path) -> bytes:
    """Create a new random KEK file (mode 0600); refuses to overwrite one."""
    kek = secrets.token_bytes(KEK_LEN)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(kek.hex() + "\n")
    return kek


class Keystore:
    """Seals and opens values at rest under keys derived from the KEK, one per purpose."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_LEN:
            raise KeystoreError(f"the key-encryption key must be {KEK_LEN} bytes")
        self._secrets = AESGCM(hkdf(kek, b"cccd-edge/collector/secrets", 32))
        self._personal = AESGCM(hkdf(kek, b"cccd-edge/collector/personal", 32))

    def seal_secret(self, value: bytes, where: str) -> bytes:
        return _seal(self._secrets, value, where)

    def open_secret(self, blob: bytes, where: str) -> bytes:
        return _open(self._secrets, blob, where)

    def seal_personal(self, value: bytes, where: str) -> bytes:
        return _seal(self._personal, value, where)

    def open_personal(self, blob: bytes, where: str) -> bytes:
        return _open(self._personal, blob, where)


def _seal(aead: AESGCM, value: bytes, where: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE_LEN)
    return _VERSION + nonce + aead.encrypt(nonce, value, where.encode())


def _open(aead: AESGCM, blob: bytes, where: str) -> bytes:
    if len(blob) < 1 + _NONCE_LEN + 16 or blob[:1] != _VERSION:
        raise KeystoreError(f"stored value for {where} is malformed")
    try:
        return aead.decrypt(blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :], where.encode())
    except InvalidTag:
        raise KeystoreError(
            f"stored value for {where} does not decrypt with this key-encryption key"
        ) from None
