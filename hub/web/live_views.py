"""What the live board and the public display show, built from the API's board object
(hub/api_objects.py `board_object`) plus today's findings, the devices' faults and the month's
满意率; and `ViewCache`, which computes each view once per change of the feed for every client.

The display's objects are a whitelist: a window, its state, and for each staff member present their
name and 工号 (roster id) with the away sign's reason and return time. Nothing else of the roster
(cards, contacts) reaches the public page.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

from hub.api_objects import board_object, findings_object, ratings_object
from hub.config import HubConfig
from hub.store.store import Store
from hub.views import FINDING_ZH

Json = dict[str, Any]
View = TypeVar("View")
MAX_FILTER = 200
_PART = re.compile(r"^[0-9A-Za-z_]{1,16}(-[0-9A-Za-z_]{1,16})?$")


# --- shared pieces ---------------------------------------------------------------------------

def hm(text: str | None, config: HubConfig) -> str:
    """An RFC 3339 time as HH:MM in the hall's time zone ('' for none)."""
    if not text:
        return ""
    return datetime.fromisoformat(text).astimezone(config.tz).strftime("%H:%M")


def rate_text(permille: int | None) -> str:
    return "—" if permille is None else f"{permille / 10:.1f}%"


def window_label(window: str, name: str) -> str:
    return f"{window}号窗口" + (f" {name}" if name else "")


@dataclass(frozen=True)
class WindowFilter:
    """`/display?windows=01-06` or `01,03,05` (ranges compare as numbers when both ends are)."""

    parts: tuple[tuple[str, str], ...] = ()  # (low, high); empty: every window

    @classmethod
    def parse(cls, spec: str | None) -> WindowFilter:
        """Raises ValueError for a malformed spec."""
        if spec is None or not spec.strip():
            return cls()
        if len(spec) > MAX_FILTER:
            raise ValueError("窗口范围过长 the windows filter is too long")
        parts = []
        for part in (p.strip() for p in spec.split(",")):
            if not _PART.match(part):
                raise ValueError(f"窗口范围无效 {part!r}: use 01-06 or 01,03,05")
            low, _, high = part.partition("-")
            parts.append((low, high or low))
        return cls(tuple(parts))

    def admits(self, window: str) -> bool:
        return not self.parts or any(_between(window, low, high) for low, high in self.parts)


def _between(window: str, low: str, high: str) -> bool:
    if window.isdigit() and low.isdigit() and high.isdigit():
        return int(low) <= int(window) <= int(high)
    return low <= window <= high


# --- windows, as both pages show them --------------------------------------------------------

@dataclass(frozen=True)
class StaffCard:
    id: str  # 工号 (the roster id)
    name: str
    state: str  # on_duty, away, paused
    state_zh: str
    reason_zh: str
    back: str  # HH:MM of the declared return, '' if none


@dataclass(frozen=True)
class WindowCard:
    window: str
    label: str
    state: str  # on_duty, away, paused, unattended, closed
    state_zh: str
    staff: tuple[StaffCard, ...]
    ratings_today: int
    rate_today: str  # 今日满意率, "—" without ratings
    rate_month: str = ""  # 本月满意率 (the display only)


def window_cards(board: Json, config: HubConfig, month: dict[str, int | None] | None = None
                 ) -> tuple[WindowCard, ...]:
    """The board object's windows; each staff member present with only name, 工号 and sign."""
    return tuple(
        WindowCard(w["window"], window_label(w["window"], w["name"]), w["state"], w["state_zh"],
                   tuple(StaffCard(str(s["id"]), str(s["name"]), s["state"], s["state_zh"],
                                   s["reason_zh"] or "", hm(s["declared_return"], config))
                         for s in w["staff"]),
                   w["ratings_today"], rate_text(w["rate_permille"]),
                   rate_text(month.get(w["window"])) if month is not None else "")
        for w in board["windows"])


# --- the board (logged-in users) -------------------------------------------------------------

@dataclass(frozen=True)
class DeviceRow:
    id: str
    name: str
    online: bool | None  # None: never reported
    since: str  # when its state last changed, HH:MM ('MM-DD HH:MM' before today)
    last_event: str
    faults: tuple[FaultRow, ...]


@dataclass(frozen=True)
class FaultRow:
    at: str  # HH:MM
    unit: str
    code: str
    count: int
    detail: str


@dataclass(frozen=True)
class FindingRow:
    at: str  # HH:MM of its start
    until: str  # HH:MM of its end, '' while open
    kind_zh: str
    window: str
    who: str  # "S008 黄强" or ''


@dataclass(frozen=True)
class BoardView:
    day: str
    at: str  # HH:MM
    in_session: bool
    windows: tuple[WindowCard, ...]
    devices: tuple[DeviceRow, ...]
    findings: tuple[FindingRow, ...]  # today's, the newest first


def _when(text: str | None, config: HubConfig, today: date) -> str:
    if not text:
        return ""
    moment = datetime.fromisoformat(text).astimezone(config.tz)
    return moment.strftime("%H:%M" if moment.date() == today else "%m-%d %H:%M")


def _who(staff: str | None, names: dict[str, str]) -> str:
    return f"{staff} {names.get(staff, '')}".strip() if staff else ""


def board_view(config: HubConfig, store: Store, now: datetime) -> BoardView:
    board = board_object(config, store, now)
    local = now.astimezone(config.tz)
    today = local.date()
    names = {m.id: m.name for m in config.staff}
    findings = tuple(reversed([
        FindingRow(hm(f["start"], config), hm(f["end"], config), FINDING_ZH.get(f["kind"], f["kind"]),
                   f["window"] or "", _who(f["staff"], names))
        for f in findings_object(config, store, today, now)]))
    faults: dict[str, list[FaultRow]] = {}
    since = datetime.combine(today, datetime.min.time(), tzinfo=config.tz)
    for event in store.events(type="fault", since=since, until=now + timedelta(minutes=5)):
        body = event.body
        faults.setdefault(event.device, []).append(FaultRow(
            event.ts.astimezone(config.tz).strftime("%H:%M"), str(body.get("unit", "")),
            str(body.get("code", "")), int(body.get("count", 0)), str(body.get("detail", ""))[:120]))
    devices = tuple(DeviceRow(d["id"], d["name"] or "", d["online"], _when(d["since"], config, today),
                              _when(d["last_event"], config, today), tuple(faults.get(d["id"], ())))
                    for d in board["devices"])
    return BoardView(today.isoformat(), local.strftime("%H:%M"), board["in_session"],
                     window_cards(board, config), devices, findings)


# --- the public display -------------------------------------------------------------------

@dataclass(frozen=True)
class DisplayView:
    hall: str
    day: str
    at: str  # HH:MM
    in_session: bool
    windows: tuple[WindowCard, ...]

    def only(self, chosen: WindowFilter) -> tuple[WindowCard, ...]:
        return tuple(w for w in self.windows if chosen.admits(w.window))


def month_rates(config: HubConfig, store: Store, now: datetime) -> dict[str, int | None]:
    """Each window's 满意率 (permille) from the month's first day to now."""
    today = now.astimezone(config.tz).date()
    days = [date(today.year, today.month, 1) + timedelta(days=n) for n in range(today.day)]
    by_window = ratings_object(config, store, days, now)["by_window"]
    return {window: s["rate_permille"] if s["total"] else None for window, s in by_window.items()}


def display_view(config: HubConfig, store: Store, now: datetime) -> DisplayView:
    board = board_object(config, store, now)
    local = now.astimezone(config.tz)
    return DisplayView(config.hall, local.date().isoformat(), local.strftime("%H:%M"), board["in_session"],
                       window_cards(board, config, month_rates(config, store, now)))


# --- computing once per change -------------------------------------------------------------

class ViewCache(Generic[View]):
    """The last view and the key (the feed's change) it was built for. Built on a worker thread (the
    event loop never runs a query); concurrent requests for the same key wait for one build."""

    def __init__(self, build: Callable[[], View]) -> None:
        self._build = build
        self._key: Hashable = None
        self._value: View | None = None
        self._lock = threading.Lock()

    def _get(self, key: Hashable) -> View:
        with self._lock:
            if self._value is None or key is None or key != self._key:
                self._value = self._build()
                self._key = key
            return self._value

    async def get(self, key: Hashable) -> View:
        return await asyncio.to_thread(self._get, key)
