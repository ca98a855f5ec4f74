"""`hall-hub` commands for the window boxes: ratings, away periods, findings, follow-up cases, the
monthly report and commands sent to the boxes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from hub.api_objects import away_object, cases_object, day_findings_logged, rated_in, ratings_object
from hub.appeals import appeal_rating, decide_appeal
from hub.commands import send, wait_ack
from hub.config import HubConfig
from hub.hall import cases, close_case, hall_day, month_days
from hub.month_summary import summarize
from hub.monthly import summary_json, summary_text, write_summary
from hub.operators import signing
from hub.receipts import Target, ack_text, month_receipt, print_on
from hub.receipts import body as receipt_body
from hub.rules.ratings import by_day, by_month, by_staff, by_window, statistics
from hub.scheduler import finding_data
from hub.store.store import Store
from hub.views import Names, appeal_text, away_text, cases_text, findings_text, ratings_text, stats_text

Handler = Callable[[argparse.Namespace, HubConfig, Store], int]


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    ratings = sub.add_parser("ratings", help="好差评 ratings, statistics and appeals (申诉复核)",
                             description="`ratings --config F --date D` is short for `ratings stats ...`")
    ratings_sub = ratings.add_subparsers(dest="ratings_command", required=True)
    stats = with_config(ratings_sub.add_parser("stats", help="ratings with staff, flags and statistics "
                                                             "(the default subcommand)"))
    when = stats.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=date.fromisoformat)
    when.add_argument("--month", help="YYYY-MM")
    stats.add_argument("--json", action="store_true")
    appeal = with_config(ratings_sub.add_parser("appeal", help="申诉 contest a rating believed malicious "
                                                               "or mistaken"))
    appeal.add_argument("--rating", required=True, help="the rating's event id (ratings --json: id)")
    appeal.add_argument("--by", required=True, help="who appeals")
    appeal.add_argument("--reason", required=True)
    signing(appeal)
    decide = with_config(ratings_sub.add_parser("decide",
                                                help="复核 accept or reject a rating's open appeal"))
    decide.add_argument("--rating", required=True)
    decide.add_argument("--by", required=True, help="who decides")
    verdict = decide.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", action="store_true", help="the rating leaves every statistic")
    verdict.add_argument("--reject", action="store_true", help="the rating keeps counting")
    decide.add_argument("--note", required=True, help="the grounds of the decision")
    signing(decide)
    away = with_config(sub.add_parser("away", help="离岗 away periods of a day"))
    away.add_argument("--date", required=True, type=date.fromisoformat)
    away.add_argument("--json", action="store_true")
    findings = with_config(sub.add_parser("findings", help="violations and alerts of a day"))
    findings.add_argument("--date", required=True, type=date.fromisoformat)
    findings.add_argument("--json", action="store_true")

    case = sub.add_parser("cases", help="差评整改 follow-up cases of bad ratings")
    case_sub = case.add_subparsers(dest="cases_command", required=True)
    listing = with_config(case_sub.add_parser("list", help="cases, with overdue ones marked"))
    listing.add_argument("--from", dest="since", type=date.fromisoformat)
    listing.add_argument("--to", dest="until", type=date.fromisoformat)
    listing.add_argument("--json", action="store_true")
    close = with_config(case_sub.add_parser("close", help="close a case with its result"))
    close.add_argument("--case", required=True)
    close.add_argument("--by", required=True, help="who followed it up")
    close.add_argument("--result", required=True, help="e.g. 已电话回访, 群众满意")
    close.add_argument("--note", default="")
    signing(close)

    report = sub.add_parser("report", help="reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    month = with_config(report_sub.add_parser(
        "month", help="每月汇总与排名通报 monthly summary and ranking: printed (--json: one object), "
                      "and written as CSV and XLSX files with --out"))
    month.add_argument("--month", required=True, help="YYYY-MM")
    month.add_argument("--out", help="a directory: write the CSV and XLSX files there too")
    month.add_argument("--json", action="store_true", help="print one JSON object (file paths go to stderr)")
    month.add_argument("--print", dest="print_on", metavar="DEVICE:UNIT",
                       help="月度公示 print the ranking and the log's head for the notice board")
    month.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the print ack")

    send_cmd = with_config(sub.add_parser("send", help="send a command to an edge box"))
    send_cmd.add_argument("name", choices=["invite", "show", "sync", "print"])
    send_cmd.add_argument("--device", required=True)
    send_cmd.add_argument("--window")
    send_cmd.add_argument("--seconds", type=int, default=10)
    send_cmd.add_argument("--ticket")
    send_cmd.add_argument("--display", choices=["evaluator", "desk"], default="evaluator")
    send_cmd.add_argument("--mode", type=int, default=0)
    send_cmd.add_argument("--text", default="")
    send_cmd.add_argument("--unit", help="print: the printer unit on the box")
    send_cmd.add_argument("--title", default="", help="print: the receipt's title")
    send_cmd.add_argument("--line", action="append", default=[], help="print: a line (repeatable)")
    send_cmd.add_argument("--qr", help="print: a QR code of this text")
    send_cmd.add_argument("--cut", action="store_true", help="print: cut the paper after the job")
    send_cmd.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the ack")
    return {"ratings": _ratings, "away": _away, "findings": _findings, "cases": _cases,
            "report": _report, "send": _send}


def _now(store: Store) -> datetime:
    return store.clock.now()


RATINGS_SUBCOMMANDS = ("stats", "appeal", "decide")


def with_default_subcommand(argv: list[str]) -> list[str]:
    """`ratings --config F --date D` (its form before appeals) means `ratings stats ...`."""
    if argv[:1] == ["ratings"] and (len(argv) == 1 or argv[1] not in (*RATINGS_SUBCOMMANDS, "-h", "--help")):
        return ["ratings", "stats", *argv[1:]]
    return argv


def _ratings(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if args.ratings_command == "appeal":
        done = appeal_rating(store, args.rating, args.by, args.reason)
        print(f"已登记申诉 appeal recorded: {appeal_text(done, config.tz)}")
        return 0
    if args.ratings_command == "decide":
        done = decide_appeal(store, args.rating, args.by, args.accept, args.note)
        print(f"已裁定 appeal decided: {appeal_text(done, config.tz)}")
        return 0
    days = [args.date] if args.date else month_days(args.month)
    if args.json:
        print(json.dumps(ratings_object(config, store, days, _now(store)), ensure_ascii=False, indent=1))
        return 0
    rated = rated_in(config, store, days, _now(store))
    keys = [("staff", by_staff), ("window", by_window), ("day", by_day(config.tz)),
            ("month", by_month(config.tz))]
    names = Names.of(config)
    print(ratings_text(rated, config.tz, names))
    titles = {"staff": "按人员 by staff", "window": "按窗口 by window", "day": "按日 by day",
              "month": "按月 by month"}
    for name, key in keys:
        print(stats_text(titles[name], statistics(rated, key), names if name == "staff" else None))
    return 0


def _away(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    items = away_object(config, store, args.date, _now(store))
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=1))
        return 0
    periods = hall_day(config, store, args.date, _now(store)).periods
    owner = {p.start_event: item["staff"] for p, item in zip(periods, items, strict=True)}
    print(away_text(periods, config.tz, owner, Names.of(config)))
    return 0


def _findings(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    found = day_findings_logged(config, store, args.date, _now(store))
    if args.json:
        print(json.dumps([finding_data(f) for f in found], ensure_ascii=False, indent=1))
        return 0
    print(findings_text(found, config.tz, Names.of(config)))
    return 0


def _cases(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    now = _now(store)
    if args.cases_command == "close":
        seq = close_case(config, store, args.case, args.by, args.result, args.note)
        print(f"已办结 case {args.case} closed by {args.by}: {args.result} (log entry #{seq})")
        return 0
    if args.json:
        print(json.dumps(cases_object(config, store, args.since, args.until, now),
                         ensure_ascii=False, indent=1))
        return 0
    today = now.astimezone(config.tz).date()
    found = cases(config, store, args.since or today.replace(day=1), args.until or today, now)
    overdue_ids = {c.id for c in found if c.closed_at is None and c.deadline < today}
    print(cases_text(found, overdue_ids, config.tz, Names.of(config)))
    return 0


def _report(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    try:
        month_days(args.month)
    except ValueError as exc:
        raise ValueError(f"--month {args.month!r}: give YYYY-MM") from exc
    summary = summarize(config, store, args.month, _now(store))
    paths = write_summary(summary, Path(args.out)) if args.out else []
    if args.print_on:
        command_id, ack = print_on(config, store, Target.parse(args.print_on),
                                   month_receipt(summary, ""), args.wait)
        said, status = ack_text(command_id, ack)
        print(said, file=sys.stderr)
        if status:
            return status
    if args.json:
        print(json.dumps(summary_json(summary), ensure_ascii=False, indent=1))
        for path in paths:
            print(path, file=sys.stderr)
        return 0
    print(summary_text(summary))
    for path in paths:
        print(path)
    return 0


def _send(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    body: dict[str, Any]
    if args.name == "invite":
        body = {"window": args.window, "seconds": args.seconds, "ticket": args.ticket}
    elif args.name == "show":
        body = {"window": args.window, "display": args.display, "mode": args.mode, "text": args.text}
    elif args.name == "print":
        if not args.unit:
            raise ValueError("send print: give --unit, the printer unit on the box")
        body = receipt_body(args.unit, args.title, args.line, qr=args.qr, cut=args.cut)
    else:
        body = {}
    command_id = send(config, store.clock, args.device, args.name, body)
    print(f"sent {args.name} {command_id}")
    ack = wait_ack(store, store.clock, command_id, args.wait) if args.wait > 0 else None
    if ack is None:
        print("no ack yet (the box may be offline; the persistent session delivers it later)")
        return 3 if args.wait > 0 else 0
    print(f"ack ok={ack['ok']} {ack.get('error') or ''}")
    return 0 if ack["ok"] else 1
