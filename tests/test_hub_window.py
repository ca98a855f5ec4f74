"""The hub's window-box features over a real store: ratings attributed, away periods, findings,
follow-up cases with closures, the scheduler's findings in the audit log, the monthly report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from hub import config as hub_config
from hub.audit import verify_log
from hub.domain import StoredEvent
from hub.ingest import Decoder
from hub.monthly import HEADER, table_rows
from hub.scheduler import HallScheduler
from hub.store.store import Store
from wire.clock import FixedClock
from wire.envelope import format_ts, generate_keypair, load_private_key, load_public_key, seal

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[1]
EDGE, HUB = generate_keypair(), generate_keypair()
DAY = "2026-11-24"


def at(hm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hm}:00+08:00")


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    config, store = make_hall(tmp_path)
    yield config, store
    store.close()


def make_hall(tmp_path: Path, store_url: str = "sqlite:///hub.db", more: str = "") -> tuple[Path, Store]:
    """A hall day in a store (SQLite beside the config unless `store_url`): two staff, punches,
    ratings (a misuse repeat, a bad one while nobody was on duty), an away period returned late.
    The log's entries are at 18:00 that day. `more`: TOML appended to the config."""
    config = tmp_path / "hub.toml"
    config.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[store]\nurl = "{store_url}"\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{EDGE.public_hex}"\n'
        '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ncards = ["0A004A7B2C"]\n'
        '[[staff]]\nid = "S002"\nname = "王芳"\nwindow = "02"\ncards = ["67003B51C6"]\n'
        '[ratings]\nrepeat_seconds = 30\n[schedule]\nrequire_leave_punch = false\n' + more,
        encoding="utf-8")
    loaded = hub_config.load(config)
    store = Store(loaded.store.url, FixedClock(at("18:00")))
    script: list[tuple[str, str, dict[str, object]]] = [
        ("08:20", "clock", {"method": "card", "card": "0A004A7B2C"}),
        ("08:25", "clock", {"method": "card", "card": "67003B51C6"}),
        ("09:00", "rating", {"window": "01", "level": 5, "keys": 5, "invited": True, "invite": "i1",
                             "ticket": "A001"}),
        ("09:00", "rating", {"window": "01", "level": 5, "keys": 5, "invited": False, "invite": None,
                             "ticket": None}),  # a repeat seconds later: misuse, kept
        ("10:00", "sign", {"window": "02", "desk": "S002", "state": "away", "reason": "meeting",
                           "back_at": format_ts(at("10:30"))}),
        ("10:10", "rating", {"window": "02", "level": 1, "keys": 5, "invited": False, "invite": None,
                             "ticket": None}),  # nobody on duty at window 02; a bad rating: a case
        ("10:50", "sign", {"window": "02", "desk": "S002", "state": "on_duty", "reason": None,
                           "back_at": None}),
        ("11:00", "rating", {"window": "02", "level": 2, "keys": 5, "invited": False, "invite": None,
                             "ticket": None}),
    ]
    store_script(store, [(at(hm), type_, body) for hm, type_, body in script], timedelta(seconds=1))
    return config, store


def store_script(store: Store, script: list[tuple[datetime, str, dict[str, object]]],
                 spacing: timedelta, first_seq: int = 1) -> None:
    """Each (moment, type, body) sealed by the entrance box as seq `first_seq`, +1, ... at its moment
    plus seq times `spacing` (events at the same minute keep their order), decoded as the hub does,
    stored."""
    decoder = Decoder("h1", "hall/v1", {"entrance": load_public_key(EDGE.public_hex)}, 131072)
    key = load_private_key(EDGE.private_hex)
    items = []
    for seq, (moment, type_, body) in enumerate(script, start=first_seq):
        moment += spacing * seq
        raw = seal(key, hall="h1", device="entrance", seq=seq, ts=format_ts(moment), type=type_,
                   body=body).raw
        item = decoder.decode(f"hall/v1/h1/entrance/evt/{type_}", raw, moment)
        assert isinstance(item, StoredEvent), item
        items.append(item)
    assert store.ingest(items) == ["stored"] * len(items)


def hub_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_ratings_are_attributed_flagged_and_counted(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    result = hub_cli(config, "ratings", "--date", DAY, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = [(r["window"], r["level"], r["staff"], r["counted"], r["flags"]) for r in data["ratings"]]
    assert rows == [
        ("01", 5, "S001", True, []),
        ("01", 5, "S001", False, ["misuse_repeat"]),  # kept and visible, not counted
        ("02", 1, None, True, ["nobody_on_duty"]),  # S002 away: kept and flagged
        ("02", 2, "S002", True, []),
    ]
    assert data["by_staff"]["S001"]["total"] == 1
    assert data["by_staff"]["S002"]["rate_permille"] == 0
    assert data["by_window"]["02"]["total"] == 2 and data["by_window"]["02"]["flagged"] == 1
    assert data["by_day"][DAY]["total"] == 3 and data["by_month"]["2026-11"]["counts"]["5"] == 1


def test_away_periods_and_findings(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    away = json.loads(hub_cli(config, "away", "--date", DAY, "--json").stdout)
    assert [(p["window"], p["reason"], p["declared_return"][11:16], p["actual_return"][11:16])
            for p in away] == [("02", "meeting", "10:30", "10:50")]
    findings = json.loads(hub_cli(config, "findings", "--date", DAY, "--json").stdout)
    kinds = {f["kind"] for f in findings}
    assert {"late_return", "unattended_window", "rating_misuse", "unattended_rating"} <= kinds
    late = next(f for f in findings if f["kind"] == "late_return")
    assert late["staff"] == "S002" and late["sources"]


def test_cases_open_close_and_overdue(hall: tuple[Path, Store]) -> None:
    config, store = hall
    listed = json.loads(hub_cli(config, "cases", "list", "--from", DAY, "--to", DAY, "--json").stdout)
    assert [(c["level"], c["window"]) for c in listed] == [(1, "02"), (2, "02")]
    assert listed[0]["deadline"] == "2026-12-01"  # five working days after a Tuesday
    case = listed[0]["id"]
    # closed the next morning on the hall's clock, not today's: the check below runs on 2026-12-03
    closing = ("--clock", "2026-11-25T10:00:00+08:00")
    closed = hub_cli(config, "cases", "close", "--case", case, "--by", "科长", "--result", "已回访", *closing)
    assert closed.returncode == 0, closed.stderr
    again = hub_cli(config, "cases", "close", "--case", case, "--by", "x", "--result", "y", *closing)
    assert again.returncode != 0 and "already closed" in again.stderr
    listed = json.loads(hub_cli(config, "cases", "list", "--from", DAY, "--to", DAY, "--json").stdout)
    assert listed[0]["closed_by"] == "科长" and listed[1]["closed_at"] is None
    loaded = hub_config.load(config)
    later = Store(loaded.store.url, FixedClock(datetime(2026, 12, 3, 9, 0, tzinfo=TZ)))
    scheduler = HallScheduler(loaded, later, later.clock, devices_seen=dict)
    recorded = scheduler.check()
    overdue = [f for f in recorded if f.kind == "case_overdue"]
    assert [f.detail.get("case") or f.sources for f in overdue] and len(overdue) == 1
    assert scheduler.check() == []  # recorded once
    assert verify_log(later, loaded.device_keys()).ok
    later.close()


def test_scheduler_records_findings_with_sources_and_closes_the_day(hall: tuple[Path, Store]) -> None:
    config, store = hall
    loaded = hub_config.load(config)
    seconds = [0.0]
    scheduler = HallScheduler(loaded, store, FixedClock(at("23:45")), devices_seen=dict,
                              monotonic=lambda: seconds[0])
    seconds[0] = 59.0  # a box not heard of since the hub started gets offline_after_seconds (60)
    found = scheduler.check()
    assert {"late_return", "case_opened"} <= {f.kind for f in found}
    assert "device_offline" not in {f.kind for f in found}
    seconds[0] = 61.0
    assert [f.kind for f in scheduler.check()] == ["device_offline"]
    opened = [f for f in found if f.kind == "case_opened"]
    assert len(opened) == 2 and all(len(f.sources) == 1 for f in opened)
    entries = list(store.entries("finding"))
    assert entries and all("sources" in e.data for e in entries)
    assert [e.data["date"] for e in store.entries("daily_close")] == ["2026-11-23", DAY]
    assert verify_log(store, loaded.device_keys()).ok


def test_month_report_csv_and_xlsx(hall: tuple[Path, Store], tmp_path: Path) -> None:
    config, _ = hall
    result = hub_cli(config, "report", "month", "--month", "2026-11", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    by_staff = {row[0]: row for row in table_rows(tmp_path / "out" / "attendance-2026-11.csv")}
    # the level-1 press came while S002 was away: it is the window's, not S002's
    assert by_staff["S002"][9] == "1" and by_staff["S002"][10] == "1" and by_staff["S002"][11] == "0"
    assert by_staff["S002"][12] == "1" and by_staff["S002"][13] == "1"  # away once, late once
    sheet = load_workbook(tmp_path / "out" / "attendance-2026-11.xlsx").active
    assert sheet is not None
    header = next(row[0].row for row in sheet.iter_rows() if row[0].value == HEADER[0])
    assert sheet.cell(header + 1, 1).value == "S001"
