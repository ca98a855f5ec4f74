"""A hall day judged in full over a real SQLite store and the `hall-hub` commands: every violation
of a session in `flags`, a forgotten leaving punch (未签退), a late-comer past the absence threshold
who still gets the window's ratings, extended service (延时服务); and the config's desks and ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_hub_window import EDGE, HUB, hub_cli, store_script

from hub import config as hub_config
from hub.store.store import Store
from wire.clock import FixedClock
from wire.configfile import ConfigError

DAY = "2026-11-24"  # a Tuesday
AT_18 = f"{DAY}T18:00:00+08:00"
CARDS = {"S001": "0A004A7B2C", "S002": "67003B51C6", "S003": "0A00000003"}


def at(hm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hm}+08:00")


def rating(window: str, level: int = 5) -> dict[str, object]:
    return {"window": window, "level": level, "keys": 5, "invited": False, "invite": None, "ticket": None}


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[Path]:
    """S001 late and leaving early; S002 on time, serving past noon, no leaving punch; S003 past
    the absence threshold at window 03, rated there. Requires leaving punches (the default)."""
    config = tmp_path / "hub.toml"
    staff = "".join(f'[[staff]]\nid = "{sid}"\nname = "{name}"\nwindow = "{window}"\n'
                    f'cards = ["{CARDS[sid]}"]\n'
                    for sid, name, window in (("S001", "张伟", "01"), ("S002", "王芳", "02"),
                                              ("S003", "李娜", "03")))
    config.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[store]\nurl = "sqlite:///hub.db"\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{EDGE.public_hex}"\n{staff}', encoding="utf-8")
    loaded = hub_config.load(config)
    store = Store(loaded.store.url, FixedClock(at("18:00:00")))
    script: list[tuple[str, str, dict[str, object]]] = [
        ("08:25:00", "clock", {"method": "card", "card": CARDS["S002"]}),
        ("08:40:00", "clock", {"method": "card", "card": CARDS["S001"]}),  # late
        ("10:45:00", "clock", {"method": "card", "card": CARDS["S003"]}),  # past 10:30: absent, but there
        ("11:00:00", "rating", rating("03")),
        ("11:00:00", "clock", {"method": "card", "card": CARDS["S001"]}),  # leaves early
        ("11:30:00", "rating", rating("01")),  # S001 gone: nobody on duty
        ("12:04:00", "clock", {"method": "card", "card": CARDS["S003"]}),
        ("12:19:59", "rating", rating("02", 4)),  # S002 still serving: 20 minutes of extended service
    ]
    store_script(store, [(at(hms), type_, body) for hms, type_, body in script], timedelta(milliseconds=1))
    store.close()
    yield config


def test_attendance_json_has_every_flag_and_the_extended_service(hall: Path) -> None:
    result = hub_cli(hall, "attendance", "--date", DAY, "--at", "18:00", "--json")
    assert result.returncode == 0, result.stderr
    morning = {row["staff"]: row for row in json.loads(result.stdout) if row["session"] == "上午"}
    got = {s: (r["status"], r["flags"], r["extended_minutes"]) for s, r in morning.items()}
    assert got == {
        "S001": ("late", ["late", "early_leave"], 0),
        "S002": ("missing_leave_punch", ["missing_leave_punch"], 20),
        "S003": ("absent", ["absent"], 0),
    }
    afternoon = [row for row in json.loads(result.stdout) if row["session"] == "下午"]
    assert {(r["status"], tuple(r["flags"])) for r in afternoon} == {("absent", ("absent",))}


def test_a_forgotten_leaving_punch_waits_for_extended_service(hall: Path) -> None:
    result = hub_cli(hall, "attendance", "--date", DAY, "--at", "12:30", "--json")
    s002 = next(r for r in json.loads(result.stdout) if r["staff"] == "S002" and r["session"] == "上午")
    assert (s002["status"], s002["flags"], s002["extended_minutes"]) == ("on_time", [], 20)


def test_attendance_table_shows_the_flags_in_chinese(hall: Path) -> None:
    result = hub_cli(hall, "attendance", "--date", DAY, "--at", "18:00")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0] + line.split()[2]: line
             for line in result.stdout.splitlines()[2:] if "上午" in line}
    assert "迟到 late" in lines["S001上午"] and "迟到、早退" in lines["S001上午"]
    assert "未签退" in lines["S002上午"] and "20 分钟" in lines["S002上午"]
    assert "缺勤" in lines["S003上午"]
    total = result.stdout.splitlines()[-1]
    assert total.startswith("合计 ") and total.endswith("; 标记 迟到 1, 缺勤 4, 早退 1, 未签退 1"), total


def test_ratings_follow_presence_not_the_attendance_status(hall: Path) -> None:
    result = hub_cli(hall, "ratings", "--date", DAY, "--json", "--clock", AT_18)
    assert result.returncode == 0, result.stderr
    rows = [(r["window"], r["staff"], r["flags"]) for r in json.loads(result.stdout)["ratings"]]
    assert rows == [
        ("03", "S003", []),  # arrived past the absence threshold: still there
        ("01", None, ["nobody_on_duty"]),  # S001 left at 11:00
        ("02", "S002", []),  # extended service, not a problem
    ]
    findings = json.loads(hub_cli(hall, "findings", "--date", DAY, "--json", "--clock", AT_18).stdout)
    assert [(f["kind"], f["window"]) for f in findings if f["kind"] == "unattended_rating"] == [
        ("unattended_rating", "01")]
    unattended = [(f["window"], f["start"][11:16], f["end"][11:16]) for f in findings
                  if f["kind"] == "unattended_window" and f["start"][11:13] < "13"]
    assert ("03", "08:30", "10:45") in unattended and ("01", "11:00", "12:00") in unattended
    assert not [w for w in unattended if w[0] == "02"]  # S002 there all morning


# --- config: desks, windows and ids ---------------------------------------------------------

BASE = 'hall = "h1"\n'


def load_text(tmp_path: Path, text: str) -> hub_config.HubConfig:
    path = tmp_path / "hub.toml"
    path.write_text(BASE + text, encoding="utf-8")
    return hub_config.load(path)


@pytest.mark.parametrize(("text", "where", "says"), [
    pytest.param('[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ndesk = "01 号台"\n',
                 "staff[0].desk", "is not a staff or desk id", id="bad_desk_id"),
    pytest.param('[[staff]]\nid = "张伟"\nname = "张伟"\n', "staff[0].id", "is not a staff or desk id",
                 id="bad_staff_id"),
    pytest.param('[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "02"\ndesk = "02c"\n'
                 '[[windows]]\nid = "02"\ndesks = ["02a", "02b"]\n',
                 "staff[0].desk", "not one of the window's desks ['02a', '02b']",
                 id="desk_not_of_the_window"),
    pytest.param('[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "02"\n'
                 '[[windows]]\nid = "02"\ndesks = ["02a"]\n',
                 "staff[0].id", "no desk (so its own, 'S001')", id="no_desk_at_a_window_with_desks"),
    pytest.param('[[windows]]\nid = "02"\ndesks = ["02a", "02a"]\n', "windows[0].desks",
                 "listed more than once", id="desk_listed_twice"),
    pytest.param('[[windows]]\nid = "02"\ndesks = []\n', "windows[0].desks", "at least 1", id="no_desks"),
    pytest.param('[[windows]]\nid = "02"\ndesks = ["a"]\nshared = "x"\n', "windows[0].shared",
                 "Extra inputs", id="unknown_key"),
])
def test_a_bad_desk_or_id_names_the_file_and_key(tmp_path: Path, text: str, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'hub.toml'}: {where}: "), problem
    assert says in problem, problem


def test_desks_default_to_the_staff_id_and_are_kept_in_the_roster(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\n'
                                 '[[staff]]\nid = "S003"\nname = "李娜"\nwindow = "03"\ndesk = "03a"\n'
                                 '[[windows]]\nid = "03"\ndesks = ["03a", "d03"]\n')
    assert [(m.id, m.desk) for m in config.roster()] == [("S001", "S001"), ("S003", "03a")]
    assert config.schedule.to_domain().extended_minutes == 60


def test_the_edge_desk_follows_the_same_id_rule(tmp_path: Path) -> None:
    from edge_agent import config as edge_config

    example = Path(__file__).resolve().parents[1] / "config" / "edge-window.example.toml"
    text = example.read_text(encoding="utf-8")
    path = tmp_path / "edge.toml"
    path.write_text(text.replace('desk = "d03"', 'desk = "d 03"'), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        edge_config.load(path)
    assert any("units[1].desk" in p and "is not a staff or desk id" in p for p in caught.value.problems)
