"""Rules benchmark: a month of a 60-window hall replayed through the hall rules, in process.

Generates deterministically (random.Random(seed)) 120 staff at 60 windows over 22 workdays: four
punches a day, about four away periods each a day (own desk boxes, some reason changes and
pauses), about 40 presses per window a day (some repeats, some uninvited), a few leaves and
absences. Then times attendance_for_day, away_periods, late_returns, unattended_windows,
attribute, statistics, rating_findings, open_cases and overdue over all of it. Then one scheduler
pass of a 60-window hall with a year of history in SQLite, the overdue index against the 60-day
replay as baseline, in the same run (bench/scheduler_pass.py).

Run: .venv/bin/python bench/rules.py [--seed N]. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler_pass import measure  # noqa: E402

from hub.domain import (  # noqa: E402
    Leave,
    Punch,
    Rating,
    RatingPolicy,
    Schedule,
    Session,
    SessionAttendance,
    SignEvent,
    StaffMember,
)
from hub.rules.attendance import attendance_for_day, is_workday  # noqa: E402
from hub.rules.away import away_periods, late_returns, unattended_windows  # noqa: E402
from hub.rules.cases import open_cases, overdue  # noqa: E402
from hub.rules.ratings import (  # noqa: E402
    attribute,
    by_day,
    by_month,
    by_staff,
    by_window,
    rating_findings,
    statistics,
)

TZ = ZoneInfo("Asia/Shanghai")
SCHEDULE = Schedule(sessions=(Session("morning", clock(8, 30), clock(12, 0)),
                              Session("afternoon", clock(14, 30), clock(17, 30))))
WINDOWS, STAFF_PER_WINDOW, WORKDAYS = 60, 2, 22
RATINGS_PER_WINDOW_DAY = 40
AWAY_HALVES = ((8, 45, 10, 15), (10, 15, 11, 45), (14, 45, 16, 0), (16, 0, 17, 15))  # one period each
REASONS = ("meeting", "errand", "break", "field")
LEVEL_WEIGHTS = (4, 3, 10, 20, 63)  # levels 1..5


@dataclass
class Month:
    roster: list[StaffMember]
    days: list[date]
    punches: list[Punch]
    leaves: list[Leave]
    signs: list[SignEvent]
    ratings: list[Rating]
    now: datetime


def _at(day: date, hour: int, minute: int, seconds: float = 0.0) -> datetime:
    return datetime.combine(day, clock(hour, minute), tzinfo=TZ) + timedelta(seconds=seconds)


def generate(seed: int) -> Month:
    rng = random.Random(seed)
    ids = iter(range(1, 10**9))

    def eid(kind: str) -> str:
        return f"{kind}-{next(ids):08d}"

    numbers = [(w, w * STAFF_PER_WINDOW + k + 1) for w in range(WINDOWS) for k in range(STAFF_PER_WINDOW)]
    roster = [StaffMember(f"s{n:03d}", f"员工{n}", f"{w + 1:02d}") for w, n in numbers]
    days: list[date] = []
    day = date(2026, 12, 1)
    while len(days) < WORKDAYS:
        if is_workday(day, SCHEDULE):
            days.append(day)
        day += timedelta(days=1)
    punches: list[Punch] = []
    leaves: list[Leave] = []
    signs: list[SignEvent] = []
    ratings: list[Rating] = []
    for day in days:
        for member in roster:
            fate = rng.random()
            if fate < 0.02:
                leaves.append(Leave(member.id, _at(day, 0, 0), _at(day, 23, 59), "主任", "事假",
                                    _at(day, 7, 0)))
                continue
            if fate < 0.04:
                continue  # absent
            late = rng.random() < 0.05
            arrivals = [_at(day, 8, 30, rng.uniform(300, 2400) if late else -rng.uniform(0, 1500)),
                        _at(day, 12, 0, rng.uniform(0, 600)), _at(day, 14, 30, -rng.uniform(0, 1200)),
                        _at(day, 17, 30, rng.uniform(0, 900))]
            if rng.random() < 0.05:
                arrivals.append(arrivals[0] + timedelta(seconds=rng.uniform(1, 60)))  # a double tap
            punches.extend(Punch(member.id, t, "card", eid("clock")) for t in arrivals)
            for h0, m0, h1, m1 in AWAY_HALVES:
                lo, hi = _at(day, h0, m0), _at(day, h1, m1)
                start = lo + timedelta(seconds=rng.uniform(0, (hi - lo).total_seconds() - 240))
                end = min(hi, start + timedelta(minutes=rng.uniform(3, 40)))
                state = "paused" if rng.random() < 0.05 else "away"
                reason = rng.choice(REASONS) if state == "away" else None
                back = start + timedelta(minutes=rng.randint(5, 35)) if state == "away" else None
                desk = member.id
                signs.append(SignEvent(member.window, desk, state, reason, back, start, eid("sign")))
                if state == "away" and rng.random() < 0.1:
                    middle = start + (end - start) / 2
                    later = back + timedelta(minutes=10) if back else None
                    signs.append(SignEvent(member.window, desk, "away", rng.choice(REASONS), later, middle,
                                           eid("sign")))
                signs.append(SignEvent(member.window, desk, "on_duty", None, None, end, eid("sign")))
        for w in range(WINDOWS):
            window = f"{w + 1:02d}"
            pressed = 0
            while pressed < RATINGS_PER_WINDOW_DAY:
                if rng.random() < 0.54:  # the morning is 3.5 of the 6.5 hours
                    t = _at(day, 8, 30, rng.uniform(0, 12600))
                else:
                    t = _at(day, 14, 30, rng.uniform(0, 10800))
                level = rng.choices(range(1, 6), LEVEL_WEIGHTS)[0]
                invited = rng.random() < 0.85
                ratings.append(Rating(eid("rating"), window, level, invited, eid("inv") if invited else None,
                                      None, t))
                pressed += 1
                if rng.random() < 0.08 and pressed < RATINGS_PER_WINDOW_DAY:
                    again = t + timedelta(seconds=rng.uniform(1, 25))
                    ratings.append(Rating(eid("rating"), window, level, False, None, None, again))
                    pressed += 1
    now = _at(days[-1], 18, 0)
    return Month(roster, days, punches, leaves, signs, ratings, now)


def replay(month: Month) -> dict[str, int]:
    """The rules over the month as the hub would run them at ``month.now``; returns output sizes."""
    punches_by_day: dict[date, list[Punch]] = {}
    for punch in month.punches:
        punches_by_day.setdefault(punch.at.astimezone(TZ).date(), []).append(punch)
    leaves_by_day: dict[date, list[Leave]] = {}
    for leave in month.leaves:
        leaves_by_day.setdefault(leave.start.astimezone(TZ).date(), []).append(leave)
    rows: dict[date, list[SessionAttendance]] = {
        day: attendance_for_day(day, month.roster, SCHEDULE, punches_by_day.get(day, []),
                                leaves_by_day.get(day, []), month.now, TZ)
        for day in month.days
    }
    periods = away_periods(month.signs)
    late = late_returns(periods, month.now, grace_minutes=5, roster=month.roster)
    unattended = [f for day in month.days
                  for f in unattended_windows(day, month.roster, SCHEDULE, rows[day], periods, month.now, TZ)]
    attributed = attribute(month.ratings, month.roster, rows, periods, RatingPolicy(), TZ, schedule=SCHEDULE)
    per_staff = statistics(attributed, by_staff)
    per_window = statistics(attributed, by_window)
    per_day = statistics(attributed, by_day(TZ))
    per_month = statistics(attributed, by_month(TZ))
    misuse = rating_findings(attributed)
    cases = open_cases(attributed, SCHEDULE, deadline_days=3, tz=TZ)
    overdue_cases = overdue(cases, month.now, TZ)
    (hall,) = per_month.values()
    return {
        "attendance_rows": sum(len(r) for r in rows.values()), "away_periods": len(periods),
        "late_returns": len(late), "unattended_intervals": len(unattended), "ratings": len(attributed),
        "counted": hall.total, "rate_permille": hall.rate_permille, "rating_findings": len(misuse),
        "staff_keys": len(per_staff), "window_keys": len(per_window), "day_keys": len(per_day),
        "cases": len(cases), "overdue_cases": len(overdue_cases),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--history-days", type=int, default=365, help="the scheduler pass's history")
    args = parser.parse_args()
    month = generate(args.seed)
    events = len(month.punches) + len(month.signs) + len(month.ratings)
    print(f"generated {len(month.roster)} staff, {len(month.days)} workdays: {len(month.punches)} punches, "
          f"{len(month.signs)} signs, {len(month.ratings)} ratings")
    started = time.perf_counter()
    sizes = replay(month)
    seconds = time.perf_counter() - started
    print(json.dumps(sizes, ensure_ascii=False))
    scheduler = measure(args.seed, args.history_days)
    print(json.dumps({"scheduler_pass": scheduler}, ensure_ascii=False))
    print(json.dumps({"events": events, "seconds": round(seconds, 3), "events_per_s": int(events / seconds),
                      "scheduler_pass_ms": scheduler["pass_ms"],
                      "replay_pass_ms": scheduler["replay_pass_ms"],
                      "scheduler_speedup": scheduler["speedup"]}))


if __name__ == "__main__":
    main()
