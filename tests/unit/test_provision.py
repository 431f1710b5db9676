"""Provisioning through the command line: a facility home, devices, revocation, rotation."""

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

from cryptography import x509

from tools import brokerfiles as bf
from tools import provision

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "provision", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_init_device_revoke_rotate(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert cli("init", "--home", home, "--facility", "38001").returncode == 0
    site = unicodedata.normalize("NFD", "Quầy 3 – Khoa Khám bệnh")
    out = cli(
        "device", "--home", home, "--facility", "38001", "--id", "qr-0007", "--kind", "esp32", "--site", site
    )
    assert out.returncode == 0, out.stderr
    node_file = Path(home) / "nodes" / "38001-qr-0007.json"
    node = json.loads(node_file.read_text("utf-8"))
    assert node["site"] == "Quầy 3 – Khoa Khám bệnh"  # NFC
    assert oct(os.stat(node_file).st_mode & 0o777) == "0o600"
    for secret_file in ("kek", "ca.key", "collector.password", "broker/passwords", "broker/server.key"):
        assert oct(os.stat(Path(home) / secret_file).st_mode & 0o777) == "0o600", secret_file
    passwords = (Path(home) / "broker" / "passwords").read_text()
    hashed = dict(line.split(":", 1) for line in passwords.splitlines())
    assert bf.verify_password(hashed["qr-0007"], node["broker"]["password"])
    assert "user qr-0007" in (Path(home) / "broker" / "acl").read_text()
    fleet = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "collector",
            "fleet",
            "--config",
            f"{home}/collector.toml",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert fleet.returncode == 0, fleet.stderr
    assert [d["state"] for d in json.loads(fleet.stdout)["devices"]] == ["never_seen"]

    again = cli(
        "device", "--home", home, "--facility", "38001", "--id", "qr-0007", "--kind", "esp32", "--site", "x"
    )
    assert again.returncode == 2 and "already provisioned" in again.stderr
    wrong = cli(
        "device", "--home", home, "--facility", "38002", "--id", "qr-1", "--kind", "esp32", "--site", "x"
    )
    assert wrong.returncode == 2 and "not 38002" in wrong.stderr
    bad_id = cli(
        "device", "--home", home, "--facility", "38001", "--id", "QR 1", "--kind", "rpi", "--site", "x"
    )
    assert bad_id.returncode == 2

    rotated = cli("rotate", "--home", home, "--facility", "38001", "--id", "qr-0007", "--grace", "60")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(node_file.read_text("utf-8"))
    assert new["secret"] != node["secret"] and new["pseudonym_secret"] == node["pseudonym_secret"]

    assert cli("revoke", "--home", home, "--facility", "38001", "--id", "qr-0007").returncode == 0
    assert "qr-0007" not in (Path(home) / "broker" / "passwords").read_text()
    assert "user qr-0007" not in (Path(home) / "broker" / "acl").read_text()
    listed = cli("list", "--home", home).stdout
    assert "qr-0007\tesp32\trevoked" in listed
    assert cli("revoke", "--home", home, "--facility", "38001", "--id", "qr-0007").returncode == 2


def test_not_a_home(tmp_path: Path) -> None:
    out = cli(
        "device", "--home", str(tmp_path), "--facility", "38001", "--id", "a", "--kind", "rpi", "--site", "x"
    )
    assert out.returncode == 2 and "provision init" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_init_refuses_an_existing_home(tmp_path: Path) -> None:
    provision.init(tmp_path / "h", "38001", metrics_port=0)
    out = cli("init", "--home", str(tmp_path / "h"), "--facility", "38001")
    assert out.returncode == 2 and "already a facility home" in out.stderr


def test_mtls_nodes_get_a_client_certificate_from_the_facility_ca(tmp_path: Path) -> None:
    home = provision.init(tmp_path / "h", "38001", mtls=True, metrics_port=0)
    node = json.loads(provision.device(home.path, "38001", "qr-0009", "rpi", "Kiosk").read_text())
    cert = x509.load_pem_x509_certificate(node["broker"]["cert"].encode())
    ca = x509.load_pem_x509_certificate((home.path / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert "qr-0009" in cert.subject.rfc4514_string()
    assert "require_certificate true" in home.broker.conf.read_text()
