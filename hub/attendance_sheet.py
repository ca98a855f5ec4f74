"""考勤月表: a month of attendance as a sheet, staff x days, each cell the day's sessions with their
status and flags (the rules' own rows, hub/reports.py `attendance`); and the same sheet, or one day,
as the rows of a CSV/XLSX export. Read side only: nothing here writes."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill

from hub.config import HubConfig
from hub.domain import ExtendedService, SessionAttendance
from hub.hall import hall_day, month_days
from hub.reports import ATTENDANCE_FLAG_ZH, STATUS_ZH, attendance
from hub.store.store import Store

# The colour of a cell: its worst session (first in this order), one CSS class / fill per status.
SEVERITY = ("absent", "late", "early_leave", "missing_leave_punch", "leave", "on_time", "pending",
            "holiday", "not_live")
COLOURS = {  # background (hex RGB), shared by the console's CSS legend and the XLSX fills
    "absent": "F4B6B6", "late": "FFD8A8", "early_leave": "FFE8A3", "missing_leave_punch": "E9D5FF",
    "leave": "BFDBFE", "on_time": "C6F0C2", "pending": "EEEEEE", "holiday": "F6F8FA", "not_live": "F6F8FA",
}


# One character per status, for a sheet that fits a month on an office screen (the legend says them).
STATUS_SHORT = {"on_time": "正", "late": "迟", "early_leave": "退", "missing_leave_punch": "未",
                "absent": "旷", "leave": "假", "pending": "…", "holiday": "休", "not_live": "—"}


@dataclass(frozen=True)
class SheetRow:
    staff: str
    name: str
    window: str
    days: dict[date, list[SessionAttendance]] = field(default_factory=dict)


@dataclass(frozen=True)
class MonthSheet:
    month: str
    days: list[date]
    rows: list[SheetRow]


def worst(sessions: Sequence[SessionAttendance]) -> str | None:
    """The status a cell is coloured by: its sessions' statuses and flags, the worst first."""
    seen = {s.status for s in sessions} | {f for s in sessions for f in s.flags}
    return next((status for status in SEVERITY if status in seen), None)


def session_text(row: SessionAttendance) -> str:
    """`上午 迟到` or `下午 迟到(早退)`: the session's status, then its other flags."""
    flags = [ATTENDANCE_FLAG_ZH[f] for f in row.flags if f != row.status]
    extra = f"({'、'.join(flags)})" if flags else ""
    return f"{row.session} {STATUS_ZH.get(row.status, row.status)}{extra}"


def session_short(row: SessionAttendance) -> str:
    """`上正` or `下迟退`: the session's first character, its status, its other flags."""
    flags = "".join(STATUS_SHORT[f] for f in row.flags if f != row.status)
    return f"{row.session[:1]}{STATUS_SHORT.get(row.status, '?')}{flags}"


def cell_text(sessions: Sequence[SessionAttendance]) -> str:
    return "; ".join(session_text(s) for s in sessions)


def month_sheet(config: HubConfig, store: Store, month: str, now: datetime, staff: str | None = None,
                window: str | None = None) -> MonthSheet:
    """Each staff member of the roster (one of them, or a window's) by day; days after `now`'s
    day are left empty (not yet judged)."""
    days = month_days(month)
    today = now.astimezone(config.tz).date()
    members = [m for m in config.staff if (staff is None or m.id == staff)
               and (window is None or m.window == window)]
    rows = [SheetRow(m.id, m.name, m.window) for m in members]
    by_id = {row.staff: row for row in rows}
    for day in days:
        if day > today:
            continue
        for session in attendance(config, store, day, now):
            row = by_id.get(session.staff)
            if row is not None:
                row.days.setdefault(day, []).append(session)
    return MonthSheet(month, days, rows)


def day_rows(config: HubConfig, store: Store, day: date, now: datetime,
             staff: str | None = None, window: str | None = None
             ) -> tuple[list[SessionAttendance], list[ExtendedService]]:
    """A day's sessions (one staff member's, or a window's) and the extended service of the day."""
    hall = hall_day(config, store, day, now)
    windows = {m.id: m.window for m in config.staff}
    rows = [r for r in hall.attendance if (staff is None or r.staff == staff)
            and (window is None or windows.get(r.staff) == window)]
    return rows, hall.extended


# --- exports ----------------------------------------------------------------------------------

def sheet_table(sheet: MonthSheet) -> list[list[str]]:
    """The sheet as a table: header row, then one row per staff member."""
    header = ["工号 staff", "姓名 name", "窗口 window", *(f"{d:%m-%d}" for d in sheet.days)]
    return [header, *([row.staff, row.name, row.window, *(cell_text(row.days.get(d, [])) for d in sheet.days)]
                      for row in sheet.rows)]


DAY_HEADER = ["工号 staff", "姓名 name", "时段 session", "首次打卡 first", "末次打卡 last", "状态 status",
              "标记 flags", "延时服务(分钟) extended_minutes"]


def day_table(rows: Sequence[SessionAttendance], extended: Sequence[ExtendedService],
              config: HubConfig) -> list[list[str]]:
    minutes = {(e.staff, e.session): e.minutes for e in extended}

    def hms(moment: datetime | None) -> str:
        return moment.astimezone(config.tz).strftime("%H:%M:%S") if moment else ""

    return [DAY_HEADER, *([r.staff, r.name, r.session, hms(r.first), hms(r.last),
                           STATUS_ZH.get(r.status, r.status),
                           "、".join(ATTENDANCE_FLAG_ZH[f] for f in r.flags),
                           str(minutes.get((r.staff, r.session), ""))] for r in rows)]


def csv_bytes(title: str, table: list[list[str]]) -> bytes:
    """UTF-8 with BOM (for Excel): a title row, then the table."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title])
    writer.writerows(table)
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(title: str, sheet_name: str, table: list[list[str]],
               fills: list[list[str | None]] | None = None) -> bytes:
    """One worksheet: a title row, the table's header in bold, then its rows; `fills` colours the
    body's cells by status (a SEVERITY status per cell, or None)."""
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet_name
    ws.append([title])
    for row in table:
        ws.append(row)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for r, statuses in enumerate(fills or [], start=3):
        for c, status in enumerate(statuses, start=1):
            if status is not None:
                ws.cell(r, c).fill = PatternFill("solid", fgColor=COLOURS[status])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def sheet_fills(sheet: MonthSheet) -> list[list[str | None]]:
    return [[None, None, None, *(worst(row.days.get(d, [])) for d in sheet.days)] for row in sheet.rows]
