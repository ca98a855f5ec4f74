"""The hall's day as inspectors read it: stored events run through the pure rules.

Everything here reads the store and calls pure functions; the one write is `close_case` (what
`cases close` and the console call); the scheduler appends findings itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from hub.appeals import appeal_states
from hub.complaints import overdue_complaints
from hub.config import HubConfig
from hub.domain import AttributedRating, AwayPeriod, ExtendedService, Finding, SessionAttendance
from hub.reports import attendance, day_bounds, rating_of, schedule_of
from hub.rules.appeals import apply_appeals, case_closures
from hub.rules.attendance import CardIndex, buddy_punch
from hub.rules.away import SignEvent, away_periods, late_returns, unattended_windows
from hub.rules.cases import Case, CaseClosure, apply_closures, case_id, open_cases, overdue
from hub.rules.extended import extended_service
from hub.rules.presence import Presence
from hub.rules.ratings import Rating, RatingPolicy, attribute, rating_findings
from hub.store.store import Store
from wire.envelope import format_ts, parse_ts
from wire.faces import MATCH_BELOW

CLOSURE_KIND = "case_closed"


@dataclass(frozen=True)
class HallDay:
    day: date
    attendance: list[SessionAttendance]
    periods: list[AwayPeriod]
    ratings: list[AttributedRating]
    findings: list[Finding]
    extended: list[ExtendedService]  # 延时服务: counted, never a finding
    unappealed: list[AttributedRating]  # `ratings` before any appeal (the feed applies them by position)


def month_days(month: str) -> list[date]:
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [first + timedelta(days=n) for n in range((following - first).days)]


def signs_between(store: Store, since: datetime, until: datetime) -> list[SignEvent]:
    return [
        SignEvent(
            window=str(e.body["window"]), desk=str(e.body["desk"]), state=str(e.body["state"]),
            reason=e.body.get("reason"),  # type: ignore[arg-type]
            back_at=parse_ts(str(e.body["back_at"])) if e.body.get("back_at") else None,
            at=e.ts, event_id=e.id,
        )
        for e in store.events(type="sign", since=since, until=until)
    ]


def ratings_between(store: Store, since: datetime, until: datetime) -> list[Rating]:
    return [rating_of(e) for e in store.events(type="rating", since=since, until=until)]


def policy(config: HubConfig) -> RatingPolicy:
    return RatingPolicy(count=config.ratings.count, repeat_seconds=config.ratings.repeat_seconds)


def hall_day(config: HubConfig, store: Store, day: date, now: datetime) -> HallDay:
    since, until = day_bounds(config, day)
    schedule = schedule_of(config, store)
    rows = attendance(config, store, day, now)
    signs = signs_between(store, since, until)
    periods = away_periods(signs)
    unappealed = attribute(ratings_between(store, since, until), config.roster(), {day: rows}, periods,
                           policy(config), config.tz, schedule=schedule)
    attributed = apply_appeals(unappealed, appeal_states(store, as_of=now))
    findings = [
        *late_returns(periods, now, grace_minutes=config.alerts.late_return_grace_minutes,
                      roster=config.roster(), presence=Presence(rows, schedule, config.tz)),
        *unattended_windows(day, config.roster(), schedule, rows, periods, now,
                            config.tz, min_minutes=config.alerts.unattended_min_minutes),
        *rating_findings(attributed),
    ]
    findings.sort(key=lambda f: (f.start, f.kind, f.window or ""))
    extended = extended_service(day, config.roster(), schedule, rows,  # as known at `now`
                                [a for a in attributed if a.rating.at <= now],
                                [s for s in signs if s.at <= now], config.tz)
    return HallDay(day, rows, periods, attributed, findings, extended, unappealed)


def closures(store: Store) -> list[CaseClosure]:
    """Every case closure: the logged ones (`cases close`) and those by an accepted appeal of the
    case's rating, in time order, the first of a case standing (the others were refused or raced)."""
    found = [closure_of(e.data) for e in store.entries(CLOSURE_KIND)]
    return first_closures([*found, *case_closures(appeal_states(store).values())])


def closure_of(data: dict[str, Any]) -> CaseClosure:
    """A `case_closed` entry's data as the rules read it."""
    return CaseClosure(str(data["case"]), datetime.fromisoformat(str(data["closed_at"])),
                       str(data["closed_by"]), str(data["result"]), str(data.get("note") or ""))


def first_closures(found: Iterable[CaseClosure]) -> list[CaseClosure]:
    """The first closure of each case in time order (later ones were refused or raced)."""
    first: dict[str, CaseClosure] = {}
    for closure in sorted(found, key=lambda c: c.closed_at):
        first.setdefault(closure.case_id, closure)
    return list(first.values())


def cases(config: HubConfig, store: Store, since: date, until: date, now: datetime) -> list[Case]:
    """Follow-up cases of the bad ratings between two days (inclusive), with their closures."""
    found: list[Case] = []
    day = since
    while day <= until:
        found.extend(open_cases(hall_day(config, store, day, now).ratings, schedule_of(config, store),
                                config.cases.deadline_days, tz=config.tz))
        day += timedelta(days=1)
    ids = {case.id for case in found}
    return apply_closures(found, [c for c in closures(store) if c.case_id in ids])


def find_case(config: HubConfig, store: Store, wanted: str, now: datetime) -> Case | None:
    """One case by id, from the bad rating it was opened for (one query, then that day only)."""
    for event in store.events(type="rating"):
        if int(event.body.get("level", 5)) <= 2 and case_id(event.id) == wanted:
            day = event.ts.astimezone(config.tz).date()
            return next((c for c in cases(config, store, day, day, now) if c.id == wanted), None)
    return None


def close_case(config: HubConfig, store: Store, case_id: str, by: str, result: str, note: str) -> int:
    """Close an open follow-up case with its result; returns the log entry's position. Refused
    (ValueError): an unknown or closed case, an empty name or result."""
    if not by.strip() or not result.strip():
        raise ValueError("closing a case needs who (--by) and the result (--result)")
    now = store.clock.now()
    case = find_case(config, store, case_id, now)
    if case is None:
        raise ValueError(f"no open case {case_id!r}")
    if case.closed_at is not None:
        raise ValueError(f"case {case_id} was already closed by {case.closed_by}")
    entry = store.append(CLOSURE_KIND, {"case": case_id, "closed_at": format_ts(now),
                                        "closed_by": by.strip(), "result": result.strip(),
                                        "note": note}, ref=case_id)
    return entry.seq


def overdue_cases(config: HubConfig, store: Store, now: datetime, lookback_days: int = 60) -> list[Finding]:
    today = now.astimezone(config.tz).date()
    return overdue(cases(config, store, today - timedelta(days=lookback_days), today, now), now, config.tz)


OverdueSource = Callable[[datetime], list[Finding]]


def replayed_overdue(config: HubConfig, store: Store, now: datetime) -> list[Finding]:
    """Overdue cases and complaints by replaying the last 60 days (hub/overdue_index.py finds the
    same from an index; this is its reference and the inspector's command)."""
    return [*overdue_cases(config, store, now), *overdue_complaints(config, store, now)]


def day_findings(config: HubConfig, store: Store, day: date, now: datetime,
                 overdue_now: OverdueSource | None = None) -> list[Finding]:
    """Everything the rules find for a day as of `now`: the day's violations and alerts, absences,
    the follow-up cases opened, and the cases and complaints overdue by then (from `overdue_now`,
    the scheduler's index, or else by replaying the last 60 days)."""
    hall = hall_day(config, store, day, now)
    found = list(hall.findings)
    sessions = {s.name: s for s in config.schedule.sessions}
    for row in hall.attendance:
        if row.status == "absent":
            start = datetime.combine(row.date, sessions[row.session].start, tzinfo=config.tz)
            found.append(Finding("absence", None, row.staff, start, None,
                                 {"session": row.session, "name": row.name}, ()))
    for case in open_cases(hall.ratings, schedule_of(config, store), config.cases.deadline_days,
                           tz=config.tz):
        found.append(Finding("case_opened", case.window, case.staff, case.opened_at, None,
                             {"case": case.id, "level": case.level, "deadline": case.deadline.isoformat(),
                              "flags": list(case.flags)}, (case.rating_event,)))
    found.extend(overdue_now(now) if overdue_now is not None else replayed_overdue(config, store, now))
    found.extend(face_findings(config, store, day))
    found.sort(key=lambda f: (f.start, f.kind, f.window or ""))
    return found


def face_findings(config: HubConfig, store: Store, day: date) -> list[Finding]:
    """Suspected buddy punches (card+face that disagree) and failed liveness attempts."""
    since, until = day_bounds(config, day)
    index = CardIndex(config.roster())
    found = []
    for event in store.events(type="clock", since=since, until=until):
        body = event.body
        evidence = {"card": body.get("card"), "face": body.get("staff"),
                    "distance_milli": body.get("distance_milli"),
                    "photo": "photo" in body or "photo_sha256" in body}
        if buddy_punch(body, index):
            owner = index.staff_for(str(body["card"]))
            found.append(Finding("buddy_punch", None, owner.id if owner else None, event.ts, None,
                                 evidence, (event.id,)))
        elif body.get("method") in ("face", "card+face") and body.get("live") is False:
            found.append(Finding("liveness_failed", None, body.get("staff"), event.ts, None,  # type: ignore[arg-type]
                                 evidence, (event.id,)))
        elif (body.get("staff") and isinstance(body.get("distance_milli"), int)
              and int(body["distance_milli"]) >= MATCH_BELOW * 1000):
            # close to the threshold: accepted by the terminal, but an inspector should look
            found.append(Finding("face_review", None, str(body["staff"]), event.ts, None, evidence,
                                 (event.id,)))
    return found


def end_of(day: date, config: HubConfig) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=config.tz)
