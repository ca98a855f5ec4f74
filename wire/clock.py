"""Injected time. Everything that stamps hall time takes a Clock, so a simulated hall day can run
faster than real time (a ScaledClock shared by every process through the same spec string).

Transport timers (resend intervals, reconnect backoff, the 1 s card-hold gap) use time.monotonic:
they follow the physical link, not hall time.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    tz: tzinfo

    def now(self) -> datetime: ...


class SystemClock:
    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)


class ScaledClock:
    """Hall time that starts at `start` when the wall clock reads `anchor` and runs `speed` times
    faster. Processes given the same spec agree on the time."""

    def __init__(self, start: datetime, speed: float, anchor: float, tz: tzinfo) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock start must carry an offset")
        self.start, self.speed, self.anchor, self.tz = start, speed, anchor, tz

    def now(self) -> datetime:
        elapsed = (time.time() - self.anchor) * self.speed
        return (self.start + timedelta(seconds=elapsed)).astimezone(self.tz)

    def spec(self) -> str:
        return f"{self.start.isoformat()},speed={self.speed},anchor={self.anchor}"

    def wall_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)


class FixedClock:
    """A clock that moves only when told; for tests of one layer."""

    def __init__(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the moment must carry an offset")
        self.moment = moment
        self.tz = moment.tzinfo

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def from_spec(spec: str | None, timezone: str) -> Clock:
    """`None` gives the system clock; `START,speed=N,anchor=EPOCH` a ScaledClock
    (anchor defaults to now)."""
    tz = ZoneInfo(timezone)
    if not spec:
        return SystemClock(tz)
    start_text, *options = spec.split(",")
    values = dict(option.split("=", 1) for option in options)
    unknown = set(values) - {"speed", "anchor"}
    if unknown:
        raise ValueError(f"clock spec: unknown option(s) {sorted(unknown)}")
    start = datetime.fromisoformat(start_text)
    return ScaledClock(
        start,
        float(values.get("speed", 1.0)),
        float(values.get("anchor", time.time())),
        tz,
    )
