"""For engineers debugging a reader (``cccd-edge chip`` runs these):

``python -m agent.emrtd keys --doc DOCNO --dob YYMMDD --expiry YYMMDD`` prints the MRZ information,
K_seed, K_enc and K_mac in hex.

``python -m agent.emrtd read [--reader NAME] (--can CAN | --qr-file FILE | --doc .. --dob .. --expiry ..)
[--csca FILE] [--show] [-v]`` reads a card on a PC/SC reader and prints its content as JSON, the
personal fields masked unless ``--show``; ``-v`` prints every APDU's instruction, sizes, status word
and time (never its data) on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from cccd import qr

from .bac import AccessKeys, mrz_information
from .errors import ChipError
from .expiry import candidates
from .pcsc import PcscTransport
from .reader import ChipRead, Transmit, read_chip
from .sod import CscaStore


def _keys(args: argparse.Namespace) -> int:
    keys = AccessKeys.from_mrz(args.doc, args.dob, args.expiry)
    out = sys.stdout
    out.write(f"MRZ information  {mrz_information(args.doc, args.dob, args.expiry)}\n")
    for name, value in (("K_seed", keys.seed), ("K_enc", keys.k_enc), ("K_mac", keys.k_mac)):
        out.write(f"{name:<16} {value.hex().upper()}\n")
    return 0


def _mask(value: str) -> str:
    return value[:1] + "*" * max(len(value) - 2, 0) + value[-1:] if len(value) > 2 else "**"


def _timed(transmit: Transmit) -> Transmit:
    def wrapped(apdu: bytes) -> bytes:
        started = time.perf_counter()
        response = transmit(apdu)
        ms = (time.perf_counter() - started) * 1000
        sw = response[-2:].hex().upper()
        sys.stderr.write(
            f"INS {apdu[1]:02X}  {len(apdu):4d} B out  {len(response):4d} B in  SW {sw}  {ms:6.1f} ms\n"
        )
        return response

    return wrapped


def _access(args: argparse.Namespace) -> tuple[list[AccessKeys], str | None]:
    if args.qr_file:
        scan = qr.parse(Path(args.qr_file).read_bytes())
        pid = str(scan.ident["cccd"])
        keys = []
        if len(scan.ident.get("dob", "")) == 10 and len(scan.ident.get("issued", "")) == 10:
            born = datetime.date.fromisoformat(scan.ident["dob"])
            since = datetime.date.fromisoformat(scan.ident["issued"])
            keys = [AccessKeys.from_mrz(pid[3:], born.strftime("%y%m%d"), e) for e in candidates(born, since)]
        return keys, pid[-6:]
    keys = [AccessKeys.from_mrz(args.doc, args.dob, args.expiry)] if args.doc else []
    return keys, args.can


def report(read: ChipRead, show: bool) -> dict[str, Any]:
    ident = read.ident()
    if not show:
        ident = {k: (v if k in ("sex",) else _mask(str(v))) for k, v in ident.items()}
    return {
        "id": ident,
        "chip": read.summary(),
        "groups": sorted(n for n in read.raw if n),
        "lds": read.com.lds_version,
        "warn": [*read.mrz.warn, *(read.identity.warn if read.identity else ())],
        "round_trips": read.round_trips,
        "apdu_bytes": read.apdu_bytes,
    }


def _read(args: argparse.Namespace) -> int:
    keys, can = _access(args)
    if not keys and can is None:
        sys.stderr.write("give --can, --qr-file or --doc/--dob/--expiry\n")
        return 2
    store = CscaStore()
    if args.csca:
        data = Path(args.csca).read_bytes()
        store = CscaStore.from_pem(data) if b"-----BEGIN" in data else CscaStore.from_master_list(data)
    transport = PcscTransport(args.reader)
    try:
        transport.connect()
        transmit = _timed(transport.transmit) if args.verbose else transport.transmit
        read = read_chip(transmit, keys, store, can=can)
    except ChipError as exc:
        sys.stderr.write(f"chip read failed: {exc}\n")
        return 1
    finally:
        transport.close()
    sys.stdout.write(json.dumps(report(read, args.show), ensure_ascii=False, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m agent.emrtd") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="CCCD chip tools for engineers")
    commands = parser.add_subparsers(dest="command", required=True)
    k = commands.add_parser("keys", help="BAC keys from the MRZ information")
    r = commands.add_parser("read", help="read a card on a PC/SC reader")
    for p, required in ((k, True), (r, False)):
        p.add_argument(
            "--doc", required=required, help="document number (a CCCD: the last 9 digits of the ID)"
        )
        p.add_argument("--dob", required=required, help="date of birth, YYMMDD")
        p.add_argument("--expiry", required=required, help="date of expiry, YYMMDD")
    r.add_argument("--reader", help="the PC/SC reader whose name contains this (default: the first)")
    r.add_argument("--can", help="the CAN: a CCCD's last 6 digits of the personal ID")
    r.add_argument("--qr-file", help="a file with the card's scanned QR code (keys from its dates)")
    r.add_argument("--csca", help="trusted CSCA certificates (PEM or ICAO master list)")
    r.add_argument("--show", action="store_true", help="print personal fields unmasked")
    r.add_argument("-v", "--verbose", action="store_true", help="every APDU's size, status word and time")
    args = parser.parse_args(argv)
    return _keys(args) if args.command == "keys" else _read(args)


if __name__ == "__main__":
    sys.exit(main())
