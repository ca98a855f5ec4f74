"""考勤 pages: the day view, the monthly sheet (staff x days, colour-coded with a legend), each by
window, and their CSV/XLSX exports. A staff account sees its own row only."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from hub.attendance_sheet import (
    COLOURS,
    SEVERITY,
    STATUS_SHORT,
    cell_text,
    csv_bytes,
    day_rows,
    day_table,
    month_sheet,
    session_short,
    sheet_fills,
    sheet_table,
    worst,
    xlsx_bytes,
)
from hub.reports import ATTENDANCE_FLAG_ZH, STATUS_ZH
from hub.web.auth import Principal, hub_of, own_scope, require
from hub.web.forms import MonthQuery, TextQuery, blank, download, month_or_this, now_of, today_of
from hub.web.rights import Right
from hub.web.templating import render

router = APIRouter(tags=["attendance"])
Reader = Annotated[Principal, Depends(require(Right.READ_ALL, Right.READ_OWN))]
Exporter = Annotated[Principal, Depends(require(Right.EXPORT))]
Format = Literal["csv", "xlsx"]


def windows_of(request: Request) -> list[str]:
    return sorted({m.window for m in hub_of(request).config.staff if m.window})


@router.get("/attendance")
def day_view(request: Request, caller: Reader, date: date | None = None,
             window: TextQuery = None) -> Response:
    hub = hub_of(request)
    day = date or today_of(request)
    rows, extended = day_rows(hub.config, hub.store, day, now_of(request), own_scope(caller, None),
                              blank(window))
    minutes = {(e.staff, e.session): e.minutes for e in extended}
    return render(request, "attendance_day.html", caller, title="考勤 · 日视图", day=day, rows=rows,
                  minutes=minutes, window=blank(window) or "", windows=windows_of(request),
                  status_zh=STATUS_ZH, flag_zh=ATTENDANCE_FLAG_ZH, tz=hub.config.tz, worst=worst)


@router.get("/attendance/month")
def month_view(request: Request, caller: Reader, month: MonthQuery = None,
               window: TextQuery = None) -> Response:
    hub = hub_of(request)
    chosen = month_or_this(request, month)
    sheet = month_sheet(hub.config, hub.store, chosen, now_of(request), own_scope(caller, None),
                        blank(window))
    legend = [(status, STATUS_ZH.get(status, status)) for status in SEVERITY if status != "not_live"]
    return render(request, "attendance_month.html", caller, title="考勤 · 月表", sheet=sheet, month=chosen,
                  window=blank(window) or "", windows=windows_of(request), legend=legend, colours=COLOURS,
                  worst=worst, cell_text=cell_text, short=session_short, codes=STATUS_SHORT,
                  today=today_of(request))


@router.get("/attendance/month/export")
def month_export(request: Request, caller: Exporter, format: Format = "xlsx", month: MonthQuery = None,
                 window: TextQuery = None) -> Response:
    hub = hub_of(request)
    chosen = month_or_this(request, month)
    sheet = month_sheet(hub.config, hub.store, chosen, now_of(request), None, blank(window))
    title = f"{hub.config.hall} {chosen} 考勤月表" + (f" 窗口 {blank(window)}" if blank(window) else "")
    table = sheet_table(sheet)
    data = (csv_bytes(title, table) if format == "csv"
            else xlsx_bytes(title, f"考勤 {chosen}", table, sheet_fills(sheet)))
    return download(data, f"attendance-sheet-{chosen}.{format}", format)


@router.get("/attendance/export")
def day_export(request: Request, caller: Exporter, format: Format = "xlsx", date: date | None = None,
               window: TextQuery = None) -> Response:
    hub = hub_of(request)
    day = date or today_of(request)
    rows, extended = day_rows(hub.config, hub.store, day, now_of(request), None, blank(window))
    title = f"{hub.config.hall} {day.isoformat()} 考勤"
    table = day_table(rows, extended, hub.config)
    data = csv_bytes(title, table) if format == "csv" else xlsx_bytes(title, f"考勤 {day.isoformat()}", table)
    return download(data, f"attendance-{day.isoformat()}.{format}", format)
