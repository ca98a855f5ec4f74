"""The read side of a city console's page (`/city`, `/api/v1/city`): each hall's line (this month's
满意率 as the month summary computes it, today's attendance rate as the attendance day computes it,
ratings, open cases, devices offline, the worker owning it) and the devices offline across halls.

Pure reads of each hall's own store; times in each hall's zone. Which worker owns a hall comes from
`city_owners` (hub/city/locks.py), best effort: the lock database may be unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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


def city_lines(city: CityConfig, stores: Mapping[str, Store], halls: list[str],
               owners: Mapping[str, str]) -> list[HallLine]:
    """The lines of `halls` (those a user may see), ranked; each read at its store's clock."""
    lines = [hall_line(city.hall(hall), stores[hall], stores[hall].clock.now(), owners.get(hall, UNKNOWN))
             for hall in halls]
    return ranked(lines)


def offline_across(lines: list[HallLine]) -> list[OfflineDevice]:
    found = [d for line in lines for d in line.offline]
    return sorted(found, key=lambda d: (d.since or "", d.hall, d.device))


def city_object(city: CityConfig, lines: list[HallLine], now: datetime) -> dict[str, Any]:
    """`/api/v1/city`: the ranked halls and the devices offline across them."""
    return {"city": city.city.name, "at": format_ts(now),
            "halls": [{**asdict(line), "rank": place, "offline": len(line.offline)}
                      for place, line in enumerate(lines, start=1)],
            "offline": [asdict(d) for d in offline_across(lines)]}
