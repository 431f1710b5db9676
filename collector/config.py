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
    pending_after = 0.3                         # seconds before the counter is told "pending"

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
    pending_after: float = 0.3
    concurrency: int = 200  # checks in flight: 100 reads/s x 2 s a check
    timeout: float = 10.0


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
    password_file = broker.pop("password_file", None)
    if password_file:
        try:
            broker["password"] = (base / password_file).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the broker password file {password_file}: {exc.strerror}"
            ) from None
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
            **dict(data.get("collector", {})),
        )
    except TypeError as exc:
        raise ConfigError(f"unknown or misspelt setting: {exc}") from None
    if not cfg.facilities:
        raise ConfigError("collector.facilities is empty: name the facility codes this collector serves")
    return cfg


def _bhxh(section: dict[str, Any] | None, base: Path) -> BhxhSettings | None:
    if not section:
        return None
    values = dict(section)
    password_file = values.pop("password_file", None)
    if password_file:
        try:
            values["password"] = (base / password_file).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the BHXH password file {password_file}: {exc.strerror}") from None
    return BhxhSettings(**values)
