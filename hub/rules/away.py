"""Away-from-post rules (DESIGN.md "Domain rules", Away from post): pure functions, no I/O, no clock.

Desks and staff. A `sign` event names a window and a desk; each staff member sits at a desk of
their window (``[[staff]] desk``, by default a desk named by their own id, so an edge unit with
``desk = "<staff id>"`` is that person's desk box). A sign at a desk where staff of that window sit
covers those staff (one, or several sharing a seat); any other desk id (the usual single box per
window, e.g. ``d03``, or a desk of ``[[windows]] desks`` nobody sits at) is the window's shared sign,
and its away/paused state covers every staff member of the window. :class:`DeskIndex` and
:class:`DeskOwners` implement that mapping for this module and for ratings. Whom a shared sign
stands for is decided by presence (hub/rules/presence.py): the only one of them clocked in and not
yet gone, whatever their attendance status.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from hub.domain import AwayPeriod, Finding, Schedule, SessionAttendance, SignEvent, StaffMember
from hub.rules.attendance import before_go_live, is_workday
from hub.rules.presence import Presence

__all__ = [
    "AwayPeriod",
    "DeskIndex",
    "Finding",
    "SignEvent",
    "away_periods",
    "late_returns",
    "unattended_windows",
]

SIGN_STATES = ("on_duty", "away", "paused")
_MINUTE = timedelta(minutes=1)


@dataclass
class _Open:
    sign: SignEvent
    reason: str | None
    declared: datetime | None
    updates: list[str] = field(default_factory=list)

    def close(self, at: datetime | None, event_id: str | None) -> AwayPeriod:
        s = self.sign
        return AwayPeriod(s.window, s.desk, s.state, self.reason, s.at, self.declared, at, s.event_id,
                          event_id, tuple(self.updates))


def away_periods(signs: Sequence[SignEvent]) -> list[AwayPeriod]:
    """Away and paused periods of every desk, sorted by (start, window, desk).

    Signs are taken per (window, desk) in (time, event id) order; a repeated event id counts once.
    ``away`` or ``paused`` opens a period; a later sign of the same state continues it (the latest
    sign's reason and back_at replace the earlier ones; its id goes to ``update_events``); a sign
    of the other state ends it at that moment (``actual_return``) and opens a new one; ``on_duty``
    ends it. ``on_duty`` with nothing open is ignored. A period still open has ``actual_return``
    and ``end_event`` None. Unknown states or naive times raise ValueError.
    """
    seen: set[str] = set()
    ordered: list[SignEvent] = []
    for sign in signs:
        if sign.state not in SIGN_STATES:
            raise ValueError(f"sign {sign.event_id}: state {sign.state!r} is not one of {SIGN_STATES}")
        if sign.at.tzinfo is None:
            raise ValueError(f"sign {sign.event_id}: time must be timezone-aware")
        if sign.event_id not in seen:
            seen.add(sign.event_id)
            ordered.append(sign)
    ordered.sort(key=lambda s: (s.at, s.event_id))
    open_by_desk: dict[tuple[str, str], _Open] = {}
    periods: list[AwayPeriod] = []
    for sign in ordered:
        key = (sign.window, sign.desk)
        current = open_by_desk.get(key)
        if current is not None and current.sign.state == sign.state:
            current.reason, current.declared = sign.reason, sign.back_at
            current.updates.append(sign.event_id)
            continue
        if current is not None:
            periods.append(current.close(sign.at, sign.event_id))
            del open_by_desk[key]
        if sign.state != "on_duty":
            open_by_desk[key] = _Open(sign, sign.reason, sign.back_at)
    periods.extend(current.close(None, None) for current in open_by_desk.values())
    periods.sort(key=lambda p: (p.start, p.window, p.desk))
    return periods


def _ceil_minutes(delta: timedelta) -> int:
    return -(-delta // _MINUTE)


class DeskOwners:
    """Whom a desk's sign stands for (see the module docstring): the staff seated at that desk of
    the window, or for the window's shared sign all the window's staff."""

    def __init__(self, roster: Sequence[StaffMember], presence: Presence | None = None) -> None:
        self._seated: dict[tuple[str, str], list[str]] = {}
        self._window: dict[str, list[str]] = {}
        for member in roster:
            self._seated.setdefault((member.window, member.desk_id), []).append(member.id)
            self._window.setdefault(member.window, []).append(member.id)
        self._presence = presence

    def covered(self, window: str, desk: str) -> list[str]:
        """Staff ids the sign covers, in roster order."""
        return self._seated.get((window, desk)) or self._window.get(window, [])

    def of(self, window: str, desk: str, at: datetime | None = None) -> str | None:
        """The one staff member the sign stands for: the only one it covers; else, given ``at`` and
        presence, the only one of them present at ``at``; else None."""
        staff = self.covered(window, desk)
        if len(staff) == 1:
            return staff[0]
        if at is None or self._presence is None:
            return None
        here = [s for s in staff if self._presence.present(s, at)]
        return here[0] if len(here) == 1 else None


def late_returns(
    periods: Sequence[AwayPeriod],
    now: datetime,
    grace_minutes: int = 0,
    *,
    roster: Sequence[StaffMember] = (),
    presence: Presence | None = None,
) -> list[Finding]:
    """未按时归岗: periods whose return came after the declared return plus ``grace_minutes``.

    Judged as of ``now``: a period starting after ``now`` is ignored, and one whose return is after
    ``now`` is still open. A closed period is late if ``actual_return > declared + grace``; an open
    one only once ``now > declared + grace`` (then ``end`` is None). A period without a declared
    return is never late here. Lateness is counted from the declared return (not from the end of
    the grace): ``late_seconds`` exactly, ``late_minutes`` rounded up. The finding runs from the
    declared return to the actual return. The latest sign's back_at applies, so an extension
    pressed after the first declared time hides that lateness; ``sources`` lists every sign.
    With ``roster``, ``staff`` is :meth:`DeskOwners.of` at the period's start: the one staff member
    seated at the desk, or for a shared sign (or a seat shared by several) the only one of them
    present then (given ``presence``); else None.
    """
    if grace_minutes < 0:
        raise ValueError(f"grace minutes must not be negative, got {grace_minutes}")
    grace = timedelta(minutes=grace_minutes)
    owners = DeskOwners(roster, presence)
    findings: list[Finding] = []
    for p in periods:
        declared = p.declared_return
        if declared is None or p.start > now:
            continue
        returned = p.actual_return is not None and p.actual_return <= now
        back = p.actual_return if returned and p.actual_return is not None else now
        if back <= declared + grace:
            continue
        late = back - declared
        findings.append(Finding(
            kind="late_return",
            window=p.window,
            staff=owners.of(p.window, p.desk, p.start),
            start=declared,
            end=back if returned else None,
            detail={
                "desk": p.desk,
                "state": p.state,
                "reason": p.reason,
                "away_start": p.start.isoformat(),
                "declared_return": declared.isoformat(),
                "late_seconds": late // timedelta(seconds=1),
                "late_minutes": _ceil_minutes(late),
                "ongoing": not returned,
            },
            sources=p.events if returned else (p.start_event, *p.update_events),
        ))
    return findings


class DeskIndex:
    """Which away periods cover which staff member (see the module docstring), indexed for bisect.

    Periods of one desk must not overlap (as :func:`away_periods` produces them).
    """

    def __init__(self, roster: Iterable[StaffMember], periods: Iterable[AwayPeriod]) -> None:
        self.window_staff: dict[str, list[str]] = {}
        self._seat: dict[str, tuple[str, str]] = {}  # staff id -> (window, desk)
        for member in roster:
            self.window_staff.setdefault(member.window, []).append(member.id)
            self._seat[member.id] = (member.window, member.desk_id)
        seats = set(self._seat.values())
        by_desk: dict[tuple[str, str], list[AwayPeriod]] = {}
        for p in periods:
            by_desk.setdefault((p.window, p.desk), []).append(p)
        self._desks: dict[tuple[str, str], tuple[list[datetime], list[AwayPeriod]]] = {}
        self._shared: dict[str, list[tuple[str, str]]] = {}
        for key, desk_periods in by_desk.items():
            desk_periods.sort(key=lambda p: p.start)
            self._desks[key] = ([p.start for p in desk_periods], desk_periods)
            if key not in seats:
                self._shared.setdefault(key[0], []).append(key)

    def _keys(self, staff: str) -> list[tuple[str, str]]:
        own = self._seat[staff]
        shared = self._shared.get(own[0], [])
        return [own, *shared] if own in self._desks else shared

    def is_away(self, staff: str, at: datetime) -> bool:
        """Whether a period covering ``staff`` has ``start <= at < actual_return``."""
        for key in self._keys(staff):
            starts, desk_periods = self._desks[key]
            i = bisect.bisect_right(starts, at) - 1
            if i >= 0:
                end = desk_periods[i].actual_return
                if end is None or at < end:
                    return True
        return False

    def covering(self, staff: str, lo: datetime, hi: datetime) -> list[AwayPeriod]:
        """Periods covering ``staff`` that overlap [lo, hi)."""
        found: list[AwayPeriod] = []
        for key in self._keys(staff):
            starts, desk_periods = self._desks[key]
            i = bisect.bisect_left(starts, hi)
            first = max(0, bisect.bisect_right(starts, lo) - 1)
            found.extend(p for p in desk_periods[first:i] if p.actual_return is None or p.actual_return > lo)
        return found


Interval = tuple[datetime, datetime]


def _subtract(span: Interval, holes: Iterable[AwayPeriod]) -> list[Interval]:
    pieces = [span]
    for p in holes:
        end = p.actual_return
        cut: list[Interval] = []
        for a, b in pieces:
            if (end is not None and end <= a) or p.start >= b:
                cut.append((a, b))
                continue
            if a < p.start:
                cut.append((a, p.start))
            if end is not None and end < b:
                cut.append((end, b))
        pieces = cut
    return pieces


def _gaps(span: Interval, covered: list[Interval]) -> list[Interval]:
    gaps: list[Interval] = []
    cursor = span[0]
    for a, b in sorted(covered):
        if a > cursor:
            gaps.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < span[1]:
        gaps.append((cursor, span[1]))
    return gaps


def unattended_windows(
    day: date,
    roster: Sequence[StaffMember],
    schedule: Schedule,
    attendance_rows: Sequence[SessionAttendance],
    periods: Sequence[AwayPeriod],
    now: datetime,
    tz: tzinfo,
    min_minutes: int = 1,
) -> list[Finding]:
    """AB岗 缺岗: maximal intervals of a workday's sessions when nobody of a window is available.

    A staff member is available in a session while present (hub/rules/presence.py): from their
    first punch of it (``first``; from the session start if they punched earlier) to their leaving
    punch (``left``) or the session end, except while an away period covers them, whatever their
    attendance status (a late-comer past the absence threshold staffs the window from arrival). A
    session without a row or without a punch makes them unavailable for the whole session.
    Windows are the roster's. Intervals are clipped to the session and to ``now``; an
    interval reaching ``now`` before the session end is ongoing (``end`` None). Only intervals of
    at least ``min_minutes`` are returned, ordered by (start, window); ``sources`` are the sign
    events of the away periods that overlap it.
    """
    if not is_workday(day, schedule) or before_go_live(day, schedule):
        return []
    rows = {(r.staff, r.session): r for r in attendance_rows if r.date == day}
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    day_end = day_start + timedelta(days=1)
    todays = [
        p for p in periods if p.start < day_end and (p.actual_return is None or p.actual_return > day_start)
    ]
    index = DeskIndex(roster, todays)
    shortest = timedelta(minutes=min_minutes)
    findings: list[Finding] = []
    for session in schedule.sessions:
        start = datetime.combine(day, session.start, tzinfo=tz)
        end = datetime.combine(day, session.end, tzinfo=tz)
        hi = min(end, now)
        if hi <= start:
            continue
        for window, staff_ids in index.window_staff.items():
            available: list[Interval] = []
            for staff in staff_ids:
                row = rows.get((staff, session.name))
                if row is None or row.first is None:
                    continue
                arrived = max(start, row.first)
                gone = hi if row.left is None else min(hi, row.left)
                if arrived < gone:
                    available.extend(_subtract((arrived, gone), index.covering(staff, arrived, gone)))
            for a, b in _gaps((start, hi), available):
                if b - a < shortest:
                    continue
                overlapping = {p for s in staff_ids for p in index.covering(s, a, b)}
                ordered = sorted(overlapping, key=lambda p: (p.start, p.desk))
                sources = tuple(e for p in ordered for e in p.events)
                findings.append(Finding(
                    kind="unattended_window",
                    window=window,
                    staff=None,
                    start=a,
                    end=None if b == now and now < end else b,
                    detail={"session": session.name, "minutes": (b - a) // _MINUTE, "staff": list(staff_ids)},
                    sources=sources,
                ))
    findings.sort(key=lambda f: (f.start, f.window or ""))
    return findings
