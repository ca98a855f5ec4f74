"""Presence (在岗): who is at the hall at a moment, whatever their attendance status. Pure, no clock.

A staff member is present in a session from their first punch of it (``first``) until their leaving
punch (``left``, where the hall takes one: see hub/rules/attendance.py), or for the rest of the
session when there is none yet. The status does not matter: someone who arrived after the absence
threshold (``absent``), or clocked in during an approved leave, is still there, so ratings at
their window and their desk's signs are theirs (hub/rules/ratings.py, away.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo

from hub.domain import Schedule, SessionAttendance

SessionKey = tuple[date, str]  # (hall day, session name)


def session_at(at: datetime, schedule: Schedule, tz: tzinfo) -> SessionKey | None:
    """The (hall day, session name) a moment belongs to: the nearest session of its local day
    (distance 0 inside [start, end]; a tie goes to the earlier session), as attendance assigns
    punches. So a rating at 12:05 belongs to the morning, one at 14:20 to the afternoon."""
    local = at.astimezone(tz)
    day = local.date()
    best: tuple[timedelta, int] | None = None
    name: str | None = None
    for i, session in enumerate(schedule.sessions):
        start = datetime.combine(day, session.start, tzinfo=tz)
        end = datetime.combine(day, session.end, tzinfo=tz)
        distance = start - local if local < start else (local - end if local > end else timedelta(0))
        if best is None or (distance, i) < best:
            best, name = (distance, i), session.name
    return (day, name) if name is not None else None


def is_present(row: SessionAttendance | None, at: datetime) -> bool:
    """Whether the row's member was there at ``at``: ``first <= at`` and, with a leaving punch,
    ``at < left`` (gone from the very punch)."""
    if row is None or row.first is None or row.first > at:
        return False
    return row.left is None or at < row.left


class Presence:
    """Attendance rows indexed by staff and session, to ask who was present when.

    With ``schedule`` and ``tz``, the row of a moment is that of :func:`session_at`; without, it is
    the staff member's latest row of that day (local to their punches) whose first punch is at or
    before the moment, which cannot see a later session's absence: give the schedule where known.
    """

    def __init__(self, rows: Iterable[SessionAttendance], schedule: Schedule | None = None,
                 tz: tzinfo | None = None) -> None:
        if (schedule is None) != (tz is None):
            raise ValueError("give both schedule and tz, or neither")
        self.schedule, self.tz = schedule, tz
        self.by_session: dict[tuple[date, str, str], SessionAttendance] = {}
        self.by_staff: dict[str, list[SessionAttendance]] = {}
        for row in rows:
            self.by_session[(row.date, row.staff, row.session)] = row
            self.by_staff.setdefault(row.staff, []).append(row)

    def session(self, at: datetime) -> SessionKey | None:
        if self.schedule is None or self.tz is None:
            return None
        return session_at(at, self.schedule, self.tz)

    def row(self, staff: str, at: datetime, session: SessionKey | None = None) -> SessionAttendance | None:
        """The staff member's row for ``at``: of ``session`` if given, else as the class says."""
        session = session or self.session(at)
        if session is not None:
            return self.by_session.get((session[0], staff, session[1]))
        latest: SessionAttendance | None = None
        for row in self.by_staff.get(staff, ()):
            first = row.first
            if first is None or first > at or at.astimezone(first.tzinfo).date() != first.date():
                continue
            if latest is None or (latest.first is not None and first > latest.first):
                latest = row
        return latest

    def present(self, staff: str, at: datetime, session: SessionKey | None = None) -> bool:
        """Clocked in for the session of ``at`` and not yet gone (:func:`is_present`)."""
        return is_present(self.row(staff, at, session), at)
