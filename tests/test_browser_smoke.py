"""The browser test infrastructure end to end, without the console: a tiny app serving the vendored
htmx and its SSE extension, loaded in Debian's Chromium behind the no-foreign-request guard."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from browser_harness import BrowserPage, ForeignRequestGuard, serve_app
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageChops

STATIC = Path(__file__).resolve().parents[1] / "hub" / "web" / "static"

_HEAD = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>冒烟测试</title>
<script src="/static/vendor/htmx.min.js"></script>
<script src="/static/vendor/htmx-ext-sse.min.js"></script>
<style>.glyph { font-size: 64px; display: inline-block; padding: 4px; }</style>
</head><body>"""

PAGE = _HEAD + """
<h1 id="heading">大厅看板（冒烟测试）</h1>
<button id="greet" hx-post="/fragment" hx-target="#slot">问候</button>
<div id="slot">（空）</div>
<div hx-ext="sse" sse-connect="/events"><ul id="live" sse-swap="tick" hx-swap="beforeend"></ul></div>
<p><span class="glyph" id="g1">大</span><span class="glyph" id="g2">厅</span></p>
</body></html>"""

FOREIGN_PAGE = _HEAD + """
<h1>外部图片</h1><img id="foreign" src="http://example.com/x.png" alt="">
</body></html>"""


def _smoke_app() -> FastAPI:
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return PAGE

    @app.get("/foreign", response_class=HTMLResponse)
    def foreign() -> str:
        return FOREIGN_PAGE

    @app.post("/fragment", response_class=HTMLResponse)
    def fragment() -> str:
        return '<p id="greeting">你好，值班员</p>'

    @app.get("/events")
    def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 60000\n\n"  # the stream ends after two events: no quick reconnect
            for n, text in ((1, "第一条"), (2, "第二条")):
                await asyncio.sleep(0.2)
                yield f"event: tick\ndata: <li>{text} #{n}</li>\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def smoke_server() -> Iterator[str]:
    with serve_app(_smoke_app()) as base_url:
        yield base_url


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("L")


def _has_ink(image: Image.Image) -> bool:
    low, high = image.getextrema()
    return high - low > 100


@pytest.mark.browser
def test_htmx_swap_sse_and_chinese_text_with_only_local_requests(
    smoke_server: str, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    page.goto(smoke_server + "/")
    page.evaluate("window.smokeMarker = 'same document'")

    page.click("#greet")
    page.wait_for_selector("#slot #greeting")
    assert page.inner_text("#greeting") == "你好，值班员"

    page.wait_for_selector("#live li:nth-child(2)")
    assert page.locator("#live li").all_inner_texts() == ["第一条 #1", "第二条 #2"]
    assert page.evaluate("window.smokeMarker") == "same document"  # updated without a reload

    assert page.inner_text("#heading") == "大厅看板（冒烟测试）"
    first, second = (_png(page.locator(s).screenshot()) for s in ("#g1", "#g2"))
    # Glyphs drawn from a CJK font: each character has ink, and they differ (missing glyphs would
    # be identical empty boxes).
    assert _has_ink(first) and _has_ink(second)
    assert ImageChops.difference(first, second).getbbox() is not None

    shot = browser_page.screenshot("browser-smoke")
    assert _has_ink(_png(shot.read_bytes()))
    assert browser_page.errors == []
    assert browser_page.guard.foreign == []


@pytest.mark.browser
def test_the_guard_blocks_and_reports_a_foreign_request(smoke_server: str, browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.goto(smoke_server + "/foreign")
    page.wait_for_load_state("load")
    assert page.evaluate("document.getElementById('foreign').naturalWidth") == 0  # aborted, not loaded
    assert browser_page.guard.take() == ["http://example.com/x.png"]


def test_the_guard_admits_loopback_only_and_fails_on_the_rest() -> None:
    guard = ForeignRequestGuard()
    assert guard.admit("http://127.0.0.1:8080/static/vendor/htmx.min.js")
    assert guard.admit("http://localhost:8080/events")
    assert guard.admit("ws://[::1]:8080/live")
    guard.assert_clean()
    assert not guard.admit("https://cdn.example.org/htmx.js")
    assert not guard.admit("http://127.0.0.1.example.net/")
    assert not guard.admit("ftp://127.0.0.1/x")
    with pytest.raises(AssertionError, match="cdn.example.org"):
        guard.assert_clean()
    assert guard.take() == ["https://cdn.example.org/htmx.js", "http://127.0.0.1.example.net/", "ftp://127.0.0.1/x"]
    guard.assert_clean()
