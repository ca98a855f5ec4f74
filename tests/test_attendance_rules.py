"""Attendance rules as tables of cases (DESIGN.md "Domain rules", Attendance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from hub.domain import Leave, Punch, Schedule, Session, StaffMember
from hub.rules.attendance import (
    CardIndex,
    assign_to_sessions,
    attendance_for_day,
    card_matches,
    dedupe_punches,
    flag_counts,
    is_workday,
    parse_card,
    punch_for,
)

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)  # a Tuesday
SCHEDULE = Schedule(
    sessions=(Session("morning", time(8, 30), time(12, 0)), Session("afternoon", time(14, 30), time(17, 30))),
    grace_minutes=5,
    absent_after_minutes=120,
    duplicate_punch_minutes=3,
)
ZHANG = StaffMember("s1", "张三", "W01", ("0004881196",))
LI = StaffMember("s2", "李四", "W02", ("67003B51C6",))
ROSTER = (ZHANG, LI)


def at(clock: str, day: date = DAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=TZ)


def punches(*clocks: str, staff: str = "s1", day: date = DAY) -> list[Punch]:
    return [Punch(staff, at(c, day), "card", f"{staff}-{day}-{c}") for c in clocks]


def rows_by_session(rows: list, staff: str = "s1") -> dict:
    return {r.session: r for r in rows if r.staff == staff}


# (punch times, now, require_leave_punch, expected morning status, expected flags); extended
# service (extended_minutes) is 60, so a missing leaving punch is judged from 13:00
LATE, ABSENT, EARLY, MISSING = "late", "absent", "early_leave", "missing_leave_punch"
MORNING_CASES = [
    pytest.param(["08:29", "12:01"], "18:00", True, "on_time", (), id="on_time"),
    pytest.param(
        ["08:35:00", "12:00:00"], "18:00", True, "on_time", (), id="exactly_at_grace_and_leaving_at_end"
    ),
    pytest.param(["08:35:00.900", "12:05"], "18:00", True, "on_time", (), id="subsecond_at_grace_ignored"),
    pytest.param(["08:35:01", "12:05"], "18:00", True, "late", (LATE,), id="one_second_after_grace"),
    pytest.param(["10:30:00", "12:05"], "18:00", True, "late", (LATE,), id="exactly_at_absent_threshold"),
    pytest.param(["10:30:01", "12:05"], "18:00", True, "absent", (ABSENT,), id="after_absent_threshold"),
    pytest.param([], "10:29:59", True, "pending", (), id="no_punch_before_threshold"),
    pytest.param([], "10:30:00", True, "absent", (ABSENT,), id="no_punch_at_threshold"),
    pytest.param(["08:30", "11:30"], "12:00", True, "early_leave", (EARLY,), id="leaving_punch_before_end"),
    pytest.param(["08:30", "11:30"], "11:45", True, "on_time", (), id="leaving_before_end_session_open"),
    pytest.param(["08:30", "11:59:59"], "18:00", True, "early_leave", (EARLY,), id="leaving_a_second_early"),
    pytest.param(["08:40", "11:00"], "18:00", True, "late", (LATE, EARLY), id="late_and_early_flags_both"),
    pytest.param(["08:40", "11:00"], "11:30", True, "late", (LATE,), id="late_and_early_session_open"),
    pytest.param(["10:40", "11:00"], "18:00", True, "absent", (ABSENT, EARLY),
                 id="after_threshold_and_early"),
    pytest.param(["08:30"], "12:00", True, "on_time", (), id="single_punch_at_end_may_still_serve"),
    pytest.param(["08:30"], "12:59:59", True, "on_time", (), id="single_punch_within_extended_minutes"),
    pytest.param(["08:30"], "13:00", True, "missing_leave_punch", (MISSING,), id="forgotten_leaving_punch"),
    pytest.param(["08:30"], "11:59:59", True, "on_time", (), id="single_punch_before_end"),
    pytest.param(["08:50"], "11:00", True, "late", (LATE,), id="single_late_punch_before_end"),
    pytest.param(["08:50"], "18:00", True, "late", (LATE, MISSING), id="single_late_punch_after_end"),
    pytest.param(["10:40"], "18:00", True, "absent", (ABSENT, MISSING), id="single_punch_after_threshold"),
    pytest.param(["12:05"], "18:00", True, "absent", (ABSENT,), id="only_a_punch_after_the_end"),
    pytest.param(["08:30"], "18:00", False, "on_time", (), id="single_punch_no_leave_punch_required"),
    pytest.param(["08:30", "11:00"], "18:00", False, "on_time", (), id="early_last_no_leave_punch_required"),
    pytest.param(["08:50"], "18:00", False, "late", (LATE,), id="late_no_leave_punch_required"),
]


@pytest.mark.parametrize(("clocks", "now", "require_leave", "expected", "flags"), MORNING_CASES)
def test_session_status(clocks: list[str], now: str, require_leave: bool, expected: str,
                        flags: tuple[str, ...]) -> None:
    schedule = replace(SCHEDULE, require_leave_punch=require_leave)
    rows = attendance_for_day(DAY, ROSTER, schedule, punches(*clocks), [], at(now), TZ)
    morning = rows_by_session(rows)["morning"]
    assert (morning.status, morning.flags) == (expected, flags)
    assert morning.first == (at(clocks[0]) if clocks else None)
    assert morning.last == (at(clocks[-1]) if clocks else None)
    assert morning.left == (at(clocks[-1]) if require_leave and len(clocks) > 1 else None)


@pytest.mark.parametrize(("extended", "now", "expected"), [
    pytest.param(0, "11:59:59", "on_time", id="no_extended_service_before_end"),
    pytest.param(0, "12:00", "missing_leave_punch", id="no_extended_service_at_end"),
    pytest.param(30, "12:29:59", "on_time", id="within_30_minutes"),
    pytest.param(30, "12:30", "missing_leave_punch", id="after_30_minutes"),
])
def test_missing_leaving_punch_waits_for_extended_service(extended: int, now: str, expected: str) -> None:
    schedule = replace(SCHEDULE, extended_minutes=extended)
    rows = attendance_for_day(DAY, ROSTER, schedule, punches("08:30"), [], at(now), TZ)
    assert rows_by_session(rows)["morning"].status == expected


def test_flags_are_counted_per_staff_member() -> None:
    day = punches("08:40", "11:00") + punches("14:30", staff="s1")  # late + early, then no leaving punch
    rows = attendance_for_day(DAY, ROSTER, SCHEDULE, day, [], at("20:00"), TZ)
    counts = flag_counts(rows)
    assert counts["s1"] == {"late": 1, "early_leave": 1, "missing_leave_punch": 1}
    assert counts["s2"] == {"absent": 2}


def test_leave_and_holiday_rows_have_no_flags() -> None:
    leave = Leave("s1", at("00:00"), at("23:59"), "主任", "事假", at("07:00"))
    rows = attendance_for_day(DAY, ROSTER, SCHEDULE, punches("09:00"), [leave], at("18:00"), TZ)
    morning = rows_by_session(rows)["morning"]
    assert (morning.status, morning.flags, morning.first) == ("leave", (), at("09:00"))


@pytest.mark.parametrize(("clocks", "now", "expected", "first"), [
    pytest.param(["09:10"], "09:00", "pending", None, id="a_later_punch_is_not_known_yet"),
    pytest.param(["08:20", "09:10"], "09:00", "on_time", "08:20", id="only_punches_up_to_now"),
    pytest.param(["12:00", "13:52"], "10:00", "pending", None, id="afternoon_punch_not_on_time_at_10"),
])
def test_judged_as_of_now(clocks: list[str], now: str, expected: str, first: str | None) -> None:
    rows = attendance_for_day(DAY, ROSTER, SCHEDULE, punches(*clocks), [], at(now), TZ)
    morning = rows_by_session(rows)["morning"]
    assert (morning.status, morning.first) == (expected, at(first) if first else None)
    assert {r.status for r in rows if r.session == "afternoon"} == {"pending"}


def test_days_before_go_live_are_not_judged() -> None:
    live = replace(SCHEDULE, since=date(2026, 11, 25))
    before = attendance_for_day(DAY, ROSTER, live, [], [], at("18:00"), TZ)
    assert {r.status for r in before} == {"not_live"}
    after = attendance_for_day(date(2026, 11, 25), ROSTER, live, [], [], at("18:00", date(2026, 11, 25)), TZ)
    assert {r.status for r in after} == {"absent"}


def test_rows_follow_roster_and_schedule_order() -> None:
    rows = attendance_for_day(DAY, (LI, ZHANG), SCHEDULE, punches("08:30", "12:00"), [], at("09:00"), TZ)
    assert [(r.staff, r.name, r.session, r.date) for r in rows] == [
        ("s2", "李四", "morning", DAY),
        ("s2", "李四", "afternoon", DAY),
        ("s1", "张三", "morning", DAY),
        ("s1", "张三", "afternoon", DAY),
    ]
    assert [r.status for r in rows] == ["pending", "pending", "on_time", "pending"]


# (day, holidays, makeup workdays, is a workday)
CALENDAR_CASES = [
    pytest.param(DAY, frozenset(), frozenset(), True, id="weekday"),
    pytest.param(date(2026, 11, 28), frozenset(), frozenset(), False, id="weekend"),
    pytest.param(
        date(2026, 10, 1), frozenset({date(2026, 10, 1)}), frozenset(), False, id="holiday_on_weekday"
    ),
    pytest.param(date(2026, 11, 28), frozenset(), frozenset({date(2026, 11, 28)}), True, id="makeup_workday"),
    pytest.param(DAY, frozenset({DAY}), frozenset({DAY}), False, id="holiday_beats_makeup"),
]


@pytest.mark.parametrize(("day", "holidays", "makeup", "workday"), CALENDAR_CASES)
def test_calendar(day: date, holidays: frozenset, makeup: frozenset, workday: bool) -> None:
    schedule = replace(SCHEDULE, holidays=holidays, makeup_workdays=makeup)
    assert is_workday(day, schedule) is workday
    rows = attendance_for_day(day, ROSTER, schedule, punches("08:31", day=day), [], at("18:00", day), TZ)
    morning = rows_by_session(rows)["morning"]
    assert morning.status == ("missing_leave_punch" if workday else "holiday")
    assert morning.first == at("08:31", day)  # punches are still shown on a holiday
    assert {r.status for r in rows if r.staff == "s2"} == ({"absent"} if workday else {"holiday"})


# (leave start, leave end, approver, leave staff, punches, expected morning, expected afternoon)
LEAVE_CASES = [
    pytest.param("08:00", "12:30", "主任", "s1", [], "leave", "absent", id="overlaps_morning_only"),
    pytest.param(
        "13:00", "17:30", "主任", "s1", ["08:30", "12:00"], "on_time", "leave", id="overlaps_afternoon"
    ),
    pytest.param("11:00", "15:00", "主任", "s1", [], "leave", "leave", id="overlaps_both"),
    pytest.param("07:00", "08:30", "主任", "s1", [], "absent", "absent", id="ends_at_session_start"),
    pytest.param("08:00", "12:30", "", "s1", [], "absent", "absent", id="not_approved"),
    pytest.param("08:00", "12:30", "主任", "s2", [], "absent", "absent", id="someone_else"),
    pytest.param("08:00", "12:30", "主任", "s1", ["10:00"], "leave", "absent", id="leave_with_punch"),
]


@pytest.mark.parametrize(("start", "end", "approver", "staff", "clocks", "morning", "afternoon"), LEAVE_CASES)
def test_leave(
    start: str, end: str, approver: str, staff: str, clocks: list[str], morning: str, afternoon: str
) -> None:
    leave = Leave(staff, at(start), at(end), approver, "事假", at("07:00"))
    rows = rows_by_session(
        attendance_for_day(DAY, ROSTER, SCHEDULE, punches(*clocks), [leave], at("18:00"), TZ)
    )
    assert (rows["morning"].status, rows["afternoon"].status) == (morning, afternoon)
    assert rows["morning"].first == (at(clocks[0]) if clocks else None)


# (input punch times, window minutes, kept punch times)
DEDUPE_CASES = [
    pytest.param(["08:30", "08:31", "08:33"], 3, ["08:30"], id="burst_within_window"),
    pytest.param(["08:30", "08:32", "08:34"], 3, ["08:30", "08:34"], id="measured_from_last_kept"),
    pytest.param(["08:33", "08:30", "12:01"], 3, ["08:30", "12:01"], id="sorted_by_time"),
    pytest.param(["08:30", "08:30"], 0, ["08:30"], id="zero_window_drops_identical"),
    pytest.param(["08:30", "08:30:01"], 0, ["08:30", "08:30:01"], id="zero_window_keeps_distinct"),
]


@pytest.mark.parametrize(("clocks", "minutes", "kept"), DEDUPE_CASES)
def test_dedupe(clocks: list[str], minutes: int, kept: list[str]) -> None:
    result = dedupe_punches(punches(*clocks), minutes)
    assert [p.at for p in result] == [at(c) for c in kept]


def test_dedupe_is_per_staff() -> None:
    result = dedupe_punches(punches("08:30") + punches("08:31", staff="s2"), 3)
    assert [(p.staff, p.at) for p in result] == [("s1", at("08:30")), ("s2", at("08:31"))]


# (punch times, expected morning status, first, last, kept punches)
DUPLICATE_IN_DAY_CASES = [
    pytest.param(
        ["08:30", "08:32", "12:05"], "on_time", "08:30", "12:05", ["08:30", "12:05"], id="arrival_taps"
    ),
    pytest.param(
        ["08:30", "11:59", "12:01"], "early_leave", "08:30", "11:59", ["08:30", "11:59"], id="leaving_taps"
    ),
    pytest.param(["08:30", "08:31"], "missing_leave_punch", "08:30", "08:30", ["08:30"],
                 id="double_tap_is_single"),
]


@pytest.mark.parametrize(("clocks", "status", "first", "last", "kept"), DUPLICATE_IN_DAY_CASES)
def test_duplicates_count_once(
    clocks: list[str], status: str, first: str, last: str, kept: list[str]
) -> None:
    rows = attendance_for_day(DAY, ROSTER, SCHEDULE, punches(*clocks), [], at("18:00"), TZ)
    morning = rows_by_session(rows)["morning"]
    assert (morning.status, morning.first, morning.last) == (status, at(first), at(last))
    assert morning.punches == tuple(at(c) for c in kept)


# (punch time, day offset, expected session or None)
ASSIGN_CASES = [
    pytest.param("10:00", "morning", id="inside_morning"),
    pytest.param("07:00", "morning", id="before_morning"),
    pytest.param("12:40", "morning", id="early_lunch_gap"),
    pytest.param("13:14:59", "morning", id="just_before_gap_midpoint"),
    pytest.param("13:15:00", "morning", id="gap_midpoint_tie_to_earlier"),
    pytest.param("13:15:01", "afternoon", id="just_after_gap_midpoint"),
    pytest.param("14:20", "afternoon", id="late_lunch_gap"),
    pytest.param("19:00", "afternoon", id="after_afternoon"),
]


@pytest.mark.parametrize(("clock", "session"), ASSIGN_CASES)
def test_assign_to_nearest_session(clock: str, session: str) -> None:
    assigned = assign_to_sessions(DAY, punches(clock), SCHEDULE, TZ)
    assert {name: [p.at for p in ps] for name, ps in assigned.items()} == {
        "morning": [at(clock)] if session == "morning" else [],
        "afternoon": [at(clock)] if session == "afternoon" else [],
    }


# (UTC instant, session it lands in on DAY in Shanghai, or None when it is another local date)
TZ_CASES = [
    pytest.param(datetime(2026, 11, 24, 0, 34, tzinfo=UTC), "morning", id="utc_morning"),
    pytest.param(
        datetime(2026, 11, 23, 23, 59, tzinfo=UTC), "morning", id="utc_previous_date_same_local_day"
    ),
    pytest.param(datetime(2026, 11, 24, 9, 29, tzinfo=UTC), "afternoon", id="utc_afternoon"),
    pytest.param(datetime(2026, 11, 24, 16, 10, tzinfo=UTC), None, id="utc_same_date_next_local_day"),
    pytest.param(datetime(2026, 11, 23, 15, 59, tzinfo=UTC), None, id="utc_previous_local_day"),
]


@pytest.mark.parametrize(("instant", "session"), TZ_CASES)
def test_punches_in_other_time_zone(instant: datetime, session: str | None) -> None:
    punch = Punch("s1", instant, "card", "e1")
    rows = rows_by_session(attendance_for_day(DAY, ROSTER, SCHEDULE, [punch], [], at("18:00"), TZ))
    landed = {name: row.first for name, row in rows.items() if row.first is not None}
    assert landed == ({session: instant} if session else {})
    if session:
        assert rows[session].first.utcoffset() == at("00:00").utcoffset()  # shown in hall time


# (roster text, normalised)
PARSE_CASES = [
    pytest.param("0004881196", "00004A7B2C", id="printed_10_digits"),
    pytest.param("3887558", "00003B51C6", id="printed_short"),
    pytest.param("67003B51C6", "67003B51C6", id="hex_upper"),
    pytest.param(" 0a004a7b2c ", "0A004A7B2C", id="hex_lower_padded"),
    pytest.param("4294967295", "00FFFFFFFF", id="largest_printed"),
    pytest.param("4294967296", "4294967296", id="digits_too_big_for_printed_are_hex"),
]


@pytest.mark.parametrize(("text", "normalised"), PARSE_CASES)
def test_parse_card(text: str, normalised: str) -> None:
    assert parse_card(text) == normalised


@pytest.mark.parametrize(
    "text", ["", "0A004A7B2", "0A004A7B2C1", "12345678901", "0x4A7B2C", "ZZ004A7B2C", "0000000000"]
)
def test_parse_card_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="card"):
        parse_card(text)


# (card read, roster card, matches)
MATCH_CASES = [
    pytest.param("0A004A7B2C", "0004881196", True, id="printed_ignores_vendor_byte"),
    pytest.param("00004A7B2C", "0004881196", True, id="printed_zero_vendor_byte"),
    pytest.param("0A004A7B2D", "0004881196", False, id="printed_other_card"),
    pytest.param("67003B51C6", "67003B51C6", True, id="hex_exact"),
    pytest.param("67003b51c6", "67003B51C6", True, id="hex_read_lowercase"),
    pytest.param("68003B51C6", "67003B51C6", False, id="hex_checks_vendor_byte"),
    pytest.param("67003B51C6", "3887558", True, id="printed_vector"),
    pytest.param("67003BA86C", "3909740", True, id="printed_vector_2"),
    pytest.param("1F00644BB6", "6572982", True, id="printed_vector_3"),
    pytest.param("garbage", "3887558", False, id="malformed_read"),
]


@pytest.mark.parametrize(("read", "roster_card", "matches"), MATCH_CASES)
def test_card_matches_and_index(read: str, roster_card: str, matches: bool) -> None:
    assert card_matches(read, roster_card) is matches
    holder = StaffMember("x", "王五", "W03", (roster_card,))
    assert CardIndex([holder]).staff_for(read) == (holder if matches else None)


def test_index_mixes_both_forms() -> None:
    zhao = StaffMember("s3", "赵六", "W03", ("3909740", "1f00644bb6"))
    index = CardIndex(ROSTER + (zhao,))
    reads = ["0A004A7B2C", "67003B51C6", "68003B51C6", "FF003BA86C", "1F00644BB6", "2F00644BB6", "0000000001"]
    assert [index.staff_for(r) for r in reads] == [ZHANG, LI, None, zhao, zhao, None, None]


# (first staff cards, second staff cards)
DUPLICATE_CARD_CASES = [
    pytest.param(("67003B51C6",), ("67003b51c6",), id="same_hex"),
    pytest.param(("3887558",), ("0003887558",), id="same_printed"),
    pytest.param(("0004881196",), ("0A004A7B2C",), id="printed_vs_hex"),
    pytest.param(("00004A7B2C",), ("4881196",), id="hex_vs_printed"),
]


@pytest.mark.parametrize(("cards_a", "cards_b"), DUPLICATE_CARD_CASES)
def test_duplicate_card_raises_naming_both(cards_a: tuple[str, ...], cards_b: tuple[str, ...]) -> None:
    a, b = StaffMember("s1", "张三", "W01", cards_a), StaffMember("s2", "李四", "W02", cards_b)
    with pytest.raises(ValueError, match=r"s1 \(张三\).*s2 \(李四\)|s2 \(李四\).*s1 \(张三\)"):
        CardIndex([a, b])


def test_same_staff_may_list_a_card_twice() -> None:
    holder = StaffMember("s1", "张三", "W01", ("0004881196", "00004A7B2C", "4881196"))
    assert CardIndex([holder]).staff_for("00004A7B2C") == holder


# (body, staff id of the punch or None)
PUNCH_CASES = [
    pytest.param({"method": "card", "card": "0A004A7B2C"}, "s1", id="card_printed"),
    pytest.param({"method": "card", "card": "67003B51C6"}, "s2", id="card_hex"),
    pytest.param({"method": "card", "card": "1234567890"}, None, id="unknown_card"),
    pytest.param({"method": "face", "staff": "s2", "distance_milli": 410, "live": True}, "s2", id="face"),
    pytest.param({"method": "face", "staff": "nobody"}, None, id="face_not_on_roster"),
    pytest.param({"method": "face"}, None, id="face_unrecognised"),
    pytest.param({"method": "card+face", "card": "67003B51C6", "staff": "s2"}, "s2", id="card_face_agree"),
    pytest.param(
        {"method": "card+face", "card": "67003B51C6", "staff": "s1"}, None, id="card_face_buddy_punch"
    ),
    pytest.param({"method": "card+face", "card": "67003B51C6"}, None, id="card_face_unknown_face"),
    pytest.param({"method": "pin", "staff": "s1"}, None, id="unknown_method"),
]


@pytest.mark.parametrize("body, counts", [
    pytest.param({"method": "face", "staff": "s1", "live": True}, True, id="live_face"),
    pytest.param({"method": "face", "staff": "s1", "live": False}, False, id="failed_liveness"),
    pytest.param({"method": "face", "staff": "s1"}, False, id="liveness_not_reported"),
    pytest.param({"method": "card", "card": "67003B51C6"}, True, id="card_needs_no_liveness"),
])
def test_punch_for_requiring_liveness(body: dict, counts: bool) -> None:
    punch = punch_for("e1", at("08:29:31.120"), body, CardIndex(ROSTER), require_live=True)
    assert (punch is not None) is counts


@pytest.mark.parametrize(("body", "staff"), PUNCH_CASES)
def test_punch_for(body: dict, staff: str | None) -> None:
    punch = punch_for("e42", at("08:29:31.120"), body, CardIndex(ROSTER))
    expected = None if staff is None else Punch(staff, at("08:29:31.120"), body["method"], "e42")
    assert punch == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda: attendance_for_day(DAY, ROSTER, SCHEDULE, [], [], datetime(2026, 11, 24, 9), TZ),
            "aware",
            id="naive_now",
        ),
        pytest.param(lambda: dedupe_punches([], -1), "negative", id="negative_window"),
        pytest.param(
            lambda: assign_to_sessions(DAY, [], Schedule((Session("x", time(12), time(8)),)), TZ),
            "not after start",
            id="inverted_session",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
