"""`hall-hub complaints add|list|close`: the 投诉受理 register (functions in hub/complaints.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from hub.api_objects import complaint_json
from hub.complaints import NewComplaint, add_complaint, close_complaint, complaint_contacts, complaints_in
from hub.config import HubConfig
from hub.operators import signing
from hub.receipts import Target, ack_text, complaint_receipt, print_on
from hub.store.store import Store
from hub.views import Names, complaint_state, complaints_text
from wire.envelope import format_ts

Handler = Callable[[argparse.Namespace, HubConfig, Store], int]


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    complaints = sub.add_parser("complaints", help="投诉受理 the complaints register")
    complaints_sub = complaints.add_subparsers(dest="complaints_command", required=True)
    add = with_config(complaints_sub.add_parser("add", help="register an oral or written complaint"))
    add.add_argument("--kind", required=True, choices=["oral", "written"],
                     help="oral (口头): due the same working day; "
                          "written (书面): in [complaints] written_days")
    add.add_argument("--window", required=True, help="the window complained about")
    add.add_argument("--staff", help="the staff member complained about, if known")
    add.add_argument("--rating", help="the rating the complaint is about (its event id)")
    add.add_argument("--by", required=True, help="who received the complaint")
    add.add_argument("--text", required=True, help="what the complaint says")
    add.add_argument("--contact", help="the complainant's contact: personal data, never printed")
    add.add_argument("--json", action="store_true")
    add.add_argument("--print", dest="print_on", metavar="DEVICE:UNIT",
                     help="投诉回执 print the complainant's receipt on this box's printer")
    add.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the print ack")
    signing(add)
    listing = with_config(complaints_sub.add_parser("list", help="the register, overdue ones marked"))
    listing.add_argument("--open", action="store_true", help="only complaints not yet answered")
    listing.add_argument("--from", dest="since", type=date.fromisoformat, help="registered on or after")
    listing.add_argument("--to", dest="until", type=date.fromisoformat, help="registered on or before")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--contacts", action="store_true",
                         help="manager's view: show the complainants' contacts (the view is logged)")
    listing.add_argument("--by", default="", help="who views the contacts (with --contacts)")
    signing(listing)
    close = with_config(complaints_sub.add_parser("close", help="record the answer and file it (答复, 归档)"))
    close.add_argument("--id", required=True)
    close.add_argument("--by", required=True, help="who answered")
    close.add_argument("--result", required=True, help="the answer given, e.g. 已当面答复, 群众满意")
    signing(close)
    return {"complaints": _complaints}


def _complaints(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    names = Names.of(config)
    if args.complaints_command == "add":
        new = NewComplaint(args.kind, args.window, args.by, args.text, staff=args.staff,
                           rating=args.rating, contact=args.contact)
        target = Target.parse(args.print_on) if args.print_on else None  # a typo fails before registering
        done = add_complaint(config, store, new)
        if args.json:
            print(json.dumps({"id": done.id, "kind": done.kind, "window": done.window, "staff": done.staff,
                              "due": format_ts(done.due), "status": done.status}, ensure_ascii=False))
        else:
            who = f" {names(done.staff)}" if done.staff else ""
            print(f"已登记投诉 complaint {done.id} registered: 窗口{done.window}{who}, "
                  f"答复期限 due {done.due.astimezone(config.tz):%Y-%m-%d %H:%M}")
        if target is not None:
            command_id, ack = print_on(config, store, target, complaint_receipt(config, done, ""), args.wait)
            said, status = ack_text(command_id, ack)
            print(said, file=sys.stderr if args.json else sys.stdout)
            return status
        return 0
    if args.complaints_command == "close":
        done = close_complaint(store, args.id, args.by, args.result)
        print(f"已办结 complaint {done.id} answered by {done.closed_by}: {done.result} "
              f"({complaint_state(done)})")
        return 0
    if args.contacts and not args.by.strip():
        raise ValueError("--contacts needs --by NAME: who views the complainants' contacts is logged")
    found = [c for c in complaints_in(store, config, args.since, args.until)
             if not args.open or c.closed_at is None]  # what complaints_object gives as JSON
    contacts = complaint_contacts(store, [c.id for c in found], args.by) if args.contacts else None
    if args.json:
        print(json.dumps([{**complaint_json(c), **({"contact": contacts.get(c.id)} if contacts is not None
                                                    else {})} for c in found], ensure_ascii=False, indent=1))
    else:
        print(complaints_text(found, config.tz, names, contacts))
    return 0
