"""The command line as people and scripts use it: real processes, stdin/stdout, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cccd import cbor

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "contract-vectors.json").read_text("utf-8"))
READ = VECTORS["read"]
KEYS = VECTORS["keys"]
SAMPLE_QR = "001090000001|123456789|Nguyễn Văn An|17051990|Nam|Số 1 đường Lê Lợi, Thanh Hóa|12042021"


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _open_args(topic: str = READ["topic"]) -> list[str]:
    return ["envelope", "open", "--key", KEYS["up_key"], "--base-iv", KEYS["up_iv"], "--topic", topic]


def test_envelope_open_prints_the_payload_as_json() -> None:
    out = cli(*_open_args(), "--hex", stdin=READ["envelope"].encode())
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["ok"] and shown["kid"] == "qr-0007" and shown["seq"] == READ["seq"]
    assert shown["payload"] == READ["payload_json"]


def test_envelope_seal_then_open_with_raw_bytes() -> None:
    payload = bytes.fromhex(READ["payload_cbor"])
    seal = ["envelope", "seal", "--key", KEYS["up_key"], "--base-iv", KEYS["up_iv"]]
    sealed = cli(*seal, "--kid", "qr-0007", "--seq", "42", "--topic", READ["topic"], stdin=payload)
    assert sealed.returncode == 0, sealed.stderr
    assert sealed.stdout == bytes.fromhex(READ["envelope"])
    opened = cli(*_open_args(), stdin=sealed.stdout)
    assert json.loads(opened.stdout)["payload"]["seq"] == 42


def test_envelope_that_does_not_open_exits_2_with_the_reason() -> None:
    out = cli(*_open_args("cccd/v1/38001/qr-0007/status"), "--hex", stdin=READ["envelope"].encode())
    assert out.returncode == 2
    assert json.loads(out.stdout) == {
        "ok": False,
        "reason": "tag",
        "detail": "authentication tag does not verify",
    }
    garbage = cli(*_open_args(), stdin=b"\xff\x00garbage")
    assert garbage.returncode == 2 and json.loads(garbage.stdout)["reason"] == "malformed"


def test_seal_refuses_a_payload_that_is_not_one_cbor_item() -> None:
    seal = ["envelope", "seal", "--key", KEYS["up_key"], "--base-iv", KEYS["up_iv"], "--kid", "qr-0007"]
    out = cli(*seal, "--seq", "1", "--topic", READ["topic"], stdin=b"\xffnot cbor")
    assert out.returncode == 2
    assert out.stderr.decode().startswith("cccd-edge: cannot seal")
    assert len(out.stderr.decode().strip().splitlines()) == 1


def test_bad_command_lines_exit_64_with_one_clear_line() -> None:
    out = cli("envelope", "open", "--key", "00", "--base-iv", KEYS["up_iv"], "--topic", "t")
    assert out.returncode == 64
    assert b"--key must be 32 bytes" in out.stderr
    assert cli("no-such-command").returncode == 64


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["qr"],
        ["qr", "parse"],
        ["envelope"],
        ["envelope", "seal"],
        ["envelope", "open"],
        ["bench", "core"],
    ],
)
def test_help_everywhere(args: list[str]) -> None:
    out = cli(*args, "--help")
    assert out.returncode == 0 and b"usage: cccd-edge" in out.stdout


def test_qr_parse_prints_the_identity() -> None:
    out = cli("qr", "parse", stdin=SAMPLE_QR.encode() + b"\r\n")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["ok"] and shown["doc"] == "cccd"
    assert shown["id"]["cccd"] == "001090000001"
    assert shown["id"]["name"] == "Nguyễn Văn An"
    assert shown["id"]["dob"] == "1990-05-17" and shown["id"]["sex"] == "M"


def test_qr_parse_rejection_exits_2_with_vietnamese_text() -> None:
    out = cli("qr", "parse", stdin=b"001090000001|123")
    assert out.returncode == 2
    shown = json.loads(out.stdout)
    assert shown["ok"] is False and shown["reason"]
    assert shown["text"] and all(len(line) <= 16 for line in shown["text"].split("\n"))
    assert "001090000001" not in shown["detail"]


def test_cbor_round_trip_through_open_keeps_vietnamese_text() -> None:
    shown = json.loads(cli(*_open_args(), "--hex", stdin=READ["envelope"].encode()).stdout)
    assert shown["payload"]["id"]["name"] == cbor.loads(bytes.fromhex(READ["payload_cbor"]))["id"]["name"]


def test_chip_keys_reproduce_icao_9303_appendix_d() -> None:
    out = cli("chip", "keys", "--doc", "L898902C<", "--dob", "690806", "--expiry", "940623")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "L898902C<369080619406236" in text
    assert "239AB9CB282DAF66231DC5A4DF6BFBAE" in text  # K_seed of the worked example
    assert "AB94FDECF2674FDFB9B391F85D7F76F2" in text  # K_enc


@pytest.mark.parametrize("args", [["chip", "--help"], ["chip", "read", "--help"], ["agent", "--help"]])
def test_the_node_commands_have_their_own_help(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 0 and out.stdout.startswith(f"usage: cccd-edge {args[0]}".encode())
