"""The ``cccd-edge`` command line.

Exit codes scripts can trust:
    0   done
    1   the command failed for a reason outside its input (missing tool, environment)
    2   the input was rejected (a scan, an envelope): the reason is printed
    64  the command line itself was wrong (unknown option, missing argument)

A failure prints one line on stderr (what, why, what to do); ``--verbose`` adds the detail.
"""

import argparse
import json
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collector.config import CollectorConfig
    from collector.db import Database
    from collector.tracker import FleetTracker

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REJECTED = 2
EXIT_USAGE = 64


class CommandError(Exception):
    """A failure to report as one line: what happened, why, what to do."""

    def __init__(self, what: str, why: str, todo: str = "", code: int = EXIT_FAILED) -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.todo = todo
        self.code = code

    def line(self) -> str:
        parts = [self.what, self.why] + ([self.todo] if self.todo else [])
        return "cccd-edge: " + " — ".join(parts)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


Handler = Callable[[argparse.Namespace], int]


def _hex(name: str, length: int | None = None) -> Callable[[str], bytes]:
    def parse(text: str) -> bytes:
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be hex") from None
        if length is not None and len(value) != length:
            raise argparse.ArgumentTypeError(f"{name} must be {length} bytes ({2 * length} hex digits)")
        return value

    return parse


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


# --- qr -----------------------------------------------------------------------------------------


def _qr_parse(args: argparse.Namespace) -> int:
    from cccd import qr

    data = sys.stdin.buffer.read()
    try:
        scan = qr.parse(data, source=args.source)
    except qr.QRError as exc:
        _print_json({"ok": False, "reason": exc.reason, "text": exc.text, "detail": exc.detail})
        return EXIT_REJECTED
    _print_json({"ok": True, "doc": scan.doc, "id": scan.ident, "warn": scan.warn})
    return EXIT_OK


# --- envelope -----------------------------------------------------------------------------------


def _read_input(as_hex: bool) -> bytes:
    data = sys.stdin.buffer.read()
    if not as_hex:
        return data
    try:
        return bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeError, ValueError):
        raise CommandError(
            "input is not hex", "--hex expects hex digits on stdin", code=EXIT_REJECTED
        ) from None


def _envelope_seal(args: argparse.Namespace) -> int:
    from cccd import envelope, schema
    from cccd.cbor import loads
    from cccd.errors import CoreError

    payload = _read_input(args.hex)
    try:
        schema.parse_topic(args.topic)
        loads(payload)  # a payload is one CBOR item; refuse to seal anything else
        sealed = envelope.seal(args.key, args.base_iv, args.kid.encode(), args.seq, args.topic, payload)
    except CoreError as exc:
        raise CommandError("cannot seal", f"{exc} ({exc.reason})", code=EXIT_REJECTED) from None
    if args.hex:
        sys.stdout.write(sealed.hex() + "\n")
    else:
        sys.stdout.buffer.write(sealed)
    return EXIT_OK


def _envelope_open(args: argparse.Namespace) -> int:
    from cccd import envelope
    from cccd.cbor import loads
    from cccd.errors import CoreError
    from tools.jsonview import to_json

    data = _read_input(args.hex)
    try:
        sealed = envelope.parse(data)
        payload = sealed.open(args.key, args.base_iv, args.topic)
        value = loads(payload)
    except CoreError as exc:
        _print_json({"ok": False, "reason": exc.reason, "detail": str(exc)})
        return EXIT_REJECTED
    _print_json(
        {
            "ok": True,
            "kid": sealed.kid.decode("utf-8", "replace"),
            "seq": sealed.seq,
            "payload": to_json(value),
        }
    )
    return EXIT_OK


# --- bench and demo -----------------------------------------------------------------------------


def _bench_core(args: argparse.Namespace) -> int:
    from tools import bench

    report = bench.core(seconds=args.seconds, micropython=not args.no_micropython, progress=_progress)
    text = bench.format_core(report)
    sys.stdout.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return EXIT_OK


def _firmware_build(args: argparse.Namespace) -> int:
    from tools import firmware

    try:
        image = firmware.build(args.out)
    except firmware.FirmwareBuildError as exc:
        raise CommandError("cannot build the firmware", str(exc)) from None
    sys.stdout.write(firmware.format_image(image))
    return EXIT_OK


def _firmware_flash(args: argparse.Namespace) -> int:
    import shlex

    from tools import firmware

    try:
        plan = firmware.flash_plan(args.port, args.out, args.config, args.wifi, args.micropython)
        if args.dry_run:
            sys.stdout.write("".join(shlex.join(cmd) + "\n" for cmd in plan))
        else:
            firmware.flash(plan)
    except firmware.FirmwareBuildError as exc:
        raise CommandError("cannot flash the node", str(exc)) from None
    return EXIT_OK


def _bench_ingest(args: argparse.Namespace) -> int:
    from tools import benchingest
    from tools.mosquitto import MosquittoError

    if args.publishers < 1 or args.reads < args.publishers:
        raise CommandError(
            "cannot run the ingest benchmark",
            "need --publishers ≥ 1 and --reads ≥ --publishers",
            code=EXIT_USAGE,
        )
    try:
        report = benchingest.ingest(publishers=args.publishers, reads=args.reads, progress=_progress)
    except (benchingest.BenchError, MosquittoError) as exc:
        raise CommandError("the ingest benchmark failed", str(exc), "rerun with --verbose") from None
    sys.stdout.write(benchingest.format_ingest(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return EXIT_OK


def _bench_counter(args: argparse.Namespace) -> int:
    from tools import benchcounter
    from tools.demo import DemoError

    try:
        rows = benchcounter.run(args.nodes, args.rate, args.seconds, _progress)
    except DemoError as exc:
        raise CommandError("cannot run the counter benchmark", str(exc)) from None
    sys.stdout.write(benchcounter.format_report(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
    return EXIT_OK


def _bench_nodered(args: argparse.Namespace) -> int:
    from tools import benchnodered
    from tools.benchingest import BenchError

    if args.rate <= 0 or args.seconds <= 0 or args.nodes < 1 or args.drain <= 0:
        raise CommandError(
            "cannot run the Node-RED bench",
            "--rate, --seconds and --drain must be positive, --nodes at least 1",
            code=EXIT_USAGE,
        )
    try:
        report = benchnodered.run(
            args.rate,
            args.seconds,
            args.nodes,
            not args.no_kill,
            args.drain,
            args.his_latency,
            _progress,
            args.his_transaction,
        )
    except BenchError as exc:
        raise CommandError("the Node-RED bench failed", str(exc), "rerun with --verbose") from None
    sys.stdout.write(benchnodered.format_report(report))
    if args.json:
        benchnodered.write_json(report, args.json)
    edge = report["phases"][1]
    return EXIT_OK if edge["lost"] == 0 and edge["registered_twice"] == 0 else EXIT_FAILED


def _progress(message: str) -> None:
    sys.stderr.write(f"… {message}\n")
    sys.stderr.flush()


def _demo(args: argparse.Namespace) -> int:
    from sim.scenario import Scenario
    from tools import demo

    live = sys.stdout.isatty() and args.duration is None

    def show(line: str) -> None:
        if live:
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
        elif int(line.split(maxsplit=1)[0]) % 5 == 0:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def say(line: str) -> None:
        sys.stdout.write(("\n" if live else "") + "cccd-edge demo: " + line + "\n")
        sys.stdout.flush()

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM ends the demo as Ctrl-C does: every child is stopped

    signal.signal(signal.SIGTERM, on_term)
    if args.facilities < 1 or args.nodes < 1 or args.rate <= 0 or args.latency < 0:
        raise CommandError(
            "cannot start the demo", "--facilities, --nodes and --rate must be positive", code=EXIT_USAGE
        )
    scenario = Scenario(
        facilities=args.facilities,
        nodes=args.nodes,
        peak=args.rate * 3600.0,
        gateway_latency=(0.0, args.latency),
    )
    try:
        return demo.run(scenario, say, show, args.duration, args.broker)
    except demo.DemoError as exc:
        raise CommandError("cannot start the demo", str(exc)) from None


def _sim_run(args: argparse.Namespace) -> int:
    from sim import scenario as scenarios
    from tools import demo

    what = "cannot run the simulation"
    try:
        sc = scenarios.load(args.scenario) if args.scenario else scenarios.Scenario()
        for key in ("facilities", "nodes", "speed", "peak", "seed", "shape"):
            if getattr(args, key) is not None:
                setattr(sc, key, getattr(args, key))
        if args.duration is not None:
            sc.duration = scenarios.duration(args.duration, "--duration")
        if args.start is not None:
            scenarios.clock_minutes(args.start, "--start")
            sc.start = args.start
    except scenarios.ScenarioError as exc:
        raise CommandError(what, str(exc), "fix the scenario or the options", code=EXIT_USAGE) from None
    if sc.facilities < 1 or sc.nodes < 1 or sc.speed <= 0 or sc.peak < 0:
        raise CommandError(what, "--facilities, --nodes and --speed must be positive", code=EXIT_USAGE)
    if sc.duration is None:
        sc.duration = 3600.0  # an hour of simulated time unless told otherwise

    def say(line: str) -> None:
        sys.stdout.write("cccd-edge sim run: " + line + "\n")
        sys.stdout.flush()

    def show(line: str) -> None:
        if int(line.split(maxsplit=1)[0]) % 5 == 0:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return demo.run(sc, say, show, broker=args.broker)
    except demo.DemoError as exc:
        raise CommandError(what, str(exc)) from None


# --- collector ----------------------------------------------------------------------------------


def _collector_run(args: argparse.Namespace) -> int:
    import logging

    from collector import app
    from collector.config import ConfigError
    from collector.db import DatabaseError
    from collector.keystore import KeystoreError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return app.run(args.config)
    except ConfigError as exc:
        raise CommandError("cannot start the collector", str(exc), "fix the settings file") from None
    except KeystoreError as exc:
        raise CommandError("cannot start the collector", str(exc), "see `cccd-edge provision init`") from None
    except DatabaseError as exc:
        raise CommandError("cannot start the collector", str(exc), "check [store] url") from None


def _collector_store(
    args: argparse.Namespace, what: str, *, create: bool = True
) -> "tuple[CollectorConfig, Database]":
    """The collector's settings and its store, or the one clear line saying why not;
    ``create=False``: a SQLite store that does not exist is an error, not a new empty one."""
    from collector import config as collector_config
    from collector.db import DatabaseError, open_db

    try:
        cfg = collector_config.load(args.config)
        return cfg, open_db(cfg.store.url, create=create)
    except collector_config.ConfigError as exc:
        raise CommandError(f"cannot {what}", str(exc), "fix the settings file") from None
    except DatabaseError as exc:
        raise CommandError(f"cannot {what}", str(exc), "check [store] url") from None


def _fleet_tracker(cfg: "CollectorConfig", db: "Database") -> "FleetTracker":
    """The fleet as the store holds it (presence, registry, latest inventory and telemetry)."""
    from collector.keystore import Keystore, load_kek
    from collector.metrics import Metrics
    from collector.registry import Registry
    from collector.tracker import FleetTracker

    return FleetTracker(
        db, Registry(db, Keystore(load_kek(cfg.store.kek_file))), Metrics(), cfg.heartbeat_interval
    )


def _collector_fleet(args: argparse.Namespace) -> int:
    import time

    cfg, db = _collector_store(args, "show the fleet")
    try:
        tracker = _fleet_tracker(cfg, db)
        now = time.time()
        tracker.presence.tick(now)  # silence as of now; not saved: the running collector owns the state
        snap = tracker.snapshot(now)
    finally:
        db.close()
    if args.json:
        _print_json(
            {
                "devices": [_row_json(row) for row in snap.devices],
                "facilities": [vars(f) for f in snap.facilities],
            }
        )
        return EXIT_OK
    sys.stdout.write(
        f"{'facility':8} {'device':16} {'kind':5} {'state':10} {'up today':>8} {'up month':>8} "
        f"{'outbox':>6} {'drops':>5}  site\n"
    )
    for r in snap.devices:
        sys.stdout.write(
            f"{r.facility:8} {r.device:16} {r.kind:5} {r.state:10} {r.uptime_day:>8.1%} "
            f"{r.uptime_month:>8.1%} {_num(r.outbox):>6} {_num(r.drops):>5}  {r.site}\n"
        )
    for f in snap.facilities:
        sys.stdout.write(
            f"facility {f.facility}: {f.devices} devices, {f.online} online, {f.never_seen} never seen; "
            f"{f.qr_readers} QR readers, {f.chip_readers} chip readers, "
            f"{f.standard_readers} meeting the standard\n"
        )
    return EXIT_OK


def _collector_dead_letters(args: argparse.Namespace) -> int:
    import datetime

    from collector.forward import jobs

    _cfg, db = _collector_store(args, "list the dead letters")
    try:
        letters = jobs.dead_letters(db, args.kind, args.facility, limit=args.limit)
    finally:
        db.close()
    if args.json:
        _print_json([vars(d) for d in letters])
        return EXIT_OK
    if not letters:
        sys.stdout.write("no dead letters\n")
        return EXIT_OK
    vietnam = datetime.timezone(datetime.timedelta(hours=7))
    sys.stdout.write(
        f"{'facility':8} {'device':16} {'seq':>8} {'kind':9} {'tries':>5} {'died (UTC+7)':16}  why\n"
    )
    for d in letters:
        died = datetime.datetime.fromtimestamp(d.died, vietnam).strftime("%Y-%m-%d %H:%M")
        why = d.why.replace("\n", " ")
        sys.stdout.write(
            f"{d.facility:8} {d.device:16} {d.seq:>8} {d.kind:9} {d.attempts:>5} {died:16}  {why}\n"
        )
    sys.stdout.write(
        f"{len(letters)} dead letters; once the cause is fixed: cccd-edge collector replay "
        f"--config {args.config} --all (or --kind/--facility/--device/--seq)\n"
    )
    return EXIT_OK


def _collector_replay(args: argparse.Namespace) -> int:
    import time

    from collector.forward import jobs

    chosen = (args.kind, args.facility, args.device, args.seq)
    if not args.all and all(v is None for v in chosen):
        raise CommandError(
            "nothing replayed",
            "no dead letters were chosen",
            "name them with --kind/--facility/--device/--seq, or --all",
            code=EXIT_USAGE,
        )
    _cfg, db = _collector_store(args, "replay the dead letters")
    try:
        n = jobs.replay(db, time.time(), *chosen)
    finally:
        db.close()
    sys.stdout.write(f"{n} dead letters queued again; the running collector sends them now\n")
    return EXIT_OK


def _chip(args: argparse.Namespace) -> int:
    """``cccd-edge chip keys|read ...``: the agent's chip tools (agent/emrtd/__main__.py)."""
    from agent.emrtd.__main__ import main as chip_main

    return chip_main(args.rest, prog="cccd-edge chip")


def _agent(args: argparse.Namespace) -> int:
    """``cccd-edge agent --config NODE.json ...``: the Raspberry Pi node (agent/__main__.py)."""
    from agent.__main__ import main as agent_main

    agent_main(args.rest, prog="cccd-edge agent")
    return EXIT_OK


def _bench_load(args: argparse.Namespace) -> int:
    from tools import benchload
    from tools.demo import DemoError

    if args.nodes < 1 or args.rate <= 0 or args.seconds <= 0:
        raise CommandError(
            "cannot run the load bench", "--nodes, --rate and --seconds must be positive", code=EXIT_USAGE
        )

    def say(line: str) -> None:
        sys.stdout.write("… " + line + "\n")
        sys.stdout.flush()

    try:
        report = benchload.run(args.nodes, args.rate, args.seconds, say)
    except DemoError as exc:
        raise CommandError("cannot run the load bench", str(exc)) from None
    sys.stdout.write(benchload.format_report(report) + "\n")
    return EXIT_OK if report["lost"] == 0 else EXIT_FAILED


def _bench_chaos(args: argparse.Namespace) -> int:
    from tools import chaos
    from tools.demo import DemoError

    if args.seconds <= 0 or args.nodes < 3 or args.rate <= 0:
        raise CommandError(
            "cannot run the chaos bench", "--seconds and --rate > 0, --nodes >= 3", code=EXIT_USAGE
        )

    def say(line: str) -> None:
        sys.stdout.write("… " + line + "\n")
        sys.stdout.flush()

    try:
        report = chaos.run(args.seconds, args.nodes, args.rate, say)
    except DemoError as exc:
        raise CommandError("cannot run the chaos bench", str(exc)) from None
    sys.stdout.write(chaos.format_report(report) + "\n")
    return EXIT_OK if report.ok else EXIT_FAILED


def _bench_cluster(args: argparse.Namespace) -> int:
    from tools import benchcluster, rabbitmq

    if args.nodes < 1 or args.rate <= 0 or args.warmup < 0 or args.fault <= 0:
        raise CommandError(
            "cannot run the cluster bench", "--nodes, --rate and --fault must be positive", code=EXIT_USAGE
        )
    why = rabbitmq.available()
    if why is not None:
        raise CommandError("cannot run the cluster bench", why, "apt-get install rabbitmq-server")
    base = Path(tempfile.mkdtemp(prefix="cccd-cluster-"))
    try:
        report = benchcluster.run(base, args.nodes, args.rate, args.warmup, args.fault, _progress)
    except (benchcluster.ClusterRunError, rabbitmq.RabbitError) as exc:
        raise CommandError(
            "cannot run the cluster bench", str(exc).splitlines()[0], f"the logs are in {base}"
        ) from None
    sys.stdout.write(benchcluster.format_report(report))
    if report.ok and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        sys.stdout.write(f"  logs and stores kept in {base}\n")
    return EXIT_OK if report.ok else EXIT_FAILED


def _bench_fuzz(args: argparse.Namespace) -> int:
    from tools import fuzz

    targets = sorted(fuzz.TARGETS) if args.target == "all" else [args.target]
    if any(t not in fuzz.TARGETS for t in targets) or args.seconds <= 0:
        raise CommandError(
            "cannot fuzz",
            f"--target is one of {', '.join(sorted(fuzz.TARGETS))} or all; --seconds > 0",
            code=EXIT_USAGE,
        )
    found = 0
    for target in targets:
        sys.stdout.write(f"fuzzing {target} for {args.seconds:g} s ...\n")
        sys.stdout.flush()
        code, out = fuzz.run_atheris(target, args.seconds, grow=args.grow)
        done = [line for line in out.splitlines() if "DONE" in line]
        sys.stdout.write(
            f"  {target}: {'nothing found' if code == 0 else 'FOUND'}  {done[-1] if done else ''}\n"
        )
        if code != 0:
            found += 1
            sys.stdout.write(out[-3000:] + "\n")
    if found:
        sys.stdout.write(f"{found} targets broke their contract; the inputs are under {fuzz.FINDINGS}\n")
    return EXIT_FAILED if found else EXIT_OK


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _row_json(row: Any) -> dict[str, Any]:
    out = dict(vars(row))
    out["readers"] = [vars(r) for r in row.readers]
    return out


# --- report -------------------------------------------------------------------------------------

REPORT_FORMATS = ("xlsx", "csv", "md")


def _month(text: str) -> tuple[int, int]:
    from collector.report import ReportError, parse_month

    try:
        return parse_month(text)
    except ReportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _facility_code(text: str) -> str:
    if len(text) != 5 or not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError("--facility is the facility's 5-digit code (mã cơ sở KCB)")
    return text


def _report_monthly(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from collector import report
    from collector.keystore import KeystoreError

    what = "make the monthly report"
    (year, month), facility = args.month, args.facility
    cfg, db = _collector_store(args, what, create=False)
    try:
        if facility not in cfg.facilities:
            served = ", ".join(cfg.facilities)
            raise CommandError(
                f"cannot {what}",
                f"this collector does not serve facility {facility} (collector.facilities: {served})",
                "check --facility",
                code=EXIT_REJECTED,
            )
        made = report.build(db, _fleet_tracker(cfg, db), facility, year, month, time.time())
    except KeystoreError as exc:
        raise CommandError(f"cannot {what}", str(exc), "see `cccd-edge provision init`") from None
    except report.ReportError as exc:
        raise CommandError(
            f"cannot {what}", str(exc), "choose a month that has begun", code=EXIT_REJECTED
        ) from None
    finally:
        db.close()
    if args.format == "xlsx":
        data = report.to_xlsx(made)
    else:
        data = report.to_csv(made) if args.format == "csv" else report.to_markdown(made).encode("utf-8")
        if args.output is None:  # text: to stdout
            sys.stdout.buffer.write(data)
            return EXIT_OK
    path = Path(args.output or f"bao-cao-de-an-06-{facility}-{year}-{month:02d}.xlsx")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}", exc.strerror or str(exc), "check --output") from None
    sys.stdout.write(f"the {year}-{month:02d} report of facility {facility} is in {path}\n")
    return EXIT_OK


def _add_report(sub: Any) -> None:
    reports = sub.add_parser("report", help="reports for the health department").add_subparsers(
        dest="report_command", metavar="WHAT", parser_class=_Parser
    )
    reports.required = True
    p = reports.add_parser(
        "monthly",
        help="the monthly Đề án 06 report of one facility (xlsx, csv, md)",
        description="The monthly Đề án 06 report for the provincial health department (the template's "
        "§II.3): insured visits by CCCD/VNeID over all insured visits, QR readers meeting the standard and "
        "chip readers, visits by CCCD/VNeID with insurance information returned against the 70% target, and "
        "the readers' uptime; labels in Vietnamese, no personal data. xlsx goes to --output (default "
        "bao-cao-de-an-06-FACILITY-YYYY-MM.xlsx here), csv and md to stdout without one.",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--facility", required=True, type=_facility_code, help="the facility's 5-digit code")
    p.add_argument("--month", required=True, type=_month, metavar="YYYY-MM", help="the month, e.g. 2026-11")
    p.add_argument("--format", choices=REPORT_FORMATS, default="xlsx", help="xlsx (default), csv or md")
    p.add_argument("--output", metavar="PATH", help="the file to write")
    p.set_defaults(handler=_report_monthly)


# --- provision ----------------------------------------------------------------------------------

RELOAD_HINT = "then make the broker re-read its files: systemctl reload mosquitto"


def _provision(args: argparse.Namespace) -> int:
    from collector.registry import RegistryError
    from tools import provision

    try:
        return _provision_action(args, provision)
    except (provision.ProvisionError, RegistryError) as exc:
        what = {
            "init": "initialise the facility",
            "list": "list the devices",
            "rabbitmq": "write the RabbitMQ definitions",
        }.get(args.provision_command, f"{args.provision_command} the device")
        raise CommandError(f"cannot {what}", str(exc), code=EXIT_REJECTED) from None


def _provision_action(args: argparse.Namespace, provision: Any) -> int:
    action = args.provision_command
    if action == "init":
        home = provision.init(
            args.home,
            args.facility,
            args.broker_host,
            args.port,
            mtls=args.mtls,
            run_here=args.run_here,
            broker_layout=args.broker_layout,
        )
        sys.stdout.write(f"facility {args.facility} initialised in {home.path}\n")
        sys.stdout.write(f"broker files: {home.broker.conf.parent} (see broker_config/mosquitto/README.md)\n")
    elif action == "device":
        path = provision.device(args.home, args.facility, args.id, args.kind, args.site, args.out)
        sys.stdout.write(f"{args.facility}/{args.id} provisioned; node configuration (secret!) in {path}\n")
        sys.stdout.write(RELOAD_HINT + "\n")
    elif action == "revoke":
        provision.revoke(args.home, args.facility, args.id)
        sys.stdout.write(f"{args.facility}/{args.id} revoked; its reads are refused from now on\n")
        sys.stdout.write(RELOAD_HINT + "\n")
    elif action == "rotate":
        path = provision.rotate(args.home, args.facility, args.id, args.grace, args.out)
        sys.stdout.write(f"{args.facility}/{args.id} has a new secret; the old one is accepted for ")
        sys.stdout.write(f"{args.grace:g} s. New node configuration in {path}\n")
        sys.stdout.write(RELOAD_HINT + "\n")
    elif action == "rabbitmq":
        data = provision.rabbitmq_definitions(args.home, args.facility)
        text = json.dumps(data, indent=2) + "\n"
        if args.out:
            from tools.brokerfiles import write_file_atomic

            write_file_atomic(Path(args.out), text, 0o600)
            sys.stdout.write(
                f"RabbitMQ definitions of {args.facility} ({len(data['users']) - 1} devices) in {args.out}; "
                "load them with: rabbitmqctl import_definitions " + args.out + "\n"
            )
        else:
            sys.stdout.write(text)
    elif action == "list":
        for d in provision.Home(args.home).registry().devices():
            sys.stdout.write(f"{d.facility}\t{d.device}\t{d.kind}\t{d.state}\t{d.site}\n")
    return EXIT_OK


def _add_provision(sub: Any) -> None:
    prov = sub.add_parser("provision", help="a facility's keys and broker files, and its devices")
    actions = prov.add_subparsers(dest="provision_command", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    home = _Parser(add_help=False)
    home.add_argument("--home", default="/etc/cccd-edge", help="the facility home (default /etc/cccd-edge)")
    dev = _Parser(add_help=False)
    dev.add_argument("--facility", required=True, help="the facility's 5-digit code")
    dev.add_argument("--id", required=True, help="the device id, [a-z0-9-]{1,32}")

    p = actions.add_parser("init", parents=[home], help="create a facility home: KEK, CA, broker, collector")
    p.add_argument("--facility", required=True, help="the facility's 5-digit code")
    p.add_argument("--broker-host", default="localhost", help="the name nodes use to reach the broker")
    p.add_argument("--port", type=int, default=8883, help="the broker's TLS port")
    p.add_argument("--mtls", action="store_true", help="nodes also need a client certificate")
    p.add_argument(
        "--run-here", action="store_true", help="the broker runs from this directory (demo, tests)"
    )
    p.add_argument(
        "--broker-layout",
        choices=["home", "debian"],
        default="home",
        help="where the broker's files go: HOME/broker, or where Debian's mosquitto reads them",
    )
    p = actions.add_parser("device", parents=[home, dev], help="provision a node, write its configuration")
    p.add_argument("--kind", required=True, choices=["esp32", "rpi"], help="the node's hardware")
    p.add_argument("--site", required=True, help="where it stands, e.g. 'Quầy 3 – Khoa Khám bệnh'")
    p.add_argument("--out", help="where to write the node configuration (default: HOME/nodes/)")
    actions.add_parser("revoke", parents=[home, dev], help="refuse a device from now on")
    p = actions.add_parser("rotate", parents=[home, dev], help="give a device a new secret")
    p.add_argument("--grace", type=float, default=86400.0, help="seconds the old secret is still accepted")
    p.add_argument("--out", help="where to write the new node configuration")
    actions.add_parser("list", parents=[home], help="the provisioned devices")
    p = actions.add_parser(
        "rabbitmq",
        parents=[home],
        help="the facility's RabbitMQ definitions: accounts, permissions, quorum queues",
        description="Write the definitions a RabbitMQ cluster needs for this facility (the collector "
        "and every active device, their permissions, the two quorum queues and their bindings), for "
        "`rabbitmqctl import_definitions`. Run it again after provisioning or revoking a device. See "
        "broker_config/rabbitmq/README.md.",
    )
    p.add_argument("--facility", required=True, help="the facility's 5-digit code")
    p.add_argument("--out", help="the file to write (mode 0600: it holds password hashes); default stdout")
    prov.set_defaults(handler=_provision)


# --- sim ----------------------------------------------------------------------------------------


def _serve(server: Any, what: str, where: str, banner: Callable[[], str], stop: Callable[[], None]) -> int:
    """Start a fake of sim/, print ``banner()``, serve until Ctrl-C, then ``stop()``."""
    import threading

    try:
        server.start()
    except OSError as exc:
        stop()
        raise CommandError(
            f"cannot start the {what}", f"{where}: {exc.strerror}", "pick another --port"
        ) from None
    sys.stdout.write(banner() + "Ctrl-C stops it.\n")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return EXIT_OK


def _sim_bhxh(args: argparse.Namespace) -> int:
    from sim import bhxh

    try:
        from sim import citizens
    except ModuleNotFoundError as exc:
        if exc.name != "sim.citizens":
            raise
        raise CommandError(
            "cannot start the fake BHXH gateway",
            "the synthetic citizens (sim/citizens.py) are missing from this installation",
            "reinstall cccd-edge from a complete checkout",
        ) from None
    if args.citizens < 1:
        raise CommandError(
            "cannot start the fake BHXH gateway", "--citizens must be at least 1", code=EXIT_USAGE
        )
    people = citizens.population(args.citizens, seed=args.seed)
    gateway = bhxh.BhxhGateway(
        people,
        username=args.username,
        password=args.password,
        officers=args.officer,
        latency=args.latency,
        error_rate=args.error_rate,
        token_ttl=args.token_ttl,
        host=args.host,
        port=args.port,
        seed=args.seed,
    )
    return _serve(
        gateway,
        "fake BHXH gateway",
        f"{args.host}:{args.port}",
        lambda: bhxh.banner(gateway, people, args.username),
        gateway.stop,
    )


def _sim_his(args: argparse.Namespace) -> int:
    import sqlite3

    from sim import his, hl7his

    what = "cannot start the fake HIS"
    if not 0 <= args.port <= 65535:
        raise CommandError(what, "--port must be from 0 to 65535", code=EXIT_USAGE)
    try:
        server = his.FhirHis(
            db=args.db,
            host=args.host,
            port=args.port,
            latency=args.latency,
            transactions=not args.no_transactions,
        )
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("fhir", "pydantic")):
            raise
        raise CommandError(
            what, "fhir.resources is missing: it validates what the HIS receives", "install cccd-edge[dev]"
        ) from None
    except sqlite3.Error as exc:
        raise CommandError(what, f"the store {args.db}: {exc}", "check --db") from None
    mllp = None
    if args.mllp_port is not None:  # the same HIS, also taking HL7 v2 ADT^A04 over MLLP
        if not 0 <= args.mllp_port <= 65535:
            server.close()
            raise CommandError(what, "--mllp-port must be from 0 to 65535", code=EXIT_USAGE)
        mllp = hl7his.Hl7His(args.db, host=args.host, port=args.mllp_port, latency=args.latency)
        try:
            mllp.start()
        except OSError as exc:
            mllp.close()
            server.close()
            raise CommandError(
                what, f"{args.host}:{args.mllp_port}: {exc.strerror}", "pick another --mllp-port"
            ) from None

    def banner() -> str:
        return his.banner(server, args.db) + (hl7his.banner(mllp) if mllp is not None else "")

    def stop() -> None:
        server.close()
        if mllp is not None:
            mllp.close()

    return _serve(server, "fake HIS", f"{args.host}:{args.port}", banner, stop)


def _latency(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError("--latency is seconds, MIN-MAX or one value (e.g. 1-3)") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError("--latency needs 0 <= MIN <= MAX")
    return pair


def _number(name: str, low: float, high: float = float("inf")) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be a number from {low:g} to {high:g}")
        return value

    return parse


def _officer(text: str) -> tuple[str, str]:
    name, _, cccd = text.rpartition("=")
    if not name.strip() or len(cccd) != 12 or not cccd.isascii() or not cccd.isdigit():
        raise argparse.ArgumentTypeError("--officer is NAME=CCCD, the CCCD 12 digits")
    return name.strip(), cccd


def _add_sim(sub: Any) -> None:
    sim = sub.add_parser("sim", help="the simulated outside world, for engineers").add_subparsers(
        dest="sim_command", metavar="WHAT", parser_class=_Parser
    )
    sim.required = True
    p = sim.add_parser(
        "run",
        help="a simulated reception day: facilities, nodes, traffic, faults; then a reconciliation",
        description="Run facilities (a broker and collector each), the fake BHXH gateway and HIS, and "
        "simulated reader nodes with the traffic and faults of a scenario file (sim/scenario.py), at "
        "--speed times real time; at the end, reconcile what the nodes accepted with what the "
        "collectors stored and the HIS registered. Exit status 1 if a read was lost or a visit "
        "registered twice.",
    )
    p.add_argument("--scenario", metavar="FILE", help="a scenario TOML file (options below override it)")
    p.add_argument("--facilities", type=int, help="facilities (default 1)")
    p.add_argument("--nodes", type=int, help="reader nodes per facility (default 20)")
    p.add_argument("--speed", type=float, help="simulated seconds per real second (default 1)")
    p.add_argument("--duration", help='simulated time to run, e.g. "2h" (default 1h)')
    p.add_argument("--start", help='simulated local start time, e.g. "07:00" (default: now)')
    p.add_argument("--shape", choices=("flat", "morning"), help="traffic over the day (default flat)")
    p.add_argument("--peak", type=float, help="patients per counter per simulated hour at the peak")
    p.add_argument("--seed", type=int, help="seed of the run's randomness")
    p.add_argument(
        "--broker",
        choices=("embedded", "mosquitto"),
        default="embedded",
        help="the embedded broker (default: nothing to install) or Mosquitto (the production broker)",
    )
    p.set_defaults(handler=_sim_run)
    p = sim.add_parser(
        "bhxh",
        help="a fake BHXH gateway (token + KQNhanLichSuKCB2024) over synthetic citizens",
        description="Serve a fake of the BHXH assessment gateway, speaking the real API, backed by "
        "synthetic citizens, until Ctrl-C. Prints its URL and sample citizens to query.",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free one, printed)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--username", required=True, help="the gateway account's username")
    p.add_argument("--password", required=True, help="its password (clients send its MD5 hex)")
    p.add_argument("--citizens", type=int, default=200, metavar="N", help="synthetic citizens (200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the citizens and of the randomness (0)")
    p.add_argument(
        "--latency", type=_latency, default=(0.0, 0.0), metavar="MIN-MAX", help="seconds, e.g. 1-3"
    )
    p.add_argument(
        "--error-rate",
        type=_number("--error-rate", 0, 1),
        default=0.0,
        help="fraction of checks answered 500/101",
    )
    p.add_argument(
        "--token-ttl", type=_number("--token-ttl", 1), default=3600.0, help="token lifetime, seconds (3600)"
    )
    p.add_argument(
        "--officer",
        type=_officer,
        action="append",
        metavar="NAME=CCCD",
        help="an officer allowed to check (repeatable); without it, any well-formed officer is",
    )
    p.set_defaults(handler=_sim_bhxh)
    p = sim.add_parser(
        "his",
        help="a fake HIS: a FHIR R4 server (Patient, Coverage, Encounter) in SQLite",
        description="Serve a fake hospital information system, a FHIR R4 server for what the collector "
        "registers (conditional create and update, search by identifier, validation), until Ctrl-C. "
        "Prints its base URL.",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free one, printed)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--db", default=":memory:", metavar="PATH", help="SQLite file of the store (default: memory)"
    )
    p.add_argument(
        "--latency", type=_latency, default=(0.0, 0.0), metavar="MIN-MAX", help="seconds, e.g. 0.1-0.5"
    )
    p.add_argument(
        "--mllp-port",
        type=int,
        metavar="PORT",
        help="also take HL7 v2.5 ADT^A04 over MLLP on this TCP port (0: a free one, printed)",
    )
    p.add_argument(
        "--no-transactions",
        action="store_true",
        help="a HIS without FHIR transactions: not declared in its metadata, POST [base] refused",
    )
    p.set_defaults(handler=_sim_his)


# --- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cccd-edge",
        description="Reader nodes, broker setup and collector for receiving patients by CCCD / VNeID.",
        epilog="Exit codes: 0 done, 1 failed, 2 input rejected, 64 bad command line.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the detail of a failure")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    qr = sub.add_parser("qr", help="QR codes as scanners send them").add_subparsers(
        dest="qr_command", metavar="ACTION", parser_class=_Parser
    )
    qr.required = True
    p = qr.add_parser(
        "parse",
        help="parse scanned bytes from stdin, print JSON",
        description="Read the bytes a scanner sent from stdin and print the parsed identity as JSON, "
        "or the rejection's reason and Vietnamese display text (exit status 2).",
    )
    p.add_argument("--source", choices=["vneid"], help="the code was shown by the VNeID app")
    p.set_defaults(handler=_qr_parse)

    env = sub.add_parser("envelope", help="seal and open COSE_Encrypt0 envelopes").add_subparsers(
        dest="envelope_command", metavar="ACTION", parser_class=_Parser
    )
    env.required = True
    common = _Parser(add_help=False)
    common.add_argument("--key", required=True, type=_hex("--key", 32), help="direction key, 64 hex digits")
    common.add_argument(
        "--base-iv", required=True, type=_hex("--base-iv", 13), help="direction base IV, 26 hex digits"
    )
    common.add_argument("--topic", required=True, help="the message's topic (the external AAD)")
    common.add_argument("--hex", action="store_true", help="read and write hex instead of raw bytes")
    p = env.add_parser(
        "seal",
        parents=[common],
        help="seal a CBOR payload from stdin",
        description="Read a CBOR payload from stdin and write its COSE_Encrypt0 to stdout.",
    )
    p.add_argument("--kid", required=True, help="the sending device's id")
    p.add_argument("--seq", required=True, type=int, help="the sender's sequence number")
    p.set_defaults(handler=_envelope_seal)
    p = env.add_parser(
        "open",
        parents=[common],
        help="open a COSE_Encrypt0 from stdin, print JSON",
        description="Read a COSE_Encrypt0 from stdin, authenticate and decrypt it, print the payload "
        "as JSON (bytes as h'..'); exit status 2 with the reason when it does not open.",
    )
    p.set_defaults(handler=_envelope_open)

    bench = sub.add_parser("bench", help="measure speed and memory").add_subparsers(
        dest="bench_command", metavar="WHAT", parser_class=_Parser
    )
    bench.required = True
    p = bench.add_parser(
        "core",
        help="protocol core: reads per second (CPython), heap per read (MicroPython)",
        description="Measure the protocol core: parse + pseudonym + seal + open per second under "
        "CPython on one core, and the MicroPython heap one read cycle allocates.",
    )
    p.add_argument("--seconds", type=float, default=3.0, help="time per CPython measurement")
    p.add_argument("--no-micropython", action="store_true", help="skip the MicroPython measurement")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(handler=_bench_core)
    p = bench.add_parser(
        "ingest",
        help="publishers → Mosquitto (TLS) → collector (SQLite): reads committed per second",
        description="Publisher processes send sealed reads (QoS 1, TLS) to a real Mosquitto; measure the "
        "collector's committed reads per second against a bare subscriber that only counts them, in a "
        "temporary facility home. Needs mosquitto.",
    )
    p.add_argument("--publishers", type=int, default=4, help="publisher processes, one device each")
    p.add_argument("--reads", type=int, default=40_000, help="reads in all, split over the publishers")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(handler=_bench_ingest)

    fw = sub.add_parser("firmware", help="the ESP32 node's MicroPython image").add_subparsers(
        dest="firmware_command", metavar="ACTION", parser_class=_Parser
    )
    fw.required = True
    p = fw.add_parser(
        "build",
        help="compile cccd/ and firmware/ with mpy-cross, write the image and a freeze manifest",
        description="Compile every module of cccd/ and firmware/ to .mpy with mpy-cross 1.27 into "
        "OUT/lib (copy it onto the node with mpremote), write OUT/manifest.py (a freeze manifest) and "
        "OUT/image.json (sizes, SHA-256), and print the sizes.",
    )
    p.add_argument("--out", default="build/firmware", help="output directory (default build/firmware)")
    p.set_defaults(handler=_firmware_build)
    p = fw.add_parser(
        "flash",
        help="put the built image and a node's configuration on a board (esptool, mpremote)",
        description="Copy OUT/lib, OUT/main.py, the node configuration file (as :node.json) and the "
        "Wi-Fi file (as :wifi.json) onto the board with mpremote, after writing MicroPython's own "
        "image with esptool when --micropython is given. --dry-run prints the commands only.",
    )
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--out", default="build/firmware", help="the built image (default build/firmware)")
    p.add_argument("--config", required=True, help="the node configuration file from provision device")
    p.add_argument("--wifi", required=True, help='JSON {"ssid": ..., "password": ...}')
    p.add_argument("--micropython", help="MicroPython 1.27's ESP32 .bin, to write first")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.set_defaults(handler=_firmware_flash)

    _add_provision(sub)
    _add_sim(sub)
    _add_report(sub)
    from tools import webcmd  # the dashboard's commands: web run, web user add/list/remove

    webcmd.add_parser(sub, sys.modules[__name__])

    col = sub.add_parser("collector", help="the facility server's collector").add_subparsers(
        dest="collector_command", metavar="ACTION", parser_class=_Parser
    )
    col.required = True
    p = col.add_parser(
        "run",
        help="run the collector until SIGTERM / Ctrl-C",
        description="Connect to the facility broker, verify, de-duplicate and store what the nodes send.",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.set_defaults(handler=_collector_run)
    p = col.add_parser(
        "fleet",
        help="the devices: presence, uptime, outbox, readers",
        description="Show every provisioned device (online, offline, never seen), its uptime today and "
        "this month, its outbox, and per facility the QR and chip readers (the monthly report's counts).",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_collector_fleet)
    kinds = ("insurance", "his")
    p = col.add_parser(
        "dead-letters",
        help="the jobs that failed for good: checks and registrations IT must look at",
        description="List the insurance checks and HIS registrations that kept failing past their age "
        "or that the destination refused, with the reason; replay them once the cause is fixed.",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--kind", choices=kinds, help="only this destination")
    p.add_argument("--facility", help="only this facility code")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_collector_dead_letters)
    p = col.add_parser(
        "replay",
        help="send dead letters again",
        description="Queue the chosen dead letters again as new jobs; the running collector sends them "
        "within a second. Choose them with filters, or --all.",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--all", action="store_true", help="every dead letter")
    p.add_argument("--kind", choices=kinds, help="only this destination")
    p.add_argument("--facility", help="only this facility code")
    p.add_argument("--device", help="only this device")
    p.add_argument("--seq", type=int, help="only this read (with --device)")
    p.set_defaults(handler=_collector_replay)

    p = bench.add_parser(
        "load",
        help="many nodes on one broker, then the reconnect storm after a broker restart",
        description="N simulated nodes (TLS each, heartbeat 30 s, 50 reads/s in all) on one "
        "Mosquitto with the collector: connect time, the collector's CPU and memory, tap-to-result, "
        "and the reconnect storm after the broker restarts; exit status 1 if a read was lost.",
    )
    p.add_argument("--nodes", type=int, default=5000, help="simulated nodes (default 5000)")
    p.add_argument("--rate", type=float, default=50.0, help="reads per second in all (default 50)")
    p.add_argument("--seconds", type=float, default=60.0, help="the steady window (default 60)")
    p.set_defaults(handler=_bench_load)

    p = bench.add_parser(
        "chaos",
        help="faults one at a time and together, then the reconciliation: nothing lost, nothing twice",
        description="One facility (Mosquitto, the collector, the fake gateway and HIS) and simulated "
        "nodes scanning all the time; the broker restarted, the collector SIGKILLed, the HIS and the "
        "gateway down, a node offline, power loss at nodes, and several together. Prints each "
        "fault's delay and the reconciliation; exit status 1 if a read was lost or registered twice.",
    )
    p.add_argument("--seconds", type=float, default=10.0, help="how long each fault lasts (default 10)")
    p.add_argument("--nodes", type=int, default=5, help="simulated nodes (default 5)")
    p.add_argument("--rate", type=float, default=2.0, help="scans per second per node (default 2)")
    p.set_defaults(handler=_bench_chaos)

    p = bench.add_parser(
        "cluster",
        help="a RabbitMQ cluster, two collectors competing; one broker node and one collector killed",
        description="Three RabbitMQ nodes (Debian's rabbitmq-server, MQTT plugin, quorum queues) on "
        "this machine, two collectors consuming over AMQP, the fake gateway and HIS, simulated nodes "
        "through a TCP balancer. Under load the reads' queue leader and one collector are SIGKILLed; "
        "then everything drains and is reconciled: exit status 1 if a read was lost or registered "
        "twice. Runs the nodes as the user rabbitmq when started as root.",
    )
    p.add_argument("--nodes", type=int, default=20, help="simulated reader nodes (default 20)")
    p.add_argument("--rate", type=float, default=20.0, help="reads per second in all (default 20)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds with everything up (default 10)")
    p.add_argument("--fault", type=float, default=20.0, help="seconds with one node and one collector down")
    p.add_argument("--keep", action="store_true", help="keep the logs and stores even when it passes")
    p.set_defaults(handler=_bench_cluster)

    p = bench.add_parser(
        "fuzz",
        help="coverage-guided fuzzing of the parsers that take outside bytes",
        description="Run atheris (libFuzzer) on each parser (cbor, envelope, read, qr, ack) seeded "
        "with tests/fuzz/corpus; a rejection must be the boundary's own error with a reason. With "
        "--grow the new interesting inputs join the corpus. Exit status 1 if anything was found; "
        "the input is kept under .artifacts/fuzz/.",
    )
    p.add_argument("--target", default="all", help="cbor, envelope, read, qr, ack or all (default all)")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds per target (default 60)")
    p.add_argument("--grow", action="store_true", help="add what it finds interesting to the corpus")
    p.set_defaults(handler=_bench_fuzz)

    p = bench.add_parser(
        "counter",
        help="tap-to-result latency at the counter, gateway fast and slow",
        description="Virtual nodes scan at a steady rate against the whole facility side; prints p50/p99 "
        "of the time from a read to its first Result (pending or final) and to the final one.",
    )
    p.add_argument("--nodes", type=int, default=20, help="virtual reader nodes (default 20)")
    p.add_argument("--rate", type=float, default=100.0, help="reads per second in all (default 100)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per phase (default 20)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(handler=_bench_counter)

    p = bench.add_parser(
        "nodered",
        help="the same load through a Node-RED flow (plain JSON, no persistence) and through cccd-edge",
        description="Offer the same reads at the same rate, on one Mosquitto each, to a Node-RED flow "
        "(MQTT in → POST Patient → POST Encounter to the fake HIS; tools/nodered/flow.json) and to "
        "cccd-edge (sealed, stored, checked with the fake BHXH gateway, registered exactly once); print "
        "visits registered in the HIS per second over the steady window, the ratio, and what each lost "
        "when its consumer was SIGKILLed at the window's end. Installs Node-RED with npm into "
        ".cache/nodered on first use. Exit status 1 if cccd-edge lost a read or registered one twice.",
    )
    p.add_argument("--rate", type=float, default=400.0, help="reads per second offered (default 400)")
    p.add_argument("--seconds", type=float, default=30.0, help="the measured window (default 30)")
    p.add_argument("--nodes", type=int, default=4, help="publishing nodes (default 4)")
    p.add_argument("--his-latency", default="0.02-0.2", help="the fake HIS's answer time, LOW-HIGH s")
    p.add_argument("--drain", type=float, default=300.0, help="seconds to wait for the backlog (default 300)")
    p.add_argument("--no-kill", action="store_true", help="do not SIGKILL the consumers")
    p.add_argument(
        "--his-transaction",
        choices=("auto", "on", "off"),
        nargs="?",
        const="on",
        default="auto",
        help="cccd-edge's [his] transaction: auto (the default: as the HIS declares; the fake HIS "
        "declares transactions), on (one transaction Bundle a visit; the option alone), off (three "
        "conditional updates)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(handler=_bench_nodered)

    p = sub.add_parser(
        "chip",
        add_help=False,
        help="for engineers debugging a chip reader: BAC keys, read a CCCD's chip (see `chip --help`)",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(handler=_chip)
    p = sub.add_parser(
        "agent",
        add_help=False,
        help="run the Raspberry Pi reader node (QR and CCCD chip; see `agent --help`)",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(handler=_agent)

    p = sub.add_parser(
        "demo",
        help="run the whole system locally with a live view",
        description="Provision facilities in a temporary directory and run Mosquitto and the collector "
        "of each, the fake BHXH gateway and HIS, and simulated reader nodes, with a live view; Ctrl-C "
        "or --duration ends it with a summary (exit status 1 if an accepted read was lost or a visit "
        "registered twice).",
    )
    p.add_argument("--facilities", type=int, default=2, help="facilities, a broker and collector each (2)")
    p.add_argument("--nodes", type=int, default=10, help="virtual reader nodes per facility (default 10)")
    p.add_argument("--rate", type=float, default=0.5, help="scans per second per node (default 0.5)")
    p.add_argument("--duration", type=float, help="seconds to run, without the live view; then a summary")
    p.add_argument("--latency", type=float, default=1.0, help="the fake gateway's longest answer time, s")
    p.add_argument(
        "--broker",
        choices=("embedded", "mosquitto"),
        default="embedded",
        help="the embedded broker (default: nothing to install) or Mosquitto (the production broker)",
    )
    p.set_defaults(handler=_demo)
    return parser


PASSTHROUGH = ("chip", "agent")  # their own parsers take the rest of the line (and --help)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in PASSTHROUGH:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.rest = [*args.rest, *extra]
    handler: Handler = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        sys.stderr.write(exc.line() + "\n")
        if args.verbose:
            traceback.print_exc()
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        sys.stderr.write(
            f"cccd-edge: {args.command} failed — {type(exc).__name__}: {exc} — rerun with --verbose\n"
        )
        if args.verbose:
            traceback.print_exc()
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
