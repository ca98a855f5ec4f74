"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

Browsers cannot be downloaded here, so `playwright install` is never run: Playwright (pinned in the
test extra) launches the system's Chromium, which `make test` installs with apt-get when missing.

Fixtures (registered in tests/conftest.py through `pytest_plugins`):

- `chromium` (module scope): the launched Browser. Playwright gives it a fresh temporary profile
  (user-data dir) and removes it on close; each test gets its own context (cookies, storage).
- `browser_page`: a `BrowserPage` for one test: `.page` (a Playwright Page, 1366x768, zh-CN,
  Asia/Shanghai), `.guard` (the `ForeignRequestGuard` of its context), `.errors` (uncaught page
  errors) and `.screenshot(name)`. Every request of the context goes through the guard: loopback
  requests proceed, any other host is aborted and recorded, and at teardown the test errors if one
  was recorded. A test that provokes one on purpose takes it with `guard.take()`.

Helpers: `serve_app(app)` runs an ASGI app under uvicorn in a thread on a free loopback port and
yields its base URL; `save_screenshot(page, name)` writes var/screenshots/NAME.png.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Route, WebSocket, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}  # the office screen of issue 9
TIMEOUT_MS = 5_000  # Playwright's default is 30 s; a console page that takes 5 s is already a failure
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_LOCAL_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_SCREENSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ForeignRequestGuard:
    """Lets a context reach only the loopback hub; records every attempt to reach another host."""

    def __init__(self) -> None:
        self._foreign: list[str] = []

    @staticmethod
    def is_local(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in _LOCAL_SCHEMES and parts.hostname in LOOPBACK_HOSTS

    def admit(self, url: str) -> bool:
        """True for a loopback URL; otherwise record it and return False."""
        if self.is_local(url):
            return True
        self._foreign.append(url)
        return False

    @property
    def foreign(self) -> list[str]:
        """The foreign URLs recorded so far, in order."""
        return list(self._foreign)

    def take(self) -> list[str]:
        """The foreign URLs recorded so far, forgotten: for a test that provokes them on purpose."""
        taken, self._foreign = self._foreign, []
        return taken

    def assert_clean(self) -> None:
        if self._foreign:
            raise AssertionError(f"the page tried to reach another host: {', '.join(self._foreign)}")

    def route(self, route: Route) -> None:
        """The context's handler for every request: continue loopback, abort the rest."""
        if self.admit(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    def websocket(self, ws: WebSocket) -> None:
        """WebSockets are not routed; a foreign one is recorded (and fails the test at teardown)."""
        self.admit(ws.url)


def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Write var/screenshots/NAME.png (NAME: letters, digits, `_.-`) and return its path."""
    if not _SCREENSHOT_NAME.fullmatch(name):
        raise ValueError(f"screenshot name {name!r}: use letters, digits, '_', '.' and '-'")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@dataclass
class BrowserPage:
    """One test's page, the guard of its context and the page's uncaught errors."""

    page: Page
    guard: ForeignRequestGuard
    errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        return save_screenshot(self.page, name, full_page=full_page)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make system-packages` installs it", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[BrowserPage]:
    guard = ForeignRequestGuard()
    context = chromium.new_context(
        viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai", service_workers="block"
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", guard.route)
    page = context.new_page()
    session = BrowserPage(page, guard)
    page.on("websocket", guard.websocket)
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    try:
        yield session
    finally:
        context.close()
    guard.assert_clean()


class _ThreadServer(uvicorn.Server):
    """uvicorn that says when it is listening (no polling)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def serve_app(app: Any, *, startup_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve an ASGI app on a free 127.0.0.1 port in a named thread; yield "http://127.0.0.1:PORT".

    The server stops when the block ends, giving open responses (an SSE stream) one second.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    server = _ThreadServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"web-test-{port}", daemon=True
    )
    thread.start()
    try:
        if not server.ready.wait(startup_timeout_s):
            raise RuntimeError(f"the test web server on port {port} did not start in {startup_timeout_s} s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout_s)
        sock.close()
