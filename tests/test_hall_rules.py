"""Away, rating and follow-up case rules as tables of cases (DESIGN.md "Domain rules")."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import (
    AttributedRating,
    Case,
    CaseClosure,
    Leave,
    Punch,
    Rating,
    RatingPolicy,
    Schedule,
    Session,
    SignEvent,
    StaffMember,
)
from hub.rules.attendance import attendance_for_day
from hub.rules.away import away_periods, late_returns, unattended_windows
from hub.rules.cases import add_working_days, apply_closures, case_id, open_cases, overdue
from hub.rules.ratings import (
    attribute,
    by_day,
    by_month,
    by_staff,
    by_window,
    on_duty,
    rating_findings,
    session_at,
    statistics,
)

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)  # a Tuesday
SCHEDULE = Schedule(sessions=(Session("morning", time(8, 30), time(12, 0)),
                              Session("afternoon", time(14, 30), time(17, 30))))
# window 01: one staff; 02: two staff with their own desk boxes; 03: absent; 04: on leave; 05: late
ROSTER = (
    StaffMember("s1", "张三", "01"), StaffMember("s2", "李四", "02"), StaffMember("s3", "王五", "02"),
    StaffMember("s4", "赵六", "03"), StaffMember("s5", "钱七", "04"), StaffMember("s6", "孙八", "05"),
)
FULL_DAY = ("08:25", "12:01", "14:25", "17:31")
PUNCHES = {"s1": FULL_DAY, "s2": FULL_DAY, "s3": FULL_DAY, "s5": FULL_DAY, "s6": ("08:40", "12:01")}
LEAVES = [Leave("s5", datetime(2026, 11, 24, 0, 0, tzinfo=TZ), datetime(2026, 11, 25, 0, 0, tzinfo=TZ),
                "主任", "病假", datetime(2026, 11, 23, 17, 0, tzinfo=TZ))]


def at(clock: str, day: date = DAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=TZ)


def sign(desk: str, state: str, clock: str, back: str | None = None, window: str = "01",
         reason: str | None = "meeting") -> SignEvent:
    return SignEvent(window, desk, state, reason if state != "on_duty" else None,
                     at(back) if back else None, at(clock), f"{window}-{desk}-{state}-{clock}")


def rows_for(punches: dict[str, tuple[str, ...]], leaves: list[Leave] | None = None) -> list:
    all_punches = [Punch(s, at(c), "card", f"p-{s}-{c}") for s, clocks in punches.items() for c in clocks]
    return attendance_for_day(DAY, ROSTER, SCHEDULE, all_punches, leaves or [], at("18:00"), TZ)


def rating(clock: str, window: str = "01", level: int = 5, invited: bool = True, n: int = 0) -> Rating:
    invite = f"inv-{n}" if invited else None
    return Rating(f"r-{window}-{clock}-{n}", window, level, invited, invite, None, at(clock))


# --- away periods -------------------------------------------------------------------------

SIGN_CASES = [
    pytest.param([sign("d1", "away", "10:00", "10:30"), sign("d1", "on_duty", "10:20")],
                 [("away", "meeting", "10:00", "10:30", "10:20", 0)], id="away_then_back"),
    pytest.param([sign("d1", "away", "10:00", "10:30"), sign("d1", "away", "10:10", "11:00", reason="field"),
                  sign("d1", "on_duty", "10:50")],
                 [("away", "field", "10:00", "11:00", "10:50", 1)], id="reason_change_continues"),
    pytest.param([sign("d1", "away", "10:00", "10:30"), sign("d1", "paused", "10:10", reason=None),
                  sign("d1", "on_duty", "10:50")],
                 [("away", "meeting", "10:00", "10:30", "10:10", 0),
                  ("paused", None, "10:10", None, "10:50", 0)],
                 id="away_then_paused_splits"),
    pytest.param([sign("d1", "on_duty", "10:50"), sign("d1", "away", "10:00", "10:30")],
                 [("away", "meeting", "10:00", "10:30", "10:50", 0)], id="out_of_order_input"),
    pytest.param([sign("d1", "away", "10:00")], [("away", "meeting", "10:00", None, None, 0)],
                 id="still_away"),
    pytest.param([sign("d1", "on_duty", "10:00")], [], id="on_duty_alone"),
    pytest.param([sign("d1", "away", "10:00"), sign("d1", "away", "10:00"), sign("d1", "on_duty", "10:05")],
                 [("away", "meeting", "10:00", None, "10:05", 0)], id="repeated_event_once"),
]


@pytest.mark.parametrize(("signs", "expected"), SIGN_CASES)
def test_away_periods(signs: list[SignEvent], expected: list[tuple]) -> None:
    got = [(p.state, p.reason, p.start, p.declared_return, p.actual_return, len(p.update_events))
           for p in away_periods(signs)]
    assert got == [(s, r, at(a), at(d) if d else None, at(e) if e else None, u)
                   for s, r, a, d, e, u in expected]


# (desk, window, expected staff): own desk, the only staff's shared sign, a shared sign of two staff
OWNER_CASES = [
    pytest.param("s3", "02", "s3", id="own_desk"),
    pytest.param("d01", "01", "s1", id="shared_sign_one_staff"),
    pytest.param("d02", "02", None, id="shared_sign_two_staff"),
]


@pytest.mark.parametrize(("desk", "window", "expected"), OWNER_CASES)
def test_late_return_names_the_staff(desk: str, window: str, expected: str | None) -> None:
    periods = away_periods([sign(desk, "away", "10:00", "10:30", window=window)])
    (f,) = late_returns(periods, at("11:00"), roster=ROSTER)
    assert f.staff == expected
    assert late_returns(periods, at("11:00"))[0].staff is None  # no roster, no name


def test_away_periods_keeps_desks_apart_and_names_events() -> None:
    a, b = sign("d1", "away", "10:00"), sign("d2", "away", "10:05", window="02")
    back = sign("d1", "on_duty", "10:10")
    periods = away_periods([a, b, back])
    assert [(p.window, p.desk, p.end_event) for p in periods] == [
        ("01", "d1", back.event_id), ("02", "d2", None)]
    assert periods[0].events == (a.event_id, back.event_id)
    with pytest.raises(ValueError, match="state"):
        away_periods([replace(a, state="gone")])


# --- late returns -------------------------------------------------------------------------

# (declared, actual return or None, now, grace, expected (late_minutes, late_seconds, ongoing) or None)
LATE_CASES = [
    pytest.param("10:30", "10:30", "18:00", 0, None, id="on_time_exactly"),
    pytest.param("10:30", "10:20", "18:00", 0, None, id="early"),
    pytest.param("10:30", "10:31", "18:00", 0, (1, 60, False), id="one_minute_late"),
    pytest.param("10:30", "10:30:30", "18:00", 0, (1, 30, False), id="thirty_seconds_late_rounds_up"),
    pytest.param("10:30", "10:35", "18:00", 5, None, id="within_grace"),
    pytest.param("10:30", "10:36", "18:00", 5, (6, 360, False), id="past_grace_counted_from_declared"),
    pytest.param("10:30", None, "10:29", 0, None, id="still_away_before_declared"),
    pytest.param("10:30", None, "10:30", 0, None, id="still_away_at_declared"),
    pytest.param("10:30", None, "10:45", 0, (15, 900, True), id="still_away_past_declared"),
    pytest.param("10:30", "10:50", "10:40", 0, (10, 600, True), id="return_after_now_is_unknown"),
    pytest.param(None, None, "18:00", 0, None, id="no_declared_return"),
]


@pytest.mark.parametrize(("declared", "actual", "now", "grace", "expected"), LATE_CASES)
def test_late_returns(declared: str | None, actual: str | None, now: str, grace: int,
                      expected: tuple[int, int, bool] | None) -> None:
    signs = [sign("d1", "away", "10:00", declared)] + ([sign("d1", "on_duty", actual)] if actual else [])
    findings = late_returns(away_periods(signs), at(now), grace_minutes=grace)
    if expected is None:
        assert findings == []
        return
    (f,) = findings
    assert (f.detail["late_minutes"], f.detail["late_seconds"], f.detail["ongoing"]) == expected
    assert (f.kind, f.window, f.start) == ("late_return", "01", at(declared or ""))
    assert f.end == (None if expected[2] else at(actual or ""))
    assert signs[0].event_id in f.sources


# --- unattended windows (AB岗 缺岗) -------------------------------------------------------

# (punches, signs, now, min_minutes, expected [(window, start, end or None)])
UNATTENDED_CASES = [
    pytest.param({"s1": FULL_DAY}, [sign("s1", "away", "10:00"), sign("s1", "on_duty", "10:40")], "12:00", 1,
                 [("01", "10:00", "10:40")], id="one_staff_away"),
    pytest.param({"s1": FULL_DAY}, [sign("d1", "paused", "10:00"), sign("d1", "on_duty", "10:40")],
                 "12:00", 1,
                 [("01", "10:00", "10:40")], id="shared_desk_paused"),
    pytest.param({"s1": FULL_DAY}, [sign("s1", "away", "10:00")], "10:30", 1, [("01", "10:00", None)],
                 id="ongoing_at_now"),
    pytest.param({"s1": FULL_DAY}, [sign("s1", "away", "10:00"), sign("s1", "on_duty", "10:00:30")],
                 "12:00", 1,
                 [], id="shorter_than_min_minutes"),
    pytest.param({"s1": ("08:45", "12:01")}, [], "12:00", 1, [("01", "08:30", "08:45")],
                 id="not_clocked_in_at_session_start"),
    pytest.param({"s1": FULL_DAY}, [sign("s1", "away", "11:50"), sign("s1", "on_duty", "15:00")], "18:00", 1,
                 [("01", "11:50", "12:00"), ("01", "14:30", "15:00")], id="clipped_to_sessions"),
    pytest.param({"s2": FULL_DAY, "s3": FULL_DAY},
                 [sign("s2", "away", "10:00", window="02"), sign("s2", "on_duty", "10:40", window="02")],
                 "12:00", 1, [], id="two_staff_one_away_attended"),
    pytest.param({"s2": FULL_DAY, "s3": FULL_DAY},
                 [sign("s2", "away", "10:00", window="02"), sign("s2", "on_duty", "10:40", window="02"),
                  sign("s3", "away", "10:20", window="02"), sign("s3", "on_duty", "11:00", window="02")],
                 "12:00", 1, [("02", "10:20", "10:40")], id="two_staff_both_away"),
    pytest.param({"s2": FULL_DAY, "s3": FULL_DAY},
                 [sign("d02", "away", "10:00", window="02"), sign("d02", "on_duty", "10:10", window="02")],
                 "12:00", 1, [("02", "10:00", "10:10")], id="two_staff_shared_sign_covers_both"),
    pytest.param({"s3": FULL_DAY},
                 [sign("s3", "away", "10:00", window="02"), sign("s3", "on_duty", "10:20", window="02")],
                 "12:00", 1, [("02", "10:00", "10:20")], id="colleague_absent_other_away"),
]


@pytest.mark.parametrize(("punches", "signs", "now", "min_minutes", "expected"), UNATTENDED_CASES)
def test_unattended_windows(punches: dict, signs: list[SignEvent], now: str, min_minutes: int,
                            expected: list[tuple]) -> None:
    staffed = {"01": ("s1",), "02": ("s2", "s3")}
    window = "02" if "s3" in punches else "01"
    roster = [m for m in ROSTER if m.id in staffed[window]]
    rows = attendance_for_day(DAY, roster, SCHEDULE, [Punch(s, at(c), "card", f"p{s}{c}")
                              for s, cs in punches.items() for c in cs], [], at(now), TZ)
    findings = unattended_windows(DAY, roster, SCHEDULE, rows, away_periods(signs), at(now), TZ, min_minutes)
    assert [(f.window, f.start, f.end) for f in findings] == [
        (w, at(a), at(b) if b else None) for w, a, b in expected]
    assert all(f.kind == "unattended_window" for f in findings)


def test_unattended_whole_day_for_absent_and_leave_and_none_on_holiday() -> None:
    without_s5 = {staff: clocks for staff, clocks in PUNCHES.items() if staff != "s5"}
    rows = rows_for(without_s5, leaves=LEAVES)
    findings = unattended_windows(DAY, ROSTER, SCHEDULE, rows, [], at("18:00"), TZ)
    assert [(f.window, f.start, f.end) for f in findings] == [
        ("03", at("08:30"), at("12:00")), ("04", at("08:30"), at("12:00")), ("05", at("08:30"), at("08:40")),
        ("03", at("14:30"), at("17:30")), ("04", at("14:30"), at("17:30")), ("05", at("14:30"), at("17:30"))]
    # s5 clocked in on a day of leave: present, so window 04 is staffed (whatever the status)
    rows = rows_for(PUNCHES, leaves=LEAVES)
    staffed = unattended_windows(DAY, ROSTER, SCHEDULE, rows, [], at("18:00"), TZ)
    assert "04" not in {f.window for f in staffed}
    holiday = replace(SCHEDULE, holidays=frozenset({DAY}))
    assert unattended_windows(DAY, ROSTER, holiday, rows, [], at("18:00"), TZ) == []


def test_unattended_sources_name_the_signs() -> None:
    signs = [sign("s1", "away", "10:00"), sign("s1", "on_duty", "10:40")]
    (f,) = unattended_windows(DAY, ROSTER[:1], SCHEDULE, rows_for({"s1": FULL_DAY}), away_periods(signs),
                              at("12:00"), TZ)
    assert f.sources == tuple(s.event_id for s in signs)
    assert f.detail == {"session": "morning", "minutes": 40, "staff": ["s1"]}


# --- rating attribution -------------------------------------------------------------------

HALL_SIGNS = [
    sign("s1", "away", "10:00", "10:30"), sign("s1", "on_duty", "10:30"),
    sign("s2", "away", "10:00", "10:30", window="02"), sign("s2", "on_duty", "10:30", window="02"),
    sign("d02", "paused", "11:00", window="02", reason=None), sign("d02", "on_duty", "11:10", window="02"),
]

# (window, time, expected staff) with punches PUNCHES, leave LEAVES and the signs above
ATTRIBUTION_CASES = [
    pytest.param("01", "09:59:59", "s1", id="one_second_before_away"),
    pytest.param("01", "10:00:00", None, id="exactly_at_away_start"),
    pytest.param("01", "10:15:00", None, id="during_away"),
    pytest.param("01", "10:30:00", "s1", id="exactly_at_return"),
    pytest.param("02", "09:59:59", "s2", id="two_staff_first_in_roster"),
    pytest.param("02", "10:00:00", "s3", id="two_staff_at_away_start_colleague"),
    pytest.param("02", "10:15:00", "s3", id="two_staff_during_away_colleague"),
    pytest.param("02", "10:30:00", "s2", id="two_staff_at_return"),
    pytest.param("02", "11:05:00", None, id="shared_pause_covers_both"),
    pytest.param("03", "11:00:00", None, id="absent_staff_gets_none"),
    pytest.param("04", "11:00:00", "s5", id="on_leave_but_clocked_in_is_present"),
    pytest.param("05", "08:39:59", None, id="before_clocking_in"),
    pytest.param("05", "08:40:00", "s6", id="at_clocking_in"),
    pytest.param("01", "12:00:59", "s1", id="after_the_end_before_the_leaving_punch"),
    pytest.param("01", "12:01:00", None, id="gone_at_the_leaving_punch"),
    pytest.param("05", "12:05:00", None, id="after_the_leaving_punch"),
    pytest.param("01", "14:20:00", None, id="before_afternoon_punch"),
    pytest.param("05", "15:00:00", None, id="afternoon_without_punch"),
    pytest.param("99", "10:00:00", None, id="window_not_on_roster"),
]


@pytest.mark.parametrize(("window", "clock", "expected"), ATTRIBUTION_CASES)
def test_attribution(window: str, clock: str, expected: str | None) -> None:
    rows = rows_for(PUNCHES, leaves=LEAVES)
    periods = away_periods(HALL_SIGNS)
    (a,) = attribute([rating(clock, window)], ROSTER, {DAY: rows}, periods, RatingPolicy(), TZ,
                     schedule=SCHEDULE)
    assert a.staff == expected
    assert a.flags == (() if expected else ("nobody_on_duty",))
    assert a.counted  # kept and counted, only flagged
    session = session_at(at(clock), SCHEDULE, TZ)
    staff_on = on_duty(window, at(clock), ROSTER, rows, periods, session=session)
    assert staff_on[:1] == ([expected] if expected else [])


def test_on_duty_lists_everyone_in_roster_order() -> None:
    rows = rows_for(PUNCHES)
    assert on_duty("02", at("09:00"), ROSTER, rows, []) == ["s2", "s3"]
    assert on_duty("02", at("10:10"), ROSTER, rows, away_periods(HALL_SIGNS)) == ["s3"]


# (presses as (clock, window, invited), policy, expected [(counted, flags)])
POLICY_CASES = [
    pytest.param([("10:00:00", "01", True), ("10:00:20", "01", True), ("10:00:40", "01", True),
                  ("10:01:11", "01", True)], RatingPolicy(),
                 [(True, ()), (False, ("misuse_repeat",)), (False, ("misuse_repeat",)), (True, ())],
                 id="burst_counts_once"),
    pytest.param([("10:00:00", "01", True), ("10:00:30", "01", True), ("10:01:01", "01", True)],
                 RatingPolicy(),
                 [(True, ()), (False, ("misuse_repeat",)), (True, ())], id="repeat_window_inclusive"),
    pytest.param([("10:00:00", "01", True), ("10:00:05", "02", True)], RatingPolicy(),
                 [(True, ()), (True, ())], id="other_window_not_a_repeat"),
    pytest.param([("10:00:00", "01", True), ("10:00:05", "01", True)], RatingPolicy(repeat_seconds=3),
                 [(True, ()), (True, ())], id="shorter_repeat_setting"),
    pytest.param([("10:00:00", "01", False), ("10:05:00", "01", True)], RatingPolicy(count="invited"),
                 [(False, ("not_invited",)), (True, ())], id="invited_only"),
    pytest.param([("10:00:00", "01", False)], RatingPolicy(count="all"), [(True, ())],
                 id="all_counts_uninvited"),
    pytest.param([("10:00:00", "01", True), ("10:00:10", "01", False)], RatingPolicy(count="invited"),
                 [(True, ()), (False, ("misuse_repeat", "not_invited"))], id="both_flags"),
]


@pytest.mark.parametrize(("presses", "policy", "expected"), POLICY_CASES)
def test_rating_policy(presses: list[tuple[str, str, bool]], policy: RatingPolicy, expected: list) -> None:
    ratings = [rating(c, w, invited=i, n=n) for n, (c, w, i) in enumerate(presses)]
    out = attribute(ratings, ROSTER, {DAY: rows_for(PUNCHES)}, [], policy, TZ, schedule=SCHEDULE)
    assert [(a.counted, a.flags) for a in out] == expected
    assert [a.rating for a in out] == ratings  # every press kept, in time order


def test_nobody_on_duty_rating_is_kept_and_flagged() -> None:
    rows = {DAY: rows_for(PUNCHES)}
    out = attribute([rating("11:00", "03", level=1)], ROSTER, rows, [], RatingPolicy(), TZ)
    assert [(a.staff, a.counted, a.flags) for a in out] == [(None, True, ("nobody_on_duty",))]
    (f,) = rating_findings(out)
    assert (f.kind, f.window, f.start) == ("unattended_rating", "03", at("11:00"))
    assert f.sources == (out[0].rating.event_id,)


def attributed(levels: list[int], counted: list[bool] | None = None, staff: str | None = "s1",
               day: date = DAY) -> list[AttributedRating]:
    counted = counted or [True] * len(levels)
    return [
        AttributedRating(replace(rating("10:00", level=lv, n=n), at=at("10:00", day)), staff, c,
                         () if c else ("misuse_repeat",))
        for n, (lv, c) in enumerate(zip(levels, counted, strict=True))]


# (levels, counted, expected (counts 1..5, total, satisfied, permille, flagged))
STATS_CASES = [
    pytest.param([5, 4, 3, 2, 1], None, ([1, 1, 1, 1, 1], 5, 3, 600), id="one_of_each"),
    pytest.param([5, 5, 1], None, ([1, 0, 0, 0, 2], 3, 2, 667), id="two_thirds_rounded"),
    pytest.param([3] + [1] * 15, None, ([15, 0, 1, 0, 0], 16, 1, 63), id="62_5_rounds_half_up"),
    pytest.param([2, 2], None, ([0, 2, 0, 0, 0], 2, 0, 0), id="all_bad"),
    pytest.param([5, 1, 1], [True, False, False], ([0, 0, 0, 0, 1], 1, 1, 1000), id="uncounted_left_out"),
    pytest.param([1], [False], ([0, 0, 0, 0, 0], 0, 0, 0), id="nothing_counted"),
]


@pytest.mark.parametrize(("levels", "counted", "expected"), STATS_CASES)
def test_statistics(levels: list[int], counted: list[bool] | None, expected: tuple) -> None:
    (stats,) = statistics(attributed(levels, counted), by_staff).values()
    counts, total, satisfied, permille = expected
    assert stats.counts == dict(zip(range(1, 6), counts, strict=True))
    assert (stats.total, stats.satisfied, stats.rate_permille) == (total, satisfied, permille)
    assert stats.flagged == (counted or []).count(False)


def test_statistics_keys() -> None:
    items = attributed([5, 1]) + attributed([4], staff=None, day=date(2026, 12, 1))
    assert set(statistics(items, by_staff)) == {"s1"}  # None is left out
    assert set(statistics(items, by_window)) == {"01"}
    assert set(statistics(items, by_day(TZ))) == {"2026-11-24", "2026-12-01"}
    assert {k: v.total for k, v in statistics(items, by_month(TZ)).items()} == {"2026-11": 2, "2026-12": 1}


# --- follow-up cases ----------------------------------------------------------------------

HOLIDAYS = replace(SCHEDULE, holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
                   makeup_workdays=frozenset({date(2026, 10, 10)}))  # Saturday 10 October worked

WORKDAY_CASES = [
    pytest.param(date(2026, 11, 24), 0, SCHEDULE, date(2026, 11, 24), id="zero_days"),
    pytest.param(date(2026, 11, 24), 5, SCHEDULE, date(2026, 12, 1), id="tuesday_plus_5"),
    pytest.param(date(2026, 11, 27), 1, SCHEDULE, date(2026, 11, 30), id="friday_across_weekend"),
    pytest.param(date(2026, 11, 28), 1, SCHEDULE, date(2026, 11, 30), id="from_a_saturday"),
    pytest.param(date(2026, 11, 26), 3, SCHEDULE, date(2026, 12, 1), id="thursday_plus_3"),
    pytest.param(date(2026, 9, 30), 1, HOLIDAYS, date(2026, 10, 8), id="across_holiday"),
    pytest.param(date(2026, 10, 8), 2, HOLIDAYS, date(2026, 10, 10), id="makeup_saturday_counts"),
    pytest.param(date(2026, 9, 30), 5, HOLIDAYS, date(2026, 10, 13), id="holiday_and_makeup"),
]


@pytest.mark.parametrize(("start", "n", "schedule", "expected"), WORKDAY_CASES)
def test_add_working_days(start: date, n: int, schedule: Schedule, expected: date) -> None:
    assert add_working_days(start, n, schedule) == expected


def test_open_cases_for_bad_ratings_only() -> None:
    out = attributed([5, 3, 2, 1, 1], counted=[True, True, True, True, False])  # the last: misuse
    uninvited = replace(out[3], counted=False, flags=("not_invited",))
    cases = open_cases(out[:3] + [uninvited, uninvited, out[4]], SCHEDULE, deadline_days=3, tz=TZ)
    assert [(c.level, c.deadline, c.flags, c.closed_at) for c in cases] == [
        (2, date(2026, 11, 27), (), None), (1, date(2026, 11, 27), ("not_invited",), None)]
    assert cases[0].id == case_id(out[2].rating.event_id) and cases[0].id.startswith("C-")
    assert len(cases[0].id) == 14 and cases[0].rating_event == out[2].rating.event_id


def one_case(closed: str | None = None, closed_day: date = DAY) -> Case:
    (case,) = open_cases(attributed([1]), SCHEDULE, deadline_days=3, tz=TZ)  # deadline Friday 27th
    return replace(case, closed_at=at(closed, closed_day), closed_by="主任") if closed else case


# (closed at (clock, day) or None, now, expected (closed_late) or None)
OVERDUE_CASES = [
    pytest.param(None, at("23:59:59", date(2026, 11, 27)), None, id="open_within_deadline_day"),
    pytest.param(None, at("00:00", date(2026, 11, 28)), False, id="open_after_deadline_day"),
    pytest.param(("16:00", date(2026, 11, 27)), at("10:00", date(2026, 12, 1)), None, id="closed_in_time"),
    pytest.param(("09:00", date(2026, 11, 30)), at("10:00", date(2026, 12, 1)), True, id="closed_late"),
    pytest.param(("09:00", date(2026, 11, 30)), at("08:00", date(2026, 11, 30)), False,
                 id="closure_after_now"),
]


@pytest.mark.parametrize(("closed", "now", "expected"), OVERDUE_CASES)
def test_overdue(closed: tuple[str, date] | None, now: datetime, expected: bool | None) -> None:
    case = one_case(*closed) if closed else one_case()
    findings = overdue([case], now, TZ)
    if expected is None:
        assert findings == []
        return
    (f,) = findings
    assert (f.kind, f.start, f.detail["closed_late"], f.sources) == (
        "case_overdue", at("00:00", date(2026, 11, 28)), expected, (case.rating_event,))
    assert f.end == (case.closed_at if expected else None)


def test_closures() -> None:
    case = one_case()
    result = "已回访，群众表示理解"
    first = CaseClosure(case.id, at("16:00"), "主任", result, None)
    (closed,) = apply_closures([case], [first])
    assert (closed.closed_at, closed.closed_by, closed.result) == (at("16:00"), "主任", result)
    second = replace(first, closed_at=at("17:00"), result="改")
    with pytest.raises(ValueError, match="already closed"):
        apply_closures([closed], [second])
    with pytest.raises(ValueError, match="already closed"):
        apply_closures([case], [first, second])
    assert case.closed_at is None and closed.result == first.result  # nothing rewritten
    with pytest.raises(ValueError, match="unknown case"):
        apply_closures([case], [replace(first, case_id="C-000000000000")])
    with pytest.raises(ValueError, match="before"):
        apply_closures([case], [replace(first, closed_at=case.opened_at - timedelta(seconds=1))])

