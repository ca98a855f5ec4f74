"""Read-side views for inspectors and managers: the store's events run through the pure rules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from hub.config import HubConfig
from hub.domain import AuditEntry, Punch, SessionAttendance
from hub.rules.attendance import CardIndex, attendance_for_day, punch_for
from hub.store.store import Store

STATUS_ZH = {
    "on_time": "正常",
    "late": "迟到",
    "early_leave": "早退",
    "absent": "旷工",
    "leave": "请假",
    "holiday": "休息日",
    "pending": "待定",
}


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
        config.schedule.to_domain(),
        punches_on(config, store, day),
        store.leaves(),
        now,
        config.tz,
    )


def _hm(moment: datetime | None, config: HubConfig) -> str | None:
    return moment.astimezone(config.tz).strftime("%H:%M:%S") if moment else None


def attendance_json(rows: Sequence[SessionAttendance], config: HubConfig) -> str:
    return json.dumps(
        [
            {
                "staff": row.staff,
                "name": row.name,
                "date": row.date.isoformat(),
                "session": row.session,
                "first": row.first.astimezone(config.tz).isoformat(timespec="seconds")
                if row.first else None,
                "last": row.last.astimezone(config.tz).isoformat(timespec="seconds")
                if row.last else None,
                "status": row.status,
            }
            for row in rows
        ],
        ensure_ascii=False,
        indent=1,
    )


def attendance_table(rows: Sequence[SessionAttendance], config: HubConfig) -> str:
    header = f"{'工号':<8}{'姓名':<8}{'时段':<6}{'首次打卡':<10}{'末次打卡':<10}状态"
    lines = [header, "-" * 56]
    for row in rows:
        lines.append(
            f"{row.staff:<10}{_pad(row.name, 10)}{_pad(row.session, 8)}"
            f"{_hm(row.first, config) or '-':<12}{_hm(row.last, config) or '-':<12}"
            f"{STATUS_ZH[row.status]} {row.status}"
        )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines.append("-" * 56)
    lines.append("合计 " + ", ".join(f"{STATUS_ZH[k]} {v}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    """Pad to a display width, counting CJK characters as two columns."""
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return text + " " * max(1, width - shown)


def entry_json(entry: AuditEntry) -> dict[str, object]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="milliseconds"),
        "kind": entry.kind,
        "ref": entry.ref,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
