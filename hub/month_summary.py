"""每月汇总公布 and 排名通报: a month of the hall counted per staff member and per window.

Each day is judged with the roster and settings in force at its end (hub/roster_history.py), as of
`now` (an appeal decided after the month changes the month computed again, not a report already
written). Who was on the roster at any time of the month is listed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from hub.appeals import appeal_states
from hub.complaints import complaints_in
from hub.config import HubConfig
from hub.domain import Case
from hub.hall import closures, hall_day, month_days
from hub.reports import schedule_of
from hub.roster_history import ALERT_KEYS, RosterHistory, RosterVersion
from hub.rules.attendance import before_go_live, is_workday
from hub.rules.away import DeskOwners
from hub.rules.cases import apply_closures, open_cases, overdue
from hub.rules.presence import Presence
from hub.rules.ranking import Place, Rated, permille, rank
from hub.store.store import Store
from wire.envelope import format_ts

SATISFIED_LEVELS = (3, 4, 5)


@dataclass
class Tally:
    """One staff member's or one window's month."""

    id: str
    name: str
    window: str = ""  # a staff member's window (at the month's end, or when last on the roster)
    on_roster_at_end: bool = True
    sessions: int = 0  # sessions judged (started by `now`, workdays from go-live)
    status: Counter[str] = field(default_factory=Counter)  # the winning status of each session
    flags: Counter[str] = field(default_factory=Counter)  # every violation of each session
    away: int = 0
    late_returns: int = 0
    levels: Counter[int] = field(default_factory=Counter)  # counted ratings by level 1..5
    complaints: Counter[str] = field(default_factory=Counter)  # registered, closed_in_time, overdue
    cases: Counter[str] = field(default_factory=Counter)  # opened, closed_in_time, overdue
    appeals: Counter[str] = field(default_factory=Counter)  # filed, accepted, rejected
    extended_sessions: int = 0
    extended_minutes: int = 0

    @property
    def ratings(self) -> int:
        return sum(self.levels.values())

    @property
    def satisfied(self) -> int:
        return sum(self.levels[level] for level in SATISFIED_LEVELS)

    @property
    def satisfaction_permille(self) -> int | None:
        return permille(self.satisfied, self.ratings)


@dataclass(frozen=True)
class ChainHead:
    entries: int  # entries of the log up to the month's end
    hash: str  # the hash of the last of them ("" for none)


@dataclass(frozen=True)
class MonthSummary:
    hall: str
    month: str
    now: datetime
    staff: list[Tally]
    windows: list[Tally]
    ranking_windows: list[Place]
    ranking_staff: list[Place]
    chain_head: ChainHead
    rules: dict[str, Any]


def month_end(config: HubConfig, month: str) -> datetime:
    """The first moment of the next month, hall time."""
    last = month_days(month)[-1]
    return datetime.combine(last + timedelta(days=1), time(0), tzinfo=config.tz)


def chain_head_before(store: Store, moment: datetime) -> ChainHead:
    """The log's head as it stood at `moment`: its last entry appended before it (entry times never
    go backwards along the chain, `log verify` checks it), found by bisection on seq."""
    last = store.last_audit()
    low, high = 0, 0 if last is None else last.seq  # entries 1..low are before `moment`
    found = None
    while low < high:
        middle = (low + high + 1) // 2
        entry = next(store.audit(after_seq=middle - 1, limit=1))
        if entry.at < moment:
            low, found = middle, entry
        else:
            high = middle - 1
    return ChainHead(low, found.hash if found else "")


def rules_of(version: RosterVersion, store: Store, changes: list[RosterVersion]) -> dict[str, Any]:
    """The rules and settings a month was computed with (those in force at its end), and where they
    come from: the `roster` log entries in force during the month, or the current config."""
    config = version.config
    schedule = schedule_of(config, store)
    return {
        "source": "config" if version.seq is None else "log",
        "roster_entries": [{"seq": v.seq, "at": format_ts(v.since)} for v in changes if v.since],
        "schedule": {
            "sessions": [{"name": s.name, "start": s.start.isoformat("minutes"),
                          "end": s.end.isoformat("minutes")} for s in config.schedule.sessions],
            "grace_minutes": schedule.grace_minutes,
            "absent_after_minutes": schedule.absent_after_minutes,
            "duplicate_punch_minutes": schedule.duplicate_punch_minutes,
            "require_leave_punch": schedule.require_leave_punch,
            "workdays": sorted(schedule.workdays),
            "holidays": sorted(d.isoformat() for d in schedule.holidays),
            "makeup_workdays": sorted(d.isoformat() for d in schedule.makeup_workdays),
            "since": schedule.since.isoformat() if schedule.since else None,
            "extended_minutes": schedule.extended_minutes,
        },
        "ratings": {"count": config.ratings.count, "repeat_seconds": config.ratings.repeat_seconds,
                    "satisfied_levels": list(SATISFIED_LEVELS), "satisfaction_unit": "permille"},
        "cases": {"deadline_days": config.cases.deadline_days},
        "complaints": {"written_days": config.complaints.written_days,
                       "oral_days": config.complaints.oral_days},
        "alerts": {key: getattr(config.alerts, key) for key in ALERT_KEYS},
        "reports": {"bottom_marked": config.reports.bottom_marked},
        "staff": len(config.staff),
    }


class _Month:
    """The tallies being filled, keyed by staff id and by window."""

    def __init__(self, history: RosterHistory, first: date, last: date) -> None:
        self.staff: dict[str, Tally] = {}
        self.windows: dict[str, Tally] = {}
        self.changes = history.during(first, last)
        at_end = {s.id for s in history.on(last).config.staff}
        for version in self.changes:
            for window in version.config.windows:
                self.window(window.id).name = window.name or self.windows[window.id].name
            for member in version.config.staff:
                tally = self.staff.setdefault(member.id, Tally(member.id, member.name))
                tally.name, tally.window = member.name, member.window
                tally.on_roster_at_end = member.id in at_end
                if member.window:
                    self.window(member.window)

    def window(self, window: str) -> Tally:
        return self.windows.setdefault(window, Tally(window, ""))

    def both(self, staff: str | None, window: str | None) -> list[Tally]:
        found = [self.staff[staff]] if staff in self.staff else []
        return found + ([self.window(window)] if window else [])


def summarize(config: HubConfig, store: Store, month: str, now: datetime) -> MonthSummary:
    days = month_days(month)
    history = RosterHistory(config, store)
    tallies = _Month(history, days[0], days[-1])
    appeals = appeal_states(store, as_of=now)
    found_cases: list[Case] = []
    for day in days:
        then = history.on(day).config
        schedule = schedule_of(then, store)
        if not is_workday(day, schedule) or before_go_live(day, schedule):
            continue
        hall = hall_day(then, store, day, now)
        window_of = {m.id: m.window for m in then.staff}
        starts = {s.name: s.start for s in schedule.sessions}
        for row in hall.attendance:
            if datetime.combine(day, starts[row.session], tzinfo=then.tz) > now:
                continue
            for tally in tallies.both(row.staff, window_of.get(row.staff)):
                tally.status[row.status] += 1
                tally.flags.update(row.flags)
                tally.sessions += row.status not in ("holiday", "pending")
        for rated in hall.ratings:
            appeal = appeals.get(rated.rating.event_id)
            for tally in tallies.both(rated.staff, rated.rating.window):
                if rated.counted:
                    tally.levels[rated.rating.level] += 1
                if appeal is not None:
                    tally.appeals["filed"] += 1
                    tally.appeals[appeal.state] += appeal.state != "open"
        owners = DeskOwners(then.roster(), Presence(hall.attendance, schedule, then.tz))
        for period in hall.periods:
            if period.state == "away":
                for tally in tallies.both(owners.of(period.window, period.desk, period.start), period.window):
                    tally.away += 1
        for finding in hall.findings:
            if finding.kind == "late_return":
                for tally in tallies.both(finding.staff, finding.window):
                    tally.late_returns += 1
        for record in hall.extended:
            for tally in tallies.both(record.staff, record.window):
                tally.extended_sessions += 1
                tally.extended_minutes += record.minutes
        found_cases += open_cases(hall.ratings, schedule, then.cases.deadline_days, tz=then.tz)
    _count_cases(tallies, found_cases, store, now, config)
    for complaint in complaints_in(store, config, days[0], days[-1], now):
        for tally in tallies.both(complaint.staff, complaint.window):
            tally.complaints["registered"] += 1
            tally.complaints["closed_in_time"] += bool(complaint.closed_in_time)
            tally.complaints["overdue"] += complaint.overdue
    staff = list(tallies.staff.values())
    windows = [tallies.windows[w] for w in sorted(tallies.windows)]
    version = history.on(days[-1])
    bottom = version.config.reports.bottom_marked
    return MonthSummary(
        hall=config.hall, month=month, now=now, staff=staff, windows=windows,
        ranking_windows=rank([Rated(t.id, t.name, t.satisfied, t.ratings) for t in windows], bottom),
        ranking_staff=rank([Rated(t.id, t.name, t.satisfied, t.ratings) for t in staff], bottom),
        chain_head=chain_head_before(store, month_end(config, month)),
        rules=rules_of(version, store, tallies.changes),
    )


def _count_cases(tallies: _Month, found: list[Case], store: Store, now: datetime,
                 config: HubConfig) -> None:
    """Cases opened in the month: closed in time (by the end of the deadline day, known by `now`),
    overdue (still open past it, or closed late)."""
    ids = {case.id for case in found}
    cases = apply_closures(found, [c for c in closures(store) if c.case_id in ids])
    late = {str(f.detail["case"]) for f in overdue(cases, now, config.tz)}
    for case in cases:
        due = datetime.combine(case.deadline + timedelta(days=1), time(0), tzinfo=config.tz)
        for tally in tallies.both(case.staff, case.window):
            tally.cases["opened"] += 1
            tally.cases["overdue"] += case.id in late
            tally.cases["closed_in_time"] += (case.closed_at is not None and case.closed_at <= now
                                              and case.closed_at < due)
