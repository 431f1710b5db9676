"""The broker's files as tools/brokerfiles.py produces them: ACL, password hashes, certificates,
configuration, and the modes of what it writes. tests/integration/test_broker_acl.py runs a real
Mosquitto on the same output."""

import base64
import datetime as dt
import ipaddress
import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tools import brokerfiles as bf

DEVICES = [("38001", "qr-0002"), ("38001", "qr-0001"), ("38002", "qr-0101")]
COLLECTORS = [("collector_38001", "38001")]


def acl_blocks(text: str) -> dict[str, list[str]]:
    """The ACL's grants by user; grants outside any user block under the key ``""``."""
    blocks: dict[str, list[str]] = {"": []}
    user = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("user "):
            user = line.removeprefix("user ")
            assert user not in blocks, f"user {user} twice"
            blocks[user] = []
        else:
            blocks[user].append(line)
    return blocks


# --- ACL ------------------------------------------------------------------------------------------


def test_a_device_may_write_its_uplink_and_read_its_downlink_only() -> None:
    blocks = acl_blocks(bf.acl_text(DEVICES, COLLECTORS))
    assert blocks["qr-0001"] == [
        "topic write cccd/v1/38001/qr-0001/read",
        "topic write cccd/v1/38001/qr-0001/status",
        "topic write cccd/v1/38001/qr-0001/telemetry",
        "topic write cccd/v1/38001/qr-0001/inventory",
        "topic read cccd/v1/38001/qr-0001/result",
        "topic read cccd/v1/38001/qr-0001/config",
    ]
    assert blocks["qr-0101"][0] == "topic write cccd/v1/38002/qr-0101/read"


def test_no_device_has_a_wildcard_and_nothing_is_granted_to_anonymous() -> None:
    blocks = acl_blocks(bf.acl_text(DEVICES, COLLECTORS))
    assert blocks[""] == []
    for facility, device in DEVICES:
        for grant in blocks[device]:
            assert "+" not in grant and "#" not in grant and "readwrite" not in grant
            assert grant.split()[2].startswith(f"cccd/v1/{facility}/{device}/")


def test_a_collector_reads_its_facility_uplink_and_writes_its_downlink() -> None:
    grants = acl_blocks(bf.acl_text(DEVICES, COLLECTORS))["collector_38001"]
    assert grants == [
        "topic read cccd/v1/38001/+/read",
        "topic read cccd/v1/38001/+/status",
        "topic read cccd/v1/38001/+/telemetry",
        "topic read cccd/v1/38001/+/inventory",
        "topic write cccd/v1/38001/+/result",
        "topic write cccd/v1/38001/+/config",
        "topic read $SYS/broker/publish/messages/dropped",
        "topic read $SYS/broker/store/messages/count",
        "topic read $SYS/broker/store/messages/bytes",
    ]


def test_the_acl_is_the_same_whatever_the_order_of_accounts() -> None:
    assert bf.acl_text(DEVICES, COLLECTORS) == bf.acl_text(reversed(DEVICES), COLLECTORS)


def test_a_username_cannot_appear_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        bf.acl_text([("38001", "qr-0001"), ("38002", "qr-0001")])
    with pytest.raises(ValueError, match="twice"):
        bf.acl_text([("38001", "qr-0001")], [("qr-0001", "38001")])


@pytest.mark.parametrize(
    ("devices", "collectors"),
    [
        ([("38001", "qr-0001\ntopic readwrite #")], []),  # an injected ACL line
        ([("38001", "QR-0001")], []),
        ([("38001", "qr/0001")], []),
        ([("38001", "qr-+")], []),
        ([("38001", "")], []),
        ([("38001", "a" * 33)], []),
        ([("3800", "qr-0001")], []),
        ([("38001 ", "qr-0001")], []),
        ([], [("collector 38001", "38001")]),
        ([], [("collector#", "38001")]),
        ([], [("collector_38001", "+")]),
    ],
)
def test_names_that_could_bend_the_acl_are_refused(
    devices: list[tuple[str, str]], collectors: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValueError):
        bf.acl_text(devices, collectors)


def test_the_usual_collector_name_can_never_be_a_device_id() -> None:
    name = bf.collector_username("38001")
    assert name == "collector_38001"
    assert not bf.DEVICE_RE.fullmatch(name)


# --- passwords ------------------------------------------------------------------------------------

# Written by `mosquitto_passwd -b pw alice secret` (Mosquitto 2.0.11).
MOSQUITTO_PASSWD_LINE = (
    "alice:$7$101$pqSJhQPo4CyzHqcJ$"
    "B4IMAD6r5eqUsx68C/U1JIg9M1QmAKQLLVaGMBn9yecyUPIyYw3CL6+N/DkmsTPf5RENk8jiaMGqzvoND3rgDQ=="
)


def test_the_hash_is_the_one_mosquitto_passwd_writes() -> None:
    stored = MOSQUITTO_PASSWD_LINE.split(":", 1)[1]
    salt = base64.b64decode(stored.split("$")[3])
    assert bf.hash_password("secret", salt=salt) == stored
    assert bf.verify_password(stored, "secret")
    assert not bf.verify_password(stored, "Secret")


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_the_hash_agrees_with_the_installed_mosquitto_passwd(tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "qr-0001", "pässwörd €"], check=True)
    stored = pwfile.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(stored.split("$")[3])
    assert bf.hash_password("pässwörd €", salt=salt) == stored


def test_password_lines_are_mosquittos_format_and_verify() -> None:
    accounts = {"qr-0002": "two", "qr-0001": "one", "collector_38001": bf.new_password()}
    text = bf.password_lines(accounts)
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 3
    assert [line.split(":")[0] for line in lines] == sorted(accounts)
    for line in lines:
        username, hashed = line.split(":", 1)
        m = re.fullmatch(r"\$7\$101\$([A-Za-z0-9+/=]{16})\$([A-Za-z0-9+/=]{88})", hashed)
        assert m, hashed
        assert len(base64.b64decode(m.group(1))) == bf.SALT_BYTES
        assert bf.verify_password(hashed, accounts[username])


def test_every_hash_has_its_own_salt() -> None:
    assert bf.hash_password("same") != bf.hash_password("same")


@pytest.mark.parametrize("hashed", ["", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$!!!!$AAAA", "plain"])
def test_a_malformed_hash_verifies_nothing(hashed: str) -> None:
    assert not bf.verify_password(hashed, "anything")


@pytest.mark.parametrize("username", ["", "a:b", "a\nb", " qr-0001"])
def test_an_unusable_username_is_refused(username: str) -> None:
    with pytest.raises(ValueError):
        bf.password_lines({username: "x"})


def test_new_passwords_are_long_and_distinct() -> None:
    passwords = {bf.new_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(len(p) >= 43 and ":" not in p for p in passwords)


# --- certificates ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> bf.CertKey:
    return bf.make_ca("38001")


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def lifetime(cert: x509.Certificate) -> dt.timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def test_the_ca_is_a_p256_ca_for_ten_years(ca: bf.CertKey) -> None:
    cert = load(ca.cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.issuer == cert.subject and "38001" in cert.subject.rfc4514_string()
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1"
    assert dt.timedelta(days=3650) <= lifetime(cert) <= dt.timedelta(days=3651)
    cert.verify_directly_issued_by(cert)


def test_the_server_certificate_verifies_for_its_names(ca: bf.CertKey) -> None:
    server = load(bf.make_server_cert(ca, ["localhost", "broker.bv.local"], ["127.0.0.1"]).cert_pem)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "broker.bv.local"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert dt.timedelta(days=730) <= lifetime(server) <= dt.timedelta(days=731)
    store = Store([load(ca.cert_pem)])
    for name in (x509.DNSName("broker.bv.local"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        chain = PolicyBuilder().store(store).build_server_verifier(name).verify(server, [])
        assert chain[-1] == load(ca.cert_pem)


def test_the_server_certificate_does_not_verify_for_another_name_or_ca(ca: bf.CertKey) -> None:
    server = load(bf.make_server_cert(ca, ["localhost"], []).cert_pem)
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([load(ca.cert_pem)])).build_server_verifier(
            x509.DNSName("evil.example")
        ).verify(server, [])
    other = Store([load(bf.make_ca("38001").cert_pem)])
    with pytest.raises(VerificationError):
        PolicyBuilder().store(other).build_server_verifier(x509.DNSName("localhost")).verify(server, [])


def test_a_client_certificate_verifies_as_a_client(ca: bf.CertKey) -> None:
    client = load(bf.make_client_cert(ca, "qr-0001").cert_pem)
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    verified = PolicyBuilder().store(Store([load(ca.cert_pem)])).build_client_verifier().verify(client, [])
    assert [n.value for n in verified.subjects or []] == ["qr-0001"]


def test_a_server_certificate_needs_a_name(ca: bf.CertKey) -> None:
    with pytest.raises(ValueError):
        bf.make_server_cert(ca, [], [])


def test_keys_are_pkcs8_pem(ca: bf.CertKey) -> None:
    assert ca.key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert bf.make_server_cert(ca, ["localhost"]).key_pem.startswith("-----BEGIN PRIVATE KEY-----")


# --- configuration --------------------------------------------------------------------------------


def directives(conf: str) -> list[tuple[str, str]]:
    pairs = []
    for line in conf.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            pairs.append((key, value))
    return pairs


def single(conf: str) -> dict[str, str]:
    """The directives that appear once (listener options repeat per listener: not here)."""
    counted: dict[str, list[str]] = {}
    for key, value in directives(conf):
        counted.setdefault(key, []).append(value)
    return {k: v[0] for k, v in counted.items() if len(v) == 1}


def test_the_configuration_secures_and_sizes_the_broker(tmp_path: Path) -> None:
    conf = bf.mosquitto_conf(bf.BrokerPaths.under(tmp_path), facility="38001")
    d = single(conf)
    first = directives(conf)[0]
    assert first == ("per_listener_settings", "false")  # before any listener, as Mosquitto requires
    assert d["listener"] == "8883"
    assert d["cafile"] == str(tmp_path / "ca.crt")
    assert d["tls_version"] == "tlsv1.2"
    assert d["require_certificate"] == "false"
    assert d["allow_anonymous"] == "false"
    assert d["password_file"] == str(tmp_path / "passwords")
    assert d["acl_file"] == str(tmp_path / "acl")
    assert d["persistence"] == "true"
    assert d["persistence_location"] == f"{tmp_path / 'data'}/"
    assert int(d["max_queued_messages"]) == bf.MAX_QUEUED_MESSAGES > 1000
    assert int(d["max_queued_bytes"]) == bf.MAX_QUEUED_BYTES
    assert int(d["message_size_limit"]) == 16384
    assert d["set_tcp_nodelay"] == "true"
    assert d["connection_messages"] == "true"
    assert "log_dest" not in d


def test_no_payload_ever_reaches_the_log() -> None:
    log_types = [v for k, v in directives(bf.example_conf()) if k == "log_type"]
    assert log_types and not {"debug", "all", "subscribe", "unsubscribe"} & set(log_types)


def test_mtls_and_the_loopback_listener(tmp_path: Path) -> None:
    listener = bf.ListenerOptions(port=18883, bind_address="10.0.0.5", mtls=True, local_port=1883)
    pairs = directives(bf.mosquitto_conf(bf.BrokerPaths.under(tmp_path), listener))
    assert ("listener", "18883 10.0.0.5") in pairs
    assert ("require_certificate", "true") in pairs
    assert ("listener", "1883 127.0.0.1") in pairs
    # The loopback listener carries no TLS options of its own: they all precede it.
    keys = [k for k, _ in pairs]
    loopback = pairs.index(("listener", "1883 127.0.0.1"))
    assert "certfile" not in keys[loopback:]


def test_the_debian_drop_in_leaves_persistence_location_and_log_dest_to_the_main_file() -> None:
    paths = bf.BrokerPaths.debian()
    assert paths.conf == Path("/etc/mosquitto/conf.d/cccd-edge.conf")
    keys = [k for k, _ in directives(bf.mosquitto_conf(paths))]
    assert "persistence_location" not in keys and "log_dest" not in keys and "user" not in keys


def test_the_example_file_is_the_rendering() -> None:
    assert bf.EXAMPLE_PATH.read_text("utf-8") == bf.example_conf(), "run: python -m tools.brokerfiles"


# --- writing --------------------------------------------------------------------------------------


def _write(paths: bf.BrokerPaths, owner: str | None = None) -> None:
    ca = bf.make_ca("38001")
    bf.write_broker_dir(
        paths,
        conf=bf.mosquitto_conf(paths),
        acl=bf.acl_text(DEVICES, COLLECTORS),
        passwords=bf.password_lines({"qr-0001": "x"}),
        ca_cert_pem=ca.cert_pem,
        server=bf.make_server_cert(ca, ["localhost"]),
        owner=owner,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_written_0600_and_the_rest_0644(tmp_path: Path) -> None:
    paths = bf.BrokerPaths.under(tmp_path / "broker")
    _write(paths)
    assert mode(paths.keyfile) == mode(paths.password_file) == 0o600
    assert mode(paths.conf) == mode(paths.cafile) == mode(paths.certfile) == mode(paths.acl_file) == 0o644
    assert paths.persistence_location is not None and mode(paths.persistence_location) == 0o700
    assert sorted(p.name for p in paths.conf.parent.iterdir()) == [
        "acl",
        "ca.crt",
        "data",
        "mosquitto.conf",
        "passwords",
        "server.crt",
        "server.key",
    ]
    assert "PRIVATE KEY" not in paths.cafile.read_text()  # the CA key stays with provisioning


def test_rewriting_a_file_replaces_it_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "passwords"
    bf.write_file_atomic(target, "old\n", bf.SECRET_MODE)
    bf.write_file_atomic(target, "new\n", bf.SECRET_MODE)
    assert target.read_text() == "new\n" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["passwords"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "acl"
    bf.write_file_atomic(target, "old\n", bf.PUBLIC_MODE)
    with pytest.raises(KeyError):
        bf.write_file_atomic(target, "new\n", bf.PUBLIC_MODE, owner="no-such-user-here")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["acl"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_the_broker_user_owns_what_it_must_read(tmp_path: Path) -> None:
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto user")
    paths = bf.BrokerPaths.under(tmp_path / "broker")
    _write(paths, owner="mosquitto")
    for path in (paths.password_file, paths.keyfile, paths.acl_file, paths.persistence_location):
        assert path is not None and (path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid)
    assert paths.conf.stat().st_uid == 0
