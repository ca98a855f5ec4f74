"""`hall-hub`: the hub daemon and the inspector's and manager's commands."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from hub import cli_broker, cli_complaints, cli_feed, cli_staff, cli_users, cli_window, operators
from hub import config as hub_config
from hub.api_objects import attendance_object, log_object
from hub.audit import head_problem, render_entry, verify_log
from hub.city.cli import CITY_COMMANDS, city_command
from hub.city.config import is_city_config, load_hall
from hub.config import HubConfig
from hub.domain import LOG_KINDS
from hub.export import export_bundle, signed_head
from hub.hall import hall_day
from hub.leave import record_leave
from hub.reports import attendance_table
from hub.roster_log import config_problem, ensure_logged
from hub.store.store import Store
from hub.text import EMPTY
from hub.views import Names, leave_text, quarantine_text
from wire import clock as clocks
from wire import keyfile
from wire.configfile import ConfigError, example_key_warning

if TYPE_CHECKING:
    from hub.web.serve import WebServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hall-hub", description="大厅中心 hall hub")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", required=True, help="the hub's TOML config, or a city's (with --hall)")
        p.add_argument("--hall", help="with a city config: the hall of its [[halls]] to run on (given a "
                                      "hall's own config: its hall, or refused)")
        p.add_argument("--clock", help="simulated hall clock: START,speed=N,anchor=EPOCH (demo, tests)")
        return p

    run = with_config(sub.add_parser("run", help="run the hub (SIGTERM stops it cleanly)"))
    run.add_argument("--log-level", default="INFO")
    with_config(sub.add_parser("check", help="validate the config and exit"))
    keygen = sub.add_parser("keygen", help="make an Ed25519 key pair (without --out: print both keys)")
    keygen.add_argument("--out", type=Path, help="write the private key to this new file (mode 0600) "
                                                 "and print the public key")

    att = with_config(sub.add_parser("attendance", help="考勤 attendance of one day"))
    att.add_argument("--date", required=True, type=date.fromisoformat)
    att.add_argument("--at", help="judge as of this time: HH:MM on --date, or an ISO date-time "
                                  "(default: now); punches after it are not counted")
    att.add_argument("--json", action="store_true")

    log_cmd = sub.add_parser("log", help="the audit log (hash chain)")
    log_sub = log_cmd.add_subparsers(dest="log_command", required=True)
    show = with_config(log_sub.add_parser("show", help="print the log entries"))
    show.add_argument("--json", action="store_true")
    show.add_argument("--kind", choices=sorted(LOG_KINDS), metavar="KIND",
                      help="only entries of this kind: " + ", ".join(sorted(LOG_KINDS)))
    show.add_argument("--after", type=int, default=0, help="entries after this position")
    verify = with_config(log_sub.add_parser("verify", help="re-check the chain and every signature"))
    verify.add_argument("--head", metavar="N:HASH", help="also check that entry N still has this hash "
                                                         "(the head printed on a monthly notice)")

    head = with_config(log_sub.add_parser("head", help="the chain's head N:HASH, signed by the hub's key"))
    head.add_argument("--json", action="store_true", help="one JSON object (entries, hash, at, "
                                                          "hub_public_key, sig)")
    export = with_config(log_sub.add_parser("export", help="a bundle that `hall-verify` checks alone"))
    export.add_argument("--from", dest="start", type=date.fromisoformat, help="first day YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=date.fromisoformat, help="last day YYYY-MM-DD")
    export.add_argument("--out", required=True, type=Path, help="a new directory, or a file ending .zip")

    leave = sub.add_parser("leave", help="请假 approved leave")
    leave_sub = leave.add_subparsers(dest="leave_command", required=True)
    add = with_config(leave_sub.add_parser("add", help="record an approved leave"))
    add.add_argument("--staff", required=True)
    add.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")
    add.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (whole day) or a time")
    add.add_argument("--approver", required=True)
    add.add_argument("--reason", default="")
    operators.signing(add, "who records the leave (记录人), named in the log entry")
    with_config(leave_sub.add_parser("list", help="list recorded leave"))

    quarantine = with_config(sub.add_parser("quarantine", help="messages refused, with reasons"))
    quarantine.add_argument("--json", action="store_true")
    COMMANDS.update(cli_window.add_commands(sub, with_config))
    COMMANDS.update(cli_complaints.add_commands(sub, with_config))
    COMMANDS.update(cli_staff.add_commands(sub, with_config))
    COMMANDS.update(cli_broker.add_commands(sub, with_config))
    COMMANDS.update(cli_users.add_commands(sub, with_config))
    COMMANDS.update(cli_feed.add_commands(sub, with_config))
    COMMANDS.update(operators.add_commands(sub, with_config))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(cli_window.with_default_subcommand(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "keygen":
            return keyfile.keygen(args.out)
        if args.command == "operator":
            return operators.keygen(args)
        city = is_city_config(args.config)
        if city and (args.command in CITY_COMMANDS or args.hall is None):
            return city_command(args)  # the city's own commands, or a hall's command without --hall
        try:
            config = _hall_config(args, city)
        except ConfigError as exc:
            print(exc.report(), file=sys.stderr)
            return 2
        except ValueError as exc:  # an unknown --hall
            print(f"错误 error: {exc}", file=sys.stderr)
            return 2
        if args.command == "check" and not config.has_private_key:
            print(f"{args.config}: ok, read-only (no private key: inspector commands only)")
            return 0
        if args.command == "check":
            warning = example_key_warning(config.private_key_hex(), "hall-hub")
            if warning:
                print(warning, file=sys.stderr)
            print(f"{args.config}: ok ({len(config.devices)} device(s), {len(config.staff)} staff)")
            return 0
        if args.command == "broker":
            try:
                return cli_broker.broker_command(args, config)
            except ValueError as exc:
                print(f"错误 error: {exc}", file=sys.stderr)
                return 2
        try:
            clock = clocks.from_spec(getattr(args, "clock", None), config.timezone)
            store = Store(config.store.url, clock, create=_creates_store(args),
                          device_keys=config.device_keys())
        except ValueError as exc:  # a bad --clock, a missing store
            print(f"错误 error: {exc}", file=sys.stderr)
            return 2
        try:
            provenance = operators.command_provenance(args, store)  # --by, --sign-with
            if provenance is not None:
                store = store.authored(provenance)
            return COMMANDS[args.command](args, config, store)
        except ValueError as exc:
            print(f"错误 error: {exc}", file=sys.stderr)
            return 2
        finally:
            store.close()
            sys.stdout.flush()  # so that a reader gone away (`| head`) shows here, not at exit
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _hall_config(args: argparse.Namespace, city: bool) -> HubConfig:
    """The hall a command runs on: its own config, or with `--hall` its `[[halls]]` entry of a city
    config (`city`; inline or included), exactly as that hall's own file would give it."""
    if city:
        return load_hall(args.config, args.hall, read_key=bool(_signs(args)))
    config = hub_config.load(args.config, read_key=bool(_signs(args)))
    if args.hall is not None and args.hall != config.hall:
        raise ValueError(f"--hall {args.hall}: {args.config} is the config of hall {config.hall} alone "
                         "(--hall picks a hall of a city config)")
    return config


def _signs(args: argparse.Namespace) -> bool:
    """Whether the command signs as the hub (or checks the config): only those read the private key."""
    return (args.command in ("run", "send", "check") or getattr(args, "print_on", None)
            or getattr(args, "log_command", None) in ("head", "export")
            or (getattr(args, "staff_command", None) in ("enroll", "revoke") and not args.no_publish))


def _creates_store(args: argparse.Namespace) -> bool:
    """Only the daemon and the set-up commands create the store; readers need one that exists."""
    return (args.command == "run" or getattr(args, "leave_command", None) == "add"
            or getattr(args, "complaints_command", None) == "add"
            or getattr(args, "staff_command", None) == "enroll"
            or getattr(args, "user_command", None) == "add"
            or getattr(args, "roster_command", None) == "apply")


def _run(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    from hub.service import HubService

    store.clock_policy = "clamp"  # the daemon never stops over a clock stepped back: entries keep order
    ensure_logged(config, store, args.config)  # RosterNotLogged, a ValueError: exit 2 before any start
    service = HubService(config, store.clock, store)
    gc.freeze()  # what start-up made lives as long as the hub: the collector no longer walks it
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    web = _start_web(config, store) if config.web.listen else None
    feed = _start_feed(config, store, stop) if config.feed.url else None
    try:
        service.run(stop)
    finally:
        stop.set()
        if web is not None:
            web.stop()
        if feed is not None:
            feed.join(config.feed.timeout_seconds + 5)
    return 0


def _start_feed(config: HubConfig, store: Store, stop: threading.Event) -> threading.Thread:
    """数据归集 in its own thread ("feed"), on its own connection pool; it ends when `stop` is set
    (a POST under way first ends or times out)."""
    from hub.feed.push import FeedPusher

    feed_store = Store(config.store.url, store.clock, create=False, device_keys=config.device_keys(),
                       clock_policy="clamp")
    pusher = FeedPusher(config, feed_store)

    def run() -> None:
        try:
            pusher.run(stop)
        finally:
            feed_store.close()

    thread = threading.Thread(target=run, name="feed", daemon=True)
    thread.start()
    return thread


def _start_web(config: HubConfig, store: Store) -> WebServer:
    """The console in its own thread, on its own connection pool to the store (its manual actions
    write through the store's writer lock, as a CLI command does); ingest never waits for it."""
    from hub.web.serve import WebServer

    web = WebServer.of_hall(config, Store(config.store.url, store.clock, create=False,
                                          device_keys=config.device_keys()))
    web.start()
    return web


def _as_of(text: str | None, day: date, config: HubConfig, store: Store) -> datetime:
    """`--at`: HH:MM (on the report's day), an ISO date-time, or now."""
    if text is None:
        return store.clock.now()
    try:
        moment = (datetime.combine(day, time.fromisoformat(text)) if ":" in text and "T" not in text
                  and " " not in text.strip() else datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"--at {text!r}: give HH:MM or YYYY-MM-DDTHH:MM") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=config.tz)


def _attendance(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    now = _as_of(args.at, args.date, config, store)
    if args.json:
        print(json.dumps(attendance_object(config, store, args.date, now), ensure_ascii=False, indent=1))
        return 0
    day = hall_day(config, store, args.date, now)  # extended service needs the ratings and signs
    print(attendance_table(day.attendance, config, day.extended))
    return 0


def _log(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if args.log_command == "head":
        head = signed_head(config, store)
        if args.json:
            print(json.dumps(head, ensure_ascii=False))
        else:
            print(f"{head['entries']}:{head['hash']}")
            print(f"签名 signed {head['at']} hub_public_key={head['hub_public_key']} sig={head['sig']}")
        return 0
    if args.log_command == "export":
        done = export_bundle(config, store, args.out, args.start, args.end)
        print(f"已导出 exported entries {done.first}..{done.last} to {done.path} "
              f"(head {done.head['entries']}:{done.head['hash']}); check it with `hall-verify {done.path}`")
        return 0
    if args.log_command == "verify":
        report = verify_log(store, config.device_keys(), config.audit.witness_minutes)
        if report.ok and args.head:
            problem = head_problem(store, args.head)
            if problem is not None:
                print(f"日志校验失败 log verification FAILED: {problem}", file=sys.stderr)
                return 1
            print(f"链头相符 head {args.head} is entry {args.head.partition(':')[0]} of the log")
        for note in report.notes:
            print(f"注意 note: {note} (still open: the hub reports a gap after the edges' resends)")
        print(report.witnesses)
        if report.ok and (roster := config_problem(config, store)) is not None:
            print(f"日志校验失败 log verification FAILED: {roster}; log it with `hall-hub roster apply`",
                  file=sys.stderr)
            return 1
        if report.ok:
            print(f"日志完整 log verified: {report.entries} entries, chain, signatures and device seqs hold")
            if report.provenance is not None:
                print(report.provenance.line())
            return 0
        where = f" at entry {report.first_bad}" if report.first_bad is not None else ""
        print(f"日志校验失败 log verification FAILED{where}: {report.problem}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(log_object(store, args.after, args.kind), ensure_ascii=False, indent=1))
        return 0
    entries = store.audit(after_seq=args.after, kind=args.kind)
    shown = 0
    for entry in entries:
        print(render_entry(entry))
        shown += 1
    if not shown:
        print(EMPTY)
    return 0


def _leave(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if args.leave_command == "list":
        print(leave_text(store.leaves(), config.tz, Names.of(config)))
        return 0
    leave, entry = record_leave(config, store, args.staff, args.start, args.end, args.approver, args.reason)
    print(f"已记录请假 leave recorded: {args.staff} {leave.start.isoformat()} – {leave.end.isoformat()}, "
          f"log entry #{entry.seq}")
    return 0


def _quarantine(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    items = store.quarantined()
    if args.json:
        print(json.dumps([{"received_at": q.received_at.isoformat(), "topic": q.topic,
                           "reason": q.reason, "detail": q.detail} for q in items],
                         ensure_ascii=False, indent=1))
    else:
        print(quarantine_text(items, config.tz))
    return 0


COMMANDS: dict[str, cli_window.Handler] = {
    "run": _run,
    "attendance": _attendance,
    "log": _log,
    "leave": _leave,
    "quarantine": _quarantine,
}

if __name__ == "__main__":
    sys.exit(main())
