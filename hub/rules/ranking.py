"""排名通报 the monthly ranking of windows and staff by 满意率 (DESIGN.md "Domain rules", Ratings).

Pure: a list of (id, name, satisfied, counted) in, ranked places out. 满意率 is levels 3..5 over the
counted ratings (hub/rules/ratings.py `statistics`), compared exactly (as a fraction), reported in
per mille. Ties on 满意率 go to the one with more counted ratings; the same 满意率 and the same count
share a rank (competition ranking: 1, 2, 2, 4), listed by id. Who has no counted rating is listed
after the ranked ones, unranked. The bottom `bottom_percent` of the ranked are marked, rounded up,
at least the last one when the percent is above 0, and with them everyone tied with the last marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Rated:
    id: str
    name: str
    satisfied: int  # counted ratings of levels 3..5
    total: int  # counted ratings


@dataclass(frozen=True)
class Place:
    rank: int | None  # None: no counted rating, unranked
    id: str
    name: str
    satisfaction_permille: int | None
    ratings: int
    bottom: bool


def permille(satisfied: int, total: int) -> int | None:
    """满意率 x1000 rounded half up; None without a counted rating."""
    return (2000 * satisfied + total) // (2 * total) if total else None


def rank(items: list[Rated], bottom_percent: int) -> list[Place]:
    if not 0 <= bottom_percent <= 100:
        raise ValueError(f"bottom_percent must be 0..100, got {bottom_percent}")
    rated = sorted((i for i in items if i.total > 0),
                   key=lambda i: (-Fraction(i.satisfied, i.total), -i.total, i.id))
    ranks: list[int] = []
    for n, item in enumerate(rated):
        previous = rated[n - 1] if n else None
        tied = previous is not None and (Fraction(previous.satisfied, previous.total), previous.total) == (
            Fraction(item.satisfied, item.total), item.total)
        ranks.append(ranks[-1] if tied else n + 1)
    marked = math.ceil(len(rated) * bottom_percent / 100) if rated else 0
    cut = ranks[len(rated) - marked] if marked else None  # the best rank among the marked
    places = [Place(r, i.id, i.name, permille(i.satisfied, i.total), i.total, cut is not None and r >= cut)
              for r, i in zip(ranks, rated, strict=True)]
    places += [Place(None, i.id, i.name, None, 0, False) for i in sorted(items, key=lambda i: i.id)
               if i.total == 0]
    return places
