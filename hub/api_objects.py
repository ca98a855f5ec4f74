"""The JSON objects of the read side: what `--json` prints and what the web API returns, one
function per object so that both say the same. English keys, times in the hall's time zone
(RFC 3339 with offset). `staff` narrows an object to one staff member's records (a staff account)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from hub.appeals import appeal_states
from hub.audit import VerifyReport
from hub.complaints import complaints_in
from hub.config import HubConfig
from hub.domain import AttributedRating, Complaint, Finding
from hub.hall import cases, day_findings, end_of, hall_day, month_days
from hub.month_summary import summarize
from hub.monthly import summary_json
from hub.reports import attendance_data, entry_json, schedule_of
from hub.rules.away import DeskOwners
from hub.rules.presence import Presence, session_at
from hub.rules.ratings import by_day, by_month, by_staff, by_window, statistics
from hub.scheduler import finding_data, finding_key
from hub.store.store import Store
from hub.views import REASON_ZH, STATE_ZH
from wire.envelope import format_ts

Json = dict[str, Any]


def _ts(moment: datetime | None, config: HubConfig) -> str | None:
    return format_ts(moment.astimezone(config.tz)) if moment else None


def attendance_object(config: HubConfig, store: Store, day: date, now: datetime,
                      staff: str | None = None) -> list[Json]:
    hall = hall_day(config, store, day, now)
    rows = [row for row in hall.attendance if staff is None or row.staff == staff]
    return attendance_data(rows, config, hall.extended)


def rated_in(config: HubConfig, store: Store, days: list[date], now: datetime) -> list[AttributedRating]:
    return [r for day in days for r in hall_day(config, store, day, now).ratings]


def ratings_object(config: HubConfig, store: Store, days: list[date], now: datetime,
                   staff: str | None = None) -> Json:
    """Each rating with its staff, flags and appeal state; statistics by staff, window, day, month
    (over the ratings shown: a staff member's own only, for them)."""
    rated = [r for r in rated_in(config, store, days, now) if staff is None or r.staff == staff]
    appeals = appeal_states(store, as_of=now)
    keys = [("staff", by_staff), ("window", by_window), ("day", by_day(config.tz)),
            ("month", by_month(config.tz))]
    return {
        "ratings": [{"id": r.rating.event_id, "at": format_ts(r.rating.at), "window": r.rating.window,
                     "level": r.rating.level, "invited": r.rating.invited, "ticket": r.rating.ticket,
                     "staff": r.staff, "counted": r.counted, "flags": list(r.flags),
                     "appeal": appeals[r.rating.event_id].state if r.rating.event_id in appeals else None}
                    for r in rated],
        **{f"by_{name}": stats_object(statistics(rated, key)) for name, key in keys},
    }


def stats_object(table: dict[str, Any]) -> Json:
    return {key: {"counts": {str(k): v for k, v in s.counts.items()}, "total": s.total,
                  "satisfied": s.satisfied, "rate_permille": s.rate_permille, "flagged": s.flagged}
            for key, s in table.items()}


def away_object(config: HubConfig, store: Store, day: date, now: datetime) -> list[Json]:
    hall = hall_day(config, store, day, now)
    owners = DeskOwners(config.roster(), Presence(hall.attendance, schedule_of(config, store), config.tz))
    return [{"window": p.window, "desk": p.desk, "staff": owners.of(p.window, p.desk, p.start),
             "state": p.state, "reason": p.reason, "start": format_ts(p.start),
             "declared_return": format_ts(p.declared_return) if p.declared_return else None,
             "actual_return": format_ts(p.actual_return) if p.actual_return else None}
            for p in hall.periods]


def day_findings_logged(config: HubConfig, store: Store, day: date, now: datetime) -> list[Finding]:
    """The day's findings as the rules compute them by `now` (at most the day's end), with those only
    the live scheduler saw (devices offline since) taken from the log."""
    found = day_findings(config, store, day, min(now, end_of(day, config)))
    computed = {finding_key(f) for f in found}
    for entry in store.entries("finding"):
        logged = entry.data
        start = datetime.fromisoformat(str(logged["start"]))
        if entry.ref not in computed and start.astimezone(config.tz).date() == day:
            found.append(Finding(str(logged["kind"]), logged.get("window"), logged.get("staff"),  # type: ignore[arg-type]
                                 start, None, dict(logged.get("detail") or {}),  # type: ignore[arg-type]
                                 tuple(logged.get("sources") or ())))  # type: ignore[arg-type]
    found.sort(key=lambda f: (f.start, f.kind))
    return found


def findings_object(config: HubConfig, store: Store, day: date, now: datetime,
                    staff: str | None = None) -> list[Json]:
    return [finding_data(f) for f in day_findings_logged(config, store, day, now)
            if staff is None or f.staff == staff]


def cases_object(config: HubConfig, store: Store, since: date | None, until: date | None, now: datetime,
                 staff: str | None = None) -> list[Json]:
    """Follow-up cases opened from `since` (default: the month's first day) to `until` (today)."""
    today = now.astimezone(config.tz).date()
    found = cases(config, store, since or today.replace(day=1), until or today, now)
    return [{"id": c.id, "window": c.window, "staff": c.staff, "level": c.level,
             "opened_at": format_ts(c.opened_at), "deadline": c.deadline.isoformat(),
             "closed_at": format_ts(c.closed_at) if c.closed_at else None,
             "closed_by": c.closed_by, "result": c.result, "note": c.note,
             "closed_by_appeal": c.by_appeal,
             "overdue": c.closed_at is None and c.deadline < today}
            for c in found if staff is None or c.staff == staff]


def complaint_json(c: Complaint) -> Json:
    return {
        "id": c.id, "kind": c.kind, "window": c.window, "staff": c.staff, "rating": c.rating,
        "received_by": c.received_by, "registered_at": format_ts(c.registered_at), "text": c.text,
        "due": format_ts(c.due), "status": c.status, "overdue": c.overdue,
        "closed_in_time": c.closed_in_time,
        "closed_at": format_ts(c.closed_at) if c.closed_at else None, "closed_by": c.closed_by,
        "result": c.result,
    }


def complaints_object(config: HubConfig, store: Store, since: date | None, until: date | None,
                      open_only: bool = False, staff: str | None = None) -> list[Json]:
    return [complaint_json(c) for c in complaints_in(store, config, since, until)
            if (not open_only or c.closed_at is None) and (staff is None or c.staff == staff)]


def log_object(store: Store, after: int, kind: str | None = None, limit: int | None = None) -> list[Json]:
    """Log entries after position `after`, personal data hidden (hub/audit.py public_data)."""
    return [entry_json(e) for e in store.audit(after_seq=after, kind=kind, limit=limit)]


def verify_object(report: VerifyReport, store: Store) -> Json:
    head = store.last_audit()
    return {"ok": report.ok, "entries": report.entries, "first_bad": report.first_bad,
            "problem": report.problem, "notes": list(report.notes), "witnesses": report.witnesses,
            "head": None if head is None else {"seq": head.seq, "hash": head.hash, "at": format_ts(head.at)}}


def report_object(config: HubConfig, store: Store, month: str, now: datetime) -> Json:
    """The monthly summary and ranking, as `hall-hub report month --json` prints it."""
    month_days(month)  # refuses a malformed month
    return summary_json(summarize(config, store, month, now))


# --- the board ------------------------------------------------------------------------------

WINDOW_STATE_ZH = {**STATE_ZH, "unattended": "无人", "closed": "非服务时间"}


def board_object(config: HubConfig, store: Store, now: datetime) -> Json:
    """Each window now: the staff present with their desk state (在岗 / 暂离 with reason and declared
    return / 暂停服务), the window's state, today's ratings and 满意率; the devices' last state."""
    today = now.astimezone(config.tz).date()
    hall = hall_day(config, store, today, now)
    schedule = schedule_of(config, store)
    presence = Presence(hall.attendance, schedule, config.tz)
    owners = DeskOwners(config.roster())
    open_signs: dict[str, Json] = {}
    for p in hall.periods:
        if p.start <= now and (p.actual_return is None or p.actual_return > now):
            for member in owners.covered(p.window, p.desk):
                open_signs[member] = {"state": p.state, "reason": p.reason,
                                      "reason_zh": REASON_ZH.get(p.reason or "", p.reason),
                                      "declared_return": _ts(p.declared_return, config)}
    in_session = session_at(now, schedule, config.tz) is not None
    stats = statistics([r for r in hall.ratings if r.rating.at <= now], by_window)
    names = {w.id: w.name for w in config.windows}
    window_ids = sorted({m.window for m in config.staff if m.window} | set(names))
    windows = []
    for window in window_ids:
        staff = []
        for member in config.staff:
            if member.window != window or not presence.present(member.id, now):
                continue
            sign = open_signs.get(member.id, {"state": "on_duty", "reason": None, "reason_zh": None,
                                              "declared_return": None})
            staff.append({"id": member.id, "name": member.name, **sign,
                          "state_zh": STATE_ZH.get(sign["state"], sign["state"])})
        states = {s["state"] for s in staff}
        state = next((s for s in ("on_duty", "paused", "away") if s in states),
                     "unattended" if in_session else "closed")
        s = stats.get(window)
        windows.append({"window": window, "name": names.get(window, ""), "state": state,
                        "state_zh": WINDOW_STATE_ZH[state], "staff": staff,
                        "ratings_today": s.total if s else 0,
                        "rate_permille": s.rate_permille if s and s.total else None})
    return {"hall": config.hall, "at": _ts(now, config), "in_session": in_session, "windows": windows,
            "devices": devices_object(config, store, now)}


def devices_object(config: HubConfig, store: Store, now: datetime) -> list[Json]:
    """Each configured device: online as its last `device_state` log entry says (None: never
    reported), since when, and its latest event of the last day."""
    last_state: dict[str, Any] = {}
    for entry in store.entries("device_state"):
        last_state[str(entry.data.get("device"))] = entry
    found = []
    for device in config.devices:
        state = last_state.get(device.id)
        recent = store.events(device=device.id, since=now - timedelta(days=1), until=now)
        found.append({"id": device.id, "name": device.name,
                      "online": None if state is None else bool(state.data.get("online")),
                      "since": None if state is None else _ts(state.at, config),
                      "last_event": _ts(recent[-1].ts, config) if recent else None})
    return found
