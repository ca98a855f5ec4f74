"""Read-side views for inspectors and managers: the store's events run through the pure rules."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta

from hub.audit import public_data
from hub.config import HubConfig
from hub.domain import (
    ATTENDANCE_FLAGS,
    AuditEntry,
    ExtendedService,
    Punch,
    Rating,
    Schedule,
    SessionAttendance,
    StoredEvent,
)
from hub.rules.attendance import CardIndex, attendance_for_day, punch_for
from hub.store.store import Store
from hub.text import table

STATUS_ZH = {
    "on_time": "正常",
    "late": "迟到",
    "early_leave": "早退",
    "missing_leave_punch": "未签退",
    "absent": "旷工",
    "leave": "请假",
    "holiday": "休息日",
    "pending": "待定",
    "not_live": "未启用",
}
ATTENDANCE_FLAG_ZH = {
    "late": "迟到",
    "absent": "缺勤",
    "early_leave": "早退",
    "missing_leave_punch": "未签退",
}


def schedule_of(config: HubConfig, store: Store) -> Schedule:
    """The hall's schedule with its go-live date: `[schedule] since`, or else the day of the log's
    first entry (days before the hall went live are not judged)."""
    schedule = config.schedule.to_domain()
    if schedule.since is None:
        first = store.first_audit()
        if first is not None:
            schedule = replace(schedule, since=first.at.astimezone(config.tz).date())
    return schedule


def day_bounds(config: HubConfig, day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=config.tz)
    return start, start + timedelta(days=1)


def punches_on(config: HubConfig, store: Store, day: date) -> list[Punch]:
    since, until = day_bounds(config, day)
    index = CardIndex(config.roster())
    punches = []
    for event in store.events(type="clock", since=since, until=until):
        punch = punch_for(event.id, event.ts, event.body, index, config.face.require_live)
        if punch is not None:
            punches.append(punch)
    return punches


def attendance(config: HubConfig, store: Store, day: date, now: datetime) -> list[SessionAttendance]:
    return attendance_for_day(
        day,
        config.roster(),
        schedule_of(config, store),
        punches_on(config, store, day),
        store.leaves(),
        now,
        config.tz,
    )


def rating_of(event: StoredEvent) -> Rating:
    """A `rating` event as the rules read it."""
    body = event.body
    return Rating(event_id=event.id, window=str(body["window"]), level=int(body["level"]),
                  invited=bool(body["invited"]), invite=body.get("invite"),  # type: ignore[arg-type]
                  ticket=body.get("ticket"), at=event.ts)  # type: ignore[arg-type]


def find_rating(store: Store, rating_id: str) -> Rating | None:
    """One rating by its event id, only if it verifies (found by id, then read back through the
    store's checked path at its time)."""
    row = store.events_by_id([rating_id]).get(rating_id)
    if row is None or row.type != "rating":
        return None
    near = store.events(type="rating", since=row.ts, until=row.ts + timedelta(milliseconds=1))
    return next((rating_of(e) for e in near if e.id == rating_id), None)


def _hm(moment: datetime | None, config: HubConfig) -> str | None:
    return moment.astimezone(config.tz).strftime("%H:%M:%S") if moment else None


def _extended_by_row(extended: Iterable[ExtendedService]) -> dict[tuple[str, str, str], int]:
    return {(e.staff, e.date.isoformat(), e.session): e.minutes for e in extended}


def attendance_data(rows: Sequence[SessionAttendance], config: HubConfig,
                    extended: Iterable[ExtendedService] = ()) -> list[dict[str, object]]:
    """The rows as JSON-able objects: `flags` lists every violation (English codes),
    `extended_minutes` the extended service after the session's end (延时服务, 0 without; never a
    violation)."""
    minutes = _extended_by_row(extended)
    return [
        {
            "staff": row.staff,
            "name": row.name,
            "date": row.date.isoformat(),
            "session": row.session,
            "first": row.first.astimezone(config.tz).isoformat(timespec="seconds") if row.first else None,
            "last": row.last.astimezone(config.tz).isoformat(timespec="seconds") if row.last else None,
            "status": row.status,
            "flags": list(row.flags),
            "extended_minutes": minutes.get((row.staff, row.date.isoformat(), row.session), 0),
        }
        for row in rows
    ]


def attendance_json(rows: Sequence[SessionAttendance], config: HubConfig,
                    extended: Iterable[ExtendedService] = ()) -> str:
    return json.dumps(attendance_data(rows, config, extended), ensure_ascii=False, indent=1)


def attendance_table(rows: Sequence[SessionAttendance], config: HubConfig,
                     extended: Iterable[ExtendedService] = ()) -> str:
    minutes = _extended_by_row(extended)
    body = []
    for row in rows:
        served = minutes.get((row.staff, row.date.isoformat(), row.session))
        body.append((row.staff, row.name, row.session, _hm(row.first, config), _hm(row.last, config),
                     f"{STATUS_ZH[row.status]} {row.status}",
                     "、".join(ATTENDANCE_FLAG_ZH[flag] for flag in row.flags) or None,
                     f"{served} 分钟" if served else None))
    text = table(("工号", "姓名", "时段", "首次打卡", "末次打卡", "状态", "标记", "延时服务"), body)
    counts = Counter(row.status for row in rows)
    flags = Counter(flag for row in rows for flag in row.flags)
    total = "\n合计 " + ", ".join(f"{STATUS_ZH[k]} {v}" for k, v in sorted(counts.items()))
    if flags:
        shown = [f"{ATTENDANCE_FLAG_ZH[k]} {flags[k]}" for k in ATTENDANCE_FLAGS if k in flags]
        total += "; 标记 " + ", ".join(shown)
    return text + total


def entry_json(entry: AuditEntry) -> dict[str, object]:
    """An entry as `log show --json` prints it, personal data hidden (hub/audit.py PERSONAL_FIELDS)."""
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="milliseconds"),
        "kind": entry.kind,
        "ref": entry.ref,
        "data": public_data(entry),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
