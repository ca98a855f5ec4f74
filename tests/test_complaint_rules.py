"""Complaints register and rating appeals as tables of cases: due dates at the edges of the calendar,
the register as of a moment, overdue findings, appeal states and what they do to the statistics."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import AttributedRating, Rating, Schedule, Session
from hub.rules.appeals import (
    AppealStep,
    appeal_problem,
    apply_appeals,
    case_closures,
    decision_problem,
    states,
)
from hub.rules.cases import case_id
from hub.rules.complaints import (
    Answer,
    Registration,
    answer_problem,
    as_of,
    complaint_id,
    due_day,
    due_moment,
    overdue_findings,
    registration_problem,
)
from hub.rules.ratings import by_staff, statistics

TZ = ZoneInfo("Asia/Shanghai")
SESSIONS = (Session("上午", time(8, 30), time(12, 0)), Session("下午", time(14, 30), time(17, 30)))
PLAIN = Schedule(sessions=SESSIONS)
# The 2025 Spring Festival as the State Council arranged it: 1月28日 (Tue) to 2月4日 (Tue) off;
# 1月26日 (Sun) and 2月8日 (Sat) worked (调休).
SPRING = Schedule(
    sessions=SESSIONS,
    holidays=frozenset(date(2025, 1, 28) + timedelta(days=n) for n in range(8)),
    makeup_workdays=frozenset({date(2025, 1, 26), date(2025, 2, 8)}),
)

DUE_CASES = [
    # kind, registered, schedule, written_days, oral_days, due
    pytest.param("written", date(2026, 11, 24), PLAIN, 3, 0, date(2026, 11, 27), id="written_tuesday"),
    pytest.param("written", date(2026, 11, 27), PLAIN, 3, 0, date(2026, 12, 2), id="written_friday_weekend"),
    pytest.param("written", date(2025, 1, 24), SPRING, 3, 0, date(2025, 2, 5),
                 id="written_friday_before_holiday_sunday_makeup_counts"),
    pytest.param("written", date(2025, 2, 5), SPRING, 3, 0, date(2025, 2, 8),
                 id="written_due_on_makeup_saturday"),
    pytest.param("written", date(2025, 1, 29), SPRING, 3, 0, date(2025, 2, 7), id="written_on_a_holiday"),
    pytest.param("written", date(2025, 1, 24), SPRING, 1, 0, date(2025, 1, 26), id="written_one_day"),
    pytest.param("oral", date(2026, 11, 24), PLAIN, 3, 0, date(2026, 11, 24), id="oral_same_day"),
    pytest.param("oral", date(2026, 11, 29), PLAIN, 3, 0, date(2026, 11, 30), id="oral_sunday_next_monday"),
    pytest.param("oral", date(2025, 1, 26), SPRING, 3, 0, date(2025, 1, 26), id="oral_on_makeup_sunday"),
    pytest.param("oral", date(2025, 2, 1), SPRING, 3, 0, date(2025, 2, 5), id="oral_on_holiday_saturday"),
    pytest.param("oral", date(2026, 11, 27), PLAIN, 3, 1, date(2026, 11, 30), id="oral_next_day_policy"),
]


@pytest.mark.parametrize(("kind", "registered", "schedule", "written", "oral", "expected"), DUE_CASES)
def test_due_day(kind: str, registered: date, schedule: Schedule, written: int, oral: int,
                 expected: date) -> None:
    assert due_day(kind, registered, schedule, written_days=written, oral_days=oral) == expected  # type: ignore[arg-type]


def test_due_moment_is_the_last_millisecond_of_the_day_and_ids_read_as_the_day() -> None:
    assert due_moment(date(2026, 12, 2), TZ).isoformat() == "2026-12-02T23:59:59.999000+08:00"
    assert complaint_id(date(2026, 11, 25), 1) == "T-20261125-001"
    with pytest.raises(ValueError, match="oral or written"):
        due_day("email", date(2026, 11, 24), PLAIN)  # type: ignore[arg-type]


def at(day: int, hm: str) -> datetime:
    return datetime.combine(date(2026, 11, day), time.fromisoformat(hm), tzinfo=TZ)


def registration(n: int, day: int, due_day_of_month: int, kind: str = "written") -> Registration:
    return Registration(complaint_id(date(2026, 11, day), n), kind, "01", "S001", None, "主任", "态度生硬",  # type: ignore[arg-type]
                        at(day, "10:00"), due_moment(date(2026, 11, due_day_of_month), TZ))


REGISTER_CASES = [
    # answer (day, hm) or None, now (day, hm), expected (status, overdue, closed_in_time)
    pytest.param(None, (25, "12:00"), ("open", False, None), id="open_before_due"),
    pytest.param(None, (27, "23:59"), ("open", False, None), id="open_on_due_evening"),
    pytest.param(None, (28, "00:00"), ("open", True, None), id="open_past_due"),
    pytest.param((27, "23:59"), (30, "09:00"), ("closed", False, True), id="answered_on_due_evening"),
    pytest.param((28, "08:00"), (30, "09:00"), ("closed", True, False), id="answered_late"),
    pytest.param((26, "09:00"), (25, "12:00"), ("open", False, None), id="answer_not_yet_known"),
]


@pytest.mark.parametrize(("answer", "now", "expected"), REGISTER_CASES)
def test_register_as_of(answer: tuple[int, str] | None, now: tuple[int, str],
                        expected: tuple[str, bool, bool | None]) -> None:
    answers = [Answer("T-20261124-001", at(*answer), "科长", "已答复")] if answer else []
    (c,) = as_of([registration(1, 24, 27)], answers, at(*now))
    assert (c.status, c.overdue, c.closed_in_time) == expected
    findings = overdue_findings([c], at(*now))
    assert [f.kind for f in findings] == (["complaint_overdue"] if expected[1] else [])
    if findings:
        assert findings[0].start == datetime(2026, 11, 28, tzinfo=TZ)
        assert findings[0].detail["complaint"] == "T-20261124-001"
        assert findings[0].detail["closed_late"] is (answer is not None)


def test_the_first_answer_stands_and_unknown_answers_change_nothing() -> None:
    answers = [Answer("T-20261124-001", at(26, "10:00"), "科长", "已答复"),
               Answer("T-20261124-001", at(26, "09:00"), "主任", "先答复"),
               Answer("T-20261124-009", at(26, "09:00"), "主任", "无此投诉")]
    register = as_of([registration(1, 24, 27), registration(2, 25, 28)], answers, at(30, "09:00"))
    assert [(c.id, c.closed_by) for c in register] == [("T-20261124-001", "主任"), ("T-20261125-002", None)]
    assert as_of([registration(1, 24, 27)], [], at(24, "09:00")) == []  # not yet registered


def test_registration_and_answer_problems() -> None:
    assert registration_problem("written", "态度生硬", "主任") is None
    assert "must not be empty" in str(registration_problem("oral", "   ", "主任"))
    assert "--by" in str(registration_problem("oral", "x", ""))
    register = as_of([registration(1, 24, 27)], [Answer("T-20261124-001", at(25, "09:00"), "科长", "已答复")],
                     at(26, "09:00"))
    assert "no complaint 'T-1'" in str(answer_problem(register, "T-1", "科长", "x"))
    assert "already closed by 科长" in str(answer_problem(register, "T-20261124-001", "主任", "x"))


# --- appeals ------------------------------------------------------------------------------


def step(hm: str, decision: bool | None = None, rating: str = "r1", by: str = "S001") -> AppealStep:
    return AppealStep(rating, at(25, hm), by, "理由", window="01", decision=decision)


APPEAL_CASES = [
    pytest.param([step("09:00")], ("open", 1), id="appealed"),
    pytest.param([step("09:00"), step("10:00", True)], ("accepted", 1), id="accepted"),
    pytest.param([step("09:00"), step("10:00", False)], ("rejected", 1), id="rejected"),
    pytest.param([step("09:00"), step("10:00", False), step("11:00")], ("open", 2), id="appealed_again"),
    pytest.param([step("09:00"), step("10:00"), step("11:00", False)], ("rejected", 1),
                 id="second_open_appeal_ignored"),
    pytest.param([step("09:00"), step("10:00", True), step("11:00"), step("12:00", False)], ("accepted", 1),
                 id="acceptance_is_final"),
    pytest.param([step("10:00", True)], None, id="decision_without_appeal_ignored"),
    pytest.param([step("10:00", True), step("09:00")], ("accepted", 1), id="time_order_not_input_order"),
    pytest.param([step("09:00"), step("19:00", True)], ("open", 1), id="decision_after_now_not_known"),
]


@pytest.mark.parametrize(("steps", "expected"), APPEAL_CASES)
def test_appeal_states(steps: list[AppealStep], expected: tuple[str, int] | None) -> None:
    found = states(steps, now=at(25, "18:00")).get("r1")
    assert (None if found is None else (found.state, found.appeals)) == expected


def rated(event: str, level: int, staff: str = "S001") -> AttributedRating:
    return AttributedRating(Rating(event, "01", level, True, "i", None, at(24, "10:00")), staff, True, ())


def test_accepted_appeal_leaves_the_statistics_open_one_counts_rejected_one_unchanged() -> None:
    ratings = [rated("r1", 1), rated("r2", 2), rated("r3", 5), rated("r4", 4)]
    appeals = states([step("09:00", rating="r1"), step("10:00", True, rating="r1"),
                      step("09:00", rating="r2"),
                      step("09:00", rating="r3"), step("10:00", False, rating="r3")])
    flagged = apply_appeals(ratings, appeals)
    assert [(a.counted, a.flags) for a in flagged] == [
        (False, ("excluded_by_appeal",)), (True, ("appealed",)), (True, ()), (True, ())]
    before, after = statistics(ratings, by_staff)["S001"], statistics(flagged, by_staff)["S001"]
    assert (before.total, before.rate_permille) == (4, 500)
    assert (after.total, after.rate_permille) == (3, 667)  # r1 left out: 2 satisfied of 3
    (closure,) = case_closures(appeals.values())
    assert (closure.case_id, closure.by_appeal, closure.closed_by) == (case_id("r1"), True, "S001")


def test_appeal_and_decision_problems() -> None:
    appeals = states([step("09:00", rating="r1"), step("09:00", rating="r2"),
                      step("10:00", True, rating="r2")])
    assert "already has an open appeal" in str(appeal_problem(appeals, "r1", "S001", "误按"))
    assert "already accepted" in str(appeal_problem(appeals, "r2", "S001", "误按"))
    assert appeal_problem(appeals, "r3", "S001", "误按") is None
    assert "must not be empty" in str(appeal_problem(appeals, "r3", "S001", " "))
    assert "no open appeal" in str(decision_problem(appeals, "r3", "主任", "x"))
    assert "no open appeal" in str(decision_problem(appeals, "r2", "主任", "x"))
    assert decision_problem(appeals, "r1", "主任", "监控显示误按") is None
