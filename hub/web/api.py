"""`/api/v1/`: the JSON API, the same objects as the CLI's `--json` (hub/api_objects.py), and the
manual actions, each calling what the CLI calls, with the caller's user name as who did it.

Reads of personal records (attendance, ratings, findings, cases, complaints) take `staff=`: a staff
account always gets its own records only, and 403 for `staff=` naming someone else.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hub import api_objects as objects
from hub.appeals import appeal_rating, decide_appeal
from hub.audit import verify_log
from hub.complaints import close_complaint
from hub.domain import LOG_KINDS, Appeal
from hub.hall import close_case, hall_day, month_days
from hub.leave import record_leave
from hub.reports import find_rating
from hub.web.auth import Principal, hub_of, own_scope, require
from hub.web.rights import Right

router = APIRouter(prefix="/api/v1", tags=["api"])
Json = dict[str, Any]
Caller = Annotated[Principal, Depends(require())]
Reader = Annotated[Principal, Depends(require(Right.READ_ALL, Right.READ_OWN))]
StaffFilter = Annotated[str | None, Query(max_length=64, description="one staff member's records")]
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def _today(request: Request) -> date:
    hub = hub_of(request)
    return hub.store.clock.now().astimezone(hub.config.tz).date()


@router.get("/me")
def me(caller: Caller) -> Json:
    return {"name": caller.user.name, "role": caller.user.role, "staff": caller.user.staff,
            "rights": sorted(caller.rights)}


@router.get("/board")
def board(request: Request, caller: Annotated[Principal, Depends(require(Right.BOARD))]) -> Json:
    hub = hub_of(request)
    return objects.board_object(hub.config, hub.store, hub.store.clock.now())


@router.get("/attendance")
def attendance(request: Request, caller: Reader, date: date | None = None,
               staff: StaffFilter = None) -> list[Json]:
    hub = hub_of(request)
    return objects.attendance_object(hub.config, hub.store, date or _today(request), hub.store.clock.now(),
                                     own_scope(caller, staff))


@router.get("/ratings")
def ratings(request: Request, caller: Reader, date: date | None = None,
            month: Annotated[str | None, Query(pattern=MONTH)] = None, staff: StaffFilter = None) -> Json:
    if date is not None and month is not None:
        raise HTTPException(400, "give date or month, not both")
    hub = hub_of(request)
    days = month_days(month) if month else [date or _today(request)]
    return objects.ratings_object(hub.config, hub.store, days, hub.store.clock.now(),
                                  own_scope(caller, staff))


@router.get("/findings")
def findings(request: Request, caller: Reader, date: date | None = None,
             staff: StaffFilter = None) -> list[Json]:
    hub = hub_of(request)
    return objects.findings_object(hub.config, hub.store, date or _today(request), hub.store.clock.now(),
                                   own_scope(caller, staff))


@router.get("/cases")
def cases(request: Request, caller: Reader,
          since: Annotated[date | None, Query(alias="from")] = None,
          until: Annotated[date | None, Query(alias="to")] = None, staff: StaffFilter = None) -> list[Json]:
    hub = hub_of(request)
    return objects.cases_object(hub.config, hub.store, since, until, hub.store.clock.now(),
                                own_scope(caller, staff))


@router.get("/complaints")
def complaints(request: Request, caller: Reader,
               since: Annotated[date | None, Query(alias="from")] = None,
               until: Annotated[date | None, Query(alias="to")] = None, open: bool = False,
               staff: StaffFilter = None) -> list[Json]:
    hub = hub_of(request)
    return objects.complaints_object(hub.config, hub.store, since, until, open, own_scope(caller, staff))


@router.get("/log")
def log(request: Request, caller: Annotated[Principal, Depends(require(Right.READ_LOG))],
        after: Annotated[int, Query(ge=0)] = 0, kind: str | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> list[Json]:
    if kind is not None and kind not in LOG_KINDS:
        raise HTTPException(400, f"unknown kind {kind!r}: one of {', '.join(sorted(LOG_KINDS))}")
    return objects.log_object(hub_of(request).store, after, kind, limit)


@router.post("/log/verify")
def verify(request: Request, caller: Annotated[Principal, Depends(require(Right.VERIFY_LOG))]) -> Json:
    hub = hub_of(request)
    return objects.verify_object(verify_log(hub.store, hub.config.device_keys(),
                                                hub.config.audit.witness_minutes), hub.store)


@router.get("/report")
def report(request: Request, caller: Annotated[Principal, Depends(require(Right.EXPORT))],
           month: Annotated[str, Query(pattern=MONTH)]) -> Json:
    hub = hub_of(request)
    return objects.report_object(hub.config, hub.store, month, hub.store.clock.now())


# --- manual actions -------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaveBody(_Body):
    staff: str = Field(max_length=64)
    start: str = Field(alias="from", max_length=40, description="YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")
    end: str = Field(alias="to", max_length=40, description="YYYY-MM-DD (whole day) or a time")
    approver: str = Field(max_length=64)
    reason: str = Field("", max_length=500)


class CloseCaseBody(_Body):
    result: str = Field(min_length=1, max_length=500)
    note: str = Field("", max_length=1000)


class CloseComplaintBody(_Body):
    result: str = Field(min_length=1, max_length=1000)


class AppealBody(_Body):
    reason: str = Field(min_length=1, max_length=1000)


class DecideBody(_Body):
    accept: bool
    note: str = Field(min_length=1, max_length=1000)


def _refused(exc: ValueError) -> HTTPException:
    return HTTPException(400, str(exc))


@router.post("/leave")
def add_leave(request: Request, body: LeaveBody,
              caller: Annotated[Principal, Depends(require(Right.RECORD_LEAVE))]) -> Json:
    hub = hub_of(request)
    try:
        leave, entry = record_leave(hub.config, hub.store, body.staff, body.start, body.end, body.approver,
                                    body.reason, by=caller.user.name)
    except ValueError as exc:
        raise _refused(exc) from exc
    return {"staff": leave.staff, "from": leave.start.isoformat(), "to": leave.end.isoformat(),
            "approver": leave.approver, "reason": leave.reason, "by": caller.user.name, "log_seq": entry.seq}


@router.post("/cases/{case_id}/close")
def close_a_case(request: Request, case_id: str, body: CloseCaseBody,
                 caller: Annotated[Principal, Depends(require(Right.CLOSE_CASE))]) -> Json:
    hub = hub_of(request)
    try:
        seq = close_case(hub.config, hub.store, case_id, caller.user.name, body.result, body.note)
    except ValueError as exc:
        raise _refused(exc) from exc
    return {"case": case_id, "closed_by": caller.user.name, "result": body.result, "log_seq": seq}


@router.post("/complaints/{complaint_id}/close")
def close_a_complaint(request: Request, complaint_id: str, body: CloseComplaintBody,
                      caller: Annotated[Principal, Depends(require(Right.CLOSE_COMPLAINT))]) -> Json:
    hub = hub_of(request)
    try:
        done = close_complaint(hub.store, complaint_id, caller.user.name, body.result)
    except ValueError as exc:
        raise _refused(exc) from exc
    return objects.complaint_json(done)


def rating_staff(request: Request, rating_id: str) -> str | None:
    """The staff member a rating is attributed to (as of now), or 404 for no such rating."""
    hub = hub_of(request)
    rating = find_rating(hub.store, rating_id)
    if rating is None:
        raise HTTPException(404, f"no rating {rating_id!r} in the record")
    now = hub.store.clock.now()
    day = rating.at.astimezone(hub.config.tz).date()
    return next((r.staff for r in hall_day(hub.config, hub.store, day, now).ratings
                 if r.rating.event_id == rating_id), None)


def _appeal_json(appeal: Appeal) -> Json:
    return {"rating": appeal.rating, "window": appeal.window, "state": appeal.state,
            "appealed_by": appeal.appealed_by, "reason": appeal.reason,
            "decided_by": appeal.decided_by, "note": appeal.note}


@router.post("/ratings/{rating_id}/appeal")
def appeal(request: Request, rating_id: str, body: AppealBody,
           caller: Annotated[Principal, Depends(require(Right.APPEAL_ANY, Right.APPEAL_OWN))]) -> Json:
    attributed_to = rating_staff(request, rating_id)  # 404 for no such rating
    if not caller.may(Right.APPEAL_ANY) and attributed_to != caller.user.staff:
        raise HTTPException(403, "无权限 a staff account may appeal only ratings attributed to itself")
    try:
        done = appeal_rating(hub_of(request).store, rating_id, caller.user.name, body.reason)
    except ValueError as exc:
        raise _refused(exc) from exc
    return _appeal_json(done)


@router.post("/ratings/{rating_id}/decide")
def decide(request: Request, rating_id: str, body: DecideBody,
           caller: Annotated[Principal, Depends(require(Right.DECIDE_APPEAL))]) -> Json:
    if find_rating(hub_of(request).store, rating_id) is None:
        raise HTTPException(404, f"no rating {rating_id!r} in the record")
    try:
        done = decide_appeal(hub_of(request).store, rating_id, caller.user.name, body.accept, body.note)
    except ValueError as exc:
        raise _refused(exc) from exc
    return _appeal_json(done)
