"""`cccd-edge firmware build`: mpy-cross 1.27 compiles cccd/ and firmware/, and the compiled image
runs under the MicroPython of the test tier (the same .mpy format): a read cycle from .mpy alone."""

import json
from pathlib import Path

import pytest

from tools import firmware, micropython
from tools.cli import main

ROOT = Path(__file__).resolve().parents[2]

SMOKE = """
import os, binascii
for d in ("/lib", "/lib/cccd", "/lib/firmware"):
    try:
        os.mkdir(d)
    except OSError:
        pass
for path, hexed in %(files)r:
    with open("/" + path, "wb") as f:
        f.write(binascii.unhexlify(hexed))
import cccd.qr, firmware.node, firmware.outbox, firmware.seqstore, firmware.app, firmware.device
assert cccd.qr.__file__.endswith(".mpy") and firmware.node.__file__.endswith(".mpy"), cccd.qr.__file__
scan = cccd.qr.parse(%(qr)r, now=(2026, 11, 22))
ob = firmware.outbox.Outbox("/ob")
ob.append(7, b"sealed")
print("SMOKE", scan.doc, ob.peek())
"""


def test_build_writes_the_image_the_manifest_and_the_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fw"
    assert main(["firmware", "build", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MicroPython v1.27" in printed and "total firmware" in printed
    report = json.loads((out / "image.json").read_text())
    paths = [m["path"] for m in report["modules"]]
    assert "lib/cccd/qr.mpy" in paths and "lib/firmware/outbox.mpy" in paths
    assert len(paths) == len(firmware.sources())
    for m in report["modules"]:
        data = (out / m["path"]).read_bytes()
        assert data[:2] == b"M\x06" and len(data) == m["mpy_bytes"] < m["source_bytes"]
    total = report["totals"]["all"]["mpy_bytes"]
    assert total == report["totals"]["cccd"]["mpy_bytes"] + report["totals"]["firmware"]["mpy_bytes"]
    assert "firmware.device.main()" in (out / "main.py").read_text()
    manifest = (out / "manifest.py").read_text()
    assert 'package("cccd", base_path=' in manifest and 'package("firmware", base_path=' in manifest
    base = manifest.split('package("firmware", base_path="')[1].split('"')[0]
    assert (out / base / "firmware" / "outbox.py").is_file()  # relative to the manifest's directory


@pytest.mark.micropython
def test_the_compiled_image_runs_under_micropython(tmp_path: Path) -> None:
    image = firmware.build(tmp_path)
    files = [(m.path, (tmp_path / m.path).read_bytes().hex()) for m in image.modules]
    qr = "001090012345|123456789|Nguyễn Văn A|01011990|Nam|Hà Nội|01012021"
    code = SMOKE % {"files": files, "qr": qr}
    run = micropython.run(code, mounts=[(ROOT / "tests" / "mpy" / "stubs", "/stubs")], sys_path=["/stubs"])
    run.check()
    assert "SMOKE cccd (7, b'sealed')" in run.stdout


def test_a_wrong_mpy_cross_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "mpy-cross"
    fake.write_text("#!/bin/sh\necho 'MicroPython v1.19.1 on 2022-06-18; mpy-cross emitting mpy v6'\n")
    fake.chmod(0o755)
    with pytest.raises(firmware.FirmwareBuildError, match=r"MicroPython 1\.19"):
        firmware.build(tmp_path / "out", exe=str(fake))


def test_flash_dry_run_and_clear_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw"
    node, wifi = tmp_path / "node.json", tmp_path / "wifi.json"
    node.write_text("{}")
    wifi.write_text("{}")
    args = ["firmware", "flash", "--port", "/dev/ttyUSB0", "--out", str(out)]
    args += ["--config", str(node), "--wifi", str(wifi), "--dry-run"]
    assert main(args) == 1  # nothing built yet
    assert "run `cccd-edge firmware build` first" in capsys.readouterr().err
    assert main(["firmware", "build", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*args, "--micropython", "mp.bin"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "esptool --chip esp32 --port /dev/ttyUSB0 erase-flash"
    assert lines[1].endswith("write-flash 0x1000 mp.bin")
    assert lines[2].startswith(f"mpremote connect /dev/ttyUSB0 cp -r {out}/lib : + cp {out}/main.py :main.py")
    assert lines[2].endswith(f"cp {node} :node.json + cp {wifi} :wifi.json + reset")
    missing = firmware.flash_plan("/dev/ttyUSB0", out, node, wifi)
    with pytest.raises(firmware.FirmwareBuildError, match="not installed"):
        firmware.flash([["no-such-mpremote-here", *missing[0][1:]]])
