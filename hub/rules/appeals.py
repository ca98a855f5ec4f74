"""申诉复核 rating appeals (DESIGN.md "Domain rules", Ratings): pure functions, no I/O, no clock.

A staff member or manager contests a rating believed malicious or mistaken; a manager accepts or
rejects the appeal. While open, the rating is flagged ``appealed`` and still counts; accepted, it is
flagged ``excluded_by_appeal`` and counts in no statistic, yet stays in the record (never deleted);
rejected, it counts as before. A rejected appeal may be followed by a new one; an accepted one is
final. The follow-up case a bad rating opened is closed by the acceptance (:func:`case_closures`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from hub.domain import Appeal, AttributedRating, CaseClosure
from hub.rules.cases import case_id

__all__ = ["Appeal", "AppealStep", "appeal_problem", "apply_appeals", "case_closures", "decision_problem",
           "states"]

APPEALED = "appealed"
EXCLUDED = "excluded_by_appeal"
ACCEPTED_RESULT = "申诉成立, 评价不计入统计 (appeal accepted)"


@dataclass(frozen=True)
class AppealStep:
    """One logged step: an appeal (`rating_appeal`) or a decision (`appeal_decision`)."""

    rating: str
    at: datetime
    by: str
    text: str  # the appeal's reason or the decision's note
    window: str = ""
    decision: bool | None = None  # None: an appeal; True: accepted; False: rejected


def states(steps: Iterable[AppealStep], now: datetime | None = None) -> dict[str, Appeal]:
    """Each appealed rating's latest appeal, from the steps known by ``now`` in time order.

    A step the rules would have refused (a second appeal while one is open or after acceptance, a
    decision without an open appeal: two people at once) changes nothing: the first stands.
    """
    found: dict[str, Appeal] = {}
    for step in sorted(steps, key=lambda s: s.at):
        if now is not None and step.at > now:
            continue
        current = found.get(step.rating)
        if step.decision is None:
            if current is None or current.state == "rejected":
                found[step.rating] = Appeal(step.rating, step.window, "open", step.by, step.at, step.text,
                                            appeals=1 if current is None else current.appeals + 1)
        elif current is not None and current.state == "open":
            found[step.rating] = replace(current, state="accepted" if step.decision else "rejected",
                                         decided_by=step.by, decided_at=step.at, note=step.text)
    return found


def appeal_problem(appeals: Mapping[str, Appeal], rating: str, by: str, reason: str) -> str | None:
    """Why an appeal of ``rating`` is refused, in one line, or None (the rating is known)."""
    current = appeals.get(rating)
    if current is not None and current.state == "open":
        return (f"rating {rating} already has an open appeal (by {current.appealed_by} "
                f"at {current.appealed_at.isoformat(timespec='minutes')}): decide it first")
    if current is not None and current.state == "accepted":
        return f"rating {rating}: its appeal was already accepted by {current.decided_by}"
    if not by.strip():
        return "--by must name who appeals"
    if not reason.strip():
        return "--reason must not be empty: say why the rating is contested"
    return None


def decision_problem(appeals: Mapping[str, Appeal], rating: str, by: str, note: str) -> str | None:
    """Why a decision on ``rating``'s appeal is refused, in one line, or None."""
    current = appeals.get(rating)
    if current is None or current.state != "open":
        return f"rating {rating} has no open appeal to decide"
    if not by.strip():
        return "--by must name who decides"
    if not note.strip():
        return "--note must not be empty: record the grounds of the decision"
    return None


def apply_appeals(attributed: Sequence[AttributedRating], appeals: Mapping[str, Appeal]
                  ) -> list[AttributedRating]:
    """The ratings, in the same order, flagged by their appeals: an open one ``appealed`` (counted
    as before), an accepted one ``excluded_by_appeal`` (not counted); a rejected one unchanged."""
    out = []
    for a in attributed:
        appeal = appeals.get(a.rating.event_id)
        if appeal is None or appeal.state == "rejected":
            out.append(a)
        elif appeal.state == "open":
            out.append(replace(a, flags=(*a.flags, APPEALED)))
        else:
            out.append(replace(a, counted=False, flags=(*a.flags, EXCLUDED)))
    return out


def case_closures(appeals: Iterable[Appeal]) -> list[CaseClosure]:
    """A closure, by its decision, of the case each accepted appeal's rating may have opened (a
    good rating opened none: the closure then matches no case and is left out by the caller)."""
    return [
        CaseClosure(case_id(a.rating), a.decided_at, a.decided_by or "", ACCEPTED_RESULT, a.note,
                    by_appeal=True)
        for a in appeals if a.state == "accepted" and a.decided_at is not None
    ]
