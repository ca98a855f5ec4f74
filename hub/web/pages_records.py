"""请假 (record and list), 审计日志 (browse, filter, verify), 月报 (summary, ranking, CSV/XLSX) and
设备 (each box and its units: state, faults, clock drift)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub import api_objects as objects
from hub.audit import device_keys_of, render_entry, signature_problem, verify_log
from hub.domain import LOG_KINDS, AuditEntry
from hub.leave import record_leave
from hub.month_summary import chain_head_before, summarize
from hub.monthly import summary_json, write_summary
from hub.views import Names
from hub.web.auth import Principal, authored, hub_of, own_scope, require, site_path
from hub.web.forms import MonthQuery, TextQuery, blank, download, month_or_this, now_of, refused
from hub.web.rights import Right
from hub.web.templating import render
from wire.envelope import WireError, parse

router = APIRouter(tags=["records"])
Reader = Annotated[Principal, Depends(require(Right.READ_ALL, Right.READ_OWN))]
LogReader = Annotated[Principal, Depends(require(Right.READ_LOG))]
PAGE = 50  # log entries a page
SCAN = 5000  # entries read at most to fill a filtered page
FAULT_DAYS = 7  # faults shown on the devices page: this many days back


# --- 请假 -------------------------------------------------------------------------------------

@router.get("/leave")
def leave_list(request: Request, caller: Reader) -> Response:
    hub = hub_of(request)
    items = sorted(hub.store.leaves(own_scope(caller, None)), key=lambda x: x.start, reverse=True)
    return render(request, "leave.html", caller, title="请假", items=items, names=Names.of(hub.config),
                  staff=hub.config.staff, tz=hub.config.tz)


@router.post("/leave")
def leave_add(request: Request, caller: Annotated[Principal, Depends(require(Right.RECORD_LEAVE))],
              staff: Annotated[str, Form(max_length=64)], start: Annotated[str, Form(max_length=40)],
              end: Annotated[str, Form(max_length=40)], approver: Annotated[str, Form(max_length=64)],
              reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    hub = hub_of(request)
    try:
        record_leave(hub.config, authored(request, caller), staff, start.replace("T", " "),
                     end.replace("T", " "), approver, reason, by=caller.user.name)
    except ValueError as exc:
        raise refused(exc) from exc
    return RedirectResponse(site_path(request, "/leave"), status_code=303)


# --- 审计日志 -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogLine:
    entry: AuditEntry
    text: str  # render_entry: personal data hidden
    device: str | None
    signature: str | None  # for an event: None verified, else the problem; "" for other kinds


def _device_and_body(entry: AuditEntry) -> tuple[str | None, dict[str, Any]]:
    if entry.kind != "event":
        return (str(entry.data["device"]) if entry.data.get("device") else None), entry.data
    try:
        envelope = parse(str(entry.data.get("raw", "")).encode("utf-8"))
    except WireError:
        return None, {}
    return envelope.device, envelope.body


@dataclass(frozen=True)
class LogFilter:
    kind: str | None
    device: str | None
    staff: str | None
    day: date | None
    cards: frozenset[str]

    def admits(self, entry: AuditEntry, device: str | None, body: dict[str, Any]) -> bool:
        if self.device is not None and device != self.device:
            return False
        if self.staff is not None:
            named = self.staff in (body.get("staff"), entry.data.get("staff"))
            return named or body.get("card") in self.cards
        return True


def log_page(request: Request, after: int, wanted: LogFilter) -> tuple[list[LogLine], int | None]:
    """A page of entries after `after` that pass the filter, and the `after` of the next page."""
    hub = hub_of(request)
    tz = hub.config.tz
    start, end = after, None
    if wanted.day is not None:
        first = datetime.combine(wanted.day, time(0), tzinfo=tz)
        start = max(after, chain_head_before(hub.store, first).entries)
        end = first + timedelta(days=1)
    keys = device_keys_of(hub.config.device_keys())
    lines: list[LogLine] = []
    last = start
    for n, entry in enumerate(hub.store.audit(after_seq=start, kind=wanted.kind)):
        if (end is not None and entry.at >= end) or n >= SCAN:
            return lines, (last if n >= SCAN else None)
        last = entry.seq
        device, body = _device_and_body(entry)
        if not wanted.admits(entry, device, body):
            continue
        if len(lines) == PAGE:
            return lines, lines[-1].entry.seq
        raw = str(entry.data.get("raw", "")).encode("utf-8")
        signature = signature_problem(raw, keys) if entry.kind == "event" else ""
        lines.append(LogLine(entry, render_entry(entry), device, signature))
    return lines, None


def _log_view(request: Request, caller: Principal, after: int, kind: str | None, device: str | None,
              staff: str | None, day: date | None, verified: dict[str, Any] | None = None) -> Response:
    hub = hub_of(request)
    if kind is not None and kind not in LOG_KINDS:
        raise HTTPException(400, f"未知类别 unknown kind {kind!r}")
    cards = next((frozenset(m.cards) for m in hub.config.staff if m.id == staff), frozenset())
    lines, following = log_page(request, after, LogFilter(kind, device, staff, day, cards))
    return render(request, "log.html", caller, title="审计日志", lines=lines, following=following,
                  after=after,
                  kind=kind or "", device=device or "", staff=staff or "", day=day, kinds=LOG_KINDS,
                  devices=[d.id for d in hub.config.devices], verified=verified, head=hub.store.last_audit())


@router.get("/log")
def log_browse(request: Request, caller: LogReader, after: Annotated[int, Query(ge=0)] = 0,
               kind: TextQuery = None, device: TextQuery = None, staff: TextQuery = None,
               day: Annotated[str | None, Query(max_length=10)] = None) -> Response:
    chosen = date.fromisoformat(day) if blank(day) else None
    return _log_view(request, caller, after, blank(kind), blank(device), blank(staff), chosen)


@router.post("/log/verify")
def log_verify(request: Request,
               caller: Annotated[Principal, Depends(require(Right.VERIFY_LOG))]) -> Response:
    hub = hub_of(request)
    verified = objects.verify_object(verify_log(hub.store, hub.config.device_keys(),
                                                hub.config.audit.witness_minutes), hub.store)
    return _log_view(request, caller, 0, None, None, None, None, verified)


# --- 月报 -------------------------------------------------------------------------------------

Exporter = Annotated[Principal, Depends(require(Right.EXPORT))]


@router.get("/report")
def report(request: Request, caller: Exporter, month: MonthQuery = None) -> Response:
    hub = hub_of(request)
    chosen = month_or_this(request, month)
    summary = summarize(hub.config, hub.store, chosen, now_of(request))
    return render(request, "report.html", caller, title="月报", month=chosen, summary=summary,
                  data=summary_json(summary))


@router.get("/report/download")
def report_download(request: Request, caller: Exporter, format: Literal["csv", "xlsx"] = "xlsx",
                    month: MonthQuery = None,
                    table: Literal["attendance", "windows", "ranking"] = "attendance") -> Response:
    hub = hub_of(request)
    chosen = month_or_this(request, month)
    name = f"attendance-{chosen}.xlsx" if format == "xlsx" else f"{table}-{chosen}.csv"
    with tempfile.TemporaryDirectory(prefix="hall-report-") as folder:
        paths = write_summary(summarize(hub.config, hub.store, chosen, now_of(request)), Path(folder))
        data = next(p for p in paths if p.name == name).read_bytes()
    return download(data, name, format)


# --- 设备 -------------------------------------------------------------------------------------

@router.get("/devices")
def devices(request: Request, caller: Annotated[Principal, Depends(require(Right.READ_ALL))]) -> Response:
    hub = hub_of(request)
    now = now_of(request)
    tz = hub.config.tz
    states: dict[str, list[AuditEntry]] = {}
    for entry in hub.store.entries("device_state"):
        states.setdefault(str(entry.data.get("device")), []).append(entry)
    drift: dict[str, AuditEntry] = {str(e.data.get("device")): e for e in hub.store.entries("clock_drift")}
    boxes = []
    for device in objects.devices_object(hub.config, hub.store, now):
        faults = hub.store.events(type="fault", device=device["id"], since=now - timedelta(days=FAULT_DAYS),
                                  until=now)
        recent = hub.store.events(device=device["id"], since=now - timedelta(days=1), until=now)
        units = sorted({str(f.body.get("unit")) for f in faults}
                       | {e.type for e in recent if e.type != "fault"})
        boxes.append({**device, "units": units, "faults": list(reversed(faults))[:20],
                      "history": list(reversed(states.get(device["id"], [])))[:5],
                      "drift": drift.get(device["id"])})
    return render(request, "devices.html", caller, title="设备", boxes=boxes, tz=tz, fault_days=FAULT_DAYS)
