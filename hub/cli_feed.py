"""`hall-hub` commands of the upward feed (数据归集): `export ratings` and `feed push`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from hub.cli_window import Handler
from hub.config import HubConfig
from hub.feed.export import Cursor, ratings_page, write_csv, write_jsonl
from hub.feed.push import FeedPusher, FeedRefused, FeedUnavailable, stored_cursor
from hub.store.store import Store


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    export = sub.add_parser("export", help="数据归集 records for the province, in log order")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    ratings = with_config(export_sub.add_parser(
        "ratings", help="every rating (and each later appeal decision) after a cursor; the last "
                        "line is the next cursor"))
    ratings.add_argument("--since", metavar="CURSOR", help="the cursor an earlier export ended with "
                                                           "(default: from the start)")
    ratings.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ratings.add_argument("--limit", type=_positive, help="at most this many records")

    feed = sub.add_parser("feed", help="数据归集 push to [feed] url")
    feed_sub = feed.add_subparsers(dest="feed_command", required=True)
    push = with_config(feed_sub.add_parser("push", help="send what is pending now, from the cursor kept "
                                                         "in the log, and exit"))
    push.add_argument("--attempts", type=_positive, default=5,
                      help="tries per batch (with [feed] backoff) before giving up (default 5)")
    return {"export": _export, "feed": _feed}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _export(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    since = Cursor.parse(args.since, config.hall)
    page = ratings_page(config, store, since, args.limit, store.clock.now())
    (write_csv if args.format == "csv" else write_jsonl)(page, config.feed.province, sys.stdout)
    return 0


def _feed(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if not config.feed.url:
        raise ValueError(f"{args.config}: [feed] url is not set: nothing to push to")
    store.clock_policy = "clamp"  # a feed_sent entry states no time of its own: never refused after a send
    pusher = FeedPusher(config, store)
    try:
        done = pusher.push(attempts=args.attempts)
    except FeedRefused as exc:
        cursor, _ = stored_cursor(store, config.hall)
        print(f"归集被拒 refused by {config.feed.url}: {exc}; cursor is {cursor} "
              "(logged as feed_refused)", file=sys.stderr)
        return 1
    except FeedUnavailable as exc:
        cursor, _ = stored_cursor(store, config.hall)
        print(f"归集未完成 not delivered: {exc}; cursor is {cursor}", file=sys.stderr)
        return 3
    print(f"已归集 sent {done.records} record(s) in {done.batches} batch(es); cursor {done.cursor}")
    return 0
