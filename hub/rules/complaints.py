"""投诉受理 the complaints register (seeds 000 and 004): pure functions, no I/O, no clock of their own.

A complaint is registered by hall staff, oral (口头) or written (书面), about a window, maybe a staff
member and a rating. It is due (答复期限):
- written: by the end of the ``written_days``-th working day after the registration day (seed 000:
  一般书面投诉, 在3个工作日内作出答复);
- oral: by the end of the registration day (seed 000: 口头投诉应马上协调, 尽可能当场作出答复), or of
  the next working day when registered on a day off; ``oral_days`` working days later where a hall
  allows it (seed 004: 不能现场答复的, 要在当日或次日给予答复).
Working days are :func:`hub.rules.attendance.is_workday`: holidays skipped, 调休 makeup days counted.
"The end of the day" is 23:59:59.999 hall time, not the end of the last session: an answer given in
the evening after the hall closed still answers within the day.

A complaint's state is its registration and its first answer (答复, 归档) known by ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from hub.domain import Complaint, ComplaintKind, Finding, Schedule
from hub.rules.attendance import is_workday
from hub.rules.cases import add_working_days

__all__ = [
    "COMPLAINT_KINDS", "Answer", "Registration", "answer_problem", "as_of", "complaint_id", "due_day",
    "due_moment", "id_prefix", "overdue_findings", "registration_problem",
]

COMPLAINT_KINDS: tuple[ComplaintKind, ...] = ("oral", "written")
END_OF_DAY = time(23, 59, 59, 999000)
TEXT_LIMIT = 2000  # characters of a complaint's text or an answer


@dataclass(frozen=True)
class Registration:
    """What a `complaint_add` log entry records (the contact aside: it is personal data)."""

    id: str
    kind: ComplaintKind
    window: str
    staff: str | None
    rating: str | None
    received_by: str
    text: str
    registered_at: datetime
    due: datetime
    has_contact: bool = False


@dataclass(frozen=True)
class Answer:
    """What a `complaint_close` log entry records: the answer given and filed (答复, 归档)."""

    id: str
    closed_at: datetime
    closed_by: str
    result: str


def due_day(kind: ComplaintKind, registered: date, schedule: Schedule, *, written_days: int = 3,
            oral_days: int = 0) -> date:
    """The working day by whose end the complaint is answered (see the module's docstring).

    >>> from hub.domain import Schedule
    >>> due_day("written", date(2026, 11, 27), Schedule(sessions=()))  # a Friday
    datetime.date(2026, 12, 2)
    """
    if kind not in COMPLAINT_KINDS:
        raise ValueError(f"complaint kind must be oral or written, got {kind!r}")
    if kind == "written":
        return add_working_days(registered, written_days, schedule)
    first = registered if is_workday(registered, schedule) else add_working_days(registered, 1, schedule)
    return add_working_days(first, oral_days, schedule)


def due_moment(day: date, tz: tzinfo) -> datetime:
    """The end of the due day: 23:59:59.999 in hall time."""
    return datetime.combine(day, END_OF_DAY, tzinfo=tz)


def id_prefix(day: date) -> str:
    """``T-YYYYMMDD-``: a complaint's id is this and its number of the day, from 001."""
    return f"T-{day:%Y%m%d}-"


def complaint_id(day: date, number: int) -> str:
    return f"{id_prefix(day)}{number:03d}"


def as_of(registrations: Iterable[Registration], answers: Iterable[Answer], now: datetime) -> list[Complaint]:
    """The register as of ``now``, in registration order: complaints registered by then, each with
    its first answer given by then. A later answer of an answered complaint (two managers at once)
    and an answer of an unknown complaint change nothing: the first answer stands, the record is
    never rewritten."""
    known = [r for r in registrations if r.registered_at <= now]
    ids = {r.id for r in known}
    first: dict[str, Answer] = {}
    for answer in sorted(answers, key=lambda a: a.closed_at):
        if answer.id in ids and answer.closed_at <= now and answer.id not in first:
            first[answer.id] = answer
    out = []
    for r in sorted(known, key=lambda r: (r.registered_at, r.id)):
        answer = first.get(r.id)
        closed_at = answer.closed_at if answer else None
        out.append(Complaint(
            id=r.id, kind=r.kind, window=r.window, staff=r.staff, rating=r.rating,
            received_by=r.received_by, text=r.text, registered_at=r.registered_at, due=r.due,
            status="closed" if answer else "open",
            overdue=(closed_at or now) > r.due,
            closed_in_time=None if closed_at is None else closed_at <= r.due,
            closed_at=closed_at, closed_by=answer.closed_by if answer else None,
            result=answer.result if answer else None, has_contact=r.has_contact,
        ))
    return out


def overdue_findings(complaints: Iterable[Complaint], now: datetime) -> list[Finding]:
    """``complaint_overdue`` for each complaint answered late or still open past its due moment,
    running from the end of the due day to the answer (None: still open at ``now``)."""
    found = []
    for c in complaints:
        if not c.overdue:
            continue
        start = c.due + timedelta(milliseconds=1)
        until = c.closed_at if c.closed_at is not None else now
        found.append(Finding(
            kind="complaint_overdue", window=c.window, staff=c.staff, start=start, end=c.closed_at,
            detail={"complaint": c.id, "complaint_kind": c.kind, "due": c.due.isoformat(),
                    "closed_late": c.closed_at is not None,
                    "overdue_minutes": max(0, (until - start) // timedelta(minutes=1))},
            sources=(c.rating,) if c.rating else (),
        ))
    return found


def registration_problem(kind: str, text: str, received_by: str) -> str | None:
    """Why a registration is refused, in one line, or None."""
    if kind not in COMPLAINT_KINDS:
        return f"--kind must be oral or written, not {kind!r}"
    if not received_by.strip():
        return "--by must name who received the complaint"
    if not text.strip():
        return "--text must not be empty: record what the complaint says"
    if len(text) > TEXT_LIMIT:
        return f"--text is longer than {TEXT_LIMIT} characters"
    return None


def answer_problem(register: Sequence[Complaint], wanted: str, closed_by: str, result: str) -> str | None:
    """Why closing ``wanted`` is refused, in one line, or None."""
    complaint = next((c for c in register if c.id == wanted), None)
    if complaint is None:
        return f"no complaint {wanted!r} in the register"
    if complaint.closed_at is not None:
        return (f"complaint {wanted} was already closed by {complaint.closed_by} "
                f"at {complaint.closed_at.isoformat(timespec='minutes')}")
    if not closed_by.strip():
        return "--by must name who answered the complaint"
    if not result.strip():
        return "--result must not be empty: record the answer given"
    if len(result) > TEXT_LIMIT:
        return f"--result is longer than {TEXT_LIMIT} characters"
    return None
