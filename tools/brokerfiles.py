"""The files of a facility's Mosquitto broker, produced from data.

Everything here is a pure function of its arguments (plus fresh randomness for keys, serial
numbers and salts), except ``write_file_atomic`` and ``write_broker_dir``, which put the results on
disk with the right modes. ``cccd-edge provision`` calls these; the integration tests start a real
Mosquitto on their output; ``broker_config/mosquitto/README.md`` explains the result to hospital IT.

- ``make_ca``, ``make_server_cert``, ``make_client_cert``: the facility CA and the certificates
  it signs (EC P-256, ECDSA-SHA256).
- ``acl_text``: the Mosquitto ACL of the wire contract (docs/PROTOCOL.md §1): a device publishes
  only to its own read/status/telemetry/inventory and subscribes only to its own result/config; a
  collector account reads all of its facility and writes its results and config.
- ``password_lines``: Mosquitto's password file, hashed here (``$7$``: PBKDF2-HMAC-SHA512, the
  format ``mosquitto_passwd`` writes), so provisioning needs no external command.
- ``mosquitto_conf``: the broker configuration, with the queue figures reasoned out below.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# --- names ----------------------------------------------------------------------------------------

FACILITY_RE = re.compile(r"[0-9]{5}")
DEVICE_RE = re.compile(r"[a-z0-9-]{1,32}")
# Collector accounts are ours to name: characters that need no quoting anywhere (ACL file, password
# file, shell). Device ids and collector names share the broker's username space: acl_text refuses
# a name used twice, and collector_username's underscore can never occur in a device id.
COLLECTOR_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

DEVICE_PUBLISHES = ("read", "status", "telemetry", "inventory")
DEVICE_SUBSCRIBES = ("result", "config")
# Broker counters a collector may watch: a queue overflow must never be silent (see below).
SYS_TOPICS = (
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/store/messages/count",
    "$SYS/broker/store/messages/bytes",
)


class DeviceAccount(NamedTuple):
    """A node's broker account: its username is its device id."""

    facility: str
    device_id: str


class CollectorAccount(NamedTuple):
    """A collector's broker account, bound to one facility."""

    username: str
    facility: str


def check_facility(facility: str) -> str:
    """Return ``facility`` if it is a 5-digit facility code, else raise ValueError."""
    if not FACILITY_RE.fullmatch(facility):
        raise ValueError(f"facility must be 5 digits, not {facility!r}")
    return facility


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it matches the contract's ``[a-z0-9-]{1,32}``, else raise ValueError."""
    if not DEVICE_RE.fullmatch(device_id):
        raise ValueError(f"device id must match [a-z0-9-]{{1,32}}, not {device_id!r}")
    return device_id


def check_collector_name(username: str) -> str:
    """Return ``username`` if it is a valid collector account name, else raise ValueError."""
    if not COLLECTOR_RE.fullmatch(username):
        raise ValueError(f"collector username must match {COLLECTOR_RE.pattern}, not {username!r}")
    return username


def collector_username(facility: str) -> str:
    """The usual broker account of a facility's collector: ``collector_<facility>``."""
    return f"collector_{check_facility(facility)}"


def topic(facility: str, device: str, kind: str) -> str:
    """The contract's topic ``cccd/v1/{facility}/{device}/{kind}`` (``device`` may be ``+``)."""
    return f"cccd/v1/{facility}/{device}/{kind}"


# --- certificates ---------------------------------------------------------------------------------

CA_DAYS = 3650  # ten years: the CA certificate is installed on every node; renewing it is a visit
SERVER_DAYS = 730  # two years: the broker's certificate is renewed on the server alone
CLIENT_DAYS = 730
CLOCK_SKEW = dt.timedelta(minutes=5)  # not-before a little in the past: nodes' clocks lag


class CertKey(NamedTuple):
    """A certificate and its private key, both PEM text."""

    cert_pem: str
    key_pem: str


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str, facility: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cccd-edge")]
    if facility is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"facility {facility}"))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_ca(facility: str) -> CertKey:
    """A new self-signed CA for one facility (10 years, may sign end-entity certificates only)."""
    check_facility(facility)
    key = _new_key()
    name = _name(f"cccd-edge facility {facility} CA", facility)
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CertKey(_cert_pem(cert), _key_pem(key))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca(ca: CertKey) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert_pem.encode("ascii"))
    key = serialization.load_pem_private_key(ca.key_pem.encode("ascii"), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key")
    return cert, key


def _leaf(
    ca: CertKey, common_name: str, days: int, usage: x509.ObjectIdentifier, san: x509.SubjectAlternativeName
) -> CertKey:
    ca_cert, ca_key = _load_ca(ca)
    key = _new_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(_name(common_name), ca_cert.subject, key.public_key(), days)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return CertKey(_cert_pem(cert), _key_pem(key))


def make_server_cert(ca: CertKey, hostnames: Sequence[str], ips: Sequence[str] = ()) -> CertKey:
    """The broker's certificate (2 years), valid for every DNS name and IP address given.

    Nodes verify the broker by these names: include the name in the node configuration's
    ``broker.host`` (and ``localhost`` / ``127.0.0.1`` for a collector on the same host).
    """
    if not hostnames and not ips:
        raise ValueError("a server certificate needs at least one host name or IP address")
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    common_name = hostnames[0] if hostnames else ips[0]
    san = x509.SubjectAlternativeName(names)
    return _leaf(ca, common_name, SERVER_DAYS, ExtendedKeyUsageOID.SERVER_AUTH, san)


def make_client_cert(ca: CertKey, name: str) -> CertKey:
    """A client certificate (2 years) for mutual TLS; ``name`` is the device id or collector account."""
    check_collector_name(name)  # a device id is a valid account name too
    san = x509.SubjectAlternativeName([x509.DNSName(name)])
    return _leaf(ca, name, CLIENT_DAYS, ExtendedKeyUsageOID.CLIENT_AUTH, san)


# --- ACL ------------------------------------------------------------------------------------------


def _device_block(account: DeviceAccount) -> list[str]:
    facility, device = check_facility(account.facility), check_device_id(account.device_id)
    lines = [f"user {device}"]
    lines += [f"topic write {topic(facility, device, kind)}" for kind in DEVICE_PUBLISHES]
    lines += [f"topic read {topic(facility, device, kind)}" for kind in DEVICE_SUBSCRIBES]
    return lines


def _collector_block(account: CollectorAccount) -> list[str]:
    name, facility = check_collector_name(account.username), check_facility(account.facility)
    lines = [f"user {name}"]
    # Mosquitto 2.0's acl_file never checks a SUBSCRIBE (every SUBACK grants it); it checks
    # `topic read` against each message's own topic when it delivers it. So these lines cover a
    # shared subscription `$share/<group>/cccd/v1/<facility>/+/read` too, with no `$share` line
    # (verified on 2.0.11 by tests/integration/test_broker_acl.py) -- and any account may join a
    # share group: see README.md, "Shared subscriptions".
    lines += [f"topic read {topic(facility, '+', kind)}" for kind in DEVICE_PUBLISHES]
    lines += [f"topic write {topic(facility, '+', kind)}" for kind in DEVICE_SUBSCRIBES]
    lines += [f"topic read {sys_topic}" for sys_topic in SYS_TOPICS]
    return lines


def acl_text(devices: Iterable[tuple[str, str]], collectors: Iterable[tuple[str, str]] = ()) -> str:
    """The Mosquitto ACL file for these accounts.

    ``devices``: ``(facility, device_id)`` pairs; ``collectors``: ``(username, facility)`` pairs.
    A username appears once (a device id is unique on its broker). Nothing is granted outside a
    ``user`` block, so an anonymous client (never allowed to connect anyway) gets nothing, and no
    device gets a wildcard.
    """
    blocks: list[list[str]] = []
    seen: set[str] = set()
    for device in sorted(DeviceAccount(*d) for d in devices):
        blocks.append(_device_block(device))
        _add_once(seen, device.device_id)
    for collector in sorted(CollectorAccount(*c) for c in collectors):
        blocks.append(_collector_block(collector))
        _add_once(seen, collector.username)
    header = [
        "# cccd-edge broker ACL: written by `cccd-edge provision`; edits here are overwritten.",
        "# Topics are cccd/v1/{facility}/{device}/{kind} (docs/PROTOCOL.md).",
    ]
    return "\n\n".join("\n".join(block) for block in [header, *blocks]) + "\n"


def _add_once(seen: set[str], username: str) -> None:
    if username in seen:
        raise ValueError(f"username {username!r} appears twice: a broker account must be unique")
    seen.add(username)


# --- passwords ------------------------------------------------------------------------------------

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default (2.0); the passwords are 256-bit random tokens
SALT_BYTES = 12  # what mosquitto_passwd uses
HASH_BYTES = 64  # SHA-512


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's ``$7$`` hash: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``."""
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(hashed: str, password: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash (as Mosquitto checks it)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def password_lines(accounts: Mapping[str, str], *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's password file: one ``username:$7$...`` line per account, sorted by username."""
    lines = []
    for username in sorted(accounts):
        if not username or any(c in username for c in ":\r\n\0") or username != username.strip():
            raise ValueError(f"unusable broker username: {username!r}")
        lines.append(f"{username}:{hash_password(accounts[username], iterations=iterations)}\n")
    return "".join(lines)


def new_password() -> str:
    """A fresh broker password: 256 random bits, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(32)


# --- mosquitto.conf -------------------------------------------------------------------------------

# Queue sizing. Mosquitto keeps, per client, at most max_queued_messages QoS 1/2 messages beyond
# those in flight (its default is 1000) and drops the rest for that client. The broker has already
# acknowledged them to the node (PUBACK "success"), which has deleted them from its outbox: a drop
# here is a lost read. So the collector's queue must outlast any outage we plan for:
#   design facility   200 counters; at the morning peak one read per counter every 30 s
#                     (24,000 reads/h); about 20,000 reads on a busy day;
#   planned outage    72 h: a collector that fails on Friday evening and is fixed on Monday;
#   backlog           3 days x 20,000 = 60,000 reads, plus status/inventory births (one or two per
#                     node reconnect): about 62,000 messages.
# With headroom (x 3) we allow 200,000 queued messages per client. Mosquitto 2.0.11 holds a queued
# 320-byte envelope in about 0.72 KB of RAM (measured: 100,000 queued reads grew its RSS by 70 MB):
# 200,000 x 0.72 KB = ~145 MB at the very worst, and the same order in the persistence file.
# max_queued_bytes (payload bytes) caps what a misbehaving client could make us hold: 256 MiB, which
# legitimate envelopes never reach before the count does. Beyond either limit Mosquitto still drops,
# but not silently: it logs "Outgoing messages are being dropped for client ..." and counts them in
# $SYS/broker/publish/messages/dropped, which the collector account may read. Unlimited (0) was
# rejected: a long outage would end in the broker's OOM kill, losing everything since the last
# autosave instead of the overflow, and with no counter.
MAX_QUEUED_MESSAGES = 200_000
MAX_QUEUED_BYTES = 256 * 1024 * 1024
# Unacknowledged QoS 1 messages in flight per client. The collector acknowledges a read only after
# committing it, in batches; Mosquitto's default of 20 would cap a batch at 20 reads.
MAX_INFLIGHT_MESSAGES = 100
# Envelopes are at most 8 KiB (PROTOCOL.md §4). A larger PUBLISH is acknowledged and dropped
# (message_size_limit; Mosquitto 2.0 suggests max_packet_size instead, but that disconnects the
# sender, and a node would resend its oversized message forever). max_packet_size only bounds what
# any client, authenticated or not, can make the broker buffer.
MESSAGE_SIZE_LIMIT = 16_384
MAX_PACKET_SIZE = 65_536
# Seconds between saves of the in-memory store. A clean stop (systemctl stop/restart) always saves;
# a crash or power loss of the broker host loses what arrived since the last save and was not yet
# delivered to and acknowledged by the collector. Saving is cheap while the queue is empty.
AUTOSAVE_INTERVAL = 10
# A persistent session nobody resumes is deleted after this long (decommissioned nodes). Longer
# than any planned collector outage, so the collector's session (its queue) survives one.
PERSISTENT_CLIENT_EXPIRATION = "30d"


@dataclass(frozen=True)
class BrokerPaths:
    """Where the broker's files are, as the configuration names them."""

    conf: Path
    cafile: Path
    certfile: Path
    keyfile: Path
    password_file: Path
    acl_file: Path
    persistence_location: Path | None  # None: the main mosquitto.conf sets it (Debian does)

    @classmethod
    def debian(cls, directory: Path = Path("/etc/mosquitto/cccd-edge")) -> BrokerPaths:
        """The production layout on Debian's ``mosquitto`` package (broker_config/mosquitto/README.md).

        The configuration is a drop-in, /etc/mosquitto/conf.d/cccd-edge.conf, which the package's
        main file includes; that file already sets persistence_location (/var/lib/mosquitto/).
        """
        return cls(
            conf=Path("/etc/mosquitto/conf.d/cccd-edge.conf"),
            cafile=directory / "ca.crt",
            certfile=directory / "server.crt",
            keyfile=directory / "server.key",
            password_file=directory / "passwords",
            acl_file=directory / "acl",
            persistence_location=None,
        )

    @classmethod
    def under(cls, directory: Path, *, persistence: bool = True) -> BrokerPaths:
        """The layout ``write_broker_dir`` writes: every file in ``directory``."""
        return cls(
            conf=directory / "mosquitto.conf",
            cafile=directory / "ca.crt",
            certfile=directory / "server.crt",
            keyfile=directory / "server.key",
            password_file=directory / "passwords",
            acl_file=directory / "acl",
            persistence_location=(directory / "data") if persistence else None,
        )


@dataclass(frozen=True)
class ListenerOptions:
    """The network side of the configuration."""

    port: int = 8883
    bind_address: str | None = None  # None: every interface
    mtls: bool = False  # require a client certificate signed by the facility CA (and a password)
    # A plain-MQTT listener on 127.0.0.1 for a collector on the broker host itself, or None.
    local_port: int | None = None


def mosquitto_conf(
    paths: BrokerPaths,
    listener: ListenerOptions = ListenerOptions(),  # frozen: a safe default
    *,
    facility: str | None = None,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    max_queued_bytes: int = MAX_QUEUED_BYTES,
    max_inflight_messages: int = MAX_INFLIGHT_MESSAGES,
    autosave_interval: int = AUTOSAVE_INTERVAL,
    log_dest: str | None = None,
) -> str:
    """The facility broker's configuration (a complete file, or a Debian ``conf.d`` drop-in).

    With ``paths.persistence_location`` None and ``log_dest`` None the text is a drop-in for
    /etc/mosquitto/conf.d/: Debian's main mosquitto.conf already sets both, and Mosquitto refuses a
    second ``persistence_location``.
    """
    sections = [
        _header(facility),
        _general(),
        _tls_listener(paths, listener),
        _local_listener(listener.local_port),
        _security(paths),
        _persistence(paths.persistence_location, autosave_interval),
        _limits(max_queued_messages, max_queued_bytes, max_inflight_messages),
        _logging(log_dest),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _header(facility: str | None) -> str:
    where = f" for facility {check_facility(facility)}" if facility else ""
    return "\n".join(
        [
            f"# cccd-edge facility broker{where}.",
            "# Written by `cccd-edge provision` (tools/brokerfiles.py): edits here are overwritten.",
            "# Installing, provisioning, checking: broker_config/mosquitto/README.md.",
        ]
    )


def _general() -> str:
    return "\n".join(
        [
            "# One password file and one ACL for every listener.",
            "per_listener_settings false",
        ]
    )


def _tls_listener(paths: BrokerPaths, listener: ListenerOptions) -> str:
    bind = f" {listener.bind_address}" if listener.bind_address else ""
    return "\n".join(
        [
            "# Nodes and remote collectors: MQTT over TLS, verified against the facility CA.",
            f"listener {listener.port}{bind}",
            "protocol mqtt",
            f"cafile {paths.cafile}",
            f"certfile {paths.certfile}",
            f"keyfile {paths.keyfile}",
            "# The oldest TLS accepted: 1.2 (ESP32 mbedTLS) and 1.3 both work.",
            "tls_version tlsv1.2",
            f"require_certificate {_bool(listener.mtls)}",
            "use_identity_as_username false",
        ]
    )


def _local_listener(port: int | None) -> str:
    if port is None:
        return ""
    return "\n".join(
        [
            "# A collector on this host: plain MQTT on the loopback interface, same passwords and ACL.",
            f"listener {port} 127.0.0.1",
            "protocol mqtt",
        ]
    )


def _security(paths: BrokerPaths) -> str:
    return "\n".join(
        [
            "# Every client logs in; the ACL confines each to its own topics. Reload both with SIGHUP.",
            "allow_anonymous false",
            f"password_file {paths.password_file}",
            f"acl_file {paths.acl_file}",
        ]
    )


def _persistence(location: Path | None, autosave_interval: int) -> str:
    lines = [
        "# Queued messages, persistent sessions and retained status/inventory/config survive restarts.",
        "persistence true",
    ]
    if location is not None:
        lines.append(f"persistence_location {location}/")
    lines += [
        f"autosave_interval {autosave_interval}",
        f"persistent_client_expiration {PERSISTENT_CLIENT_EXPIRATION}",
        "retain_available true",
    ]
    return "\n".join(lines)


def _limits(max_queued_messages: int, max_queued_bytes: int, max_inflight_messages: int) -> str:
    return "\n".join(
        [
            "# The collector's backlog while it is down: 200 counters, ~20,000 reads a day, 72 h, x 3.",
            "# ~0.72 KB of RAM per queued read: ~145 MB at worst. The reasoning: README.md.",
            f"max_queued_messages {max_queued_messages}",
            f"max_queued_bytes {max_queued_bytes}",
            "# Telemetry (QoS 0) is not kept for a disconnected collector.",
            "queue_qos0_messages false",
            f"max_inflight_messages {max_inflight_messages}",
            "# Envelopes are at most 8 KiB; a larger message is dropped and never reaches the collector.",
            f"message_size_limit {MESSAGE_SIZE_LIMIT}",
            f"max_packet_size {MAX_PACKET_SIZE}",
            "set_tcp_nodelay true",
        ]
    )


def _logging(log_dest: str | None) -> str:
    lines = ["# Connections and errors; never message payloads (no log_type debug)."]
    if log_dest is not None:
        lines.append(f"log_dest {log_dest}")
    lines += [
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    return "\n".join(lines)


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --- writing --------------------------------------------------------------------------------------

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


def write_file_atomic(path: Path, text: str, mode: int, owner: str | None = None) -> None:
    """Write ``text`` to ``path`` with ``mode``: a reader (a broker on SIGHUP) sees old or new, never half.

    ``owner``: a user name to give the file to (root only), e.g. ``mosquitto``, which must be able
    to read its password file and keys after it drops root.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if owner is not None:
            shutil.chown(tmp, owner, _group_of(owner))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def write_broker_dir(
    paths: BrokerPaths,
    *,
    conf: str,
    acl: str,
    passwords: str,
    ca_cert_pem: str,
    server: CertKey,
    owner: str | None = None,
) -> None:
    """Write a broker's files where ``paths`` says: keys and passwords 0600, the rest 0644.

    The facility CA's private key is not among them: the broker never needs it, and it stays with
    provisioning. ``owner`` (root only): the user Mosquitto runs as, usually ``mosquitto``.
    """
    for parent in {p.parent for p in _files(paths)}:
        parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(paths.conf, conf, PUBLIC_MODE)
    write_file_atomic(paths.acl_file, acl, PUBLIC_MODE, owner)
    write_file_atomic(paths.password_file, passwords, SECRET_MODE, owner)
    write_file_atomic(paths.cafile, ca_cert_pem, PUBLIC_MODE, owner)
    write_file_atomic(paths.certfile, server.cert_pem, PUBLIC_MODE, owner)
    write_file_atomic(paths.keyfile, server.key_pem, SECRET_MODE, owner)
    if paths.persistence_location is not None:
        paths.persistence_location.mkdir(mode=0o700, exist_ok=True)
        if owner is not None:
            shutil.chown(paths.persistence_location, owner, _group_of(owner))


def _files(paths: BrokerPaths) -> list[Path]:
    return [paths.conf, paths.cafile, paths.certfile, paths.keyfile, paths.password_file, paths.acl_file]


# --- the example in broker_config/ -------------------------------------------------------------------

EXAMPLE_PATH = (
    Path(__file__).resolve().parent.parent / "broker_config" / "mosquitto" / "cccd-edge.conf.example"
)


def example_conf() -> str:
    """The configuration of broker_config/mosquitto/cccd-edge.conf.example: Debian layout, defaults.

    ``python -m tools.brokerfiles`` rewrites that file; a unit test keeps the two equal.
    """
    return mosquitto_conf(BrokerPaths.debian(), ListenerOptions())


if __name__ == "__main__":
    EXAMPLE_PATH.write_text(example_conf(), encoding="utf-8")
    print(f"wrote {EXAMPLE_PATH}")
