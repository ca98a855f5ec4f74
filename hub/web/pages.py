"""The login form, logout and the home page: the pattern every page group's router follows.

`login_form_page` and `logged_in` are the city console's login too (hub/web/city_app.py), given the
city's users' store, sessions and limiter."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from hub.config import WebConfig
from hub.store.store import Store
from hub.store.users import login_user
from hub.web.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    LoginLimiter,
    Principal,
    Sessions,
    check_csrf,
    hub_of,
    require,
    site_path,
)
from hub.web.rights import Right
from hub.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(tags=["pages"])


def _safe_next(target: str) -> str:
    """Only a path of this site: never `//host` or a URL elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _secure(request: Request, web: WebConfig) -> bool:
    return web.secure_cookie or request.url.scheme == "https"


def login_form_page(request: Request, web: WebConfig, status: int = 200, error: str | None = None,
                    name: str = "", next_path: str = "/") -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", None, status_code=status, error=error, name=name,
                      next=_safe_next(next_path), login_csrf=token)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request, web), path="/login")
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return login_form_page(request, hub_of(request).config.web, next_path=next)


@router.post("/login")
def login(request: Request, name: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=1024)], csrf: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    hub = hub_of(request)
    return logged_in(request, hub.accounts, hub.sessions, hub.limiter, hub.config.web, name, password,
                     csrf, next)


def logged_in(request: Request, accounts: Store, sessions: Sessions, limiter: LoginLimiter,
              web: WebConfig, name: str, password: str, csrf: str, next: str) -> Response:
    """The login form's answer: a session cookie and the page asked for, or the form again."""
    check_csrf(request, request.cookies.get(LOGIN_COOKIE, ""), csrf)
    address = request.client.host if request.client else "-"
    if limiter.blocked(name, address):
        log.warning("login of %r from %s refused: too many failures", name, address)
        minutes = web.login_window_minutes
        return login_form_page(request, web, 429, f"登录失败次数过多, 请 {minutes} 分钟后再试", name, next)
    user = login_user(accounts, name, password)
    if user is None:
        limiter.failed(name, address)
        log.warning("login failed for %r from %s", name, address)
        return login_form_page(request, web, 401, "用户名或密码错误, 或账号已停用", name, next)
    limiter.succeeded(name, address)
    session = sessions.create(user.name)
    log.info("login: %s (%s) from %s", user.name, user.role, address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session.id, max_age=int(sessions.seconds), httponly=True,
                        samesite="strict", secure=_secure(request, web), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, caller: Annotated[Principal, Depends(require())]) -> Response:
    return logged_out(hub_of(request).sessions, caller)


def logged_out(sessions: Sessions, caller: Principal) -> Response:
    if caller.session is not None:
        sessions.drop(caller.session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(request: Request, caller: Annotated[Principal, Depends(require())]) -> Response:
    """The live board is the home page of everyone who may see it (hub/web/live_pages.py)."""
    if caller.may(Right.BOARD):
        return RedirectResponse(site_path(request, "/board"), status_code=303)
    return render(request, "home.html", caller)
