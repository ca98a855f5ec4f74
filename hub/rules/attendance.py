"""Attendance rules (DESIGN.md "Domain rules", Attendance): pure functions, no I/O, no clock.

Everything that depends on the time of day takes ``now`` and the hall's time zone ``tz`` as
arguments, so a month of punches can be replayed in a test.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from hub.domain import (
    ATTENDANCE_FLAGS,
    AttendanceFlag,
    AttendanceStatus,
    Leave,
    Punch,
    Schedule,
    Session,
    SessionAttendance,
    StaffMember,
)

_HEX10 = re.compile(r"[0-9A-Fa-f]{10}")
_DECIMAL = re.compile(r"[0-9]{1,10}")
_CLOCK_METHODS = ("card", "face", "card+face")


def is_workday(day: date, schedule: Schedule) -> bool:
    """A holiday is never a workday, a makeup workday (调休) always is, else the ISO weekday decides."""
    if day in schedule.holidays:
        return False
    if day in schedule.makeup_workdays:
        return True
    return day.isoweekday() in schedule.workdays


def before_go_live(day: date, schedule: Schedule) -> bool:
    """Whether the day is before the hall went live (``schedule.since``): such days are not judged."""
    return schedule.since is not None and day < schedule.since


def dedupe_punches(punches: Sequence[Punch], minutes: int) -> list[Punch]:
    """Punches sorted by time, dropping any within ``minutes`` (inclusive) of the same staff
    member's last kept punch, so a burst of taps counts once."""
    if minutes < 0:
        raise ValueError(f"duplicate punch window must not be negative, got {minutes}")
    window = timedelta(minutes=minutes)
    last_kept: dict[str, datetime] = {}
    kept: list[Punch] = []
    for punch in sorted(punches, key=lambda p: (p.at, p.staff, p.event_id)):
        previous = last_kept.get(punch.staff)
        if previous is not None and punch.at - previous <= window:
            continue
        last_kept[punch.staff] = punch.at
        kept.append(punch)
    return kept


def _session_bounds(day: date, schedule: Schedule, tz: tzinfo) -> list[tuple[Session, datetime, datetime]]:
    bounds: list[tuple[Session, datetime, datetime]] = []
    seen: set[str] = set()
    for session in schedule.sessions:
        if session.name in seen:
            raise ValueError(f"session name {session.name!r} appears twice in the schedule")
        seen.add(session.name)
        start = datetime.combine(day, session.start, tzinfo=tz)
        end = datetime.combine(day, session.end, tzinfo=tz)
        if end <= start:
            raise ValueError(
                f"session {session.name!r}: end {session.end} is not after start {session.start}"
            )
        bounds.append((session, start, end))
    return bounds


def _distance(at: datetime, start: datetime, end: datetime) -> timedelta:
    if at < start:
        return start - at
    if at > end:
        return at - end
    return timedelta(0)


def assign_to_sessions(
    day: date, punches: Sequence[Punch], schedule: Schedule, tz: tzinfo
) -> dict[str, list[Punch]]:
    """Session name -> that session's punches (sorted), for one staff member's punches.

    Only punches whose local date in ``tz`` is ``day`` count. Each goes to the session whose
    [start, end] interval is nearest (distance 0 inside it); a tie goes to the earlier session.
    Every session of the schedule is a key, possibly with an empty list.
    """
    bounds = _session_bounds(day, schedule, tz)
    assigned: dict[str, list[Punch]] = {session.name: [] for session, _, _ in bounds}
    for punch in sorted(punches, key=lambda p: p.at):
        local = punch.at.astimezone(tz)
        if local.date() != day or not bounds:
            continue
        nearest = min(range(len(bounds)), key=lambda i: (_distance(local, *bounds[i][1:]), bounds[i][1], i))
        assigned[bounds[nearest][0].name].append(punch)
    return assigned


def _whole_second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


Judgement = tuple[AttendanceStatus, tuple[AttendanceFlag, ...], datetime | None]
_PRECEDENCE: tuple[AttendanceFlag, ...] = ("absent", "late", "early_leave", "missing_leave_punch")


def _judge(
    schedule: Schedule, times: tuple[datetime, ...], start: datetime, end: datetime, now: datetime
) -> Judgement:
    """(status, flags, leaving punch) of a workday session with no leave, as of ``now``."""
    absent_at = start + timedelta(minutes=schedule.absent_after_minutes)
    if not times:
        return ("absent", ("absent",), None) if now >= absent_at else ("pending", (), None)
    first, last = _whole_second(times[0]), _whole_second(times[-1])
    left = times[-1] if schedule.require_leave_punch and len(times) > 1 else None
    found: set[AttendanceFlag] = set()
    if first > absent_at:
        found.add("absent")
    elif first > start + timedelta(minutes=schedule.grace_minutes):
        found.add("late")
    if schedule.require_leave_punch:
        if left is not None and now >= end and last < end:
            found.add("early_leave")
        elif left is None and first < end and now >= end + timedelta(minutes=schedule.extended_minutes):
            found.add("missing_leave_punch")
    flags = tuple(flag for flag in ATTENDANCE_FLAGS if flag in found)
    status: AttendanceStatus = next((f for f in _PRECEDENCE if f in found), "on_time")
    return status, flags, left


def attendance_for_day(
    day: date,
    roster: Sequence[StaffMember],
    schedule: Schedule,
    punches: Sequence[Punch],
    leaves: Sequence[Leave],
    now: datetime,
    tz: tzinfo,
) -> list[SessionAttendance]:
    """One row per staff member (roster order) and session (schedule order) for ``day``.

    Punches are deduplicated (``schedule.duplicate_punch_minutes``), converted to ``tz`` and
    assigned to the nearest session. Status, first rule that applies:

    0. ``not_live``: the day is before ``schedule.since`` (the hall was not live yet);
    1. ``holiday``: the day is not a workday;
    2. ``leave``: an approved leave (non-empty approver) overlaps the session interval;
    3. ``absent``: no punch and ``now >= start + absent_after``, or first punch after that;
    4. ``pending``: no punch yet and ``now < start + absent_after``;
    5. ``late``: first punch strictly after ``start + grace``;
    6. ``early_leave``: ``require_leave_punch``, ``now >= end`` and a separate leaving punch (the
       last of two or more) strictly before ``end``;
    7. ``missing_leave_punch`` (未签退): ``require_leave_punch``, a single punch, before ``end``,
       and ``now >= end + extended_minutes`` (until then the leaving punch may still come: the
       member may be serving past the end, 延时服务); a forgotten punch is not leaving early;
    8. ``on_time`` otherwise.

    ``flags`` lists every violation of rules 3, 5, 6 and 7 (``absent``, ``late``, ``early_leave``,
    ``missing_leave_punch``, in ATTENDANCE_FLAGS order), not only the status: a late arrival who
    also left early is ``late`` with flags (late, early_leave). ``absent`` and ``late`` exclude each
    other (arriving after the absence threshold is absent, not late). Rows of rules 0 to 2 and
    pending rows have no flags. ``left`` is the leaving punch where the hall takes one
    (``require_leave_punch``: the last of two or more punches), else None, whatever the status:
    with ``first`` it says when the member was there (hub/rules/presence.py).

    Punch times are compared at whole-second precision (sub-second parts are ignored), so
    08:35:00.900 is on time with a 5 minute grace from 08:30. ``first``, ``last`` and ``punches``
    are filled from the punches whatever the status, in ``tz``. The day is judged as of ``now``:
    punches after ``now`` are not known yet and are left out.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    workday = is_workday(day, schedule)
    not_live = before_go_live(day, schedule)
    bounds = _session_bounds(day, schedule, tz)
    by_staff: dict[str, list[Punch]] = {}
    known = [punch for punch in punches if punch.at <= now]
    for punch in dedupe_punches(known, schedule.duplicate_punch_minutes):
        by_staff.setdefault(punch.staff, []).append(punch)
    rows: list[SessionAttendance] = []
    for member in roster:
        assigned = assign_to_sessions(day, by_staff.get(member.id, []), schedule, tz)
        approved = [lv for lv in leaves if lv.staff == member.id and lv.approver.strip()]
        for session, start, end in bounds:
            times = tuple(p.at.astimezone(tz) for p in assigned[session.name])
            status, flags, left = _judge(schedule, times, start, end, now)
            if not_live or not workday or any(lv.start < end and lv.end > start for lv in approved):
                status = "not_live" if not_live else ("holiday" if not workday else "leave")
                flags = ()
            rows.append(
                SessionAttendance(
                    staff=member.id,
                    name=member.name,
                    date=day,
                    session=session.name,
                    first=times[0] if times else None,
                    last=times[-1] if times else None,
                    status=status,
                    punches=times,
                    flags=flags,
                    left=left,
                )
            )
    return rows


def flag_counts(rows: Iterable[SessionAttendance]) -> dict[str, Counter[AttendanceFlag]]:
    """Staff id -> how many sessions had each flag (the monthly summary's attendance counts): a late
    arrival who also left early counts once for ``late`` and once for ``early_leave``. Every staff
    member with a row is a key, with an empty Counter when they had no flag."""
    counts: dict[str, Counter[AttendanceFlag]] = {}
    for row in rows:
        counts.setdefault(row.staff, Counter()).update(row.flags)
    return counts


def _parse(text: str) -> tuple[str, bool]:
    """(10 uppercase hex digits, True if it was the printed decimal number)."""
    value = text.strip()
    if _DECIMAL.fullmatch(value) and int(value) <= 0xFFFFFFFF:
        hex_card, printed = f"00{int(value):08X}", True
    elif _HEX10.fullmatch(value):
        hex_card, printed = value.upper(), False
    else:
        raise ValueError(
            f"card {text!r}: expected 10 hex digits as read (e.g. 0A004A7B2C) or the printed decimal "
            "number of up to 10 digits, at most 4294967295 (e.g. 0004881196)"
        )
    if int(hex_card, 16) == 0:
        raise ValueError(f"card {text!r}: all zeros is a phantom read, not a card")
    return hex_card, printed


def parse_card(text: str) -> str:
    """Normalise a roster card to 10 uppercase hex digits.

    10 hex digits (any case) are taken as read. A decimal number of up to 10 digits is the number
    printed on the card (the last 4 data bytes) and becomes ``00`` + 8 hex digits, e.g.
    ``0004881196`` -> ``00004A7B2C``. A string of digits is read as decimal whenever it fits in
    4 bytes (at most 4294967295); otherwise it is hex. Anything else raises ValueError.
    """
    return _parse(text)[0]


def _read_key(read_hex: str) -> str | None:
    value = read_hex.strip()
    return value.upper() if _HEX10.fullmatch(value) else None


def card_matches(read_hex: str, roster_card: str) -> bool:
    """Whether a card read (10 hex digits) matches a roster card in either form.

    A hex roster card must match exactly; a printed decimal one matches any read whose last
    4 bytes equal it (the first byte, vendor/version, is not printed on the card).
    """
    read = _read_key(read_hex)
    if read is None:
        return False
    card, printed = _parse(roster_card)
    return read[-8:] == card[-8:] if printed else read == card


class CardIndex:
    """Looks up staff by a card read, following :func:`card_matches`.

    Roster cards (``StaffMember.cards``) may be written in either form: hex cards are indexed
    exactly, printed decimal cards by their last 8 hex digits; an exact match wins. A card that
    two staff members could both claim raises ValueError naming both.
    """

    def __init__(self, roster: Iterable[StaffMember]) -> None:
        self._by_id: dict[str, StaffMember] = {}
        self._exact: dict[str, StaffMember] = {}
        self._printed: dict[str, StaffMember] = {}
        for member in roster:
            if member.id in self._by_id:
                raise ValueError(f"staff id {member.id!r} appears twice in the roster")
            self._by_id[member.id] = member
            for text in member.cards:
                card, printed = _parse(text)
                table, key = (self._printed, card[-8:]) if printed else (self._exact, card)
                _claim(table, key, text, member)
        for card, member in self._exact.items():
            other = self._printed.get(card[-8:])
            if other is not None and other.id != member.id:
                raise ValueError(_conflict(card, member, other))

    def staff_for(self, card_hex: str) -> StaffMember | None:
        """The staff member holding the card read, or None for an unknown or malformed read."""
        read = _read_key(card_hex)
        if read is None:
            return None
        return self._exact.get(read) or self._printed.get(read[-8:])

    def by_id(self, staff_id: str) -> StaffMember | None:
        return self._by_id.get(staff_id)


def _claim(table: dict[str, StaffMember], key: str, text: str, member: StaffMember) -> None:
    holder = table.setdefault(key, member)
    if holder.id != member.id:
        raise ValueError(_conflict(text, holder, member))


def _conflict(card: str, a: StaffMember, b: StaffMember) -> str:
    return f"card {card} is claimed by both {a.id} ({a.name}) and {b.id} ({b.name})"


def punch_for(event_id: str, ts: datetime, body: Mapping[str, Any], index: CardIndex,
              require_live: bool = False) -> Punch | None:
    """The punch a ``clock`` event body stands for, or None if it names nobody on the roster.

    ``card``: staff by card. ``face``: ``body["staff"]`` if it is on the roster. ``card+face``: only
    when the face is the card's owner; a face that is someone else or nobody known is a suspected
    buddy punch (代打卡) and counts for nobody (see `buddy_punch`). With ``require_live``, a face
    that did not pass liveness counts for nobody.
    """
    if ts.tzinfo is None:
        raise ValueError(f"event {event_id}: timestamp must be timezone-aware")
    method = body.get("method")
    if method not in _CLOCK_METHODS:
        return None
    if method != "card" and require_live and body.get("live") is not True:
        return None
    if method == "card+face" and buddy_punch(body, index):
        return None
    member: StaffMember | None = None
    staff_id, card = body.get("staff"), body.get("card")
    if method != "card" and isinstance(staff_id, str):
        member = index.by_id(staff_id)
    if member is None and method != "face" and isinstance(card, str):
        member = index.staff_for(card)
    if member is None:
        return None
    return Punch(staff=member.id, at=ts, method=method, event_id=event_id)


def buddy_punch(body: Mapping[str, Any], index: CardIndex) -> bool:
    """A card+face event whose face is not the card's owner (or is nobody known)."""
    if body.get("method") != "card+face" or not isinstance(body.get("card"), str):
        return False
    owner = index.staff_for(str(body["card"]))
    return owner is None or body.get("staff") != owner.id
