"""每月汇总公布: the monthly attendance and service summary, written as CSV and XLSX."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

from hub.config import HubConfig
from hub.hall import hall_day, month_days
from hub.reports import schedule_of
from hub.rules.attendance import before_go_live, is_workday
from hub.rules.away import DeskOwners
from hub.rules.presence import Presence
from hub.store.store import Store

HEADER = [
    "工号 staff", "姓名 name", "窗口 window", "应出勤时段 sessions", "正常 on_time", "迟到 late",
    "早退 early_leave", "旷工 absent", "请假 leave", "评价数 ratings", "差评 bad", "满意率‰ satisfaction",
    "离岗次数 away", "未按时归岗 late_returns", "未签退 missing_leave_punch",
]


def month_rows(config: HubConfig, store: Store, month: str, now: datetime) -> list[list[object]]:
    """One row per staff member. Only sessions judged by `now` count: workdays from the hall's
    go-live on, sessions that have started (a future leave changes nothing yet)."""
    schedule = schedule_of(config, store)
    starts = {s.name: s.start for s in schedule.sessions}
    status: dict[str, Counter[str]] = {m.id: Counter() for m in config.staff}
    levels: dict[str, Counter[int]] = {m.id: Counter() for m in config.staff}
    away: Counter[str] = Counter()
    late_returns: Counter[str] = Counter()
    for day in month_days(month):
        if not is_workday(day, schedule) or before_go_live(day, schedule):
            continue
        hall = hall_day(config, store, day, now)
        owners = DeskOwners(config.roster(), Presence(hall.attendance, schedule, config.tz))
        for row in hall.attendance:
            if datetime.combine(day, starts[row.session], tzinfo=config.tz) <= now:
                status[row.staff][row.status] += 1
        for rated in hall.ratings:
            if rated.staff is not None and rated.counted:
                levels[rated.staff][rated.rating.level] += 1
        for period in hall.periods:
            owner = owners.of(period.window, period.desk, period.start)
            if period.state == "away" and owner is not None:
                away[owner] += 1
        for finding in hall.findings:
            if finding.kind == "late_return" and finding.staff:
                late_returns[finding.staff] += 1
    rows: list[list[object]] = []
    for member in config.staff:
        counts, rated = status[member.id], levels[member.id]
        total = sum(rated.values())
        satisfied = rated[3] + rated[4] + rated[5]
        rows.append([
            member.id, member.name, member.window,
            sum(counts.values()) - counts["holiday"] - counts["pending"],
            counts["on_time"], counts["late"], counts["early_leave"], counts["absent"], counts["leave"],
            total, rated[1] + rated[2], round(1000 * satisfied / total) if total else "",
            away[member.id], late_returns[member.id], counts["missing_leave_punch"],
        ])
    return rows


def write_month(config: HubConfig, store: Store, month: str, out_dir: Path,
                now: datetime) -> list[Path]:
    """Write `attendance-YYYY-MM.csv` (UTF-8 with BOM, for Excel) and `.xlsx`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = month_rows(config, store, month, now)
    title = f"{config.hall} {month} 考勤与服务月度汇总 (生成于 {now.isoformat(timespec='seconds')})"
    csv_path = out_dir / f"attendance-{month}.csv"
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([title])
        writer.writerow(HEADER)
        writer.writerows(rows)
    xlsx_path = out_dir / f"attendance-{month}.xlsx"
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"汇总 {month}"
    sheet.append([title])
    sheet.append(HEADER)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    book.save(xlsx_path)
    return [csv_path, xlsx_path]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
