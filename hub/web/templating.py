"""The console's Jinja2 templates (hub/web/templates/) and the navigation every page shows.

A page renders with `render(request, "page.html", caller, **context)`: the base layout gets the
user, their CSRF token (for every form: `<input type="hidden" name="csrf" value="{{ csrf }}">`) and
the navigation filtered by the user's rights. In a city console (hub/web/city_app.py) it gets too
`base`, the prefix of the hall console's links (`/h/h01`; "" alone), and `halls`, the hall selector
(the halls the user may see).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from hub.store.users import ROLE_ZH
from hub.web.auth import Principal
from hub.web.rights import Right

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    rights: tuple[Right, ...] = ()  # any of these; none: every logged-in user


# The console's menu, in order. A page group adds its entry here when its router is included.
NAV: tuple[NavItem, ...] = (
    NavItem("/board", "大厅看板", (Right.BOARD,)),
    NavItem("/attendance", "考勤", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/ratings", "好差评", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/away", "离岗", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/findings", "发现", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/cases", "差评整改", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/complaints", "投诉", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/leave", "请假", (Right.READ_ALL, Right.READ_OWN)),
    NavItem("/log", "审计日志", (Right.READ_LOG,)),
    NavItem("/report", "月报", (Right.EXPORT,)),
    NavItem("/devices", "设备", (Right.READ_ALL,)),
)


def nav_for(caller: Principal | None, menu: tuple[NavItem, ...] = NAV) -> list[NavItem]:
    if caller is None:
        return []
    return [item for item in menu if not item.rights or caller.may(*item.rights)]


def _may_nothing(*rights: Right) -> bool:
    return False


def render(request: Request, template: str, caller: Principal | None, /, status_code: int = 200,
           **context: Any) -> Response:
    city = request.app.state.city
    return templates.TemplateResponse(request, template, {
        "base": str(request.scope.get("root_path", "")),
        "halls": city.visible(caller.user) if city is not None and caller is not None else [],
        "city_name": city.name if city is not None else None,
        "user": caller.user if caller else None,
        "role_zh": ROLE_ZH.get(caller.user.role, caller.user.role) if caller else None,
        "csrf": caller.csrf if caller else "",
        "nav": nav_for(caller, request.app.state.menu),
        "may": caller.may if caller else _may_nothing,
        "hall": request.app.state.title,
        "printers": request.app.state.printers,
        **context,
    }, status_code=status_code)
