"""The scheduler's index of what may fall overdue: bad ratings (their follow-up cases), case closures,
appeals and the complaints register, kept in memory and read incrementally from the audit log.

Built once (the last `lookback_days` of ratings, the closure, appeal and complaint entries), then
each pass reads only the log entries appended since the last one (`audit(after_seq=...)`): new
events, closures, appeal steps, complaints. A pass needs a day's attribution (who was on duty: the
case's staff, whether the press was a misuse repeat that opens none) only for a bad rating whose
case is past its deadline and not closed in time; that day is judged once and kept until an event
of that day or a leave arrives. The findings are exactly those of `hub.hall.replayed_overdue`
(tests/test_overdue_index.py compares both), at a fraction of its cost (bench/rules.py).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from hub.appeals import APPEAL_KIND, DECISION_KIND, step_of
from hub.complaints import ADD_KIND, CLOSE_KIND, answer_of, registration_of
from hub.config import HubConfig
from hub.domain import Case, CaseClosure, Finding
from hub.hall import CLOSURE_KIND, closure_of, first_closures, hall_day
from hub.reports import schedule_of
from hub.rules.appeals import AppealStep, case_closures, states
from hub.rules.cases import BAD_LEVELS, add_working_days, apply_closures, case_id, open_cases, overdue
from hub.rules.complaints import Answer, Registration, as_of, overdue_findings
from hub.store.chain import holds
from hub.store.store import Store

LEAVE_KIND = "leave"


class OverdueIndex:
    def __init__(self, config: HubConfig, store: Store, lookback_days: int = 60) -> None:
        self.config, self.store, self.lookback = config, store, lookback_days
        self._seq: int | None = None  # the last log entry read; None: not built yet
        self._bad: dict[str, datetime] = {}  # bad rating event id -> its time
        self._logged: dict[tuple[str, datetime], CaseClosure] = {}
        self._steps: dict[tuple[str, datetime, bool | None], AppealStep] = {}
        self._registrations: dict[str, Registration] = {}
        self._answers: dict[tuple[str, datetime], Answer] = {}
        self._days: dict[date, list[Case]] = {}  # the cases of a judged past day
        self._deadlines: dict[date, date] = {}

    def _build(self, now: datetime) -> None:
        last = self.store.last_audit()
        self._seq = 0 if last is None else last.seq  # what follows is read by `refresh`
        since = datetime.combine(self._first_day(now), time(0), tzinfo=self.config.tz)
        for event in self.store.events(type="rating", since=since):
            if int(event.body.get("level", 5)) in BAD_LEVELS:
                self._bad[event.id] = event.ts
        for kind in (CLOSURE_KIND, APPEAL_KIND, DECISION_KIND, ADD_KIND, CLOSE_KIND):
            for entry in self.store.entries(kind):
                self._take(entry.kind, entry.data, entry)

    def refresh(self, now: datetime) -> None:
        """Read the log entries appended since the last pass (the first pass builds the index)."""
        if self._seq is None:
            self._build(now)
            return
        fresh: list[str] = []
        for entry in self.store.audit(after_seq=self._seq):
            self._seq = entry.seq
            if entry.kind == "event" and entry.ref:
                fresh.append(entry.ref)
            elif entry.kind == LEAVE_KIND:
                self._days.clear()  # a leave changes who was on duty
            elif holds(entry):
                self._take(entry.kind, entry.data, entry)
        for event in self.store.events_by_id(fresh).values():
            self._days.pop(event.ts.astimezone(self.config.tz).date(), None)
            if event.type == "rating" and int(event.body.get("level", 5)) in BAD_LEVELS:
                self._bad[event.id] = event.ts

    def _take(self, kind: str, data: dict[str, object], entry: object) -> None:
        if kind == CLOSURE_KIND:
            closure = closure_of(data)
            self._logged[(closure.case_id, closure.closed_at)] = closure
        elif kind in (APPEAL_KIND, DECISION_KIND):
            step = step_of(entry)  # type: ignore[arg-type]
            self._steps[(step.rating, step.at, step.decision)] = step
        elif kind == ADD_KIND:
            registration = registration_of(data)
            self._registrations[registration.id] = registration
        elif kind == CLOSE_KIND:
            answer = answer_of(data)
            self._answers[(answer.id, answer.closed_at)] = answer

    def _first_day(self, now: datetime) -> date:
        return now.astimezone(self.config.tz).date() - timedelta(days=self.lookback)

    def findings(self, now: datetime) -> list[Finding]:
        """`case_overdue` and `complaint_overdue` findings as of `now` (call `refresh` first)."""
        return [*self._cases(now), *self._complaints(now)]

    def _cases(self, now: datetime) -> list[Finding]:
        tz, first = self.config.tz, self._first_day(now)
        today = now.astimezone(tz).date()
        schedule = schedule_of(self.config, self.store)
        closures = {c.case_id: c for c in first_closures(
            [*self._logged.values(), *case_closures(states(self._steps.values()).values())])}
        needed: dict[date, set[str]] = {}
        for rating, at in list(self._bad.items()):
            day = at.astimezone(tz).date()
            if day < first:
                del self._bad[rating]  # past the look-back for good: `now` only moves on
                continue
            if day > today:
                continue
            deadline = self._deadlines.get(day)
            if deadline is None:
                deadline = self._deadlines[day] = add_working_days(day, self.config.cases.deadline_days,
                                                                   schedule)
            due = datetime.combine(deadline + timedelta(days=1), time(0), tzinfo=tz)
            closure = closures.get(case_id(rating))
            if now < due or (closure is not None and closure.closed_at <= now and closure.closed_at < due):
                continue  # not due yet, or closed in time: no finding
            needed.setdefault(day, set()).add(rating)
        found: list[Finding] = []
        for day in sorted(needed):
            if day not in self._days:
                self._days[day] = open_cases(hall_day(self.config, self.store, day, now).ratings, schedule,
                                             self.config.cases.deadline_days, tz=tz)
            cases = [c for c in self._days[day] if c.rating_event in needed[day]]
            closed = apply_closures(cases, [closures[c.id] for c in cases if c.id in closures])
            found.extend(overdue(closed, now, tz))
        return found

    def _complaints(self, now: datetime) -> list[Finding]:
        since = now - timedelta(days=self.lookback)
        register = as_of(self._registrations.values(), self._answers.values(), now)
        return overdue_findings([c for c in register if c.closed_at is None or c.due >= since], now)
