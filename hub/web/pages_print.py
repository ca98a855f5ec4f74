"""打印: the console's print buttons. A manager prints a complaint's receipt (投诉回执) or the month's
notice for the board (月度公示) on a printer listed in `[web] printers`, as `complaints add --print`
and `report month --print` do. The job is sent as a hub-signed `print` command (so the console needs
the hub's private key: `hall-hub run` has it, an inspector's `hall-hub web` usually not) and logged
as a `print_job` entry naming the user; the box acknowledges it once printed (the ack is an event).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from hub.complaints import complaints_in
from hub.hall import month_days
from hub.month_summary import summarize
from hub.receipts import Target, complaint_receipt, month_receipt, print_on
from hub.web.auth import Principal, authored, hub_of, require, site_path
from hub.web.forms import now_of
from hub.web.rights import Right

router = APIRouter()
Printer = Annotated[Principal, Depends(require(Right.PRINT))]
TargetForm = Annotated[str, Form(min_length=3, max_length=130)]


@router.post("/complaints/{complaint_id}/print")
def print_complaint(request: Request, complaint_id: str, target: TargetForm, caller: Printer) -> Response:
    hub = hub_of(request)
    found = next((c for c in complaints_in(hub.store, hub.config, None, None, now_of(request))
                  if c.id == complaint_id), None)
    if found is None:
        raise HTTPException(404, f"无此投诉 no complaint {complaint_id!r}")
    _send(request, caller, target, complaint_receipt(hub.config, found, ""), complaint_id)
    return RedirectResponse(site_path(request, f"/complaints/{complaint_id}?printed=1"), status_code=303)


@router.post("/report/print")
def print_month(request: Request, caller: Printer, target: TargetForm,
                month: Annotated[str, Form(pattern=r"^[0-9]{4}-[0-9]{2}$")]) -> Response:
    hub = hub_of(request)
    try:
        month_days(month)
    except ValueError as exc:
        raise HTTPException(422, f"月份无效 bad month {month!r}") from exc
    summary = summarize(hub.config, hub.store, month, now_of(request))
    _send(request, caller, target, month_receipt(summary, ""), month)
    return RedirectResponse(site_path(request, f"/report?month={month}&printed=1"), status_code=303)


def _send(request: Request, caller: Principal, target: str, job: dict[str, Any], ref: str) -> None:
    hub = hub_of(request)
    if target not in hub.config.web.printers:
        raise HTTPException(400, f"打印机 {target!r} 不在 [web] printers 中 not a printer the console offers")
    try:
        hub.config.private_key_hex()
    except (ValueError, OSError) as exc:
        raise HTTPException(400, "本控制台没有中心私钥, 不能下发打印任务 (the console runs without the "
                                 "hub's private key; print from `hall-hub run` or the CLI)") from exc
    command_id, _ = print_on(hub.config, hub.store, Target.parse(target), job, wait=0)
    authored(request, caller).append("print_job", {
        "by": caller.user.name, "target": target, "title": job["title"], "command": command_id, "of": ref},
        ref=ref[:64])
