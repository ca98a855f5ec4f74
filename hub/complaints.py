"""投诉受理 the complaints register over the store: what the CLI and the web console call.

Registering and answering are audit-log entries naming who did it (`complaint_add`,
`complaint_close`); the register is derived from the entries that verify. The complainant's contact
is personal data: it is kept in the `complaint_add` entry (the store is access-controlled) and
returned only by :func:`complaint_contacts`, which logs who viewed it (`personal_view`); every
listing, finding and the public log output leave it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from hub.config import HubConfig
from hub.domain import Complaint, ComplaintKind, Finding
from hub.reports import find_rating
from hub.rules.complaints import (
    Answer,
    Registration,
    answer_problem,
    as_of,
    due_day,
    due_moment,
    id_prefix,
    overdue_findings,
    registration_problem,
)
from hub.store.store import Store
from wire.envelope import format_ts

ADD_KIND = "complaint_add"
CLOSE_KIND = "complaint_close"
VIEW_KIND = "personal_view"
CONTACT_LIMIT = 200


@dataclass(frozen=True)
class NewComplaint:
    kind: ComplaintKind
    window: str
    received_by: str
    text: str
    staff: str | None = None
    rating: str | None = None
    contact: str | None = None  # personal data


def hall_windows(config: HubConfig) -> set[str]:
    """The hall's windows: those the roster's staff serve at, and those of `[[windows]]`."""
    return {member.window for member in config.staff if member.window} | {w.id for w in config.windows}


def registration_of(d: dict[str, Any]) -> Registration:
    """A `complaint_add` entry's data as the rules read it."""
    return Registration(
        id=str(d["id"]), kind=d["kind"], window=str(d["window"]), staff=d.get("staff"),
        rating=d.get("rating"), received_by=str(d["by"]), text=str(d["text"]),
        registered_at=datetime.fromisoformat(str(d["registered_at"])),
        due=datetime.fromisoformat(str(d["due"])), has_contact=bool(d.get("contact")),
    )


def answer_of(d: dict[str, Any]) -> Answer:
    """A `complaint_close` entry's data as the rules read it."""
    return Answer(str(d["id"]), datetime.fromisoformat(str(d["closed_at"])), str(d["by"]), str(d["result"]))


def registrations(store: Store) -> list[Registration]:
    return [registration_of(e.data) for e in store.entries(ADD_KIND)]


def answers(store: Store) -> list[Answer]:
    return [answer_of(e.data) for e in store.entries(CLOSE_KIND)]


def register_as_of(store: Store, now: datetime) -> list[Complaint]:
    """Every complaint registered by `now`, with its answer if given by then."""
    return as_of(registrations(store), answers(store), now)


def complaints_in(store: Store, config: HubConfig, start: date | None, end: date | None,
                  now: datetime | None = None) -> list[Complaint]:
    """Complaints registered from `start` to `end` (hall days, inclusive; None: unbounded), as of
    `now` (default: the store's clock): status, overdue and closed_in_time as they stood then."""
    moment = now or store.clock.now()
    return [c for c in register_as_of(store, moment)
            if (start is None or c.registered_at.astimezone(config.tz).date() >= start)
            and (end is None or c.registered_at.astimezone(config.tz).date() <= end)]


def add_complaint(config: HubConfig, store: Store, new: NewComplaint) -> Complaint:
    """Register a complaint now; its id is the day's next `T-YYYYMMDD-NNN`. Refused (ValueError):
    an unknown window, staff member or rating, a rating at another window, an empty text or name."""
    problem = registration_problem(new.kind, new.text, new.received_by)
    if problem:
        raise ValueError(problem)
    if new.window not in hall_windows(config):
        raise ValueError(f"window {new.window!r} is not a window of this hall "
                         f"(known: {', '.join(sorted(hall_windows(config))) or 'none'})")
    if new.staff is not None and new.staff not in {member.id for member in config.staff}:
        raise ValueError(f"staff {new.staff!r} is not on the roster")
    if new.rating is not None:
        rating = find_rating(store, new.rating)
        if rating is None:
            raise ValueError(f"no rating {new.rating!r} in the record")
        if rating.window != new.window:
            raise ValueError(f"rating {new.rating} was given at window {rating.window}, not {new.window}")
    contact = (new.contact or "").strip()
    if len(contact) > CONTACT_LIMIT:
        raise ValueError(f"--contact is longer than {CONTACT_LIMIT} characters")
    now = store.clock.now()
    day = now.astimezone(config.tz).date()
    due = due_moment(due_day(new.kind, day, config.schedule.to_domain(),
                             written_days=config.complaints.written_days,
                             oral_days=config.complaints.oral_days), config.tz)
    data: dict[str, object] = {
        "kind": new.kind, "window": new.window, "staff": new.staff, "rating": new.rating,
        "by": new.received_by.strip(), "text": new.text.strip(), "registered_at": format_ts(now),
        "due": format_ts(due),
    }
    if contact:
        data["contact"] = contact
    entry = store.append_numbered(ADD_KIND, id_prefix(day), data)
    return next(c for c in register_as_of(store, now) if c.id == entry.ref)


def close_complaint(store: Store, complaint_id: str, closed_by: str, result: str) -> Complaint:
    """Record the answer given (答复) and file the complaint (归档). Refused (ValueError): an
    unknown or already closed complaint, an empty name or result."""
    now = store.clock.now()
    problem = answer_problem(register_as_of(store, now), complaint_id, closed_by, result)
    if problem:
        raise ValueError(problem)
    store.append(CLOSE_KIND, {"id": complaint_id, "by": closed_by.strip(), "result": result.strip(),
                              "closed_at": format_ts(now)}, ref=complaint_id)
    return next(c for c in register_as_of(store, now) if c.id == complaint_id)


def complaint_contacts(store: Store, ids: Iterable[str], viewer: str) -> dict[str, str]:
    """The complainants' contacts of these complaints (those that left one), for a manager: the
    view is logged with the viewer's name and the ids shown. Refused without a viewer's name."""
    if not viewer.strip():
        raise ValueError("--by must name who views the complainants' contacts")
    wanted = set(ids)
    found = {str(e.data["id"]): str(e.data["contact"]) for e in store.entries(ADD_KIND)
             if str(e.data["id"]) in wanted and e.data.get("contact")}
    store.append(VIEW_KIND, {"viewer": viewer.strip(), "what": "complaint_contact",
                             "ids": sorted(found)}, ref=viewer.strip()[:64])
    return found


def overdue_complaints(config: HubConfig, store: Store, now: datetime, lookback_days: int = 60
                       ) -> list[Finding]:
    """`complaint_overdue` findings as of `now`: every complaint still open past its due moment,
    and those answered late that were due within `lookback_days`. Read from the register's own log
    entries (an index by kind), never by replaying events."""
    since = now - timedelta(days=lookback_days)
    return overdue_findings([c for c in register_as_of(store, now) if c.closed_at is None or c.due >= since],
                            now)
