"""A city's console (`hall-hub web --config city.toml`): each hall's own console mounted under
`/h/{hall}/` (hub/web/app.py `create_app`, every page as a hall has it), and the city's app at `/`:
`/login` and `/logout` for them all, `/city` (the halls ranked by this month's 满意率 and today's
attendance, the devices offline across halls) and `/api/v1/city` (the same as JSON).

One login: the city's users are kept in the `[city] store` (hub/store/users.py, with `halls` for a
user limited to some halls); each mounted hall console is given a `CityAccess` (hub/web/auth.py) with
that store and the city's sessions and login limiter, so the session cookie of `/login` is good in
every hall the user may see, and a hall outside the user's halls answers 403 (pages and API).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from hub.city.config import CityConfig
from hub.city.console import UNKNOWN, CityLines, HallLines, city_object, offline_across, owners_of
from hub.store.store import Store
from hub.web.app import create_app, guard
from hub.web.auth import CityAccess, LoginLimiter, Principal, Sessions, csrf_of_session, identify
from hub.web.live import POLL_S
from hub.web.pages import logged_in, logged_out, login_form_page
from hub.web.rights import Right
from hub.web.templating import render

router = APIRouter(tags=["city"])
Owners = Callable[[], Mapping[str, str]]


def create_city_app(city: CityConfig, accounts: Store, stores: Mapping[str, Store], *,
                    owners: Owners | None = None, lines: HallLines | None = None,
                    live_poll_seconds: float = POLL_S) -> FastAPI:
    """`accounts`: the city's store (its users and tokens); `stores`: each hall's, by id; `owners`:
    each hall's owning worker (default: read from the city's locks, "未知" when unreachable);
    `lines`: the halls' lines of the city page (default: each kept console.CACHE_SECONDS)."""
    web = city.city.web
    access = CityAccess(city.city.name, tuple(hall.hall for hall in city.halls), accounts,
                        Sessions(web.session_hours),
                        LoginLimiter(web.login_failures, web.login_window_minutes * 60))
    app = FastAPI(title=f"{city.city.name} city console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.city, app.state.config = access, city
    app.state.title, app.state.printers, app.state.menu = city.city.name, [], ()
    app.state.stores = stores
    app.state.owners = owners or (lambda: owners_of(city))
    app.state.lines = lines or HallLines(city, stores)
    app.include_router(router)
    for hall in city.halls:
        app.mount(f"/h/{hall.hall}", create_app(hall, stores[hall.hall], city=access,
                                                live_poll_seconds=live_poll_seconds))
    guard(app)
    return app


async def city_caller(request: Request) -> Principal:
    """The caller, by the city's users and sessions; CSRF checked as a hall's console does."""
    access: CityAccess = request.app.state.city
    caller = identify(request, access.accounts, access.sessions)
    await csrf_of_session(request, caller)
    return caller


Caller = Annotated[Principal, Depends(city_caller)]


def _overseer(caller: Principal) -> None:
    if not caller.may(Right.READ_ALL):
        raise HTTPException(403, f"无权限 role {caller.user.role} may not see the city page "
                                 f"(needs {Right.READ_ALL.value})")


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return login_form_page(request, request.app.state.config.city.web, next_path=next)


@router.post("/login")
def login(request: Request, name: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=1024)], csrf: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    access: CityAccess = request.app.state.city
    return logged_in(request, access.accounts, access.sessions, access.limiter,
                     request.app.state.config.city.web, name, password, csrf, next)


@router.post("/logout")
def logout(request: Request, caller: Caller) -> Response:
    return logged_out(request.app.state.city.sessions, caller)


@router.get("/")
def home(request: Request, caller: Caller) -> Response:
    """The city page for those who may read every record; else the first hall the user may see."""
    halls = request.app.state.city.visible(caller.user)
    if caller.may(Right.READ_ALL) or not halls:
        return RedirectResponse("/city", status_code=303)
    return RedirectResponse(f"/h/{halls[0]}/", status_code=303)


def _lines(request: Request, caller: Principal) -> CityLines:
    _overseer(caller)
    access: CityAccess = request.app.state.city
    cache: HallLines = request.app.state.lines
    return cache.lines(access.visible(caller.user), request.app.state.owners())


@router.get("/city")
def city_page(request: Request, caller: Caller) -> Response:
    lines, cache = _lines(request, caller), request.app.state.lines
    return render(request, "city.html", caller, title="全市大厅", lines=lines.ranked, unread=lines.unread,
                  offline=offline_across(lines.ranked), unknown=UNKNOWN, cache_seconds=cache.seconds)


@router.get("/api/v1/city")
def city_api(request: Request, caller: Caller) -> dict[str, Any]:
    lines = _lines(request, caller)
    return city_object(request.app.state.config, lines, request.app.state.city.accounts.clock.now())
