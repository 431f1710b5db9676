"""``cccd-edge web``: the operators' dashboard (collector/web) and its users.

    cccd-edge web run --config collector.toml [--host 127.0.0.1] [--port 8080]
    cccd-edge web user add --config collector.toml --name it-01      # password from stdin or a prompt
    cccd-edge web user list --config collector.toml [--json]
    cccd-edge web user remove --config collector.toml --name it-01

A password never goes on the command line (it would show in ``ps`` and the shell's history): it is
read from standard input when that is not a terminal (first line), else asked for twice.

``add_parser`` takes the command-line module that is running (``tools.cli``, or ``__main__`` under
``python -m tools.cli``), whose ``CommandError`` its ``main`` catches and whose helpers these
commands share.
"""

import argparse
import contextlib
import getpass
import json
import signal
import sys
import threading
from functools import partial
from types import ModuleType
from typing import Any

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_parser(sub: Any, cli: ModuleType) -> None:
    web = sub.add_parser("web", help="the operators' dashboard: serve it, manage its users").add_subparsers(
        dest="web_command", metavar="ACTION", parser_class=cli._Parser
    )
    web.required = True
    p = web.add_parser(
        "run",
        help="serve the dashboard until SIGTERM / Ctrl-C",
        description="Serve the dashboard (fleet, read volume, outcomes, alerts) from the collector's "
        "store, read-only, in a process of its own. Users log in: add them with `web user add`.",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: a free one)")
    p.set_defaults(handler=partial(_run, cli))

    users = web.add_parser("user", help="the dashboard's users").add_subparsers(
        dest="user_command", metavar="ACTION", parser_class=cli._Parser
    )
    users.required = True
    p = users.add_parser(
        "add",
        help="add a user; the password comes from stdin or a prompt",
        description="Add a dashboard user. The password is read from standard input (its first line) "
        "when that is not a terminal, else asked for twice; at least 10 characters.",
    )
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--name", required=True, help="the user name: a-z 0-9 . _ -")
    p.set_defaults(handler=partial(_user_add, cli))
    p = users.add_parser("list", help="the users")
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=partial(_user_list, cli))
    p = users.add_parser("remove", help="remove a user; their sessions end at their next request")
    p.add_argument("--config", required=True, help="the collector's TOML settings file")
    p.add_argument("--name", required=True, help="the user name")
    p.set_defaults(handler=partial(_user_remove, cli))


def _run(cli: ModuleType, args: argparse.Namespace) -> int:
    import logging

    from collector.config import ConfigError
    from collector.db import DatabaseError
    from collector.keystore import KeystoreError
    from collector.web import WebServer, open_dashboard

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    what = "cannot start the dashboard"
    if not 0 <= args.port <= 65535:
        raise cli.CommandError(what, "--port must be from 0 to 65535", code=cli.EXIT_USAGE)
    try:
        app, db = open_dashboard(args.config)
    except ConfigError as exc:
        raise cli.CommandError(what, str(exc), "fix the settings file") from None
    except KeystoreError as exc:
        raise cli.CommandError(what, str(exc), "see `cccd-edge provision init`") from None
    except DatabaseError as exc:
        raise cli.CommandError(what, str(exc), "check [store] url") from None
    server = WebServer(app, args.host, args.port)
    try:
        server.start()
    except OSError as exc:
        db.close()
        where = f"{args.host}:{args.port}: {exc.strerror}"
        raise cli.CommandError(what, where, "pick another --port") from None
    try:
        _announce(app, server, args)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    finally:
        server.stop()
        db.close()
    return 0


def _announce(app: Any, server: Any, args: argparse.Namespace) -> None:
    sys.stdout.write(f"dashboard at {server.url}/ — Ctrl-C stops it\n")
    if not app.users.all():
        sys.stdout.write(
            f"no users yet: add one with cccd-edge web user add --config {args.config} --name NAME\n"
        )
    if args.host not in LOOPBACK and not app.settings.secure_cookie:
        sys.stdout.write(
            "warning: plain HTTP on a network address: passwords and sessions cross the network in "
            "clear; serve it behind a TLS proxy and set [web] secure_cookie = true\n"
        )
    sys.stdout.flush()


def _password(cli: ModuleType) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise cli.CommandError("cannot add the user", "the two passwords differ", code=cli.EXIT_REJECTED)
    return first


def _user_add(cli: ModuleType, args: argparse.Namespace) -> int:
    from collector.web import UserError, Users

    password = _password(cli)
    _cfg, db = cli._collector_store(args, "add the user")
    try:
        Users(db).add(args.name, password)
    except UserError as exc:
        raise cli.CommandError("cannot add the user", str(exc), code=cli.EXIT_REJECTED) from None
    finally:
        db.close()
    sys.stdout.write(f"user {args.name} added; they log in at the dashboard (cccd-edge web run)\n")
    return 0


def _user_list(cli: ModuleType, args: argparse.Namespace) -> int:
    import datetime

    from collector.fleet import FACILITY_TZ
    from collector.web import Users

    _cfg, db = cli._collector_store(args, "list the users")
    try:
        users = Users(db).all()
    finally:
        db.close()
    if args.json:
        sys.stdout.write(json.dumps([vars(u) for u in users], indent=2) + "\n")
        return 0
    if not users:
        sys.stdout.write("no users\n")
    for u in users:
        created = datetime.datetime.fromtimestamp(u.created, FACILITY_TZ).strftime("%Y-%m-%d %H:%M")
        sys.stdout.write(f"{u.name:32} added {created} (UTC+7)\n")
    return 0


def _user_remove(cli: ModuleType, args: argparse.Namespace) -> int:
    from collector.web import UserError, Users

    _cfg, db = cli._collector_store(args, "remove the user")
    try:
        Users(db).remove(args.name)
    except UserError as exc:
        raise cli.CommandError("cannot remove the user", str(exc), code=cli.EXIT_REJECTED) from None
    finally:
        db.close()
    sys.stdout.write(f"user {args.name} removed; their open sessions end at their next request\n")
    return 0
