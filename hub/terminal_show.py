"""The hub's judgement of a punch, sent back to the entrance terminal that took it (PROTOCOL.md
2.11): once a batch of `clock` events is stored, each recent punch of today that counts for
someone is judged with the day's attendance rules, and a hub-signed `show` command with
`display = "terminal"` names the event and says 正常, 迟到 N 分钟, ...

Best effort: a show that is not sent changes nothing in the record. Only version-2 devices get it,
and only for punches of the current day taken within RECENT of the hub's clock (a backlog flushed
after an outage is no longer on the terminal's screen).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from hub.config import HubConfig
from hub.domain import Punch, Schedule, SessionAttendance, StoredEvent
from hub.reports import STATUS_ZH, attendance, schedule_of
from hub.rules.attendance import CardIndex, punch_for
from hub.store.store import Store

RECENT = timedelta(minutes=10)
Send = Callable[[str, str, dict[str, Any]], None]  # device, command name, body


@dataclass(frozen=True)
class Verdict:
    status: str  # on_time, late, absent, early_leave, leave, holiday, not_live
    minutes: int | None
    text: str

    def body(self, event_id: str) -> dict[str, Any]:
        return {"display": "terminal", "event": event_id, "status": self.status, "minutes": self.minutes,
                "text": self.text}


def verdict_of(punch: Punch, rows: Sequence[SessionAttendance], schedule: Schedule,
               tz: tzinfo) -> Verdict | None:
    """The judgement of one punch in the day's rows (pure): the first punch of a session is on time,
    late by N minutes or absent; a later one, where the hall takes a leaving punch, leaves early by
    N minutes or on time. None for a punch no row holds (a repeat inside the duplicate window)."""
    at = punch.at.astimezone(tz)
    sessions = {session.name: session for session in schedule.sessions}
    for row in rows:
        if row.staff != punch.staff or at not in row.punches or row.session not in sessions:
            continue
        if row.status in ("leave", "holiday", "not_live"):
            return Verdict(row.status, None, STATUS_ZH[row.status])
        session = sessions[row.session]
        start = datetime.combine(row.date, session.start, tzinfo=tz)
        end = datetime.combine(row.date, session.end, tzinfo=tz)
        if at == row.first:
            late = int((at.replace(microsecond=0) - start).total_seconds() // 60)
            if "absent" in row.flags:
                return Verdict("absent", late, f"{STATUS_ZH['absent']} (迟到 {late} 分钟)")
            if "late" in row.flags:
                return Verdict("late", late, f"迟到 {late} 分钟")
            return Verdict("on_time", None, STATUS_ZH["on_time"])
        if schedule.require_leave_punch and at < end:
            early = math.ceil((end - at).total_seconds() / 60)
            return Verdict("early_leave", early, f"早退 {early} 分钟")
        return Verdict("on_time", None, STATUS_ZH["on_time"])
    return None


def show_verdicts(config: HubConfig, store: Store, stored: Sequence[StoredEvent], now: datetime,
                  send: Send) -> int:
    """Send the `show` of each recent punch among `stored`; returns how many were sent."""
    tz = config.tz
    today = now.astimezone(tz).date()
    version2 = {device.id for device in config.devices if device.protocol == 2}
    recent = [e for e in stored if e.type == "clock" and e.device in version2
              and e.ts.astimezone(tz).date() == today and -RECENT <= now - e.ts <= RECENT]
    if not recent:
        return 0
    index = CardIndex(config.roster())
    punches = [(event, punch) for event in recent
               if (punch := punch_for(event.id, event.ts, event.body, index, config.face.require_live))]
    if not punches:  # nobody on the roster: the day's events are not read
        return 0
    schedule = schedule_of(config, store)
    rows = attendance(config, store, today, max(now, *(e.ts for e in recent)))
    sent = 0
    for event, punch in punches:
        verdict = verdict_of(punch, rows, schedule, tz)
        if verdict is not None:
            send(event.device, "show", verdict.body(event.id))
            sent += 1
    return sent
