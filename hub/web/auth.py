"""Who is asking: sessions (login form, cookie), API tokens (`Authorization: Bearer`), CSRF, the login
rate limit, and `require(...)`, the dependency every route names its right with.

Sessions live in this process's memory (one hub process serves the console): a restart logs
everybody out, which is acceptable for a hall's intranet console. Each request re-reads the user, so
disabling a user ends their sessions and tokens at once.

In a city console (hub/web/city_app.py) each hall's console is mounted under `/h/{hall}` and given a
`CityAccess`: the city's sessions, login limiter and users' store (the `[city] store`), so that one
login serves every hall; `require` answers 403 in a hall outside the user's `halls`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request

from hub.config import HubConfig
from hub.provenance import Provenance, web_author
from hub.store.store import Store
from hub.store.users import User, find_user, token_user
from hub.web.rights import RIGHTS, Right

log = logging.getLogger(__name__)

SESSION_COOKIE = "hall_session"
LOGIN_COOKIE = "hall_login"  # the login form's CSRF value (double submit), before any session
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Session:
    id: str
    user: str
    csrf: str
    expires: float  # time.time()


class Sessions:
    """Server-side sessions by random id; expired ones are dropped when met."""

    def __init__(self, hours: float, now: Callable[[], float] = time.time) -> None:
        self.seconds = hours * 3600
        self._now = now
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def create(self, user: str) -> Session:
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32),
                          self._now() + self.seconds)
        with self._lock:
            self._by_id = {k: s for k, s in self._by_id.items() if s.expires > self._now()}
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires <= self._now():
                del self._by_id[session_id]
                return None
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)


class LoginLimiter:
    """At most `failures` failed logins per (name, address) within `window` seconds."""

    def __init__(self, failures: int, window_seconds: float,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.window = failures, window_seconds
        self._now = now
        self._lock = threading.Lock()
        self._failed: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failed.setdefault(key, deque())
        while times and times[0] <= self._now() - self.window:
            times.popleft()
        return times

    def blocked(self, name: str, address: str) -> bool:
        with self._lock:
            return len(self._recent((name, address))) >= self.failures

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            self._recent((name, address)).append(self._now())

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failed.pop((name, address), None)


@dataclass(frozen=True)
class CityAccess:
    """What a city console shares with each hall console it mounts: one login for them all."""

    name: str
    halls: tuple[str, ...]  # in the city file's order (the hall selector's)
    accounts: Store  # users and tokens: the city's store
    sessions: Sessions
    limiter: LoginLimiter

    def visible(self, user: User) -> list[str]:
        return [hall for hall in self.halls if user.sees(hall)]


@dataclass
class WebHub:
    """What the routes share: `request.app.state.hub`."""

    config: HubConfig
    store: Store
    sessions: Sessions
    limiter: LoginLimiter
    city: CityAccess | None = None  # a hall console mounted in a city console

    @property
    def accounts(self) -> Store:
        """Where the console's users and tokens are: the hall's store, or the city's."""
        return self.store if self.city is None else self.city.accounts


def hub_of(request: Request) -> WebHub:
    hub: WebHub = request.app.state.hub
    return hub


def authored(request: Request, caller: Principal) -> Store:
    """The console's store appending as the logged-in user: every manual entry names them as its
    author (`via: "web"`, no operator signature: the console holds no operator's key)."""
    return hub_of(request).store.authored(Provenance(web_author(caller.user.name)))


@dataclass(frozen=True)
class Principal:
    """The user behind a request and how they proved it."""

    user: User
    via: Literal["session", "token"]
    session: Session | None = None

    @property
    def rights(self) -> frozenset[Right]:
        return RIGHTS.get(self.user.role, frozenset())

    def may(self, *rights: Right) -> bool:
        return any(right in self.rights for right in rights)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""


class NotLoggedIn(Exception):
    """No valid session or token: the API answers 401, a page redirects to the login form."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def site_path(request: Request, path: str) -> str:
    """`path` of this console as the browser sees it: under `/h/{hall}` in a city console."""
    return str(request.scope.get("root_path", "")) + path


def principal_of(request: Request) -> Principal:
    hub = hub_of(request)
    return identify(request, hub.accounts, hub.sessions)


def identify(request: Request, accounts: Store, sessions: Sessions) -> Principal:
    """The caller: a bearer token if the request carries an Authorization header (and then only
    that), else the session cookie. Raises NotLoggedIn."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotLoggedIn("Authorization must be `Bearer TOKEN`")
        user = token_user(accounts, token.strip())
        if user is None:
            raise NotLoggedIn("令牌无效 the token is unknown, revoked, or its user disabled")
        return Principal(user, "token")
    session_id = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(session_id) if session_id else None
    if session is None:
        raise NotLoggedIn("请先登录 not logged in")
    user = find_user(accounts, session.user)
    if user is None or user.disabled:
        sessions.drop(session.id)
        raise NotLoggedIn("用户已停用 the user is disabled")
    return Principal(user, "session", session)


def check_csrf(request: Request, expected: str, submitted: str | None) -> None:
    if not expected or submitted is None or not hmac.compare_digest(expected, submitted):
        log.warning("CSRF token missing or wrong on %s %s", request.method, request.url.path)
        raise HTTPException(403, "CSRF 校验失败 the form's CSRF token is missing or wrong: reload the page")


def require(*rights: Right) -> Callable[[Request], object]:
    """A dependency: the caller, who must hold one of `rights` (none given: any logged-in user).
    A state-changing request made with the session cookie must carry the session's CSRF token, in
    the `X-CSRF-Token` header or the form field `csrf`; one made with a bearer token needs none."""

    async def dependency(request: Request) -> Principal:
        caller = principal_of(request)
        hall = hub_of(request).config.hall
        if hub_of(request).city is not None and not caller.user.sees(hall):
            raise HTTPException(403, f"无权限 user {caller.user.name} may not see hall {hall}")
        if rights and not caller.may(*rights):
            raise HTTPException(403, f"无权限 role {caller.user.role} may not do this "
                                     f"(needs {' or '.join(r.value for r in rights)})")
        await csrf_of_session(request, caller)
        return caller

    return dependency


async def csrf_of_session(request: Request, caller: Principal) -> None:
    """A state-changing request made with the session cookie carries the session's CSRF token."""
    if caller.via == "session" and request.method not in SAFE_METHODS:
        submitted = request.headers.get(CSRF_HEADER)
        if submitted is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            submitted = str((await request.form()).get(CSRF_FIELD) or "") or None
        check_csrf(request, caller.csrf, submitted)


def own_scope(caller: Principal, staff: str | None) -> str | None:
    """The staff filter a read may use: anyone with READ_ALL their `staff` (None: everybody); a
    staff account always its own records, and 403 when it asks for another's."""
    if caller.may(Right.READ_ALL):
        return staff
    if caller.may(Right.READ_OWN) and caller.user.staff is not None:
        if staff is not None and staff != caller.user.staff:
            raise HTTPException(403, "无权限 a staff account sees only its own records "
                                     f"({caller.user.staff})")
        return caller.user.staff
    raise HTTPException(403, f"无权限 role {caller.user.role} may not read records")
