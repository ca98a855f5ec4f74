"""好差评 page: the month's ratings by window and staff with 满意率 and the ranking of the month
summary, a trend chart (SVG drawn here), each rating with its flags; appeal (a staff member their
own, a manager any) and decide (manager) by form, through the functions the API calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from hub import api_objects as objects
from hub.appeals import appeal_rating, decide_appeal
from hub.hall import month_days
from hub.month_summary import summarize
from hub.reports import find_rating
from hub.views import APPEAL_ZH, FLAG_ZH, LEVEL_ZH, Names
from hub.web.api import rating_staff
from hub.web.auth import Principal, authored, hub_of, own_scope, require, site_path
from hub.web.charts import trend_svg
from hub.web.forms import (
    MONTH_PATTERN,
    MonthQuery,
    TextQuery,
    blank,
    month_or_this,
    now_of,
    refused,
    today_of,
)
from hub.web.rights import Right
from hub.web.templating import render

router = APIRouter(tags=["ratings"])
Reader = Annotated[Principal, Depends(require(Right.READ_ALL, Right.READ_OWN))]
MonthField = Annotated[str, Form(pattern=MONTH_PATTERN)]


@router.get("/ratings")
def ratings_page(request: Request, caller: Reader, month: MonthQuery = None, window: TextQuery = None,
                 staff: TextQuery = None) -> Response:
    hub = hub_of(request)
    chosen = month_or_this(request, month)
    today = today_of(request)
    days = month_days(chosen)
    now = now_of(request)
    scope = own_scope(caller, blank(staff))
    data = objects.ratings_object(hub.config, hub.store, [d for d in days if d <= today], now, scope)
    shown = [r for r in data["ratings"] if blank(window) is None or r["window"] == blank(window)]
    ranking = summarize(hub.config, hub.store, chosen, now) if caller.may(Right.READ_ALL) else None
    return render(request, "ratings.html", caller, title="好差评", month=chosen, window=blank(window) or "",
                  staff=scope or "", data=data, ratings=shown, ranking=ranking, names=Names.of(hub.config),
                  windows=sorted(data["by_window"]), chart=trend_svg(days, data["by_day"]),
                  level_zh=LEVEL_ZH, flag_zh=FLAG_ZH, appeal_zh=APPEAL_ZH, tz=hub.config.tz)


def _back(request: Request, month: str, rating_id: str) -> RedirectResponse:
    return RedirectResponse(site_path(request, f"/ratings?month={month}#r-{rating_id}"), status_code=303)


@router.post("/ratings/{rating_id}/appeal")
def appeal(request: Request, rating_id: str, reason: Annotated[str, Form(min_length=1, max_length=1000)],
           month: MonthField,
           caller: Annotated[Principal, Depends(require(Right.APPEAL_ANY, Right.APPEAL_OWN))]) -> Response:
    attributed_to = rating_staff(request, rating_id)  # 404 for no such rating
    if not caller.may(Right.APPEAL_ANY) and attributed_to != caller.user.staff:
        raise HTTPException(403, "无权限 a staff account may appeal only ratings attributed to itself")
    try:
        appeal_rating(authored(request, caller), rating_id, caller.user.name, reason)
    except ValueError as exc:
        raise refused(exc) from exc
    return _back(request, month, rating_id)


@router.post("/ratings/{rating_id}/decide")
def decide(request: Request, rating_id: str, accept: Annotated[bool, Form()],
           note: Annotated[str, Form(min_length=1, max_length=1000)], month: MonthField,
           caller: Annotated[Principal, Depends(require(Right.DECIDE_APPEAL))]) -> Response:
    if find_rating(hub_of(request).store, rating_id) is None:
        raise HTTPException(404, f"no rating {rating_id!r} in the record")
    try:
        decide_appeal(authored(request, caller), rating_id, caller.user.name, accept, note)
    except ValueError as exc:
        raise refused(exc) from exc
    return _back(request, month, rating_id)
