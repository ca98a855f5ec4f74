"""离岗, 发现 (with their source events), the event page, 差评整改 case ledger and 投诉 register:
deadlines shown, overdue first; a manager closes a case or a complaint by form (the functions the
API and the CLI call) and sees a complainant's contact on the complaint's page (the view logged)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub import api_objects as objects
from hub.audit import device_keys_of, signature_problem
from hub.complaints import close_complaint, complaint_contacts
from hub.hall import close_case
from hub.store.snapshots import snapshot_hash, view_snapshot
from hub.views import FINDING_ZH, KIND_ZH, LEVEL_ZH, REASON_ZH, STATE_ZH, Names, finding_detail
from hub.web.auth import Principal, authored, hub_of, own_scope, require, site_path
from hub.web.forms import TextQuery, blank, now_of, refused, today_of
from hub.web.rights import Right
from hub.web.templating import render
from wire.envelope import WireError, parse

router = APIRouter(tags=["ledger"])
Reader = Annotated[Principal, Depends(require(Right.READ_ALL, Right.READ_OWN))]
Json = dict[str, Any]


@router.get("/away")
def away(request: Request, caller: Reader, date: date | None = None) -> Response:
    hub = hub_of(request)
    day = date or today_of(request)
    scope = own_scope(caller, None)
    periods = [p for p in objects.away_object(hub.config, hub.store, day, now_of(request))
               if scope is None or p["staff"] == scope]
    return render(request, "away.html", caller, title="离岗", day=day, periods=periods,
                  names=Names.of(hub.config), state_zh=STATE_ZH, reason_zh=REASON_ZH)


@router.get("/findings")
def findings(request: Request, caller: Reader, date: date | None = None,
             window: TextQuery = None) -> Response:
    hub = hub_of(request)
    day = date or today_of(request)
    scope = own_scope(caller, None)
    names = Names.of(hub.config)
    found = [f for f in objects.day_findings_logged(hub.config, hub.store, day, now_of(request))
             if (scope is None or f.staff == scope) and (blank(window) is None or f.window == blank(window))]
    rows = [{"finding": f, "kind_zh": FINDING_ZH.get(f.kind, f.kind),
             "detail": finding_detail(f, hub.config.tz, names)} for f in found]
    return render(request, "findings.html", caller, title="发现", day=day, rows=rows, names=names,
                  window=blank(window) or "", tz=hub.config.tz,
                  windows=sorted({m.window for m in hub.config.staff if m.window}))


@router.get("/events/{event_id}")
def event_page(request: Request, event_id: str,
               caller: Annotated[Principal, Depends(require(Right.READ_ALL))]) -> Response:
    hub = hub_of(request)
    row = hub.store.events_by_id([event_id]).get(event_id)
    if row is None:
        raise HTTPException(404, f"无此事件 no event {event_id!r} in the record")
    problem = signature_problem(row.raw, device_keys_of(hub.config.device_keys()))
    signed: Json = {}
    try:
        envelope = parse(row.raw)
        signed = envelope.body
        if problem is None and (envelope.id, envelope.device, envelope.seq, envelope.type, envelope.body) != (
                row.id, row.device, row.seq, row.type, row.body):
            problem = "记录与签名报文不符 the stored row differs from its signed bytes"
    except WireError:
        pass
    face = row.type == "clock" and row.body.get("method") == "face"
    return render(request, "event.html", caller, title=f"事件 {event_id}", event=row, problem=problem,
                  signed=signed, tz=hub.config.tz, face=face, has_snapshot=snapshot_hash(row) is not None)


@router.get("/events/{event_id}/snapshot")
def snapshot(request: Request, event_id: str,
             caller: Annotated[Principal, Depends(require(Right.VIEW_SNAPSHOTS))]) -> Response:
    jpeg = view_snapshot(authored(request, caller), event_id, caller.user.name)
    if jpeg is None:
        raise HTTPException(404, "无抓拍 no snapshot kept for this event (none taken, or purged)")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _overdue_first(rows: list[Json], deadline: str) -> list[Json]:
    """Overdue first, then open by deadline, then closed (latest first)."""
    open_rows = sorted((r for r in rows if not r["closed_at"]), key=lambda r: (not r["overdue"], r[deadline]))
    closed = sorted((r for r in rows if r["closed_at"]), key=lambda r: r["closed_at"], reverse=True)
    return open_rows + closed


@router.get("/cases")
def case_ledger(request: Request, caller: Reader, since: Annotated[date | None, Query(alias="from")] = None,
                until: Annotated[date | None, Query(alias="to")] = None) -> Response:
    hub = hub_of(request)
    found = objects.cases_object(hub.config, hub.store, since, until, now_of(request),
                                 own_scope(caller, None))
    return render(request, "cases.html", caller, title="差评整改", cases=_overdue_first(found, "deadline"),
                  names=Names.of(hub.config), level_zh=LEVEL_ZH, since=since, until=until)


@router.post("/cases/{case_id}/close")
def close_a_case(request: Request, case_id: str, result: Annotated[str, Form(min_length=1, max_length=500)],
                 caller: Annotated[Principal, Depends(require(Right.CLOSE_CASE))],
                 note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    hub = hub_of(request)
    try:
        close_case(hub.config, authored(request, caller), case_id, caller.user.name, result, note)
    except ValueError as exc:
        raise refused(exc) from exc
    return RedirectResponse(site_path(request, f"/cases#c-{case_id}"), status_code=303)


@router.get("/complaints")
def register(request: Request, caller: Reader, open: bool = False) -> Response:
    hub = hub_of(request)
    found = objects.complaints_object(hub.config, hub.store, None, None, open, own_scope(caller, None))
    return render(request, "complaints.html", caller, title="投诉", complaints=_overdue_first(found, "due"),
                  names=Names.of(hub.config), kind_zh=KIND_ZH, open=open)


@router.get("/complaints/{complaint_id}")
def complaint_page(request: Request, complaint_id: str, caller: Reader, contact: bool = False) -> Response:
    hub = hub_of(request)
    scope = own_scope(caller, None)
    found = next((c for c in objects.complaints_object(hub.config, hub.store, None, None)
                  if c["id"] == complaint_id), None)
    if found is None:
        raise HTTPException(404, f"无此投诉 no complaint {complaint_id!r}")
    if scope is not None and found["staff"] != scope:
        raise HTTPException(403, "无权限 a staff account sees only its own records")
    shown: str | None = None
    if contact and caller.may(Right.VIEW_CONTACTS):
        shown = complaint_contacts(authored(request, caller), [complaint_id],
                                   caller.user.name).get(complaint_id, "")
    return render(request, "complaint.html", caller, title=f"投诉 {complaint_id}", c=found, contact=shown,
                  names=Names.of(hub.config), kind_zh=KIND_ZH)


@router.post("/complaints/{complaint_id}/close")
def close_a_complaint(request: Request, complaint_id: str,
                      result: Annotated[str, Form(min_length=1, max_length=1000)],
                      caller: Annotated[Principal, Depends(require(Right.CLOSE_COMPLAINT))]) -> Response:
    try:
        close_complaint(authored(request, caller), complaint_id, caller.user.name, result)
    except ValueError as exc:
        raise refused(exc) from exc
    return RedirectResponse(site_path(request, f"/complaints/{complaint_id}"), status_code=303)
