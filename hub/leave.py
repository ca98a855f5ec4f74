"""请假 approved leave, recorded by `hall-hub leave add` and the console's leave action."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from hub.config import HubConfig
from hub.domain import AuditEntry, Leave
from hub.store.store import Store


def leave_moment(text: str, config: HubConfig, *, end_of_day: bool) -> datetime:
    """`YYYY-MM-DD` (the day's start, or with `end_of_day` the next day's start) or an ISO time,
    in the hall's time zone unless it names its own offset."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: give YYYY-MM-DD or 'YYYY-MM-DD HH:MM'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=config.tz)


def record_leave(config: HubConfig, store: Store, staff: str, start_text: str, end_text: str,
                 approver: str, reason: str, by: str | None = None) -> tuple[Leave, AuditEntry]:
    """Record an approved leave. Refused (ValueError): a staff id not on the roster, a range that
    ends before it starts, no approver."""
    if staff not in {member.id for member in config.staff}:
        raise ValueError(f"staff {staff!r} is not on the roster")
    if not approver.strip():
        raise ValueError("a leave needs its approver (批准人)")
    start = leave_moment(start_text, config, end_of_day=False)
    end = leave_moment(end_text, config, end_of_day=True)
    if end <= start:
        raise ValueError("--to must be after --from")
    leave = Leave(staff, start, end, approver.strip(), reason, store.clock.now())
    return leave, store.add_leave(leave, recorded_by=by)
