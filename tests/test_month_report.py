"""每月汇总公布 and 排名通报 over a real SQLite store, through the CLI: the JSON object, the files'
header block, the ranking's ties and bottom marks, and a past month computed with its own roster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_hub_window import hub_cli, make_hall

from hub import config as hub_config
from hub.monthly import table_rows
from hub.roster_history import roster_record
from hub.rules.ranking import Rated, rank
from hub.store.store import Store
from wire.clock import FixedClock

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    config, store = make_hall(tmp_path)
    yield config, store
    store.close()


def month_json(config: Path, moment: str = "2026-12-03T09:00:00+08:00") -> dict[str, object]:
    result = hub_cli(config, "report", "month", "--month", "2026-11", "--json", "--clock", moment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def log_roster(config: Path, moment: datetime) -> int:
    """What the daemon does at start with a changed hub.toml: a `roster` entry, at `moment`."""
    loaded = hub_config.load(config)
    store = Store(loaded.store.url, FixedClock(moment))
    seq = store.append("roster", roster_record(loaded)).seq
    store.close()
    return seq


def test_month_json_counts_ranking_and_chain_head(hall: tuple[Path, Store]) -> None:
    config, store = hall
    data = month_json(config)
    staff = {s["id"]: s for s in data["staff"]}  # type: ignore[attr-defined]
    windows = {w["id"]: w for w in data["windows"]}  # type: ignore[attr-defined]
    assert list(staff) == ["S001", "S002"] and list(windows) == ["01", "02"]
    # S002: one counted bad rating (level 2); the level-1 press came while away: the window's only
    assert staff["S002"]["ratings"] == {"levels": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 0}, "total": 1,
                                        "satisfied": 0, "satisfaction_permille": 0}
    assert windows["02"]["ratings"]["total"] == 2 and windows["02"]["ratings"]["levels"]["1"] == 1
    assert (staff["S002"]["away"], staff["S002"]["late_returns"]) == (1, 1)
    assert (windows["02"]["away"], windows["02"]["late_returns"]) == (1, 1)
    assert staff["S002"]["cases"] == {"opened": 1, "closed_in_time": 0, "overdue": 1}  # 5 workdays passed
    assert windows["02"]["cases"]["opened"] == 2  # the window's own bad press opened a case too
    assert staff["S001"]["flags"]["missing_leave_punch"] == 0 and staff["S001"]["sessions"] >= 2
    assert data["ranking"] == {  # type: ignore[comparison-overlap]
        "windows": [{"rank": 1, "id": "01", "name": "", "satisfaction_permille": 1000, "ratings": 1,
                     "bottom": False},
                    {"rank": 2, "id": "02", "name": "", "satisfaction_permille": 0, "ratings": 2,
                     "bottom": True}],
        "staff": [{"rank": 1, "id": "S001", "name": "张伟", "satisfaction_permille": 1000, "ratings": 1,
                   "bottom": False},
                  {"rank": 2, "id": "S002", "name": "王芳", "satisfaction_permille": 0, "ratings": 1,
                   "bottom": True}],
    }
    last = store.last_audit()
    assert last is not None and data["chain_head"] == {"entries": last.seq, "hash": last.hash}
    rules = data["rules"]
    assert rules["source"] == "config" and rules["schedule"]["grace_minutes"] == 5  # type: ignore[index]
    assert rules["ratings"]["satisfaction_unit"] == "permille"  # type: ignore[index]
    assert rules["reports"] == {"bottom_marked": 10}  # type: ignore[index]


def test_chain_head_stops_at_the_months_end(hall: tuple[Path, Store]) -> None:
    config, store = hall
    november = store.last_audit()
    assert november is not None
    log_roster(config, datetime(2026, 12, 1, 0, 0, tzinfo=TZ))  # the first moment of December: after
    assert month_json(config)["chain_head"] == {"entries": november.seq, "hash": november.hash}
    assert store.last_audit().seq == november.seq + 1  # type: ignore[union-attr]


def test_files_carry_the_rules_and_the_windows_and_ranking(hall: tuple[Path, Store], tmp_path: Path) -> None:
    config, _ = hall
    out = tmp_path / "out"
    result = hub_cli(config, "report", "month", "--month", "2026-11", "--out", str(out), "--json",
                     "--clock", "2026-12-03T09:00:00+08:00")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["month"] == "2026-11"
    assert sorted(p.name for p in out.iterdir()) == ["attendance-2026-11.csv", "attendance-2026-11.xlsx",
                                                    "ranking-2026-11.csv", "windows-2026-11.csv"]
    text = (out / "attendance-2026-11.csv").read_text(encoding="utf-8-sig")
    assert "迟到宽限(分钟) grace_minutes,5" in text and "审计链头 chain_head" in text
    assert [row[0] for row in table_rows(out / "windows-2026-11.csv")] == ["01", "02"]
    ranking = table_rows(out / "ranking-2026-11.csv")
    assert [(r[0], r[1], r[2], r[6]) for r in ranking] == [
        ("窗口 window", "1", "01", ""), ("窗口 window", "2", "02", "末位"),
        ("人员 staff", "1", "S001", ""), ("人员 staff", "2", "S002", "末位")]
    human = hub_cli(config, "report", "month", "--month", "2026-11", "--clock", "2026-12-03T09:00:00+08:00")
    assert human.returncode == 0 and "人员排名" in human.stdout and "末位" in human.stdout
    bad = hub_cli(config, "report", "month", "--month", "2026-13", "--json")
    assert bad.returncode != 0 and "YYYY-MM" in bad.stderr and "Traceback" not in bad.stderr


def test_a_past_month_keeps_its_roster_and_settings(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    first = log_roster(config, datetime(2026, 11, 24, 18, 30, tzinfo=TZ))
    before = month_json(config)
    assert before["rules"]["source"] == "log"  # type: ignore[index]
    assert before["rules"]["roster_entries"][0]["seq"] == first  # type: ignore[index]
    text = config.read_text(encoding="utf-8")  # December: S002 leaves, S003 comes, grace is 60
    text = text.replace('[[staff]]\nid = "S002"\nname = "王芳"\nwindow = "02"\ncards = ["67003B51C6"]\n',
                        '[[staff]]\nid = "S003"\nname = "李娜"\nwindow = "03"\n')
    config.write_text(text.replace("[schedule]\n", "[schedule]\ngrace_minutes = 60\n"), encoding="utf-8")
    log_roster(config, datetime(2026, 12, 2, 8, 0, tzinfo=TZ))
    after = month_json(config)
    before.pop("computed_at"), after.pop("computed_at")  # the --clock runs: milliseconds apart
    assert after == before  # the same month, the same report: S002 listed, grace 5, no S003
    assert [s["id"] for s in after["staff"]] == ["S001", "S002"]  # type: ignore[attr-defined]
    assert after["rules"]["schedule"]["grace_minutes"] == 5  # type: ignore[index]
    december = hub_cli(config, "report", "month", "--month", "2026-12", "--json",
                       "--clock", "2026-12-03T09:00:00+08:00")
    assert december.returncode == 0, december.stderr
    now = json.loads(december.stdout)
    assert now["rules"]["schedule"]["grace_minutes"] == 60
    # S002 was on the roster until the new one was logged on the 2nd: listed, gone at the month's end
    assert [(s["id"], s["on_roster_at_end"]) for s in now["staff"]] == [
        ("S001", True), ("S002", False), ("S003", True)]


def test_who_left_during_the_month_is_listed(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    log_roster(config, datetime(2026, 11, 24, 18, 30, tzinfo=TZ))
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('[[staff]]\nid = "S002"\nname = "王芳"\nwindow = "02"\n'
                                   'cards = ["67003B51C6"]\n', ""), encoding="utf-8")
    log_roster(config, datetime(2026, 11, 26, 7, 0, tzinfo=TZ))  # S002 leaves on the 26th
    data = month_json(config)
    staff = {s["id"]: s for s in data["staff"]}  # type: ignore[attr-defined]
    assert staff["S002"]["on_roster_at_end"] is False and staff["S001"]["on_roster_at_end"] is True
    assert staff["S002"]["ratings"]["total"] == 1  # the 24th, while on the roster, still counts
    assert len(data["rules"]["roster_entries"]) == 2  # type: ignore[index]


def test_appeals_are_counted_as_of_the_report(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    rated = json.loads(hub_cli(config, "ratings", "--date", "2026-11-24", "--json").stdout)["ratings"]
    bad = next(r for r in rated if r["window"] == "02" and r["level"] == 2)
    steps = ((("appeal", "--by", "S002", "--reason", "误按"), "2026-12-02T09:00:00+08:00"),
             (("decide", "--by", "主任", "--accept", "--note", "核实"), "2026-12-02T10:00:00+08:00"))
    for args, moment in steps:
        result = hub_cli(config, "ratings", *args, "--rating", bad["id"], "--clock", moment)
        assert result.returncode == 0, result.stderr
    then = {s["id"]: s for s in month_json(config, "2026-12-01T09:00:00+08:00")["staff"]}  # type: ignore[attr-defined]
    now = {s["id"]: s for s in month_json(config)["staff"]}  # type: ignore[attr-defined]
    assert then["S002"]["appeals"] == {"filed": 0, "accepted": 0, "rejected": 0}
    assert then["S002"]["ratings"]["total"] == 1
    assert now["S002"]["appeals"] == {"filed": 1, "accepted": 1, "rejected": 0}
    assert now["S002"]["ratings"]["total"] == 0  # excluded: unranked now
    assert now["S002"]["cases"]["opened"] == 1 and now["S002"]["cases"]["overdue"] == 1  # closed late


@pytest.mark.parametrize(("items", "percent", "expected"), [
    # same 满意率: more ratings ranks higher; same 满意率 and count share a rank; no rating: unranked
    ([("a", 9, 10), ("b", 18, 20), ("c", 9, 10), ("d", 0, 0), ("e", 1, 2)], 10,
     [(1, "b", False), (2, "a", False), (2, "c", False), (4, "e", True), (None, "d", False)]),
    # the bottom 10% of 3 rounds up to one; ties with the last marked are marked with it
    ([("a", 1, 2), ("b", 1, 2), ("c", 2, 2)], 10, [(1, "c", False), (2, "a", True), (2, "b", True)]),
    ([("a", 1, 2), ("b", 2, 2)], 0, [(1, "b", False), (2, "a", False)]),
    ([("a", 3, 4), ("b", 2, 4), ("c", 1, 4), ("d", 0, 4)], 50,
     [(1, "a", False), (2, "b", False), (3, "c", True), (4, "d", True)]),
    ([("a", 0, 0)], 10, [(None, "a", False)]),
])
def test_ranking_edges(items: list[tuple[str, int, int]], percent: int,
                       expected: list[tuple[int | None, str, bool]]) -> None:
    places = rank([Rated(i, i.upper(), s, t) for i, s, t in items], percent)
    assert [(p.rank, p.id, p.bottom) for p in places] == expected
