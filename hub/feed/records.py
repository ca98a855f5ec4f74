"""The feed's record: one rating as the province receives it. The only code that knows the shape.

Both `hall-hub export ratings` and the push to `[feed] url` go through :func:`record_of`, which
picks the mapping named by `[feed] province` from :data:`PROVINCES`. A province with another format
is one more :class:`ProvinceFormat` here (its fields, in order, and its function), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.domain import AttributedRating
from wire.envelope import format_ts

LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


@dataclass(frozen=True)
class FeedRating:
    """A rating as it stood at one position of the audit log: the rating's own `event` entry
    (`revision` 0, no appeal applied) or an `appeal_decision` entry about it (`revision` n for the
    n-th decision, the appeal applied as decided then). Times are in the hall's time zone."""

    hall: str
    rating: AttributedRating
    appeal: str | None  # None, "accepted" or "rejected" (as of `logged_at`)
    revision: int
    position: int  # the log entry that gave this record
    logged_at: datetime


@dataclass(frozen=True)
class ProvinceFormat:
    name: str
    fields: tuple[str, ...]  # the record's keys, in order (the CSV columns)
    record: Callable[[FeedRating], dict[str, Any]]


GENERIC_FIELDS = ("id", "revision", "hall", "window", "staff", "ticket", "level", "level_name", "at",
                  "invited", "counted", "flags", "appeal", "logged_at")


def province_record(feed: FeedRating) -> dict[str, Any]:
    """The generic record (`province = "generic"`), README "Upward feed (数据归集)":

    - `id`: the rating's event id, the same in every record of that rating; with `revision` (0 for
      the first record, n for the n-th appeal decision) it names a record: a receiver keeps, per
      `id`, the record with the highest `revision`, and ignores one it has already had.
    - `hall`, `window`, `staff` (工号 of whoever was on duty, null with nobody on duty), `ticket`
      (办件编号 when the invitation to rate carried one, else null).
    - `level` 1..5 and `level_name` (5 非常满意 … 1 非常不满意), `at` (the press, ISO 8601 with the
      hall's offset), `invited` (the first press inside an invitation).
    - `counted`: whether it counts in 满意率; `flags`: why not, or what to review: `not_invited`,
      `misuse_repeat`, `nobody_on_duty`, `excluded_by_appeal`.
    - `appeal`: null, `accepted` or `rejected`; `logged_at`: when the hub logged this state.
    """
    a = feed.rating
    return {
        "id": a.rating.event_id,
        "revision": feed.revision,
        "hall": feed.hall,
        "window": a.rating.window,
        "staff": a.staff,
        "ticket": a.rating.ticket,
        "level": a.rating.level,
        "level_name": LEVEL_NAMES[a.rating.level],
        "at": format_ts(a.rating.at),
        "invited": a.rating.invited,
        "counted": a.counted,
        "flags": list(a.flags),
        "appeal": feed.appeal,
        "logged_at": format_ts(feed.logged_at),
    }


PROVINCES: dict[str, ProvinceFormat] = {
    "generic": ProvinceFormat("generic", GENERIC_FIELDS, province_record),
}


def province_format(name: str) -> ProvinceFormat:
    """The mapping called `name`; an unknown one is an error that lists the known ones."""
    try:
        return PROVINCES[name]
    except KeyError:
        raise ValueError(f"[feed] province {name!r}: not one of {', '.join(sorted(PROVINCES))}") from None


def record_of(feed: FeedRating, province: str) -> dict[str, Any]:
    return province_format(province).record(feed)
