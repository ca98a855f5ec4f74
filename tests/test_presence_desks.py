"""Presence, desks and extended service as tables of cases (issue 8, "Attendance judged in full"):
ratings and signs follow who is there (clocked in and not yet gone) whatever the attendance status;
a window's desks and its shared sign; 延时服务 after a session's end is recorded, never a problem."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from hub.domain import (
    Punch,
    Rating,
    RatingPolicy,
    Schedule,
    Session,
    SessionAttendance,
    SignEvent,
    StaffMember,
)
from hub.rules.attendance import attendance_for_day
from hub.rules.away import DeskOwners, away_periods, late_returns, unattended_windows
from hub.rules.extended import extended_minutes_by_staff, extended_service
from hub.rules.presence import Presence
from hub.rules.ratings import attribute, on_duty, rating_findings

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)  # a Tuesday
SCHEDULE = Schedule(sessions=(Session("morning", time(8, 30), time(12, 0)),
                              Session("afternoon", time(14, 30), time(17, 30))))
FULL_DAY = ("08:25", "12:01", "14:25", "17:31")


def at(clock: str, day: date = DAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=TZ)


def rows_for(roster: tuple[StaffMember, ...], punches: dict[str, tuple[str, ...]], now: str = "20:00",
             schedule: Schedule = SCHEDULE) -> list[SessionAttendance]:
    all_punches = [Punch(s, at(c), "card", f"p-{s}-{c}") for s, clocks in punches.items() for c in clocks]
    return attendance_for_day(DAY, roster, schedule, all_punches, [], at(now), TZ)


def rating(clock: str, window: str, n: int = 0) -> Rating:
    return Rating(f"r-{window}-{clock}-{n}", window, 4, True, f"inv-{n}", None, at(clock))


def sign(window: str, desk: str, state: str, clock: str, back: str | None = None) -> SignEvent:
    return SignEvent(window, desk, state, "meeting" if state != "on_duty" else None,
                     at(back) if back else None, at(clock), f"{window}-{desk}-{state}-{clock}")


def attributed_staff(roster: tuple[StaffMember, ...], rows: list[SessionAttendance], signs: list[SignEvent],
                     clocks: list[str], window: str) -> list[str | None]:
    out = attribute([rating(c, window, n) for n, c in enumerate(clocks)], roster, {DAY: rows},
                    away_periods(signs), RatingPolicy(), TZ, schedule=SCHEDULE)
    return [a.staff for a in out]


# --- a late-comer past the absence threshold is still there --------------------------------

LATE_COMER = (StaffMember("s6", "孙八", "05"),)


@pytest.mark.parametrize(("clock", "expected"), [
    pytest.param("10:39:59", None, id="before_arrival"),
    pytest.param("10:40:00", "s6", id="at_arrival_after_the_threshold"),
    pytest.param("11:30:00", "s6", id="while_there"),
    pytest.param("12:00:30", "s6", id="after_the_end_before_the_leaving_punch"),
    pytest.param("12:05:00", None, id="after_the_leaving_punch"),
])
def test_a_late_comer_past_the_absence_threshold_gets_the_ratings(clock: str, expected: str | None) -> None:
    rows = rows_for(LATE_COMER, {"s6": ("10:40", "12:01")})
    morning = next(r for r in rows if r.session == "morning")
    assert (morning.status, morning.flags) == ("absent", ("absent",))  # the status keeps its meaning
    assert attributed_staff(LATE_COMER, rows, [], [clock], "05") == [expected]


def test_a_late_comer_staffs_the_window_from_arrival_and_owns_the_shared_sign() -> None:
    roster = (StaffMember("s2", "李四", "02"), StaffMember("s3", "王五", "02"))
    rows = rows_for(roster, {"s3": ("10:40", "12:01")})  # s2 absent all day, s3 past the threshold
    signs = [sign("02", "d02", "away", "11:00", "11:10"), sign("02", "d02", "on_duty", "11:20")]
    periods = away_periods(signs)
    gaps = unattended_windows(DAY, roster, SCHEDULE, rows, periods, at("12:00"), TZ)
    assert [(g.start, g.end) for g in gaps] == [(at("08:30"), at("10:40")), (at("11:00"), at("11:20"))]
    presence = Presence(rows, SCHEDULE, TZ)
    (late,) = late_returns(periods, at("12:00"), roster=roster, presence=presence)
    assert (late.staff, late.detail["late_minutes"]) == ("s3", 10)  # the one of the two who was there
    assert late_returns(periods, at("12:00"), roster=roster)[0].staff is None  # without presence: unknown


def test_an_early_leaver_is_gone_from_the_leaving_punch() -> None:
    roster = (StaffMember("s1", "张三", "01"),)
    rows = rows_for(roster, {"s1": ("08:40", "11:00")})
    morning = next(r for r in rows if r.session == "morning")
    assert (morning.status, morning.flags) == ("late", ("late", "early_leave"))
    assert attributed_staff(roster, rows, [], ["10:59", "11:00", "11:30"], "01") == ["s1", None, None]
    gaps = unattended_windows(DAY, roster, SCHEDULE, rows, [], at("12:00"), TZ)
    assert [(g.start, g.end) for g in gaps] == [(at("08:30"), at("08:40")), (at("11:00"), at("12:00"))]


# --- a window with two desks and a shared sign ---------------------------------------------

DESKS = (StaffMember("s2", "李四", "02", desk="02a"), StaffMember("s3", "王五", "02", desk="02b"))
DESK_SIGNS = [
    sign("02", "02a", "away", "10:00", "10:30"), sign("02", "02a", "on_duty", "10:40"),
    sign("02", "d02", "paused", "11:00"), sign("02", "d02", "on_duty", "11:10"),
    sign("02", "02b", "away", "11:30", "11:40"), sign("02", "02b", "on_duty", "11:45"),
]


@pytest.mark.parametrize(("clock", "expected"), [
    pytest.param("09:00", "s2", id="both_on_duty_roster_order"),
    pytest.param("10:15", "s3", id="desk_02a_away_02b_serves"),
    pytest.param("10:40", "s2", id="desk_02a_back"),
    pytest.param("11:05", None, id="shared_sign_paused_covers_both"),
    pytest.param("11:35", "s2", id="desk_02b_away_02a_serves"),
])
def test_a_ratings_staff_is_the_one_whose_desk_is_on_duty(clock: str, expected: str | None) -> None:
    rows = rows_for(DESKS, {"s2": FULL_DAY, "s3": FULL_DAY})
    assert attributed_staff(DESKS, rows, DESK_SIGNS, [clock], "02") == [expected]


def test_desk_signs_name_their_staff_and_the_shared_sign_names_nobody_of_two_present() -> None:
    rows = rows_for(DESKS, {"s2": FULL_DAY, "s3": FULL_DAY})
    periods = away_periods(DESK_SIGNS)
    assert on_duty("02", at("10:15"), DESKS, rows, periods) == ["s3"]
    presence = Presence(rows, SCHEDULE, TZ)
    late = late_returns(periods, at("12:00"), roster=DESKS, presence=presence)
    assert [(f.detail["desk"], f.staff) for f in late] == [("02a", "s2"), ("02b", "s3")]
    owners = DeskOwners(DESKS, presence)
    assert owners.covered("02", "02a") == ["s2"] and owners.covered("02", "d02") == ["s2", "s3"]
    assert owners.of("02", "d02", at("11:00")) is None  # both there: the shared sign is the window's
    # s2 sits at 02a: a box sending desk "s2" is not a seat of window 02, so it is the shared sign
    assert owners.covered("02", "s2") == ["s2", "s3"]


def test_the_default_desk_is_the_members_own_id() -> None:
    roster = (StaffMember("s2", "李四", "02"), StaffMember("s3", "王五", "02"))
    assert [m.desk_id for m in roster] == ["s2", "s3"]
    rows = rows_for(roster, {"s2": FULL_DAY, "s3": FULL_DAY})
    signs = [sign("02", "s2", "away", "10:00", "10:30"), sign("02", "s2", "on_duty", "10:40")]
    assert attributed_staff(roster, rows, signs, ["10:15"], "02") == ["s3"]


# --- extended service (延时服务) --------------------------------------------------------------

ZHANG = (StaffMember("s1", "张三", "01"),)


# (punches, ratings at window 01, signs at desk s1, extended_minutes, expected [(session, until, minutes)])
EXTENDED_CASES = [
    pytest.param(("08:25", "12:30"), ["12:20"], [], 60, [("morning", "12:20", 20)], id="rating_then_leaving"),
    pytest.param(("08:25",), ["12:20"], [], 60, [("morning", "12:20", 20)], id="forgotten_leaving_punch"),
    pytest.param(("08:25", "12:01"), ["12:20"], [], 60, [], id="gone_before_the_rating"),
    pytest.param(("08:25", "13:30"), ["12:10", "13:00"], [], 60, [("morning", "13:00", 60)],
                 id="last_evidence_at_the_limit"),
    pytest.param(("08:25", "13:30"), ["13:00:01"], [], 60, [], id="past_the_limit"),
    pytest.param(("08:25", "12:30"), ["11:59"], [], 60, [], id="before_the_end"),
    pytest.param(("08:25", "12:30"), ["12:00:00"], [], 60, [], id="exactly_at_the_end"),
    pytest.param(("08:25", "12:30"), ["12:00:01"], [], 60, [("morning", "12:00:01", 1)], id="a_second_past"),
    pytest.param(("08:25", "12:15"), [], ["12:10"], 60, [("morning", "12:10", 10)], id="sign_at_own_desk"),
    pytest.param(("08:25", "12:30"), ["12:20"], [], 0, [], id="turned_off"),
    pytest.param(FULL_DAY[:3] + ("18:00",), ["17:45"], [], 60, [("afternoon", "17:45", 15)], id="afternoon"),
]


@pytest.mark.parametrize(("punches", "ratings", "signs", "minutes", "expected"), EXTENDED_CASES)
def test_extended_service(punches: tuple[str, ...], ratings: list[str], signs: list[str], minutes: int,
                          expected: list[tuple[str, str, int]]) -> None:
    schedule = replace(SCHEDULE, extended_minutes=minutes)
    rows = rows_for(ZHANG, {"s1": punches}, schedule=schedule)
    sign_events = [sign("01", "s1", "away", c, "14:30") for c in signs]
    rated = attribute([rating(c, "01", n) for n, c in enumerate(ratings)], ZHANG, {DAY: rows},
                      away_periods(sign_events), RatingPolicy(), TZ, schedule=schedule)
    records = extended_service(DAY, ZHANG, schedule, rows, rated, sign_events, TZ)
    assert [(r.session, r.until, r.minutes) for r in records] == [(s, at(u), m) for s, u, m in expected]
    for record in records:
        assert (record.staff, record.window, record.date) == ("s1", "01", DAY)
        events = {a.rating.event_id for a in rated} | {s.event_id for s in sign_events}
        assert record.sources and set(record.sources) <= events


def test_a_rating_during_extended_service_is_never_a_problem() -> None:
    rows = rows_for(ZHANG, {"s1": ("08:25", "12:25")})
    rated = attribute([rating("12:20", "01")], ZHANG, {DAY: rows}, [], RatingPolicy(), TZ, schedule=SCHEDULE)
    assert [(a.staff, a.counted, a.flags) for a in rated] == [("s1", True, ())]
    assert rating_findings(rated) == []
    morning = next(r for r in rows if r.session == "morning")
    assert (morning.status, morning.flags) == ("on_time", ())
    assert unattended_windows(DAY, ZHANG, SCHEDULE, rows, [], at("12:30"), TZ) == []
    (record,) = extended_service(DAY, ZHANG, SCHEDULE, rows, rated, [], TZ)
    assert record.minutes == 20
    # a missing leaving punch is not judged while the member may still be serving
    rows_at_1230 = rows_for(ZHANG, {"s1": ("08:25",)}, now="12:30")
    assert next(r for r in rows_at_1230 if r.session == "morning").flags == ()


def test_extended_service_on_a_holiday_or_before_go_live_is_not_recorded() -> None:
    rows = rows_for(ZHANG, {"s1": ("08:25", "12:30")})
    rated = attribute([rating("12:20", "01")], ZHANG, {DAY: rows}, [], RatingPolicy(), TZ, schedule=SCHEDULE)
    for schedule in (replace(SCHEDULE, holidays=frozenset({DAY})),
                     replace(SCHEDULE, since=date(2026, 11, 25))):
        assert extended_service(DAY, ZHANG, schedule, rows, rated, [], TZ) == []


def test_extended_minutes_by_staff_sums_a_day() -> None:
    rows = rows_for(ZHANG, {"s1": ("08:25", "12:30", "14:25", "18:00")})
    presses = [rating("12:20", "01"), rating("17:40", "01", 1)]
    rated = attribute(presses, ZHANG, {DAY: rows}, [], RatingPolicy(), TZ, schedule=SCHEDULE)
    records = extended_service(DAY, ZHANG, SCHEDULE, rows, rated, [], TZ)
    assert [(r.session, r.minutes) for r in records] == [("morning", 20), ("afternoon", 10)]
    assert extended_minutes_by_staff(records) == {"s1": {DAY: 30}}
