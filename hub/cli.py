"""`hall-hub`: the hub daemon and the inspector's and manager's commands."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import date, datetime, time, timedelta

from hub import cli_staff, cli_window
from hub import config as hub_config
from hub.audit import render_entry, verify_log
from hub.config import HubConfig
from hub.domain import Leave
from hub.reports import attendance, attendance_json, attendance_table, entry_json
from hub.store.store import Store
from wire import clock as clocks
from wire.configfile import ConfigError
from wire.envelope import generate_keypair


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hall-hub", description="大厅中心 hall hub")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", required=True, help="the hub's TOML config")
        p.add_argument("--clock", help="simulated hall clock: START,speed=N,anchor=EPOCH (demo, tests)")
        return p

    run = with_config(sub.add_parser("run", help="run the hub (SIGTERM stops it cleanly)"))
    run.add_argument("--log-level", default="INFO")
    with_config(sub.add_parser("check", help="validate the config and exit"))
    sub.add_parser("keygen", help="print a new Ed25519 key pair")

    att = with_config(sub.add_parser("attendance", help="考勤 attendance of one day"))
    att.add_argument("--date", required=True, type=date.fromisoformat)
    att.add_argument("--at", type=datetime.fromisoformat,
                     help="judge as of this time (default: now); later sessions show pending")
    att.add_argument("--json", action="store_true")

    log_cmd = sub.add_parser("log", help="the audit log (hash chain)")
    log_sub = log_cmd.add_subparsers(dest="log_command", required=True)
    show = with_config(log_sub.add_parser("show", help="print the log entries"))
    show.add_argument("--json", action="store_true")
    show.add_argument("--kind", help="only entries of this kind (event, quarantine, leave, ...)")
    show.add_argument("--after", type=int, default=0, help="entries after this position")
    with_config(log_sub.add_parser("verify", help="re-check the chain and every signature"))

    leave = sub.add_parser("leave", help="请假 approved leave")
    leave_sub = leave.add_subparsers(dest="leave_command", required=True)
    add = with_config(leave_sub.add_parser("add", help="record an approved leave"))
    add.add_argument("--staff", required=True)
    add.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")
    add.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (whole day) or a time")
    add.add_argument("--approver", required=True)
    add.add_argument("--reason", default="")
    with_config(leave_sub.add_parser("list", help="list recorded leave"))

    quarantine = with_config(sub.add_parser("quarantine", help="messages refused, with reasons"))
    quarantine.add_argument("--json", action="store_true")
    COMMANDS.update(cli_window.add_commands(sub, with_config))
    COMMANDS.update(cli_staff.add_commands(sub, with_config))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        pair = generate_keypair()
        print(f"private_key = \"{pair.private_hex}\"")
        print(f"public_key = \"{pair.public_hex}\"")
        return 0
    try:
        config = hub_config.load(args.config)
    except ConfigError as exc:
        print(f"配置错误 config error:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{args.config}: ok ({len(config.devices)} device(s), {len(config.staff)} staff)")
        return 0
    clock = clocks.from_spec(getattr(args, "clock", None), config.timezone)
    store = Store(config.store.url, clock)
    try:
        return COMMANDS[args.command](args, config, store)
    except ValueError as exc:
        print(f"错误 error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _run(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    from hub.service import HubService

    service = HubService(config, store.clock, store)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.run(stop)
    return 0


def _attendance(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    now = args.at or store.clock.now()
    if now.tzinfo is None:
        now = now.replace(tzinfo=config.tz)
    rows = attendance(config, store, args.date, now)
    print(attendance_json(rows, config) if args.json else attendance_table(rows, config))
    return 0


def _log(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if args.log_command == "verify":
        report = verify_log(store, config.device_keys())
        if report.ok:
            print(f"日志完整 log verified: {report.entries} entries, chain and signatures hold")
            return 0
        print(f"日志校验失败 log verification FAILED at entry {report.first_bad}: {report.problem}",
              file=sys.stderr)
        return 1
    entries = store.audit(after_seq=args.after, kind=args.kind)
    if args.json:
        print(json.dumps([entry_json(e) for e in entries], ensure_ascii=False, indent=1))
    else:
        for entry in entries:
            print(render_entry(entry))
    return 0


def _moment(text: str, config: HubConfig, *, end_of_day: bool) -> datetime:
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0))
    else:
        moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=config.tz)


def _leave(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if args.leave_command == "list":
        for item in store.leaves():
            print(f"{item.staff}\t{item.start.isoformat()}\t{item.end.isoformat()}\t"
                  f"审批 {item.approver}\t{item.reason}")
        return 0
    if args.staff not in {member.id for member in config.staff}:
        raise ValueError(f"staff {args.staff!r} is not on the roster")
    start = _moment(args.start, config, end_of_day=False)
    end = _moment(args.end, config, end_of_day=True)
    if end <= start:
        raise ValueError("--to must be after --from")
    entry = store.add_leave(Leave(args.staff, start, end, args.approver, args.reason, store.clock.now()))
    print(f"已记录请假 leave recorded: {args.staff} {start.isoformat()} – {end.isoformat()}, "
          f"log entry #{entry.seq}")
    return 0


def _quarantine(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    items = store.quarantined()
    if args.json:
        print(json.dumps([{"received_at": q.received_at.isoformat(), "topic": q.topic,
                           "reason": q.reason, "detail": q.detail} for q in items],
                         ensure_ascii=False, indent=1))
    else:
        for q in items:
            print(f"{q.received_at.isoformat(timespec='seconds')}  {q.reason:<15} {q.topic}  {q.detail}")
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
