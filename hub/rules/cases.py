"""差评整改 follow-up cases of bad ratings (DESIGN.md "Domain rules", Ratings): pure functions.

A bad rating (level 1 非常不满意 or 2 不满意) opens a case with a deadline in working days; the hall records
who closed it, when and with what result. Nothing here reads a clock: ``now`` is an argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta, tzinfo

from hub.domain import AttributedRating, Case, CaseClosure, Finding, Schedule
from hub.rules.attendance import is_workday

__all__ = ["Case", "CaseClosure", "add_working_days", "apply_closures", "case_id", "open_cases", "overdue"]

BAD_LEVELS = (1, 2)
_SEARCH_DAYS = 3660  # a schedule with no workday in ten years is a configuration error


def add_working_days(start: date, n: int, schedule: Schedule) -> date:
    """The n-th working day after ``start`` (``start`` itself never counts; n = 0 gives ``start``).

    Working days follow :func:`hub.rules.attendance.is_workday`: holidays are skipped, makeup
    workdays (调休) count. A negative n, or no working day found within ten years, raises ValueError.
    """
    if n < 0:
        raise ValueError(f"number of working days must not be negative, got {n}")
    day, found = start, 0
    for _ in range(_SEARCH_DAYS):
        if found == n:
            return day
        day += timedelta(days=1)
        if is_workday(day, schedule):
            found += 1
    if found == n:
        return day
    raise ValueError(f"schedule has no {n} working days within {_SEARCH_DAYS} days after {start}")


def case_id(rating_event: str) -> str:
    """``C-`` and 12 hex digits of the SHA-256 of the rating's event id. Not the id's own first
    characters: those of a UUIDv7 are its millisecond timestamp, shared by simultaneous ratings."""
    return "C-" + hashlib.sha256(rating_event.encode()).hexdigest()[:12]


def open_cases(
    attributed: Sequence[AttributedRating],
    schedule: Schedule,
    deadline_days: int = 5,
    *,
    tz: tzinfo | None = None,
) -> list[Case]:
    """One open case per bad rating (levels 1 and 2), in rating order, duplicates of an event once.

    A bad press opens a case whether the policy counts it or not (an uninvited press, nobody on
    duty: a complaint is never lost to a policy), and the rating's flags are copied onto the case.
    A press flagged ``misuse_repeat`` (the same window pressed again within seconds) opens none: it
    is kept and visible, not counted, and the press it repeats already opened the follow-up.
    The deadline is :func:`add_working_days` after the rating's day, in ``tz`` (or the
    rating's own offset when None). The seeds ask a written reply within 3 working days; the
    default of 5 is the caller's to set. Two events with the same case id raise ValueError.
    """
    cases: list[Case] = []
    owner: dict[str, str] = {}
    for a in attributed:
        r = a.rating
        if r.level not in BAD_LEVELS or "misuse_repeat" in a.flags:
            continue
        cid = case_id(r.event_id)
        if cid in owner:
            if owner[cid] == r.event_id:
                continue
            raise ValueError(f"case id {cid} derived from both {owner[cid]} and {r.event_id}")
        owner[cid] = r.event_id
        day = (r.at.astimezone(tz) if tz is not None else r.at).date()
        deadline = add_working_days(day, deadline_days, schedule)
        cases.append(Case(cid, r.event_id, r.window, a.staff, r.level, r.at, deadline, flags=a.flags))
    return cases


def _deadline_end(case: Case, tz: tzinfo) -> datetime:
    return datetime.combine(case.deadline + timedelta(days=1), time(0), tzinfo=tz)


def overdue(cases: Iterable[Case], now: datetime, tz: tzinfo) -> list[Finding]:
    """Cases not closed by the end of their deadline day (midnight after it, hall time ``tz``).

    As of ``now``: a closure after ``now`` is not yet known. An open case is overdue once
    ``now >= end``; a case closed at or after the end was closed late and is a finding too
    (``end`` is its closure). The finding runs from the end of the deadline day.
    """
    findings: list[Finding] = []
    for case in cases:
        due = _deadline_end(case, tz)
        closed = case.closed_at if case.closed_at is not None and case.closed_at <= now else None
        late_until = closed if closed is not None else now
        if late_until < due:
            continue
        findings.append(Finding(
            kind="case_overdue",
            window=case.window,
            staff=case.staff,
            start=due,
            end=closed,
            detail={
                "case": case.id,
                "level": case.level,
                "deadline": case.deadline.isoformat(),
                "closed_late": closed is not None,
                "overdue_minutes": (late_until - due) // timedelta(minutes=1),
            },
            sources=(case.rating_event,),
        ))
    return findings


def apply_closures(cases: Sequence[Case], closures: Iterable[CaseClosure]) -> list[Case]:
    """The cases, in the same order, with the closures applied; all or nothing.

    Raises ValueError, applying none, for a closure of an unknown case, a second closure of a case
    (already closed, or closed twice in ``closures``: the first closure stands, the record is never
    rewritten), a closure before the case was opened, or an empty ``closed_by`` or ``result``.
    """
    by_id = {case.id: case for case in cases}
    updated: dict[str, Case] = {}
    for closure in closures:
        case = updated.get(closure.case_id) or by_id.get(closure.case_id)
        if case is None:
            raise ValueError(f"closure of unknown case {closure.case_id}")
        if case.closed_at is not None:
            raise ValueError(
                f"case {case.id} is already closed at {case.closed_at.isoformat()} by {case.closed_by}"
            )
        if closure.closed_at < case.opened_at:
            raise ValueError(f"case {case.id}: closed at {closure.closed_at.isoformat()}, before its opening")
        if not closure.closed_by.strip() or not closure.result.strip():
            raise ValueError(f"case {case.id}: closed_by and result must not be empty")
        updated[case.id] = replace(
            case, closed_at=closure.closed_at, closed_by=closure.closed_by, result=closure.result,
            note=closure.note, by_appeal=closure.by_appeal,
        )
    return [updated.get(case.id, case) for case in cases]
