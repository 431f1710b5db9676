"""Fuzzing the parsers that take bytes from outside: ``cccd-edge bench fuzz`` and the tests.

Each target takes the bytes a hostile or broken peer could send and holds them to the contract of
every boundary: it either accepts them or rejects them with the boundary's own error, carrying a
reason (the core's ``CoreError.reason`` is what the collector's metrics count). Anything else —
another exception, a hang, a crash — is a finding.

- ``cbor``: the strict deterministic CBOR decoder (``cccd.cbor.loads``);
- ``envelope``: the COSE_Encrypt0 envelope: parse, then open with the contract's test key;
- ``read``: the Read's schema (CBOR, then ``cccd.schema`` validation);
- ``qr``: the QR parser, on a scanner's raw bytes (``cccd.qr.parse``);
- ``ack``: the HIS's HL7 v2 acknowledgement (``collector.forward.hl7v2.parse_ack``);
- ``dg1``, ``dg13``, ``sod``: what a chip (or a forged card) returns: the MRZ, the Vietnamese
  data group and the security object (``agent.emrtd``; its error is ``ChipDataError``).

The seed corpus is kept under ``tests/fuzz/corpus/<target>/``: a bounded run in the tests replays
it and explores briefly with hypothesis and with atheris (libFuzzer, coverage-guided); the long
run (``cccd-edge bench fuzz --target T --seconds N``) adds what it finds to the corpus.
"""

import importlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from cccd import cbor, envelope, qr, schema
from cccd.errors import CoreError

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
FINDINGS = ROOT / ".artifacts" / "fuzz"  # the input that broke a target (libFuzzer's crash-*)
MAX_INPUT = 8192  # bytes: the broker's message size limit is larger, the parsers refuse far sooner

_VECTORS = json.loads((ROOT / "docs" / "contract-vectors.json").read_text("utf-8"))
_KEY = bytes.fromhex(_VECTORS["keys"]["up_key"])
_IV = bytes.fromhex(_VECTORS["keys"]["up_iv"])
_TOPIC = _VECTORS["read"]["topic"]


class Finding(AssertionError):  # noqa: N818 - a finding is an outcome of the run, like a failure
    """A target broke its contract on an input."""


def _cbor(data: bytes) -> None:
    cbor.loads(data)


def _envelope(data: bytes) -> None:
    envelope.parse(data).open(_KEY, _IV, _TOPIC)


def _read(data: bytes) -> None:
    schema.decode("read", data)


def _qr(data: bytes) -> None:
    qr.parse(data, now=(2026, 11, 22))


def _ack(data: bytes) -> None:
    from collector.forward import hl7v2  # noqa: PLC0415 - only this target needs the collector

    try:
        hl7v2.parse_ack(data)
    except hl7v2.AckError as exc:
        if not str(exc):
            raise Finding("AckError without a message") from exc


def _chip(parse: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from agent.emrtd import lds, sod  # noqa: PLC0415 - only the chip targets need the agent
        from agent.emrtd.errors import ChipDataError  # noqa: PLC0415

        try:
            {"dg1": lds.parse_dg1, "dg13": lds.parse_dg13, "sod": sod.parse_sod}[parse](data)
        except ChipDataError as exc:
            if not str(exc):
                raise Finding("ChipDataError without a message") from exc

    return target


TARGETS: dict[str, Callable[[bytes], None]] = {
    "cbor": _cbor,
    "envelope": _envelope,
    "read": _read,
    "qr": _qr,
    "ack": _ack,
    "dg1": _chip("dg1"),
    "dg13": _chip("dg13"),
    "sod": _chip("sod"),
}


def check(target: str, data: bytes) -> None:
    """Run ``target`` on ``data``; raise ``Finding`` when it breaks the contract."""
    try:
        TARGETS[target](data[:MAX_INPUT])
    except CoreError as exc:
        if not exc.reason or not str(exc):
            raise Finding(f"{target}: a rejection without a reason on {data[:64]!r}") from exc
    except Finding:
        raise
    except Exception as exc:
        raise Finding(f"{target}: {type(exc).__name__}: {exc} on {data[:64]!r}") from exc


def seed_corpus() -> dict[str, list[bytes]]:
    """The inputs the corpus starts from: the contract's vectors, every QR format of a few synthetic
    citizens with every scanner damage, HL7 acknowledgements of each kind."""
    from sim import citizens  # noqa: PLC0415 - synthetic data only for the seeds

    read = _VECTORS["read"]
    seeds: dict[str, list[bytes]] = {
        "cbor": [bytes.fromhex(read["payload_cbor"]), bytes.fromhex(_VECTORS["result"]["payload_cbor"])],
        "envelope": [bytes.fromhex(read["envelope"])],
        "read": [bytes.fromhex(read["payload_cbor"])],
        "qr": [],
        "ack": [
            b"\x0bMSH|^~\\&|HIS||CCCD-EDGE|38001|20261122080000||ACK^A04^ACK|1|P|2.5\rMSA|AA|ABC\r\x1c\r",
            b"MSH|^~\\&|HIS||CCCD-EDGE|38001|20261122080000||ACK^A04^ACK|2|P|2.5\rMSA|AE|ABC|bad\r"
            b"ERR|||207^Application internal error^HL70357|E\r",
        ],
    }
    from sim.chip import files as chip_files  # noqa: PLC0415
    from sim.chip.pki import TestPki  # noqa: PLC0415

    pki = TestPki.generate()
    seeds |= {"dg1": [], "dg13": [], "sod": []}
    for n in range(3):
        chip = chip_files.chip_files(chip_files.sample_citizen(n), pki, pace=False, aa=False)
        seeds["dg1"].append(chip.files[0x0101])
        seeds["dg13"].append(chip.files[0x010D])
        seeds["sod"].append(chip.files[0x011D])
    for person in citizens.population(6, seed=99):
        for fmt in citizens.formats(person):
            seeds["qr"].append(citizens.qr_bytes(person, fmt))
            seeds["qr"] += [citizens.qr_bytes(person, fmt, damage=d) for d in citizens.DAMAGES]
    return seeds


def write_seed_corpus() -> int:
    """Write the seeds under tests/fuzz/corpus/ (named by their hash); returns how many are new."""
    import hashlib  # noqa: PLC0415

    new = 0
    for target, inputs in seed_corpus().items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            path = folder / hashlib.sha1(data).hexdigest()  # libFuzzer's own naming
            if not path.exists():
                path.write_bytes(data)
                new += 1
    return new


def corpus(target: str) -> list[Path]:
    return sorted((CORPUS / target).glob("*")) if (CORPUS / target).is_dir() else []


def atheris_main(target: str) -> None:
    """The libFuzzer entry point (run as ``python -m tools.fuzz TARGET [libFuzzer options]``)."""
    import atheris  # noqa: PLC0415 - optional: only the fuzzing runs need it

    if target == "ack":
        from collector.forward import hl7v2  # noqa: F401, PLC0415 - loaded before instrumenting
    if target in ("dg1", "dg13", "sod"):
        from agent.emrtd import lds, sod  # noqa: F401, PLC0415
    # Coverage guidance for our parsers only (instrumenting everything loaded takes 15 s): load
    # them again under instrumentation, in their import order; cccd.errors stays as it is, so the
    # errors they raise are the classes ``check`` catches.
    ours = [
        name
        for name in list(sys.modules)
        if (name.startswith(("cccd.", "hl7.", "agent.emrtd.")) or name in ("hl7", "collector.forward.hl7v2"))
        and name not in ("cccd.errors", "hl7.exceptions", "agent.emrtd.errors")
    ]
    with atheris.instrument_imports(include=["cccd", "collector", "hl7", "agent"]):
        for name in ours:
            importlib.reload(sys.modules[name])

    def one(data: bytes) -> None:
        check(target, data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


def run_atheris(target: str, seconds: float, *, grow: bool = False) -> tuple[int, str]:
    """A libFuzzer run of ``target`` in a child process for ``seconds``, seeded with its corpus;
    with ``grow`` the inputs it finds interesting are added to the corpus, else they go to a
    scratch copy. Returns (exit status, output); 0 means nothing found."""
    seeds = CORPUS / target
    seeds.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as scratch:
        work = seeds
        if not grow:
            work = Path(scratch)
            for path in corpus(target):
                shutil.copy(path, work / path.name)
        args = [
            *(sys.executable, "-m", "tools.fuzz", target),
            *(f"-max_total_time={max(1, int(seconds))}", "-timeout=5", f"-max_len={MAX_INPUT}"),
            *("-rss_limit_mb=1024", f"-artifact_prefix={FINDINGS}/{target}-", str(work)),
        ]
        FINDINGS.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            args, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 120, check=False
        )
    return out.returncode, out.stdout + out.stderr


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.stderr.write(f"usage: python -m tools.fuzz {{{','.join(TARGETS)}}} [libFuzzer options]\n")
        sys.exit(64)
    atheris_main(sys.argv[1])
