"""每月汇总公布 and 排名通报 written out: CSV and XLSX files, one JSON object, the text of `report month`.

Each file starts with a header block naming the hall, the month, when it was computed, the rules and
settings it was computed with, and the audit log's head at the month's end; then a table. CSV files
are UTF-8 with BOM (for Excel): `attendance-YYYY-MM.csv` (per staff member), `windows-YYYY-MM.csv`,
`ranking-YYYY-MM.csv`; `attendance-YYYY-MM.xlsx` holds the same tables as sheets.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from hub.config import HubConfig
from hub.month_summary import MonthSummary, Tally, summarize
from hub.rules.ranking import Place
from hub.store.store import Store
from hub.text import table
from wire.envelope import format_ts

HEADER = [
    "工号 staff", "姓名 name", "窗口 window", "应出勤时段 sessions", "正常 on_time", "迟到 late",
    "早退 early_leave", "旷工 absent", "请假 leave", "评价数 ratings", "差评 bad", "满意率‰ satisfaction",
    "离岗次数 away", "未按时归岗 late_returns", "未签退 missing_leave_punch",
    # from here on: every flag of a session (a late arrival who also left early counts in both)
    "迟到标记 flag_late", "早退标记 flag_early_leave", "未签退标记 flag_missing_leave_punch",
    "缺勤标记 flag_absent",
    "非常不满意 level_1", "不满意 level_2", "基本满意 level_3", "满意 level_4", "非常满意 level_5",
    "投诉 complaints", "投诉按时办结 complaints_closed_in_time", "投诉超期 complaints_overdue",
    "差评整改 cases", "整改按时办结 cases_closed_in_time", "整改超期 cases_overdue",
    "申诉 appeals", "申诉成立 appeals_accepted", "申诉驳回 appeals_rejected",
    "延时服务次数 extended_sessions", "延时服务分钟 extended_minutes", "月末在册 on_roster_at_end",
]
WINDOW_HEADER = ["窗口 window", "名称 name", *HEADER[3:-1]]
RANKING_HEADER = ["类别 kind", "名次 rank", "编号 id", "名称 name", "满意率‰ satisfaction", "评价数 ratings",
                  "末位 bottom"]
FLAGS = ("late", "early_leave", "missing_leave_punch", "absent")


def _counts(t: Tally) -> list[object]:
    s, r = t.status, t.levels
    return [
        t.sessions, s["on_time"], s["late"], s["early_leave"], s["absent"], s["leave"],
        t.ratings, r[1] + r[2], "" if t.satisfaction_permille is None else t.satisfaction_permille,
        t.away, t.late_returns, s["missing_leave_punch"],
        *(t.flags[f] for f in FLAGS), *(r[level] for level in range(1, 6)),
        t.complaints["registered"], t.complaints["closed_in_time"], t.complaints["overdue"],
        t.cases["opened"], t.cases["closed_in_time"], t.cases["overdue"],
        t.appeals["filed"], t.appeals["accepted"], t.appeals["rejected"],
        t.extended_sessions, t.extended_minutes,
    ]


def staff_rows(summary: MonthSummary) -> list[list[object]]:
    return [[t.id, t.name, t.window, *_counts(t), "是" if t.on_roster_at_end else "否"]
            for t in summary.staff]


def window_rows(summary: MonthSummary) -> list[list[object]]:
    return [[t.id, t.name, *_counts(t)] for t in summary.windows]


def ranking_rows(summary: MonthSummary) -> list[list[object]]:
    return [[kind, "" if p.rank is None else p.rank, p.id, p.name,
             "" if p.satisfaction_permille is None else p.satisfaction_permille, p.ratings,
             "末位" if p.bottom else ""]
            for kind, places in (("窗口 window", summary.ranking_windows),
                                 ("人员 staff", summary.ranking_staff))
            for p in places]


def month_rows(config: HubConfig, store: Store, month: str, now: datetime) -> list[list[object]]:
    """One row per staff member on the roster at any time of the month (columns: HEADER)."""
    return staff_rows(summarize(config, store, month, now))


def header_block(summary: MonthSummary) -> list[list[object]]:
    """The file's first rows: title, then 计算依据 (rules and settings), then the log's head."""
    r, sched = summary.rules, summary.rules["schedule"]
    source = "日志名册 roster log" if r["source"] == "log" else "当前配置 config"
    settings: list[tuple[str, object]] = [
        ("来源 source", f"{source} " + " ".join(f"#{e['seq']}@{e['at']}" for e in r["roster_entries"])),
        ("作息 sessions", ", ".join(f"{s['name']} {s['start']}-{s['end']}" for s in sched["sessions"])),
        ("工作日 workdays", ",".join(map(str, sched["workdays"]))),
        ("节假日 holidays", ",".join(sched["holidays"])),
        ("调休 makeup_workdays", ",".join(sched["makeup_workdays"])),
        ("迟到宽限(分钟) grace_minutes", sched["grace_minutes"]),
        ("旷工阈值(分钟) absent_after_minutes", sched["absent_after_minutes"]),
        ("须签退 require_leave_punch", sched["require_leave_punch"]),
        ("延时服务(分钟) extended_minutes", sched["extended_minutes"]),
        ("启用日期 since", sched["since"] or ""),
        ("计入评价 ratings.count", r["ratings"]["count"]),
        ("重复按键(秒) ratings.repeat_seconds", r["ratings"]["repeat_seconds"]),
        ("满意率 satisfaction", "3-5 级 / 计入评价数, 千分比 (levels 3..5 over counted, per mille)"),
        ("整改时限(工作日) cases.deadline_days", r["cases"]["deadline_days"]),
        ("书面投诉时限(工作日) complaints.written_days", r["complaints"]["written_days"]),
        ("口头投诉时限(工作日) complaints.oral_days", r["complaints"]["oral_days"]),
        ("归岗宽限(分钟) late_return_grace_minutes", r["alerts"]["late_return_grace_minutes"]),
        ("末位标记(%) reports.bottom_marked", r["reports"]["bottom_marked"]),
    ]
    computed = summary.now.isoformat(timespec="seconds")
    return [
        [f"{summary.hall} {summary.month} 考勤与服务月度汇总 (生成于 {computed})"],
        *(["计算依据 rules", label, value] for label, value in settings),
        ["审计链头 chain_head", summary.chain_head.entries, summary.chain_head.hash],
    ]


def write_month(config: HubConfig, store: Store, month: str, out_dir: Path,
                now: datetime) -> list[Path]:
    """Write the month's CSV files and the XLSX workbook; returns the paths."""
    return write_summary(summarize(config, store, month, now), out_dir)


def write_summary(summary: MonthSummary, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    month = summary.month
    head = header_block(summary)
    tables: list[tuple[str, str, list[str], list[list[object]]]] = [
        ("attendance", f"汇总 {month}", HEADER, staff_rows(summary)),
        ("windows", "窗口 windows", WINDOW_HEADER, window_rows(summary)),
        ("ranking", "排名 ranking", RANKING_HEADER, ranking_rows(summary)),
    ]
    paths: list[Path] = []
    book = Workbook()
    for n, (name, title, header, rows) in enumerate(tables):
        path = out_dir / f"{name}-{month}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerows(head)
            writer.writerow(header)
            writer.writerows(rows)
        paths.append(path)
        sheet = book.active if n == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        for row in head:
            sheet.append(row)
        sheet.append(header)
        for cell in sheet[len(head) + 1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(row)
    xlsx_path = out_dir / f"attendance-{month}.xlsx"
    book.save(xlsx_path)
    return [paths[0], xlsx_path, *paths[1:]]


def table_rows(path: Path) -> list[list[str]]:
    """A written CSV's table: the rows after its header row (the header block skipped)."""
    with path.open(encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    start = next(n for n, row in enumerate(rows) if row and row[0] in (HEADER[0], WINDOW_HEADER[0],
                                                                        RANKING_HEADER[0]))
    return rows[start + 1:]


def _tally_json(t: Tally, staff: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"id": t.id, "name": t.name}
    if staff:
        data |= {"window": t.window, "on_roster_at_end": t.on_roster_at_end}
    return data | {
        "sessions": t.sessions,
        "status": {k: t.status[k] for k in ("on_time", "late", "early_leave", "missing_leave_punch",
                                            "absent", "leave")},
        "flags": {f: t.flags[f] for f in FLAGS},
        "away": t.away, "late_returns": t.late_returns,
        "ratings": {"levels": {str(level): t.levels[level] for level in range(1, 6)}, "total": t.ratings,
                    "satisfied": t.satisfied, "satisfaction_permille": t.satisfaction_permille},
        "complaints": {k: t.complaints[k] for k in ("registered", "closed_in_time", "overdue")},
        "cases": {k: t.cases[k] for k in ("opened", "closed_in_time", "overdue")},
        "appeals": {k: t.appeals[k] for k in ("filed", "accepted", "rejected")},
        "extended": {"sessions": t.extended_sessions, "minutes": t.extended_minutes},
    }


def _place_json(p: Place) -> dict[str, Any]:
    return {"rank": p.rank, "id": p.id, "name": p.name, "satisfaction_permille": p.satisfaction_permille,
            "ratings": p.ratings, "bottom": p.bottom}


def summary_json(summary: MonthSummary) -> dict[str, Any]:
    """`report month --json`: one object."""
    return {
        "hall": summary.hall, "month": summary.month, "computed_at": format_ts(summary.now),
        "staff": [_tally_json(t, True) for t in summary.staff],
        "windows": [_tally_json(t, False) for t in summary.windows],
        "ranking": {"windows": [_place_json(p) for p in summary.ranking_windows],
                    "staff": [_place_json(p) for p in summary.ranking_staff]},
        "chain_head": {"entries": summary.chain_head.entries, "hash": summary.chain_head.hash},
        "rules": summary.rules,
    }


def _ranking_text(title: str, places: Sequence[Place]) -> str:
    return f"{title}\n" + table(("名次", "编号", "名称", "满意率‰", "评价数", "末位"), [
        ("—" if p.rank is None else str(p.rank), p.id, p.name or None,
         None if p.satisfaction_permille is None else str(p.satisfaction_permille), str(p.ratings),
         "末位" if p.bottom else None) for p in places])


def summary_text(summary: MonthSummary) -> str:
    """`report month` for people: the header block, staff and windows in short, the ranking."""
    lines = [" ".join(str(c) for c in row if c != "") for row in header_block(summary)]
    columns = ("编号", "名称", "时段", "迟到", "早退", "未签退", "缺勤", "请假", "离岗", "超时归岗", "评价",
               "满意率‰", "投诉", "整改", "申诉", "延时(分)")

    def short(t: Tally) -> tuple[str | None, ...]:
        return (t.id, t.name or None, *(str(v) for v in (
            t.sessions, t.flags["late"], t.flags["early_leave"], t.flags["missing_leave_punch"],
            t.flags["absent"], t.status["leave"], t.away, t.late_returns, t.ratings)),
            None if t.satisfaction_permille is None else str(t.satisfaction_permille),
            *(str(v) for v in (t.complaints["registered"], t.cases["opened"], t.appeals["filed"],
                               t.extended_minutes)))

    return "\n".join([*lines, "", "人员 staff", table(columns, [short(t) for t in summary.staff]),
                      "", "窗口 windows", table(columns, [short(t) for t in summary.windows]), "",
                      _ranking_text("窗口排名 windows by 满意率", summary.ranking_windows), "",
                      _ranking_text("人员排名 staff by 满意率", summary.ranking_staff)])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
