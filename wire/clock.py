"""Injected time. Everything that stamps hall time takes a Clock, so a simulated hall day can run
faster than real time (a ScaledClock shared by every process through the same spec string).

Transport timers (resend intervals, reconnect backoff, the 1 s card-hold gap) use time.monotonic:
they follow the physical link, not hall time.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
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
    faster. Processes given the same spec agree on the time.

    `anchor_file`: the anchor is not known yet. Until that file exists the clock stands at `start`;
    then the epoch written in it is the anchor. A demo starts its processes, waits until each says
    it is ready, and only then writes the file: no scripted step runs before everyone listens.
    """

    def __init__(self, start: datetime, speed: float, anchor: float | None, tz: tzinfo,
                 anchor_file: Path | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock start must carry an offset")
        if (anchor is None) == (anchor_file is None):
            raise ValueError("give the clock an anchor or an anchor file, not both")
        self.start, self.speed, self.anchor, self.tz = start, speed, anchor, tz
        self.anchor_file = anchor_file

    def now(self) -> datetime:
        anchor = self._anchor()
        elapsed = 0.0 if anchor is None else (time.time() - anchor) * self.speed
        return (self.start + timedelta(seconds=elapsed)).astimezone(self.tz)

    def _anchor(self) -> float | None:
        if self.anchor is None and self.anchor_file is not None:
            try:
                self.anchor = float(self.anchor_file.read_text(encoding="ascii"))
            except (FileNotFoundError, ValueError):
                return None  # not started yet (or the file is being written)
        return self.anchor

    def started(self) -> bool:
        return self._anchor() is not None

    def spec(self) -> str:
        anchor = f"@{self.anchor_file}" if self.anchor_file is not None else str(self.anchor)
        return f"{self.start.isoformat()},speed={self.speed},anchor={anchor}"

    def wall_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)


def start_clock(anchor_file: Path, delay: float = 0.0) -> float:
    """Start every ScaledClock waiting on `anchor_file`: write the anchor atomically; returns it."""
    anchor = time.time() + delay
    part = anchor_file.with_name(anchor_file.name + ".part")
    part.write_text(repr(anchor), encoding="ascii")
    part.replace(anchor_file)
    return anchor


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
    """`None` gives the system clock; `START,speed=N,anchor=EPOCH` a ScaledClock (anchor defaults to
    now; `anchor=@FILE`: the clock stands at START until FILE holds the anchor epoch)."""
    tz = ZoneInfo(timezone)
    if not spec:
        return SystemClock(tz)
    start_text, *options = spec.split(",")
    values = dict(option.split("=", 1) for option in options)
    unknown = set(values) - {"speed", "anchor"}
    if unknown:
        raise ValueError(f"clock spec: unknown option(s) {sorted(unknown)}")
    start = datetime.fromisoformat(start_text)
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    anchor = values.get("anchor", "")
    speed = float(values.get("speed", 1.0))
    if anchor.startswith("@"):
        return ScaledClock(start, speed, None, tz, anchor_file=Path(anchor[1:]))
    return ScaledClock(start, speed, float(anchor) if anchor else time.time(), tz)
