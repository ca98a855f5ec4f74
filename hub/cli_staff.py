"""`hall-hub staff enroll|identify`: face enrollment and the installers' check of it."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.commands import publish_roster
from hub.config import HubConfig
from hub.operators import signing
from hub.store.store import Store
from hub.views import Names

Handler = Callable[[argparse.Namespace, HubConfig, Store], int]


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    staff = sub.add_parser("staff", help="人员 face enrollment")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    enroll = with_config(staff_sub.add_parser("enroll", help="enroll photos of one staff member"))
    enroll.add_argument("--staff", required=True)
    enroll.add_argument("--no-publish", action="store_true",
                        help="do not publish the new gallery now (the running hub does within seconds)")
    enroll.add_argument("photos", nargs="+", type=Path)
    signing(enroll, "who enrolls the photos (with the person's consent), named in the log")
    identify = with_config(staff_sub.add_parser("identify", help="who the faces in photos are"))
    identify.add_argument("--json", action="store_true")
    identify.add_argument("photos", nargs="+", type=Path)
    photo = with_config(staff_sub.add_parser("photo", help="the face snapshot of a clock event (evidence)"))
    photo.add_argument("--event", required=True, help="the event id")
    photo.add_argument("--out", required=True, type=Path, help="where to write the JPEG")
    revoke = with_config(staff_sub.add_parser("revoke", help="take a person's face out of the gallery"))
    revoke.add_argument("--staff", required=True)
    revoke.add_argument("--by", required=True, help="who decided it")
    revoke.add_argument("--reason", default="", help="e.g. 离职 left, 撤回同意 consent withdrawn")
    revoke.add_argument("--no-publish", action="store_true")
    signing(revoke)
    return {"staff": _staff}


def _staff(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    from hub.faces import EnrollError, enroll, identify, revoke, roster_body

    if args.staff_command == "photo":
        return _photo(store, args.event, args.out)
    if args.staff_command == "identify":
        found = identify(store, args.photos)
        names = Names.of(config)
        if args.json:
            print(json.dumps([{**vars(f), "name": names.names.get(f.staff or "")} for f in found],
                             ensure_ascii=False, indent=1))
        else:
            for f in found:
                print(f"{f.photo}: {names(f.staff) or '(unknown)'} distance {f.distance_milli / 1000:.3f} "
                      f"{f.decision}")
        return 0
    try:
        if args.staff_command == "revoke":
            entry = revoke(config, store, args.staff, args.by, args.reason)
            print(f"已撤销 revoked the face of {args.staff} (by {args.by}), log entry #{entry.seq}")
        else:
            entries = enroll(config, store, args.staff, args.photos)
            print(f"已录入 enrolled {args.staff}: {len(entries)} photo(s), log entries "
                  + ", ".join(f"#{e.seq}" for e in entries))
    except EnrollError as exc:
        print(f"录入失败 refused: {exc}", file=sys.stderr)
        return 2
    if not args.no_publish:
        try:
            publish_roster(config, store.clock, roster_body(config, store))
            print("名单已发布 roster published to the edges")
        except OSError as exc:
            print(f"roster not published now ({exc}); the running hub publishes it", file=sys.stderr)
    return 0


def _photo(store: Store, event_id: str, out: Path) -> int:
    """The snapshot of a face punch: inside a version-1 event, or kept apart (PROTOCOL.md 2.7)."""
    from hub.store.snapshots import snapshot_hash, snapshot_of

    found = store.events_by_id([event_id]).get(event_id)
    sha = None if found is None else snapshot_hash(found)
    if found is None or ("photo" not in found.body and sha is None):
        raise ValueError(f"event {event_id} has no face snapshot")
    jpeg = base64.b64decode(str(found.body["photo"])) if sha is None else snapshot_of(store, event_id)
    if jpeg is None:
        purged = [e for e in store.entries("snapshot_purge")
                  if any(s.get("event") == event_id for s in e.data.get("snapshots", []))]
        when = f"purged on {purged[0].at.date()} (log entry {purged[0].seq})" if purged else "not received"
        raise ValueError(f"event {event_id}: 抓拍已清除或未收到 the snapshot is {when}; its SHA-256 "
                         f"{sha} stays in the signed event")
    out.write_bytes(jpeg)
    print(f"{out}: snapshot of {found.body.get('staff') or 'an unknown face'} at "
          f"{found.ts.isoformat()} (signed by {found.device}; `log verify` proves it unaltered)")
    return 0
