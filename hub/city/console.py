"""The read side of a city console's page (`/city`, `/api/v1/city`): each hall's line (this month's
满意率 as the month summary computes it, today's attendance rate as the attendance day computes it,
ratings, open cases, devices offline, the worker owning it) and the devices offline across halls.

Pure reads of each hall's own store; times in each hall's zone. Which worker owns a hall comes from
`city_owners` (hub/city/locks.py), best effort: the lock database may be unreachable.

`HallLines` keeps each hall's line for CACHE_SECONDS, so a wall display refreshing every few seconds
does not recompute a month summary per hall per request; a hall whose line cannot be computed is a
`HallUnread`, shown after the ranked halls, never an error of the whole page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from hub.api_objects import devices_object
from hub.city.config import CityConfig
from hub.city.locks import city_owners
from hub.config import HubConfig
from hub.hall import cases, hall_day
from hub.month_summary import summarize
from hub.rules.ranking import permille
from hub.store.store import Store
from wire.envelope import format_ts

log = logging.getLogger(__name__)

UNKNOWN = "未知"  # the owner when the lock database cannot be read
CACHE_SECONDS = 30.0  # how long a hall's line is reused by /city and /api/v1/city
NOBODY = "无"  # no worker holds the hall's lock now
NOT_EXPECTED = frozenset({"holiday", "pending", "leave"})  # sessions nobody is expected at


@dataclass(frozen=True)
class OfflineDevice:
    hall: str
    device: str
    name: str
    since: str | None  # RFC 3339 in the hall's zone: its last device_state entry


@dataclass(frozen=True)
class HallLine:
    hall: str
    month: str
    rate_permille: int | None  # 满意率 x1000 of the month's counted ratings (None: none yet)
    ratings: int  # counted ratings of the month
    expected: int  # sessions of today judged so far (not holiday, leave or pending)
    on_time: int
    attendance_permille: int | None  # on_time / expected x1000 (None: nothing expected yet)
    open_cases: int  # 差评整改 of the month not closed
    offline: list[OfflineDevice]
    owner: str  # the worker's name, NOBODY or UNKNOWN


@dataclass(frozen=True)
class HallUnread:
    """A hall whose line could not be computed (its store unreachable, a failing read): listed as
    such after the ranked halls."""

    hall: str
    problem: str  # the error's type and first line
    owner: str = UNKNOWN


@dataclass(frozen=True)
class CityLines:
    ranked: list[HallLine]  # ranked(): best 满意率 first
    unread: list[HallUnread]  # by hall id


LineOf = Callable[[HubConfig, Store, datetime], HallLine]


def owners_of(city: CityConfig) -> dict[str, str]:
    """Each hall's owning worker by name; every hall UNKNOWN when the lock database is unreachable."""
    try:
        held = city_owners(city)
    except psycopg.Error as exc:
        log.warning("city %s: the owners of its halls are unknown: %s", city.city.name, exc)
        return {hall.hall: UNKNOWN for hall in city.halls}
    return {hall: NOBODY if holder is None else holder.worker for hall, holder in held.items()}


def hall_line(config: HubConfig, store: Store, now: datetime, owner: str = UNKNOWN) -> HallLine:
    local = now.astimezone(config.tz)
    today, month = local.date(), local.strftime("%Y-%m")
    summary = summarize(config, store, month, now)
    satisfied = sum(t.satisfied for t in summary.windows)  # every counted rating is a window's
    rated = sum(t.ratings for t in summary.windows)
    judged = [row for row in hall_day(config, store, today, now).attendance
              if row.status not in NOT_EXPECTED]
    on_time = sum(row.status == "on_time" for row in judged)
    found = cases(config, store, today.replace(day=1), today, now)
    offline = [OfflineDevice(config.hall, str(d["id"]), str(d["name"]), d["since"])
               for d in devices_object(config, store, now) if d["online"] is False]
    return HallLine(config.hall, month, permille(satisfied, rated), rated, len(judged), on_time,
                    permille(on_time, len(judged)), sum(c.closed_at is None for c in found),
                    offline, owner)


def ranked(lines: list[HallLine]) -> list[HallLine]:
    """Best 满意率 first, then attendance; halls without ratings last; ties by hall id."""
    return sorted(lines, key=lambda x: (x.rate_permille is None, -(x.rate_permille or 0),
                                        x.attendance_permille is None, -(x.attendance_permille or 0),
                                        x.hall))


@dataclass(frozen=True)
class _Kept:
    line: HallLine | HallUnread
    at: float  # the monotonic moment its computation began


class HallLines:
    """Each hall's line, computed when asked and reused for `seconds` (measured on `monotonic`);
    `line_of` computes one (hall_line; tests count its calls). A hall that fails is kept as
    HallUnread for the same time: an unreachable store is not retried by every request.

    The console serves requests on several threads: each hall has its own lock, so a hall is
    computed once however many requests want it at that moment (the others wait for its line)."""

    def __init__(self, city: CityConfig, stores: Mapping[str, Store], *, seconds: float = CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic, line_of: LineOf = hall_line) -> None:
        self._city, self._stores, self._seconds = city, stores, seconds
        self._monotonic, self._line_of = monotonic, line_of
        self._locks = {hall.hall: threading.Lock() for hall in city.halls}
        self._kept: dict[str, _Kept] = {}

    @property
    def seconds(self) -> float:
        return self._seconds

    def lines(self, halls: list[str], owners: Mapping[str, str]) -> CityLines:
        """The lines of `halls` (those a user may see), ranked; each with its owner of now."""
        found = [replace(self._line(hall), owner=owners.get(hall, UNKNOWN)) for hall in halls]
        unread = [line for line in found if isinstance(line, HallUnread)]
        return CityLines(ranked([line for line in found if isinstance(line, HallLine)]),
                         sorted(unread, key=lambda line: line.hall))

    def _line(self, hall: str) -> HallLine | HallUnread:
        with self._locks[hall]:
            kept = self._kept.get(hall)
            began = self._monotonic()
            if kept is not None and began - kept.at < self._seconds:
                return kept.line
            store = self._stores[hall]
            line: HallLine | HallUnread
            try:
                line = self._line_of(self._city.hall(hall), store, store.clock.now())
            except Exception as exc:  # one hall's failure is that hall's line, never the page's
                log.exception("city %s: hall %s: its line on the city page cannot be computed",
                              self._city.city.name, hall)
                line = HallUnread(hall, _problem(exc))
            self._kept[hall] = _Kept(line, began)
            return line


def _problem(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def offline_across(lines: list[HallLine]) -> list[OfflineDevice]:
    found = [d for line in lines for d in line.offline]
    return sorted(found, key=lambda d: (d.since or "", d.hall, d.device))


def city_object(city: CityConfig, lines: CityLines, now: datetime) -> dict[str, Any]:
    """`/api/v1/city`: the ranked halls, those that could not be read and the devices offline
    across the ranked ones."""
    return {"city": city.city.name, "at": format_ts(now),
            "halls": [{**asdict(line), "rank": place, "offline": len(line.offline)}
                      for place, line in enumerate(lines.ranked, start=1)],
            "unread": [asdict(line) for line in lines.unread],
            "offline": [asdict(d) for d in offline_across(lines.ranked)]}
