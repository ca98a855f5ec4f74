"""The hub's judgement of one punch for the entrance terminal (hub/terminal_show.py, PROTOCOL.md
2.11), as a table of cases over the day's attendance rows; the live path (hub to terminal page) is
in tests/test_terminal_browser.py."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path

import pytest

from edge_agent.sound import Silent
from edge_agent.terminal import EntranceScreen
from hub.domain import Leave, Punch, Schedule, Session, StaffMember
from hub.rules.attendance import attendance_for_day
from hub.terminal_show import Verdict, verdict_of
from tests.test_attendance_rules import TZ
from wire.clock import FixedClock
from wire.envelope import canonical, load_private_key, load_public_key, open_signed, public_hex_of, seal

ROOT = Path(__file__).resolve().parent.parent

DAY = date(2026, 11, 24)  # a Tuesday
SESSIONS = (Session("上午", time(8, 30), time(12, 0)), Session("下午", time(14, 30), time(17, 30)))
SCHEDULE = Schedule(sessions=SESSIONS, grace_minutes=5, absent_after_minutes=120, duplicate_punch_minutes=3)
ZHANG = StaffMember("S001", "张伟", "01", ("0A004A7B2C",))


def at(clock: str) -> datetime:
    return datetime.combine(DAY, time.fromisoformat(clock), tzinfo=TZ)


@pytest.mark.parametrize("clocks, require_leave, expected", [
    (["08:29:31"], False, Verdict("on_time", None, "正常")),
    (["08:35:00"], False, Verdict("on_time", None, "正常")),  # inside the grace
    (["08:42:10"], False, Verdict("late", 12, "迟到 12 分钟")),
    (["10:45:00"], False, Verdict("absent", 135, "旷工 (迟到 135 分钟)")),
    (["08:29:00", "11:40:30"], True, Verdict("early_leave", 20, "早退 20 分钟")),
    (["08:29:00", "12:01:00"], True, Verdict("on_time", None, "正常")),
    (["08:29:00", "11:40:30"], False, Verdict("on_time", None, "正常")),  # no leaving punch taken
    (["08:29:00", "08:30:30"], False, None),  # a repeat inside the duplicate window: no judgement
    (["14:50:00"], False, Verdict("late", 20, "迟到 20 分钟")),  # the afternoon session
])
def test_the_last_punch_is_judged(clocks: list[str], require_leave: bool, expected: Verdict | None) -> None:
    schedule = replace(SCHEDULE, require_leave_punch=require_leave)
    punches = [Punch("S001", at(c), "card", f"e{i}") for i, c in enumerate(clocks)]
    rows = attendance_for_day(DAY, [ZHANG], schedule, punches, [], punches[-1].at, TZ)
    assert verdict_of(punches[-1], rows, schedule, TZ) == expected


def test_a_punch_on_leave_says_so() -> None:
    punch = Punch("S001", at("09:00:00"), "card", "e1")
    leave = Leave("S001", at("08:00:00"), at("12:00:00"), "王主任", "事假", at("07:00:00"))
    rows = attendance_for_day(DAY, [ZHANG], SCHEDULE, [punch], [leave], punch.at, TZ)
    assert verdict_of(punch, rows, SCHEDULE, TZ) == Verdict("leave", None, "请假")


def test_the_show_body_names_the_event() -> None:
    assert Verdict("late", 12, "迟到 12 分钟").body("0193a5c2") == {
        "display": "terminal", "event": "0193a5c2", "status": "late", "minutes": 12, "text": "迟到 12 分钟"}


# --- the test vector of PROTOCOL.md 2.11 ---------------------------------------------------------


def test_protocol_vector_matches_seal_and_the_edge_takes_it() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text[text.index("### 2.11 "):text.index("## Version 1")]
    table = dict(re.findall(r"^\| ([a-z ]+) \| `([^`]+)` \|$", section, re.M))
    signed_bytes, published = re.findall(r"^```\n(.+)\n```$", section, re.M)
    fields = json.loads(signed_bytes)
    assert fields["body"] == Verdict("late", 12, "迟到 12 分钟").body(fields["body"]["event"])
    key = load_private_key(table["seed"])
    envelope = seal(key, hall="h1", device="entrance", seq=int(table["seq"]), ts=table["ts"], type="show",
                    body=fields["body"], id=table["id"])
    assert canonical(envelope.unsigned()).decode() == signed_bytes
    assert (envelope.sig, envelope.raw.decode()) == (table["sig"], published)
    opened = open_signed(published.encode(), load_public_key(public_hex_of(key)))
    screen = EntranceScreen(None, FixedClock(at("08:42:32")), TZ, lambda: [], Silent(), camera=False,
                            require_live=True, watermark=lambda: 0, link_up=lambda: True)
    screen.hub_show(opened.body)  # valid at the edge (the punch is not on this screen: nothing shown)
