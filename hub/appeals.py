"""申诉复核 rating appeals over the store: what the CLI and the web console call.

Each step is an audit-log entry naming who took it (`rating_appeal`, `appeal_decision`); the state
of an appeal is derived from the entries that verify, never kept anywhere else.
"""

from __future__ import annotations

from datetime import datetime

from hub.domain import Appeal, AuditEntry
from hub.reports import find_rating
from hub.rules.appeals import AppealStep, appeal_problem, decision_problem, states
from hub.store.store import Store
from wire.envelope import format_ts

APPEAL_KIND = "rating_appeal"
DECISION_KIND = "appeal_decision"


def appeal_steps(store: Store) -> list[AppealStep]:
    """Every verified appeal and decision, as the pure rules read them."""
    return [step_of(e) for kind in (APPEAL_KIND, DECISION_KIND) for e in store.entries(kind)]


def step_of(entry: AuditEntry) -> AppealStep:
    """A `rating_appeal` or `appeal_decision` entry as the rules read it."""
    d = entry.data
    if entry.kind == APPEAL_KIND:
        return AppealStep(str(d["rating"]), datetime.fromisoformat(str(d["at"])), str(d["by"]),
                          str(d["reason"]), window=str(d.get("window") or ""))
    return AppealStep(str(d["rating"]), datetime.fromisoformat(str(d["at"])), str(d["by"]),
                      str(d["note"]), decision=bool(d["accepted"]))


def appeal_states(store: Store, as_of: datetime | None = None) -> dict[str, Appeal]:
    """Rating id -> its latest appeal (state open, accepted or rejected), as of `as_of` (None: all
    that is logged). Ratings never appealed are absent."""
    return states(appeal_steps(store), as_of)


def appeal_rating(store: Store, rating_id: str, by: str, reason: str) -> Appeal:
    """Contest a rating. Refused (ValueError): an unknown rating, one with an open or accepted
    appeal, an empty name or reason."""
    rating = find_rating(store, rating_id)
    if rating is None:
        raise ValueError(f"no rating {rating_id!r} in the record")
    now = store.clock.now()
    problem = appeal_problem(appeal_states(store), rating_id, by, reason)
    if problem:
        raise ValueError(problem)
    store.append(APPEAL_KIND, {"rating": rating_id, "window": rating.window, "level": rating.level,
                               "by": by.strip(), "reason": reason.strip(), "at": format_ts(now)},
                 ref=rating_id)
    return appeal_states(store)[rating_id]


def decide_appeal(store: Store, rating_id: str, by: str, accept: bool, note: str) -> Appeal:
    """Accept or reject the open appeal of a rating. Refused (ValueError): an unknown rating, no open
    appeal, an empty name or note."""
    if find_rating(store, rating_id) is None:
        raise ValueError(f"no rating {rating_id!r} in the record")
    now = store.clock.now()
    problem = decision_problem(appeal_states(store), rating_id, by, note)
    if problem:
        raise ValueError(problem)
    store.append(DECISION_KIND, {"rating": rating_id, "accepted": accept, "by": by.strip(),
                                 "note": note.strip(), "at": format_ts(now)}, ref=rating_id)
    return appeal_states(store)[rating_id]
