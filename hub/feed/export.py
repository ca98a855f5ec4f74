"""Ratings in audit-log order from a cursor: what `export ratings` prints and the feed pushes.

A page walks the log after the cursor's position and gives one record per rating `event` entry
(revision 0, as attributed now, before any appeal) and one per `appeal_decision` entry (the
rating again, revision n, the appeal applied as of that decision). The next cursor is the position
of the page's last entry, or the log's end when the page reached it: a cursor is only ever passed
by complete entries, so paging gives every record exactly once, and a decision taken after a
rating was exported comes as a later record of the same id.
"""

from __future__ import annotations

import csv
import heapq
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, TextIO

from hub.appeals import DECISION_KIND, appeal_steps
from hub.config import HubConfig
from hub.domain import AttributedRating, AuditEntry
from hub.feed.records import FeedRating, province_format
from hub.hall import hall_day
from hub.rules.appeals import apply_appeals, states
from hub.store.store import Store
from wire.envelope import WireError, parse

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a reader of the feed stands: after the audit entry at `position` of `hall`'s log.
    Opaque to receivers: its text (`str`) is what they hand back."""

    hall: str
    position: int

    def __str__(self) -> str:
        return f"{self.hall}:{self.position}"

    @classmethod
    def parse(cls, text: str | None, hall: str) -> Cursor:
        """A cursor's text as this hub gave it; None or empty: the start."""
        if not text:
            return cls(hall, 0)
        name, colon, position = text.strip().rpartition(":")
        if not colon or not position.isdigit():
            raise ValueError(f"cursor {text!r}: not one this hub gave (the last line of an export)")
        if name != hall:
            raise ValueError(f"cursor {text!r} is of hall {name!r}, this hub is {hall!r}")
        return cls(hall, int(position))


@dataclass(frozen=True)
class Page:
    since: Cursor
    records: list[FeedRating]
    cursor: Cursor  # hand it back as `since` for what follows


@dataclass(frozen=True)
class _Mark:
    """An entry that gives a record."""

    seq: int
    logged_at: datetime
    rating: str
    decided_at: datetime | None  # for an appeal decision: its moment


def ratings_page(config: HubConfig, store: Store, since: Cursor, limit: int | None,
                 now: datetime) -> Page:
    """At most `limit` records (None: all) after `since`, attributed as of `now`."""
    last = store.last_audit()
    end = 0 if last is None else last.seq
    if since.position > end:
        raise ValueError(f"cursor {since} is beyond this log's end (entry {end}): not this store's")
    marks: list[_Mark] = []
    stop = end
    for entry in _entries(store, since.position):
        if entry.seq > end:
            break
        mark = _mark(entry)
        if mark is None:
            continue
        marks.append(mark)
        if limit is not None and len(marks) >= limit:
            stop = entry.seq
            break
    return Page(since, _records(config, store, marks, now), Cursor(config.hall, stop))


def _entries(store: Store, after: int) -> Iterable[AuditEntry]:
    """Event and appeal-decision entries that verify, after `after`, in log order."""
    return heapq.merge(store.entries("event", after_seq=after), store.entries(DECISION_KIND, after_seq=after),
                       key=lambda e: e.seq)


def _mark(entry: AuditEntry) -> _Mark | None:
    if entry.kind == DECISION_KIND:
        return _Mark(entry.seq, entry.at, str(entry.data["rating"]),
                     datetime.fromisoformat(str(entry.data["at"])))
    raw = entry.data.get("raw")
    try:
        is_rating = isinstance(raw, str) and parse(raw.encode("utf-8")).type == "rating"
    except WireError:
        return None  # `log verify` names it; the rules never read it
    return _Mark(entry.seq, entry.at, str(entry.ref), None) if is_rating else None


def _records(config: HubConfig, store: Store, marks: list[_Mark], now: datetime) -> list[FeedRating]:
    if not marks:
        return []
    rated = _attributed(config, store, {m.rating for m in marks}, now)
    steps = appeal_steps(store)
    decisions: dict[str, list[int]] = {}
    for entry in store.entries(DECISION_KIND):
        decisions.setdefault(str(entry.data["rating"]), []).append(entry.seq)
    out = []
    for mark in marks:
        base = rated.get(mark.rating)
        if base is None:  # its row does not match its signed bytes: the store warned already
            log.warning("rating %s left out of the feed: it does not verify", mark.rating)
            continue
        if mark.decided_at is None:
            out.append(FeedRating(config.hall, base, None, 0, mark.seq, mark.logged_at.astimezone(config.tz)))
            continue
        appeals = states(steps, mark.decided_at)
        appeal = appeals.get(mark.rating)
        revision = sum(1 for seq in decisions.get(mark.rating, ()) if seq <= mark.seq)
        out.append(FeedRating(config.hall, apply_appeals([base], appeals)[0],
                              appeal.state if appeal is not None else None, revision, mark.seq,
                              mark.logged_at.astimezone(config.tz)))
    return out


def _attributed(config: HubConfig, store: Store, ids: set[str], now: datetime) -> dict[str, AttributedRating]:
    """The ratings `ids` as their hall days attribute them as of `now`, before appeals, with their
    time in the hall's zone."""
    days: set[date] = {e.ts.astimezone(config.tz).date() for e in store.events_by_id(ids).values()}
    found: dict[str, AttributedRating] = {}
    for day in sorted(days):
        for a in hall_day(config, store, day, now).unappealed:
            if a.rating.event_id in ids:
                local = replace(a.rating, at=a.rating.at.astimezone(config.tz))
                found[a.rating.event_id] = replace(a, rating=local)
    return found


def write_jsonl(page: Page, province: str, out: TextIO) -> None:
    """One JSON object a record, then `{"cursor": "..."}` as the last line."""
    fmt = province_format(province)
    for feed in page.records:
        out.write(json.dumps(fmt.record(feed), ensure_ascii=False, separators=(",", ":")) + "\n")
    out.write(json.dumps({"cursor": str(page.cursor)}, separators=(",", ":")) + "\n")


def write_csv(page: Page, province: str, out: TextIO) -> None:
    """A header row of the record's fields, a row a record (lists joined by `;`, booleans `true`/
    `false`, null empty), then the row `#cursor,<cursor>` last."""
    fmt = province_format(province)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fmt.fields)
    for feed in page.records:
        record = fmt.record(feed)
        writer.writerow([_cell(record[name]) for name in fmt.fields])
    writer.writerow(["#cursor", str(page.cursor)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)
