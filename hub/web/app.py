"""The console's FastAPI application: `create_app(config, store)`.

Structure (README "Web console"): one router per page group (hub/web/pages.py: login, logout, home;
hub/web/api.py: `/api/v1/`), each route naming its right with `Depends(require(Right.X))`
(hub/web/auth.py, rights in hub/web/rights.py), pages rendered from hub/web/templates/ through
hub/web/templating.py. Static files (hub/web/static/, vendored assets under static/vendor/) are
served by the hub itself: nothing is loaded from another host.

Given a `CityAccess` (hub/web/auth.py), the app is one hall's console mounted in a city console
(hub/web/city_app.py, under `/h/{hall}`): its users, sessions and login limiter are the city's, its
links and redirects carry the mount's prefix (`site_path`, `{{ base }}` in the templates), and the
login form it sends a stranger to is the city's `/login`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response as StarletteResponse

from hub.config import HubConfig
from hub.store.store import Store
from hub.web import (
    api,
    live_pages,
    pages,
    pages_attendance,
    pages_ledger,
    pages_print,
    pages_ratings,
    pages_records,
)
from hub.web.auth import CityAccess, LoginLimiter, NotLoggedIn, Sessions, WebHub
from hub.web.live import POLL_S
from hub.web.templating import NAV, STATIC_DIR, render

# What every response carries: no framing, no sniffing, no referrer, scripts and styles from here only.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
}


def create_app(config: HubConfig, store: Store, *, live_poll_seconds: float = POLL_S,
               city: CityAccess | None = None) -> FastAPI:
    """`live_poll_seconds`: how often the live pages' feed reads the log's head (hub/web/live.py);
    `city`: the city console this hall's console is mounted in (None: a hall's console alone)."""
    app = FastAPI(title=f"{config.hall} hall console", docs_url=None, redoc_url=None, openapi_url=None)
    if city is None:
        app.state.hub = WebHub(config, store, Sessions(config.web.session_hours),
                               LoginLimiter(config.web.login_failures, config.web.login_window_minutes * 60))
    else:
        app.state.hub = WebHub(config, store, city.sessions, city.limiter, city)
    app.state.title, app.state.printers = config.hall, config.web.printers
    app.state.city, app.state.menu = city, NAV
    app.state.live = live_pages.make_live(config, store, live_poll_seconds)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(live_pages.router)
    app.include_router(pages_attendance.router)
    app.include_router(pages_ratings.router)
    app.include_router(pages_ledger.router)
    app.include_router(pages_records.router)
    app.include_router(pages_print.router)
    guard(app)
    return app


def guard(app: FastAPI) -> None:
    """What every console app has: the static files, the security headers, the login redirect and
    the errors as a page or JSON (a city console's app too)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BaseHTTPMiddleware, dispatch=_headers)
    app.add_exception_handler(NotLoggedIn, _not_logged_in)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]


def _local_path(request: Request) -> str:
    """The path within this app (without a city console's `/h/{hall}` prefix)."""
    return request.url.path.removeprefix(str(request.scope.get("root_path", "")))


def _is_api(request: Request) -> bool:
    return _local_path(request).startswith("/api/")


async def _headers(request: Request, call_next: RequestResponseEndpoint) -> StarletteResponse:
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    if _is_api(request) or _local_path(request).startswith(("/login", "/logout")):
        response.headers["Cache-Control"] = "no-store"
    return response


async def _not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": exc.why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/login?next={quote(target)}" if request.method == "GET" else "/login"
    return RedirectResponse(login, status_code=303)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return render(request, "error.html", None, status_code=exc.status_code, status=exc.status_code,
                  message=exc.detail)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"detail": f"请求无效 invalid request: {problems}"}, status_code=422)
