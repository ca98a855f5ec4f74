"""The complaints register through the command line and a real SQLite store: ids and due moments on
the hall's calendar, overdue complaints as findings, the contact kept out of every public output,
refusals in one line, and a log that still verifies."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_hub_window import hub_cli, make_hall

from hub import config as hub_config
from hub.audit import verify_log
from hub.complaints import complaint_contacts, complaints_in
from hub.scheduler import HallScheduler
from hub.store.store import Store
from wire.clock import FixedClock

TZ = ZoneInfo("Asia/Shanghai")
CONTACT = "13800138000"
# Mon 30 Nov to Wed 2 Dec 2026 off, Sat 5 Dec worked (调休): a Friday's written complaint skips the
# weekend and the holiday and falls due on the makeup Saturday.
CALENDAR = "holidays = [2026-11-30, 2026-12-01, 2026-12-02]\nmakeup_workdays = [2026-12-05]\n"


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    config, store = make_hall(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + CALENDAR, encoding="utf-8")
    yield config, store
    store.close()


def clock(moment: str) -> tuple[str, str]:
    return "--clock", f"{moment}+08:00"


def add(config: Path, moment: str, *args: str) -> subprocess.CompletedProcess[str]:
    return hub_cli(config, "complaints", "add", *clock(moment), *args)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def listed(config: Path, moment: str, *args: str) -> list[dict[str, object]]:
    result = hub_cli(config, "complaints", "list", "--json", *clock(moment), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ids_and_due_moments_follow_the_halls_calendar(hall: tuple[Path, Store]) -> None:
    config, store = hall
    friday = add(config, "2026-11-27T10:00:00", "--kind", "written", "--window", "01", "--staff", "S001",
                 "--by", "办公室主任", "--text", "材料未一次性告知", "--contact", CONTACT, "--json")
    assert friday.returncode == 0, friday.stderr
    assert json.loads(friday.stdout) == {"id": "T-20261127-001", "kind": "written", "window": "01",
                                         "staff": "S001", "due": "2026-12-05T23:59:59.999+08:00",
                                         "status": "open"}
    second = add(config, "2026-11-27T11:00:00", "--kind", "oral", "--window", "02", "--by", "办公室主任",
                 "--text", "等候时间过长", "--json")
    assert json.loads(second.stdout)["id"] == "T-20261127-002"
    assert json.loads(second.stdout)["due"] == "2026-11-27T23:59:59.999+08:00"  # the same working day
    sunday = add(config, "2026-11-29T15:00:00", "--kind", "oral", "--window", "02", "--by", "值班人员",
                 "--text", "电话无人接听", "--json")
    assert json.loads(sunday.stdout) == {"id": "T-20261129-001", "kind": "oral", "window": "02",
                                         "staff": None, "due": "2026-12-03T23:59:59.999+08:00",
                                         "status": "open"}  # the next working day: after the holiday
    text = hub_cli(config, "complaints", "list", *clock("2026-11-29T16:00:00")).stdout
    assert "T-20261127-001" in text and "书面" in text and "口头" in text and "S001 张伟" in text
    assert "逾期未答复" in text  # the Friday's oral complaint was not answered that day
    assert verify_log(store, hub_config.load(config).device_keys()).ok


def test_an_overdue_complaint_is_a_finding_and_one_closed_in_time_is_not(hall: tuple[Path, Store]) -> None:
    config, store = hall
    assert add(config, "2026-11-25T10:00:00", "--kind", "oral", "--window", "02", "--staff", "S002",
               "--by", "主任", "--text", "态度生硬").returncode == 0  # T-20261125-001, due that evening
    assert add(config, "2026-11-25T10:05:00", "--kind", "written", "--window", "01", "--by", "主任",
               "--text", "办理超时").returncode == 0  # T-20261125-002, due 3 Dec (holidays)
    closed = hub_cli(config, "complaints", "close", "--id", "T-20261125-002", "--by", "科长",
                     "--result", "已书面答复", *clock("2026-11-26T09:00:00"))
    assert closed.returncode == 0, closed.stderr
    loaded = hub_config.load(config)
    later = Store(loaded.store.url, FixedClock(datetime(2026, 11, 26, 9, 30, tzinfo=TZ)))
    scheduler = HallScheduler(loaded, later, later.clock, devices_seen=dict)
    overdue = [f for f in scheduler.check() if f.kind == "complaint_overdue"]
    assert [(f.detail["complaint"], f.staff, f.detail["closed_late"]) for f in overdue] == [
        ("T-20261125-001", "S002", False)]
    assert overdue[0].start == datetime(2026, 11, 26, tzinfo=TZ)
    assert [f for f in scheduler.check() if f.kind == "complaint_overdue"] == []  # recorded once
    logged = [e.data for e in later.entries("finding") if e.data["kind"] == "complaint_overdue"]
    assert [d["detail"]["complaint"] for d in logged] == ["T-20261125-001"]  # type: ignore[index]
    shown = hub_cli(config, "findings", "--date", "2026-11-26", *clock("2026-11-26T10:00:00"))
    assert "投诉答复逾期" in shown.stdout and "T-20261125-001" in shown.stdout
    assert "T-20261125-002" not in shown.stdout
    late = hub_cli(config, "complaints", "close", "--id", "T-20261125-001", "--by", "主任",
                   "--result", "已当面致歉", *clock("2026-11-26T11:00:00"))
    assert late.returncode == 0, late.stderr
    rows = {c["id"]: c for c in listed(config, "2026-11-26T12:00:00")}
    assert (rows["T-20261125-001"]["overdue"], rows["T-20261125-001"]["closed_in_time"]) == (True, False)
    assert (rows["T-20261125-002"]["overdue"], rows["T-20261125-002"]["closed_in_time"]) == (False, True)
    assert listed(config, "2026-11-26T12:00:00", "--open") == []
    register = complaints_in(later, loaded, datetime(2026, 11, 25).date(), None,
                             now=datetime(2026, 11, 26, 12, tzinfo=TZ))
    assert [(c.id, c.status, c.closed_in_time) for c in register] == [
        ("T-20261125-001", "closed", False), ("T-20261125-002", "closed", True)]
    assert verify_log(later, loaded.device_keys()).ok
    later.close()


def test_the_contact_is_kept_but_never_printed_in_public_output(hall: tuple[Path, Store]) -> None:
    config, store = hall
    assert add(config, "2026-11-25T10:00:00", "--kind", "oral", "--window", "01", "--by", "主任",
               "--text", "收费不透明", "--contact", CONTACT).returncode == 0
    at = clock("2026-11-28T10:00:00")  # overdue by then: in the findings too
    public = [
        hub_cli(config, "complaints", "list", *at), hub_cli(config, "complaints", "list", "--json", *at),
        hub_cli(config, "findings", "--date", "2026-11-28", *at),
        hub_cli(config, "findings", "--date", "2026-11-28", "--json", *at),
        hub_cli(config, "log", "show"), hub_cli(config, "log", "show", "--json"),
        hub_cli(config, "log", "show", "--kind", "complaint_add"),
    ]
    for result in public:
        assert result.returncode == 0, (result.args, result.stderr)
        assert CONTACT not in result.stdout, result.args
    assert "投诉答复逾期" in public[2].stdout and "个人信息 已隐藏" in public[6].stdout
    (entry,) = store.entries("complaint_add")
    assert entry.data["contact"] == CONTACT  # kept in the log, which still verifies
    loaded = hub_config.load(config)
    assert verify_log(store, loaded.device_keys()).ok
    assert "--contacts needs --by" in refused(hub_cli(config, "complaints", "list", "--contacts", *at))
    manager = hub_cli(config, "complaints", "list", "--contacts", "--by", "办公室主任", "--json", *at)
    assert [c["contact"] for c in json.loads(manager.stdout)] == [CONTACT]
    (view,) = store.entries("personal_view")
    assert view.data == {"viewer": "办公室主任", "what": "complaint_contact", "ids": ["T-20261125-001"],
                         "author": {**view.data["author"], "by": "办公室主任", "via": "cli"}}
    console = Store(loaded.store.url, FixedClock(datetime(2026, 11, 28, 11, tzinfo=TZ)))
    assert complaint_contacts(console, ["T-20261125-001"], "督查组") == {"T-20261125-001": CONTACT}
    assert [e.data["viewer"] for e in console.entries("personal_view")] == ["办公室主任", "督查组"]
    assert verify_log(console, loaded.device_keys()).ok
    console.close()


def test_refusals_are_one_line_and_write_nothing(hall: tuple[Path, Store]) -> None:
    config, store = hall
    rating = next(iter(store.events(type="rating"))).id  # at window 01
    base = ("--kind", "oral", "--by", "主任", "--text", "态度生硬")
    cases = [
        (("--window", "09", *base), "window '09' is not a window of this hall (known: 01, 02)"),
        (("--window", "01", "--staff", "S999", *base), "staff 'S999' is not on the roster"),
        (("--window", "01", "--rating", "no-such-rating", *base), "no rating 'no-such-rating' in the record"),
        (("--window", "02", "--rating", rating, *base), f"rating {rating} was given at window 01, not 02"),
        (("--window", "01", "--kind", "oral", "--by", "主任", "--text", "  "), "--text must not be empty"),
    ]
    entries_before = len(list(store.audit()))
    for args, message in cases:
        assert message in refused(add(config, "2026-11-25T10:00:00", *args)), args
    assert len(list(store.audit())) == entries_before
    assert add(config, "2026-11-25T10:00:00", "--window", "01", "--rating", rating, *base).returncode == 0
    close = ("complaints", "close", "--by", "科长", "--result", "已答复")
    assert "no complaint 'T-20261125-009' in the register" in refused(
        hub_cli(config, *close, "--id", "T-20261125-009", *clock("2026-11-25T11:00:00")))
    assert hub_cli(config, *close, "--id", "T-20261125-001", *clock("2026-11-25T11:00:00")).returncode == 0
    assert "already closed by 科长" in refused(
        hub_cli(config, *close, "--id", "T-20261125-001", *clock("2026-11-25T11:05:00")))
    assert [e.data["id"] for e in store.entries("complaint_close")] == ["T-20261125-001"]
    assert verify_log(store, hub_config.load(config).device_keys()).ok
