"""The inspector's and manager's commands as a newcomer reads them: judged as of `--at`, reports
from the hall's go-live on, Chinese text aligned by display width, empty listings that say so."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_hub_window import DAY, hub_cli, make_hall

from hub.monthly import table_rows
from hub.store.store import Store
from hub.text import pad, table, width


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    config, store = make_hall(tmp_path)
    yield config, store
    store.close()


def test_columns_align_by_display_width() -> None:
    assert (width("张伟"), width("S001"), width("（全角）"), width("café")) == (4, 4, 8, 4)
    assert pad("张伟", 6) == "张伟  "
    text = table(("工号", "姓名", "状态"), [("S001", "张伟", "迟到"), ("S0002", "欧阳娜娜", "正常")])
    lines = text.splitlines()
    status_at = {width(line[: line.index(status)]) for line, status in zip(lines[2:], ("迟到", "正常"),
                                                                             strict=True)}
    assert len(status_at) == 1  # the last column starts at the same screen column on every row
    assert table(("a", "b"), []).endswith("无记录 (none)")


def test_attendance_at_a_time_of_day_ignores_later_punches(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    early = hub_cli(config, "attendance", "--date", DAY, "--at", "08:22", "--json")
    assert early.returncode == 0, early.stderr
    morning = {row["staff"]: row for row in json.loads(early.stdout) if row["session"] == "上午"}
    assert (morning["S001"]["status"], morning["S001"]["first"][11:16]) == ("on_time", "08:20")
    assert (morning["S002"]["status"], morning["S002"]["first"]) == ("pending", None)  # punched 08:25
    iso = hub_cli(config, "attendance", "--date", DAY, "--at", f"{DAY}T08:22:00+08:00", "--json")
    assert json.loads(iso.stdout) == json.loads(early.stdout)
    bad = hub_cli(config, "attendance", "--date", DAY, "--at", "noon")
    assert bad.returncode == 2 and "give HH:MM" in bad.stderr and "Traceback" not in bad.stderr


def test_month_counts_only_sessions_judged_since_go_live(hall: tuple[Path, Store], tmp_path: Path) -> None:
    config, _ = hall  # the log starts on DAY (a Tuesday): the month's earlier workdays are not judged
    leave = hub_cli(config, "leave", "add", "--staff", "S001", "--from", "2026-11-27", "--to", "2026-11-27",
                    "--approver", "主任", "--by", "主任", "--clock", "2026-11-26T12:00:00+08:00")
    assert leave.returncode == 0, leave.stderr
    result = hub_cli(config, "report", "month", "--month", "2026-11", "--out", str(tmp_path),
                     "--clock", "2026-11-26T12:00:00+08:00")
    assert result.returncode == 0, result.stderr
    rows = {row[0]: row for row in table_rows(tmp_path / "attendance-2026-11.csv")}
    # 24th and 25th whole, the 26th's morning: five sessions; the leave of the 27th is not yet due
    assert rows["S001"][3:9] == ["5", "1", "0", "0", "4", "0"]  # on time on the 24th morning only
    assert rows["S002"][3:9] == ["5", "1", "0", "0", "4", "0"]


def test_an_explicit_go_live_date(hall: tuple[Path, Store], tmp_path: Path) -> None:
    config, _ = hall
    text = config.read_text(encoding="utf-8").replace("[schedule]\n", "[schedule]\nsince = 2026-11-25\n")
    config.write_text(text, encoding="utf-8")
    result = hub_cli(config, "attendance", "--date", DAY, "--json")
    assert {row["status"] for row in json.loads(result.stdout)} == {"not_live"}
    findings = json.loads(hub_cli(config, "findings", "--date", DAY, "--json").stdout)
    assert not {"absence", "unattended_window"} & {f["kind"] for f in findings}


def test_log_show_names_event_ids_and_refuses_an_unknown_kind(hall: tuple[Path, Store]) -> None:
    config, store = hall
    shown = hub_cli(config, "log", "show", "--kind", "event")
    assert shown.returncode == 0, shown.stderr
    first = next(iter(store.events(type="clock")))
    assert f"id={first.id}" in shown.stdout
    bad = hub_cli(config, "log", "show", "--kind", "events")
    assert bad.returncode == 2 and "leave" in bad.stderr and "case_closed" in bad.stderr
    empty = hub_cli(config, "log", "show", "--kind", "leave")
    assert empty.stdout.strip() == "无记录 (none)"


def test_a_write_behind_the_log_is_refused(hall: tuple[Path, Store]) -> None:
    config, _ = hall  # the log's last entry is at 18:00 on DAY
    result = hub_cli(config, "leave", "add", "--staff", "S001", "--from", DAY, "--to", DAY,
                     "--approver", "主任", "--by", "主任", "--clock", f"{DAY}T09:00:00+08:00")
    assert result.returncode == 2 and "behind the log's last entry" in result.stderr
    assert "Traceback" not in result.stderr
    assert "无记录" in hub_cli(config, "leave", "list").stdout


def test_log_verify_on_a_missing_database_says_so(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('hall = "h1"\nprivate_key = "' + "1" * 64 + '"\n[store]\nurl = "sqlite:///gone.db"\n',
                      encoding="utf-8")
    result = hub_cli(config, "log", "verify")
    assert result.returncode == 2 and "no hub database" in result.stderr
    assert not (tmp_path / "gone.db").exists()
    sqlite3.connect(tmp_path / "gone.db").close()  # an empty file: not a hub store either
    again = hub_cli(config, "log", "verify")
    assert again.returncode == 2 and "not a hub store" in again.stderr


def test_listings_speak_chinese(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    away = hub_cli(config, "away", "--date", DAY).stdout
    assert "会议" in away and "暂离" in away and "S002 王芳" in away and "meeting" not in away
    findings = hub_cli(config, "findings", "--date", DAY).stdout
    assert "未按时归岗" in findings and "超时 21 分钟" in findings and "来源事件" in findings
    assert '{"' not in findings  # no raw JSON
    assert hub_cli(config, "quarantine").stdout.strip().endswith("无记录 (none)")
    leave = hub_cli(config, "leave", "add", "--staff", "S002", "--from", "2026-11-30", "--to", "2026-11-30",
                    "--approver", "办公室主任", "--reason", "事假", "--by", "办公室主任")
    assert leave.returncode == 0, leave.stderr
    listed = hub_cli(config, "leave", "list").stdout.splitlines()
    assert listed[0].split() == ["编号", "人员", "自", "至", "批准人", "事由", "登记时间"]
    assert "S002 王芳" in listed[2] and "办公室主任" in listed[2]


def test_cases_list_shows_who_closed_and_the_note(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    listed = json.loads(hub_cli(config, "cases", "list", "--from", DAY, "--to", DAY, "--json").stdout)
    closed = hub_cli(config, "cases", "close", "--case", listed[0]["id"], "--by", "李科长", "--result",
                     "已电话回访", "--note", "群众表示理解")
    assert closed.returncode == 0, closed.stderr
    text = hub_cli(config, "cases", "list", "--from", DAY, "--to", DAY).stdout
    row = next(line for line in text.splitlines() if line.startswith(listed[0]["id"]))
    assert "已办结" in row and "李科长" in row and "已电话回访" in row and "群众表示理解" in row
