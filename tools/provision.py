"""Provisioning: a facility's keys, broker files and collector settings, and its devices.

Everything lives in one directory, the facility home (default /etc/cccd-edge)::

    facility.json           the facility code and how nodes reach the broker
    kek                     the collector's key-encryption key (0600)
    ca.crt, ca.key          the facility CA (the key never leaves this directory; 0600)
    collector.toml          the collector's settings; collector.password (0600)
    collector.db            the collector's store (SQLite), which holds the device registry
    broker/                 the broker's files (tools/brokerfiles.py): mosquitto.conf, certificate,
                            passwords (0600), acl; with ``--broker-layout debian`` they go instead
                            where Debian's mosquitto package reads them (/etc/mosquitto/conf.d/
                            cccd-edge.conf and /etc/mosquitto/cccd-edge/), owned by ``mosquitto``
    nodes/                  node configuration files written by ``device`` and ``rotate`` (0600)

``init`` creates a home; ``device`` provisions a node: a device secret in the registry (encrypted
with the KEK), a broker account, the ACL lines, and the node configuration file of
docs/PROTOCOL.md §7; ``revoke`` removes the account and refuses the device's reads; ``rotate``
gives a device a new secret (the old one is accepted for a grace period). After ``device`` and
``revoke`` the broker must re-read its files: ``systemctl reload mosquitto`` (SIGHUP).
"""

import json
import os
import pwd
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cccd import schema, text
from cccd.errors import CoreError
from collector import config as collector_config
from collector.db import open_db
from collector.keystore import Keystore, load_kek, new_kek_file
from collector.registry import Registry
from tools import brokerfiles as bf
from tools import rabbitmq as rq

DEFAULT_HOME = Path("/etc/cccd-edge")
DEFAULT_GRACE = 86400.0  # a rotated-out secret keeps opening reads for a day


class ProvisionError(Exception):
    """A provisioning step that cannot be done; the message says what to do."""


@dataclass(frozen=True)
class Facility:
    facility: str
    broker_host: str
    broker_port: int
    mtls: bool
    local_port: int | None


class Home:
    """A facility home directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    @property
    def broker(self) -> bf.BrokerPaths:
        if self._layout() == "debian":
            return bf.BrokerPaths.debian()
        return bf.BrokerPaths.under(self.path / "broker")

    @property
    def broker_owner(self) -> str | None:
        """Who must own the broker's secret files: Debian's broker reads them as ``mosquitto``."""
        return "mosquitto" if self._layout() == "debian" and os.geteuid() == 0 else None

    def _layout(self) -> str:
        try:
            data = json.loads((self.path / "facility.json").read_text("utf-8"))
        except FileNotFoundError:
            return "home"
        return str(data.get("broker_layout", "home"))

    def facility(self) -> Facility:
        try:
            data = json.loads((self.path / "facility.json").read_text("utf-8"))
        except FileNotFoundError:
            raise ProvisionError(
                f"{self.path} is not a facility home: run `cccd-edge provision init`"
            ) from None
        return Facility(
            data["facility"],
            data["broker_host"],
            int(data["broker_port"]),
            bool(data["mtls"]),
            data["local_port"],
        )

    def collector_config(self) -> collector_config.CollectorConfig:
        return collector_config.load(self.path / "collector.toml")

    def registry(self) -> Registry:
        cfg = self.collector_config()
        return Registry(open_db(cfg.store.url), Keystore(load_kek(cfg.store.kek_file)))


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bf.write_file_atomic(path, text, mode)


# --- init ---------------------------------------------------------------------------------------


def init(
    home: str | Path,
    facility: str,
    broker_host: str = "localhost",
    broker_port: int = 8883,
    broker_ips: tuple[str, ...] = ("127.0.0.1",),
    mtls: bool = False,
    local_port: int | None = None,
    run_here: bool = False,
    metrics_port: int = 9108,
    broker_layout: str = "home",
) -> Home:
    """Create a facility home: KEK, CA, broker certificate and files, collector account and settings.

    ``run_here``: the broker will run from this directory as the current user (demo, tests, bench):
    its configuration then names that user, keeps its log in broker/mosquitto.log and listens on
    127.0.0.1 only.
    """
    h = Home(home)
    bf.check_facility(facility)
    if broker_layout not in ("home", "debian") or (broker_layout == "debian" and run_here):
        raise ProvisionError("the broker layout is home, or debian (not with --run-here)")
    if (h.path / "facility.json").exists():
        raise ProvisionError(f"{h.path} is already a facility home; use another --home")
    h.path.mkdir(parents=True, exist_ok=True)
    os.chmod(h.path, 0o700)
    new_kek_file(h.path / "kek")
    ca = bf.make_ca(facility)
    _write(h.path / "ca.crt", ca.cert_pem, 0o644)
    _write(h.path / "ca.key", ca.key_pem, 0o600)
    hostnames = [broker_host] if not _is_ip(broker_host) else []
    ips = list(broker_ips) + ([broker_host] if _is_ip(broker_host) else [])
    server = bf.make_server_cert(ca, hostnames or ["localhost"], ips)
    settings = {
        "facility": facility,
        "broker_host": broker_host,
        "broker_port": broker_port,
        "mtls": mtls,
        "local_port": local_port,
        "broker_layout": broker_layout,
    }
    _write(h.path / "facility.json", json.dumps(settings, indent=2) + "\n", 0o644)
    collector_password = bf.new_password()
    _write(h.path / "collector.password", collector_password + "\n", 0o600)
    _save_rabbit_hashes(h, {bf.collector_username(facility): rq.rabbit_hash(collector_password)})
    toml = _collector_toml(facility, broker_host, broker_port, h.path / "collector.db", metrics_port)
    _write(h.path / "collector.toml", toml, 0o600)
    paths = h.broker
    listener = bf.ListenerOptions(
        port=broker_port, mtls=mtls, local_port=local_port, bind_address="127.0.0.1" if run_here else None
    )
    if run_here:
        log = h.path / "broker" / "mosquitto.log"
        conf = bf.mosquitto_conf(paths, listener, facility=facility, log_dest=f"file {log}")
        conf += f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
    else:
        conf = bf.mosquitto_conf(paths, listener, facility=facility)
    paths.conf.parent.mkdir(parents=True, exist_ok=True)
    paths.password_file.parent.mkdir(parents=True, exist_ok=True)
    bf.write_broker_dir(
        paths,
        conf=conf,
        acl=bf.acl_text([], [(bf.collector_username(facility), facility)]),
        passwords=bf.password_lines({bf.collector_username(facility): collector_password}),
        ca_cert_pem=ca.cert_pem,
        server=server,
        owner=h.broker_owner,
    )
    h.registry().pseudonym_secret(facility)  # creates the store and the facility's pseudonym secret
    return h


def _is_ip(host: str) -> bool:
    return all(part.isdigit() for part in host.split(".")) and host.count(".") == 3


def _collector_toml(facility: str, host: str, port: int, db: Path, metrics_port: int) -> str:
    return f"""# The collector of facility {facility}, written by `cccd-edge provision init`.
[broker]
host = "{host}"
port = {port}
tls = true
ca = "ca.crt"
username = "{bf.collector_username(facility)}"
password_file = "collector.password"
client_id = "cccd-collector-{facility}"

[store]
url = "sqlite:///{db}"
kek_file = "kek"
retention_days = 30

[collector]
facilities = ["{facility}"]
heartbeat_interval = 30
metrics_port = {metrics_port}
"""


# --- devices ------------------------------------------------------------------------------------


def _passwords(h: Home) -> dict[str, str]:
    """username -> hashed password, as the broker's password file has them."""
    out: dict[str, str] = {}
    for line in h.broker.password_file.read_text("utf-8").splitlines():
        if ":" in line:
            user, hashed = line.split(":", 1)
            out[user] = hashed
    return out


RABBIT_USERS = "rabbitmq-users.json"  # username -> RabbitMQ's hash of the same password


def _rabbit_hashes(h: Home) -> dict[str, str]:
    """username -> RabbitMQ password hash (tools/rabbitmq.py), kept beside Mosquitto's."""
    try:
        return dict(json.loads((h.path / RABBIT_USERS).read_text("utf-8")))
    except FileNotFoundError:
        return {}


def _save_rabbit_hashes(h: Home, hashes: dict[str, str]) -> None:
    _write(h.path / RABBIT_USERS, json.dumps(hashes, indent=1, sort_keys=True) + "\n", 0o600)


def rabbitmq_definitions(home: str | Path, facility: str) -> dict[str, Any]:
    """The facility's definitions for a RabbitMQ cluster (broker_config/rabbitmq/README.md)."""
    h = Home(home)
    _facility_of(h, facility)
    active = [d.device for d in h.registry().devices(facility) if d.state == "active"]
    try:
        return rq.definitions(facility, active, bf.collector_username(facility), _rabbit_hashes(h))
    except rq.RabbitError as exc:
        raise ProvisionError(str(exc)) from None


def _write_accounts(h: Home, fac: Facility, hashed: dict[str, str], registry: Registry) -> None:
    devices = [(d.facility, d.device) for d in registry.devices(fac.facility) if d.state == "active"]
    collectors = [(bf.collector_username(fac.facility), fac.facility)]
    paths = h.broker
    bf.write_file_atomic(paths.acl_file, bf.acl_text(devices, collectors), 0o644, h.broker_owner)
    lines = "".join(f"{user}:{hashed[user]}\n" for user in sorted(hashed))
    bf.write_file_atomic(paths.password_file, lines, 0o600, h.broker_owner)


def device(
    home: str | Path, facility: str, device_id: str, kind: str, site: str, out: str | Path | None = None
) -> Path:
    """Provision a node; returns the path of its configuration file."""
    return devices(home, facility, [(device_id, kind, site)], out)[0]


def devices(
    home: str | Path, facility: str, specs: Sequence[tuple[str, str, str]], out: str | Path | None = None
) -> list[Path]:
    """Provision several nodes ((device id, kind, site) each) with one rewrite of the broker's
    password and ACL files; returns their configuration files. (A load test's 5,000 nodes one at a
    time would rewrite those files 5,000 times.)"""
    h = Home(home)
    fac = _facility_of(h, facility)
    for device_id, _kind, _site in specs:
        try:
            schema.topic(facility, device_id, "read")  # the contract's rules for a device id
        except CoreError as exc:
            raise ProvisionError(f"{device_id!r}: {exc}") from None
    registry = h.registry()
    hashed = _passwords(h)
    rabbit = _rabbit_hashes(h)
    made = []
    for device_id, kind, given_site in specs:
        site = text.collapse(text.nfc(given_site))
        secret = registry.add(facility, device_id, kind, site)
        password = bf.new_password()
        hashed[device_id] = bf.hash_password(password)
        rabbit[device_id] = rq.rabbit_hash(password)
        made.append((device_id, site, secret, password))
    _write_accounts(h, fac, hashed, registry)
    _save_rabbit_hashes(h, rabbit)
    return [
        _write_node_config(h, fac, device_id, site, secret, password, registry, out)
        for device_id, site, secret, password in made
    ]


def revoke(home: str | Path, facility: str, device_id: str) -> None:
    h = Home(home)
    fac = _facility_of(h, facility)
    registry = h.registry()
    registry.revoke(facility, device_id)
    hashed = _passwords(h)
    hashed.pop(device_id, None)
    _write_accounts(h, fac, hashed, registry)
    rabbit = _rabbit_hashes(h)
    rabbit.pop(device_id, None)
    _save_rabbit_hashes(h, rabbit)


def rotate(
    home: str | Path,
    facility: str,
    device_id: str,
    grace: float = DEFAULT_GRACE,
    out: str | Path | None = None,
) -> Path:
    """A new device secret and a new broker password; the old secret is accepted for ``grace`` s."""
    h = Home(home)
    fac = _facility_of(h, facility)
    registry = h.registry()
    secret = registry.rotate(facility, device_id, grace)
    site = next(d.site for d in registry.devices(facility) if d.device == device_id)
    password = bf.new_password()
    hashed = _passwords(h)
    hashed[device_id] = bf.hash_password(password)
    _write_accounts(h, fac, hashed, registry)
    rabbit = _rabbit_hashes(h)
    rabbit[device_id] = rq.rabbit_hash(password)
    _save_rabbit_hashes(h, rabbit)
    return _write_node_config(h, fac, device_id, site, secret, password, registry, out)


def _facility_of(h: Home, facility: str) -> Facility:
    fac = h.facility()
    if fac.facility != facility:
        raise ProvisionError(f"{h.path} is the home of facility {fac.facility}, not {facility}")
    return fac


def node_config(
    fac: Facility,
    device_id: str,
    site: str,
    secret: bytes,
    password: str,
    ca_pem: str,
    pseudonym_secret: bytes,
) -> dict[str, Any]:
    """The node configuration file of docs/PROTOCOL.md §7."""
    return {
        "device": device_id,
        "facility": fac.facility,
        "site": site,
        "broker": {
            "host": fac.broker_host,
            "port": fac.broker_port,
            "tls": True,
            "ca": ca_pem,
            "username": device_id,
            "password": password,
        },
        "secret": secret.hex(),
        "pseudonym_secret": pseudonym_secret.hex(),
    }


def _write_node_config(
    h: Home,
    fac: Facility,
    device_id: str,
    site: str,
    secret: bytes,
    password: str,
    registry: Registry,
    out: str | Path | None,
) -> Path:
    ca_pem = (h.path / "ca.crt").read_text("ascii")
    cfg = node_config(fac, device_id, site, secret, password, ca_pem, registry.pseudonym_secret(fac.facility))
    if fac.mtls:  # the broker also asks for a client certificate signed by the facility CA
        client = bf.make_client_cert(bf.CertKey(ca_pem, (h.path / "ca.key").read_text("ascii")), device_id)
        cfg["broker"]["cert"] = client.cert_pem
        cfg["broker"]["key"] = client.key_pem
    path = Path(out) if out else h.path / "nodes" / f"{fac.facility}-{device_id}.json"
    _write(path, json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", 0o600)
    return path
