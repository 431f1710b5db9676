"""The collector's settings file (TOML).

[broker]
host = "127.0.0.1"
port = 8883
tls = true
ca = "/etc/cccd-edge/broker/ca.pem"         # the facility CA that signed the broker's certificate
username = "collector-38001"
password_file = "/etc/cccd-edge/collector.password"   # or: password = "..."
client_id = "cccd-collector-1"              # fixed: the broker keeps this session's queue
shared_group = ""                          # "": plain subscriptions (see below)
# transport = "amqp"                        # a RabbitMQ cluster instead (broker_config/rabbitmq):
# nodes = ["rmq1:5671", "rmq2:5671", "rmq3:5671"]   # tried in turn; vhost = "cccd"; prefetch = 400

[store]
url = "sqlite:////var/lib/cccd-edge/collector.db"
kek_file = "/etc/cccd-edge/kek"             # or the environment variable CCCD_KEK
retention_days = 30

[collector]
facilities = ["38001"]
heartbeat_interval = 30                     # seconds between node heartbeats
metrics_host = "127.0.0.1"
metrics_port = 9108                         # 0: no metrics endpoint
batch_size = 200                            # messages per transaction at most

    [bhxh]                                      # optional: the insurance check of every read
    url = "https://egw.baohiemxahoi.gov.vn"     # the BHXH gateway
    username = "..."
    password_file = "bhxh.password"             # or: password = "..."
    officer_name = "Phạm Thị Hoa"               # hoTenCb: the officer checking, registered with BHXH
    officer_cccd = "001185000123"               # cccdCb
    pending_after = 0.1                         # seconds before the counter is told "pending"
    dead_after_hours = 72                       # a check still failing after this is a dead letter

    [his]                                       # optional: register every visit in the HIS
    protocol = "fhir"                           # "fhir" (R4, VN Core) or "hl7v2" (ADT^A04 over MLLP)
    url = "https://his.example.vn/fhir"         # fhir: the server's base URL
    host = "10.0.0.5"                           # hl7v2: the HIS's MLLP listener
    port = 2575
    token_file = "his.token"                    # fhir: a bearer token, when the HIS asks for one
    transaction = "auto"                        # fhir: one transaction Bundle a visit if the HIS declares it
    timeout = 10                                # seconds for one request
    dead_after_hours = 24                       # a visit not registered after this is a dead letter
    breaker_failures = 5                        # failures in a row that open the circuit
    breaker_cooldown = 30                       # seconds the circuit stays open before one probe

A shared subscription lets several collectors share the reads, but Mosquitto 2.0 lets any
account join a share group (broker_config/mosquitto/README.md): keep shared_group empty there.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The settings file is missing, unreadable or wrong."""


@dataclass
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 8883
    tls: bool = True
    ca: str = ""
    username: str = ""
    password: str = ""
    client_id: str = "cccd-collector-1"
    # Mosquitto 2.0 grants every SUBSCRIBE and checks the ACL only at delivery: any account may
    # join a share group and silently divert reads from the collector. Plain subscriptions there;
    # a share group only on brokers that check subscriptions (or with a secret group name).
    shared_group: str = ""
    # "mqtt": Mosquitto (host and port above); "amqp": a RabbitMQ cluster (broker_config/rabbitmq)
    transport: str = "mqtt"
    nodes: list[str] = field(default_factory=list)  # amqp: the cluster's nodes, "host:port" each
    vhost: str = "cccd"  # amqp: the facility's virtual host
    prefetch: int = 400  # amqp: deliveries in flight to this collector, not yet acknowledged


TRANSPORTS = ("mqtt", "amqp")


@dataclass
class StoreSettings:
    url: str = "sqlite:///collector.db"
    kek_file: str | None = None
    retention_days: float = 30.0


@dataclass
class BhxhSettings:
    url: str
    username: str
    password: str
    officer_name: str
    officer_cccd: str
    # the counter's goal is "pending" within 0.3 s of the scan: the broker, the store and the
    # Result's way back take part of it
    pending_after: float = 0.1
    concurrency: int = 400  # checks in flight: 100 reads/s x 3 s a check, and headroom
    timeout: float = 10.0
    dead_after_hours: float = 72.0
    breaker_failures: int = 5
    # short: the counter waits on the gateway (with "pending") for as long as the circuit stays open
    breaker_cooldown: float = 10.0


HIS_PROTOCOLS = ("fhir", "hl7v2")


@dataclass
class HisSettings:
    protocol: str = "fhir"
    url: str = ""
    host: str = ""
    port: int = 2575
    token: str = ""
    timeout: float = 10.0
    # registrations in flight at most: 200 visits/s against a HIS answering in 20-200 ms, three
    # updates each (docs/BENCHMARKS.md). Reached only while a backlog drains (5 visits/s at 0.4 s
    # is 2 in flight); HL7 v2 keeps to its own connection however many wait
    concurrency: int = 100
    # fhir: the three updates in one transaction Bundle (one round trip, all or nothing), for a
    # HIS that takes transactions; false: three conditional updates, which every FHIR server
    # takes; "auto": as the HIS's CapabilityStatement declares (collector/forward/fhir.py)
    transaction: bool | str = "auto"
    dead_after_hours: float = 24.0
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0


@dataclass
class CollectorConfig:
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    facilities: list[str] = field(default_factory=list)
    heartbeat_interval: float = 30.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    batch_size: int = 200
    bhxh: BhxhSettings | None = None
    his: HisSettings | None = None

    def first_job(self) -> str | None:
        """The job each stored read starts with: its insurance check, or straight to the HIS."""
        if self.bhxh is not None:
            return "insurance"
        return "his" if self.his is not None else None


def load(path: str | Path) -> CollectorConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return from_dict(data, base=path.parent)


def from_dict(data: dict[str, Any], base: Path = Path(".")) -> CollectorConfig:
    broker = dict(data.get("broker", {}))
    _secret_from_file(broker, "password", base, "broker password")
    store = dict(data.get("store", {}))
    if store.get("kek_file"):
        store["kek_file"] = str(base / store["kek_file"])
    if broker.get("ca"):
        broker["ca"] = str(base / broker["ca"])
    try:
        cfg = CollectorConfig(
            broker=BrokerSettings(**broker),
            store=StoreSettings(**store),
            bhxh=_bhxh(data.get("bhxh"), base),
            his=_his(data.get("his"), base),
            **dict(data.get("collector", {})),
        )
    except TypeError as exc:
        raise ConfigError(f"unknown or misspelt setting: {exc}") from None
    if not cfg.facilities:
        raise ConfigError("collector.facilities is empty: name the facility codes this collector serves")
    _check_transport(cfg.broker)
    return cfg


def _check_transport(b: BrokerSettings) -> None:
    if b.transport not in TRANSPORTS:
        raise ConfigError(f"broker.transport is {b.transport!r}: use one of {', '.join(TRANSPORTS)}")
    if b.transport != "amqp":
        return
    if not b.nodes:
        raise ConfigError('broker.nodes is empty: list the RabbitMQ nodes, e.g. ["rmq1.bv.local:5671"]')
    for node in b.nodes:
        host, _, port = str(node).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"broker.nodes has {node!r}: write each node as host:port")
    if b.prefetch < 1:
        raise ConfigError("broker.prefetch must be at least 1")


def _secret_from_file(values: dict[str, Any], key: str, base: Path, what: str) -> None:
    """``<key>_file = "..."`` in a section: the secret read from that file (relative to the
    settings file) into ``key``."""
    name = values.pop(key + "_file", None)
    if name:
        try:
            values[key] = (base / name).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} file {name}: {exc.strerror}") from None


def _bhxh(section: dict[str, Any] | None, base: Path) -> BhxhSettings | None:
    if not section:
        return None
    values = dict(section)
    _secret_from_file(values, "password", base, "BHXH password")
    return BhxhSettings(**values)


def _his(section: dict[str, Any] | None, base: Path) -> HisSettings | None:
    if not section:
        return None
    values = dict(section)
    _secret_from_file(values, "token", base, "HIS token")
    try:
        his = HisSettings(**values)
    except TypeError as exc:
        raise ConfigError(f"unknown or misspelt setting in [his]: {exc}") from None
    if his.protocol not in HIS_PROTOCOLS:
        raise ConfigError(f"his.protocol is {his.protocol!r}: use one of {', '.join(HIS_PROTOCOLS)}")
    if his.protocol == "fhir" and not his.url.startswith(("http://", "https://")):
        raise ConfigError("his.url must be the FHIR server's http(s) base URL")
    if his.transaction not in (True, False, "auto"):
        raise ConfigError(f'his.transaction is {his.transaction!r}: use true, false or "auto"')
    if his.protocol == "hl7v2" and not his.host:
        raise ConfigError("his.host must name the HIS's MLLP listener (with his.port)")
    return his
