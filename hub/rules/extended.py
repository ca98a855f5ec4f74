"""延时服务 extended service (seeds 001 and 004: 实行延时服务制, 下班还未离岗前遇群众办事应主动延长服务时间).

A staff member still serving at their window after a session's end did extra work, not wrong: it
is recorded here and counted in the monthly summary, never reported as a violation. Pure, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, tzinfo

from hub.domain import (
    AttributedRating,
    ExtendedService,
    Schedule,
    SessionAttendance,
    SignEvent,
    StaffMember,
)
from hub.rules.attendance import before_go_live, is_workday
from hub.rules.away import DeskOwners
from hub.rules.presence import Presence

_MINUTE = timedelta(minutes=1)


def extended_service(
    day: date,
    roster: Sequence[StaffMember],
    schedule: Schedule,
    attendance_rows: Sequence[SessionAttendance],
    attributed: Iterable[AttributedRating],
    signs: Iterable[SignEvent],
    tz: tzinfo,
) -> list[ExtendedService]:
    """The extended service of ``day``: one record per staff member and session served past its end.

    The evidence, strictly after a session's end and at most ``schedule.extended_minutes`` later
    (and before the next session's start): a rating attributed to them (hub/rules/ratings.py: they
    were present and their desk on duty), or a sign event at a desk covering them (their own or the
    window's shared sign) while they were present (clocked in for that session and not yet gone,
    whatever the attendance status). ``until`` is the latest such event, ``minutes`` the time from
    the end to it rounded up to whole minutes. Only workdays from the hall's go-live are looked at;
    ``extended_minutes = 0`` turns it off. Records are in roster order, then session order.
    """
    if schedule.extended_minutes <= 0 or not is_workday(day, schedule) or before_go_live(day, schedule):
        return []
    presence = Presence(attendance_rows)
    owners = DeskOwners(roster)
    ratings = sorted(attributed, key=lambda a: a.rating.at)
    sign_list = sorted(signs, key=lambda s: s.at)
    starts = [datetime.combine(day, s.start, tzinfo=tz) for s in schedule.sessions]
    evidence: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    windows: list[tuple[str, datetime, datetime]] = []
    for session in schedule.sessions:
        end = datetime.combine(day, session.end, tzinfo=tz)
        limit = min([end + timedelta(minutes=schedule.extended_minutes), *(s for s in starts if s > end)])
        windows.append((session.name, end, limit))
        for a in ratings:
            if a.staff is not None and end < a.rating.at <= limit:
                evidence[(a.staff, session.name)].append((a.rating.at, a.rating.event_id))
        for sign in sign_list:
            if not end < sign.at <= limit:
                continue
            for staff in owners.covered(sign.window, sign.desk):
                if presence.present(staff, sign.at, (day, session.name)):
                    evidence[(staff, session.name)].append((sign.at, sign.event_id))
    records: list[ExtendedService] = []
    for member in roster:
        for name, end, _ in windows:
            found = sorted(evidence.get((member.id, name), ()))
            if not found:
                continue
            until = found[-1][0]
            records.append(ExtendedService(
                staff=member.id, date=day, session=name, window=member.window, end=end, until=until,
                minutes=-(-(until - end) // _MINUTE), sources=tuple(event for _, event in found)))
    return records


def extended_minutes_by_staff(records: Iterable[ExtendedService]) -> dict[str, dict[date, int]]:
    """Staff id -> hall day -> minutes of extended service that day (all sessions): what the
    monthly summary counts (days with extended service, and their minutes)."""
    totals: dict[str, dict[date, int]] = {}
    for record in records:
        days = totals.setdefault(record.staff, {})
        days[record.date] = days.get(record.date, 0) + record.minutes
    return totals
