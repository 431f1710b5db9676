"""The registry: provisioned devices, their secrets, and the keys the collector derives from them.

A device is provisioned (``add``) with a random 32-byte secret and becomes expected equipment; it
can be ``revoke``d (its reads are refused from then on) or ``rotate``d: a new secret, with the old
one still accepted until a grace period ends (a node may have sealed reads with the old secret
before it received the new configuration). Secrets are stored encrypted with the keystore, bound
to their row. Each facility has one pseudonym secret, created on first use.
"""

import secrets
import time
from dataclasses import dataclass

from cccd import keys
from collector.db import Database
from collector.keystore import Keystore

ACTIVE = "active"
REVOKED = "revoked"
KINDS = ("esp32", "rpi")


class RegistryError(Exception):
    """A provisioning request that cannot be done (unknown device, already provisioned...)."""


@dataclass(frozen=True)
class Device:
    facility: str
    device: str
    kind: str
    site: str
    state: str
    created: float


class Registry:
    """Devices and facility secrets in the store; derived keys cached in memory."""

    def __init__(self, db: Database, keystore: Keystore) -> None:
        self.db = db
        self.keystore = keystore
        self._keys: dict[tuple[str, str], tuple[float, list[keys.DeviceKeys]]] = {}

    # --- provisioning ---------------------------------------------------------------------

    def add(self, facility: str, device: str, kind: str, site: str, now: float | None = None) -> bytes:
        """Provision a device; returns its new secret. A revoked device may be provisioned anew."""
        if kind not in KINDS:
            raise RegistryError(f"kind must be one of {', '.join(KINDS)}")
        now = time.time() if now is None else now
        secret = secrets.token_bytes(keys.SECRET_LEN)
        sealed = self.keystore.seal_secret(secret, _where(facility, device))
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT state FROM devices WHERE facility = ? AND device = ?", (facility, device)
            ).fetchone()
            if row is not None and row[0] == ACTIVE:
                raise RegistryError(f"{facility}/{device} is already provisioned: rotate or revoke it")
            tx.execute("DELETE FROM devices WHERE facility = ? AND device = ?", (facility, device))
            tx.execute(
                "INSERT INTO devices (facility, device, kind, site, state, secret, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (facility, device, kind, site, ACTIVE, sealed, now, now),
            )
        self._keys.pop((facility, device), None)
        return secret

    def revoke(self, facility: str, device: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE devices SET state = ?, old_secret = NULL, old_until = NULL, updated = ?"
                " WHERE facility = ? AND device = ? AND state = ?",
                (REVOKED, now, facility, device, ACTIVE),
            )
            if cur.rowcount != 1:
                raise RegistryError(f"{facility}/{device} is not an active device")
        self._keys.pop((facility, device), None)

    def rotate(self, facility: str, device: str, grace: float, now: float | None = None) -> bytes:
        """A new secret; the old one keeps opening reads for ``grace`` seconds."""
        now = time.time() if now is None else now
        secret = secrets.token_bytes(keys.SECRET_LEN)
        where = _where(facility, device)
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT secret FROM devices WHERE facility = ? AND device = ? AND state = ?",
                (facility, device, ACTIVE),
            ).fetchone()
            if row is None:
                raise RegistryError(f"{facility}/{device} is not an active device")
            old = self.keystore.open_secret(bytes(row[0]), where)
            tx.execute(
                "UPDATE devices SET secret = ?, old_secret = ?, old_until = ?, updated = ?"
                " WHERE facility = ? AND device = ?",
                (
                    self.keystore.seal_secret(secret, where),
                    self.keystore.seal_secret(old, where + "/old"),
                    now + grace,
                    now,
                    facility,
                    device,
                ),
            )
        self._keys.pop((facility, device), None)
        return secret

    def pseudonym_secret(self, facility: str, now: float | None = None) -> bytes:
        """The facility's pseudonym secret, created on first use."""
        where = "facility/" + facility
        rows = self.db.query("SELECT pseudonym_secret FROM facilities WHERE facility = ?", (facility,))
        if rows:
            return self.keystore.open_secret(bytes(rows[0][0]), where)
        secret = secrets.token_bytes(32)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO facilities (facility, pseudonym_secret, created) VALUES (?, ?, ?)",
                (facility, self.keystore.seal_secret(secret, where), time.time() if now is None else now),
            )
        return secret

    # --- what the collector asks ----------------------------------------------------------

    def devices(self, facility: str | None = None) -> list[Device]:
        sql = "SELECT facility, device, kind, site, state, created FROM devices"
        params: tuple[str, ...] = ()
        if facility is not None:
            sql += " WHERE facility = ?"
            params = (facility,)
        rows = self.db.query(sql + " ORDER BY facility, device", params)
        return [Device(r[0], r[1], r[2], r[3], r[4], float(r[5])) for r in rows]

    def keys_for(self, facility: str, device: str, now: float | None = None) -> list[keys.DeviceKeys]:
        """The keys a message of this device may be sealed with: current, then old in its grace.
        Empty for an unknown or revoked device."""
        now = time.time() if now is None else now
        cached = self._keys.get((facility, device))
        if cached is not None and now < cached[0]:
            return cached[1]
        rows = self.db.query(
            "SELECT secret, old_secret, old_until FROM devices"
            " WHERE facility = ? AND device = ? AND state = ?",
            (facility, device, ACTIVE),
        )
        found: list[keys.DeviceKeys] = []
        valid_until = now + 60.0  # look again within a minute: revocations reach a running collector
        if rows:
            secret, old_secret, old_until = rows[0]
            where = _where(facility, device)
            found.append(keys.derive(self.keystore.open_secret(bytes(secret), where)))
            if old_secret is not None and old_until is not None and now < old_until:
                found.append(keys.derive(self.keystore.open_secret(bytes(old_secret), where + "/old")))
                valid_until = min(valid_until, float(old_until))
        self._keys[(facility, device)] = (valid_until, found)
        return found

    def forget_cache(self) -> None:
        self._keys.clear()


def _where(facility: str, device: str) -> str:
    return f"device/{facility}/{device}"
