"""Rating appeals (申诉复核) through the command line and a real SQLite store: an accepted appeal takes
the rating out of every statistic and closes its case, a rejected one changes nothing, an appeal
accepted after the month's report changes the month computed again but not the report logged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_complaints import clock, refused
from test_hub_window import DAY, hub_cli, make_hall

from hub import config as hub_config
from hub.appeals import appeal_states
from hub.audit import verify_log
from hub.monthly import digest, month_rows, table_rows
from hub.scheduler import HallScheduler
from hub.store.store import Store
from wire.clock import FixedClock

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    config, store = make_hall(tmp_path)
    yield config, store
    store.close()


def ratings(config: Path, moment: str = "2026-11-25T12:00:00") -> dict[str, object]:
    result = hub_cli(config, "ratings", "--date", DAY, "--json", *clock(moment))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rating_of(data: dict[str, object], window: str, level: int) -> dict[str, object]:
    return next(r for r in data["ratings"] if (r["window"], r["level"]) == (window, level))  # type: ignore[union-attr,index]


def test_an_accepted_appeal_excludes_the_rating_and_closes_its_case(hall: tuple[Path, Store]) -> None:
    config, store = hall
    before = ratings(config)
    bad = rating_of(before, "02", 2)  # S002's 不满意 at 11:00: it opened a case
    assert (bad["staff"], bad["counted"], bad["appeal"]) == ("S002", True, None)
    assert before["by_staff"]["S002"]["total"] == 1  # type: ignore[index]
    appealed = hub_cli(config, "ratings", "appeal", "--rating", str(bad["id"]), "--by", "S002 王芳",
                       "--reason", "群众误按", *clock("2026-11-25T09:00:00"))
    assert appealed.returncode == 0, appealed.stderr
    assert "待复核" in appealed.stdout
    pending = ratings(config)
    row = rating_of(pending, "02", 2)
    assert (row["counted"], row["flags"], row["appeal"]) == (True, ["appealed"], "open")  # still counts
    assert pending["by_staff"]["S002"]["total"] == 1  # type: ignore[index]
    again = hub_cli(config, "ratings", "appeal", "--rating", str(bad["id"]), "--by", "主任", "--reason", "x",
                    *clock("2026-11-25T09:10:00"))
    assert "already has an open appeal" in refused(again)
    accepted = hub_cli(config, "ratings", "decide", "--rating", str(bad["id"]), "--by", "办公室主任",
                       "--accept", "--note", "监控显示群众误按", *clock("2026-11-25T10:00:00"))
    assert accepted.returncode == 0, accepted.stderr
    after = ratings(config)
    row = rating_of(after, "02", 2)
    assert (row["counted"], row["flags"], row["appeal"]) == (False, ["excluded_by_appeal"], "accepted")
    assert after["by_staff"]["S002"]["total"] == 0  # type: ignore[index]
    assert after["by_window"]["02"]["total"] == 1 and after["by_window"]["02"]["counts"]["2"] == 0  # type: ignore[index]
    assert len(after["ratings"]) == len(before["ratings"])  # kept, never deleted  # type: ignore[arg-type]
    text = hub_cli(config, "ratings", "--date", DAY, *clock("2026-11-25T12:00:00")).stdout
    assert "申诉成立不计" in text
    cases = json.loads(hub_cli(config, "cases", "list", "--from", DAY, "--to", DAY, "--json",
                               *clock("2026-11-25T12:00:00")).stdout)
    case = next(c for c in cases if c["level"] == 2)
    assert (case["closed_by_appeal"], case["closed_by"]) == (True, "办公室主任")
    assert case["note"] == "监控显示群众误按"
    assert case["closed_at"].startswith("2026-11-25T10:00")
    assert next(c for c in cases if c["level"] == 1)["closed_at"] is None  # the other case stays open
    listing = hub_cli(config, "cases", "list", "--from", DAY, "--to", DAY, *clock("2026-11-25T12:00:00"))
    assert "申诉撤案" in next(line for line in listing.stdout.splitlines() if line.startswith(case["id"]))
    close = hub_cli(config, "cases", "close", "--case", case["id"], "--by", "科长", "--result", "已回访",
                    *clock("2026-11-25T12:00:00"))
    assert "already closed by 办公室主任" in refused(close)
    assert "accepted" in refused(hub_cli(config, "ratings", "appeal", "--rating", str(bad["id"]), "--by", "x",
                                         "--reason", "y", *clock("2026-11-25T12:00:00")))
    assert [e.data["by"] for e in store.entries("rating_appeal")] == ["S002 王芳"]
    decisions = [(e.data["by"], e.data["accepted"]) for e in store.entries("appeal_decision")]
    assert decisions == [("办公室主任", True)]
    assert verify_log(store, hub_config.load(config).device_keys()).ok


def test_a_rejected_appeal_keeps_the_rating_counted(hall: tuple[Path, Store]) -> None:
    config, store = hall
    good = rating_of(ratings(config), "01", 5)  # S001's first 非常满意
    assert "no rating 'nope' in the record" in refused(hub_cli(
        config, "ratings", "appeal", "--rating", "nope", "--by", "S002", "--reason", "刷好评",
        *clock("2026-11-25T09:00:00")))
    assert "has no open appeal" in refused(hub_cli(
        config, "ratings", "decide", "--rating", str(good["id"]), "--by", "主任", "--reject", "--note", "x",
        *clock("2026-11-25T09:00:00")))
    steps = ((("appeal", "--by", "S002", "--reason", "疑似刷好评"), "2026-11-25T09:00:00"),
             (("decide", "--by", "主任", "--reject", "--note", "有取号记录"), "2026-11-25T10:00:00"))
    for args, moment in steps:
        result = hub_cli(config, "ratings", *args, "--rating", str(good["id"]), *clock(moment))
        assert result.returncode == 0, result.stderr
    row = rating_of(ratings(config), "01", 5)
    assert (row["counted"], row["flags"], row["appeal"]) == (True, [], "rejected")
    assert ratings(config)["by_staff"]["S001"]["total"] == 1  # type: ignore[index]
    assert "has no open appeal" in refused(hub_cli(
        config, "ratings", "decide", "--rating", str(good["id"]), "--by", "主任", "--accept", "--note", "x",
        *clock("2026-11-25T11:00:00")))
    assert appeal_states(store)[str(good["id"])].state == "rejected"
    assert verify_log(store, hub_config.load(config).device_keys()).ok


def staff_row(path: Path, staff: str) -> list[str]:
    return next(row for row in table_rows(path) if row[0] == staff)


def test_an_appeal_accepted_after_the_months_report(hall: tuple[Path, Store], tmp_path: Path) -> None:
    config, store = hall
    reports = tmp_path / "reports"  # named: a default [reports] dir is taken from the working directory
    config.write_text(config.read_text(encoding="utf-8") + f'[reports]\ndir = "{reports}"\n',
                      encoding="utf-8")
    loaded = hub_config.load(config)
    report_time = datetime(2026, 12, 1, 0, 30, tzinfo=TZ)
    night = Store(loaded.store.url, FixedClock(report_time))
    HallScheduler(loaded, night, night.clock, devices_seen=dict).check()  # closes November: the report
    (logged,) = night.entries("monthly_report")
    written = reports / "attendance-2026-11.csv"
    assert staff_row(written, "S002")[9:12] == ["1", "1", "0"]  # one rating, bad, 满意率 0‰
    bad = rating_of(ratings(config, "2026-12-02T12:00:00"), "02", 2)
    steps = ((("appeal", "--by", "S002", "--reason", "群众误按"), "2026-12-02T09:00:00"),
             (("decide", "--by", "主任", "--accept", "--note", "监控核实"), "2026-12-02T10:00:00"))
    for args, moment in steps:
        result = hub_cli(config, "ratings", *args, "--rating", str(bad["id"]), *clock(moment))
        assert result.returncode == 0, result.stderr
    again = hub_cli(config, "report", "month", "--month", "2026-11", "--out", str(tmp_path / "again"),
                    *clock("2026-12-02T11:00:00"))
    assert again.returncode == 0, again.stderr
    assert staff_row(tmp_path / "again" / "attendance-2026-11.csv", "S002")[9:12] == ["0", "0", ""]
    (still,) = night.entries("monthly_report")
    assert still == logged  # the logged report stays as it was, and so does its file
    assert logged.data["files"]["attendance-2026-11.csv"] == digest(written)  # type: ignore[index]
    as_then = {row[0]: row for row in month_rows(loaded, night, "2026-11", report_time)}
    assert as_then["S002"][9:12] == [1, 1, 0]  # computed as of the report's time: as it was reported
    assert verify_log(night, loaded.device_keys()).ok
    night.close()
