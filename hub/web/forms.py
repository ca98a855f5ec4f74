"""What the page routers share: the hall's today and this month, query values checked into dates
and months (400 in Chinese for a bad one), file downloads, and the answer to a refused action."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import HTTPException, Query, Request
from fastapi.responses import Response

from hub.hall import month_days
from hub.web.auth import hub_of

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
MonthQuery = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM")]
TextQuery = Annotated[str | None, Query(max_length=64)]
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def now_of(request: Request) -> datetime:
    return hub_of(request).store.clock.now()


def today_of(request: Request) -> date:
    return now_of(request).astimezone(hub_of(request).config.tz).date()


def month_or_this(request: Request, month: str | None) -> str:
    return month or today_of(request).strftime("%Y-%m")


def month_span(month: str) -> tuple[date, date]:
    days = month_days(month)
    return days[0], days[-1]


def blank(value: str | None) -> str | None:
    """A form's empty select ("all") as None."""
    return value.strip() or None if value is not None else None


def download(data: bytes, filename: str, kind: str) -> Response:
    """A file to save: `kind` csv or xlsx; `filename` ASCII."""
    if kind not in MEDIA:
        raise HTTPException(400, f"格式无效 format must be csv or xlsx, not {kind!r}")
    return Response(data, media_type=MEDIA[kind], headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def refused(exc: ValueError) -> HTTPException:
    return HTTPException(400, f"操作被拒绝: {exc}")
