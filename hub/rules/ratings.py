"""Rating rules (DESIGN.md "Domain rules", Ratings; 好差评): pure functions, no I/O, no clock.

A rating belongs to its window and to the staff member serving there at that moment
(:func:`on_duty`). Every press is kept: misuse and policy only decide ``counted`` and ``flags``.
Which desk sign covers which staff member is explained in :mod:`hub.rules.away`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo

from hub.domain import (
    AttributedRating,
    AwayPeriod,
    Finding,
    Rating,
    RatingPolicy,
    RatingStats,
    Schedule,
    SessionAttendance,
    StaffMember,
)
from hub.rules.away import DeskIndex
from hub.rules.presence import Presence, SessionKey, session_at

__all__ = [
    "AttributedRating",
    "Rating",
    "RatingPolicy",
    "RatingStats",
    "attribute",
    "by_day",
    "by_month",
    "by_staff",
    "by_window",
    "on_duty",
    "rating_findings",
    "session_at",
    "statistics",
]

LEVELS = (1, 2, 3, 4, 5)
SATISFIED_LEVELS = (3, 4, 5)  # 非常满意, 满意, 基本满意 (好评 in the national 好差评 scheme)


def _on_duty(
    window: str, at: datetime, index: DeskIndex, presence: Presence, session: SessionKey | None
) -> list[str]:
    return [staff for staff in index.window_staff.get(window, ())
            if presence.present(staff, at, session) and not index.is_away(staff, at)]


def on_duty(
    window: str,
    at: datetime,
    roster: Sequence[StaffMember],
    attendance_rows: Sequence[SessionAttendance],
    periods: Sequence[AwayPeriod],
    *,
    session: SessionKey | None = None,
) -> list[str]:
    """Staff ids of ``window`` on duty at ``at``, in roster order.

    On duty: present (hub/rules/presence.py: their row of the session containing ``at`` has
    ``first <= at`` and no leaving punch at or before ``at``, whatever the attendance status, so a
    late-comer past the absence threshold is on duty from arrival), and no away period covering
    them (their desk's sign or the window's shared sign) has ``start <= at < actual_return`` (away
    from the very start, back from the very return). ``session`` is that session as
    :func:`session_at` gives it; without it, the session is the staff member's latest of that day
    (local to their punches) whose first punch is at or before ``at``: pass ``session`` where the
    schedule is known.
    """
    return _on_duty(window, at, DeskIndex(roster, periods), Presence(attendance_rows), session)


def attribute(
    ratings: Sequence[Rating],
    roster: Sequence[StaffMember],
    attendance_by_day: Mapping[date, Sequence[SessionAttendance]],
    periods: Sequence[AwayPeriod],
    policy: RatingPolicy,
    tz: tzinfo,
    *,
    schedule: Schedule | None = None,
) -> list[AttributedRating]:
    """Every rating, in (time, event id) order, with its staff member, flags and whether it counts.

    - staff: the first of :func:`on_duty` in roster order: the one whose desk is on duty. With two
      or more on duty the rating cannot tell who served, so the roster order decides; nobody on
      duty gives staff None and the flag ``nobody_on_duty`` (kept and counted for the window, for review).
    - ``misuse_repeat``: the press came at most ``policy.repeat_seconds`` after the previous press
      (any press, counted or not) at the same window, so a burst counts once; not counted.
    - ``not_invited``: with ``policy.count == "invited"``, a press outside an invitation; not counted.
    With ``schedule``, the session of a rating is :func:`session_at`; pass it (see on_duty).
    A level outside 1..5 or a naive time raises ValueError.
    """
    index = DeskIndex(roster, periods)
    presence = Presence(r for day_rows in attendance_by_day.values() for r in day_rows)
    repeat = timedelta(seconds=policy.repeat_seconds)
    last_press: dict[str, datetime] = {}
    out: list[AttributedRating] = []
    for rating in sorted(ratings, key=lambda r: (r.at, r.event_id)):
        if rating.level not in LEVELS:
            raise ValueError(f"rating {rating.event_id}: level {rating.level!r} is not 1..5")
        if rating.at.tzinfo is None:
            raise ValueError(f"rating {rating.event_id}: time must be timezone-aware")
        session = session_at(rating.at, schedule, tz) if schedule is not None else None
        staff_on = _on_duty(rating.window, rating.at, index, presence, session)
        flags: list[str] = []
        if not staff_on:
            flags.append("nobody_on_duty")
        previous = last_press.get(rating.window)
        if previous is not None and rating.at - previous <= repeat:
            flags.append("misuse_repeat")
        last_press[rating.window] = rating.at
        if policy.count == "invited" and not rating.invited:
            flags.append("not_invited")
        counted = "misuse_repeat" not in flags and "not_invited" not in flags
        out.append(AttributedRating(rating, staff_on[0] if staff_on else None, counted, tuple(flags)))
    return out


def rating_findings(attributed: Iterable[AttributedRating]) -> list[Finding]:
    """``rating_misuse`` for each misuse repeat, ``unattended_rating`` for each press at a window
    with nobody on duty (a press can give both)."""
    findings: list[Finding] = []
    for a in attributed:
        r = a.rating
        for flag, kind in (("misuse_repeat", "rating_misuse"), ("nobody_on_duty", "unattended_rating")):
            if flag in a.flags:
                detail: dict[str, object] = {"level": r.level, "invited": r.invited, "flags": list(a.flags)}
                findings.append(Finding(kind, r.window, a.staff, r.at, r.at, detail, (r.event_id,)))
    return findings


def _permille(part: int, whole: int) -> int:
    return (2000 * part + whole) // (2 * whole) if whole else 0  # round half up, integers only


def statistics(
    attributed: Iterable[AttributedRating], key: Callable[[AttributedRating], str | None]
) -> dict[str, RatingStats]:
    """Ratings grouped by ``key`` (None: left out), keys sorted.

    Counts, total and satisfied are over counted ratings only; ``flagged`` counts every rating with
    a flag. 满意率 = (非常满意 + 满意 + 基本满意) / total, i.e. levels 3..5 over all counted levels,
    as the national 好差评 scheme counts 好评; ``rate_permille`` is it x1000 rounded half up, 0 with
    no counted rating (check ``total``).
    """
    groups: dict[str, list[int]] = {}  # index 0..4: levels 1..5, index 5: flagged
    for a in attributed:
        k = key(a)
        if k is None:
            continue
        tally = groups.get(k)
        if tally is None:
            tally = groups[k] = [0] * 6
        if a.counted:
            tally[a.rating.level - 1] += 1
        if a.flags:
            tally[5] += 1
    result: dict[str, RatingStats] = {}
    for k in sorted(groups):
        tally = groups[k]
        counts = {level: tally[level - 1] for level in LEVELS}
        total = sum(counts.values())
        satisfied = sum(counts[level] for level in SATISFIED_LEVELS)
        result[k] = RatingStats(counts, total, satisfied, _permille(satisfied, total), tally[5])
    return result


def by_staff(a: AttributedRating) -> str | None:
    return a.staff


def by_window(a: AttributedRating) -> str:
    return a.rating.window


def by_day(tz: tzinfo) -> Callable[[AttributedRating], str]:
    """Key by hall day, ``YYYY-MM-DD``."""
    return lambda a: a.rating.at.astimezone(tz).date().isoformat()


def by_month(tz: tzinfo) -> Callable[[AttributedRating], str]:
    """Key by hall month, ``YYYY-MM``."""
    return lambda a: a.rating.at.astimezone(tz).strftime("%Y-%m")
