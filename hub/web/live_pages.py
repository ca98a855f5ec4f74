"""大厅看板 the live board (`/board`, logged in, right Board) and 去向显示牌 the public display
(`/display`, no login), each with its Server-Sent Events stream (`/board/live`, `/display/live`).

The page is rendered whole once; then htmx's SSE extension (`hx-ext="sse"`, `sse-connect`,
`sse-swap`) swaps in the fragment the stream sends: the current one when the stream opens (also
after a reconnect: the hub restarted), then a fresh one after each change of the feed
(hub/web/live.py). Each view is computed once per change for all clients (live_views.ViewCache).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from hub.config import HubConfig
from hub.store.store import Store
from hub.web.auth import NotLoggedIn, Principal, hub_of, principal_of, require
from hub.web.live import POLL_S, LiveFeed, sse_stream
from hub.web.live_views import BoardView, DisplayView, ViewCache, WindowFilter, board_view, display_view
from hub.web.rights import Right
from hub.web.templating import render, templates

router = APIRouter(tags=["live"])
WindowsQuery = Annotated[str | None, Query(max_length=200, description="01-06 or 01,03,05")]
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@dataclass
class Live:
    """The app's change feed and the views it keeps current: `request.app.state.live`."""

    feed: LiveFeed
    board: ViewCache[BoardView]
    display: ViewCache[DisplayView]


def make_live(config: HubConfig, store: Store, poll_seconds: float = POLL_S) -> Live:
    return Live(LiveFeed(store, config.tz, poll_seconds),
                ViewCache(lambda: board_view(config, store, store.clock.now())),
                ViewCache(lambda: display_view(config, store, store.clock.now())))


def live_of(request: Request) -> Live:
    live: Live = request.app.state.live
    return live


def _filter(windows: str | None) -> WindowFilter:
    try:
        return WindowFilter.parse(windows)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


def _stream(body: object) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=STREAM_HEADERS)  # type: ignore[arg-type]


# --- 大厅看板 -----------------------------------------------------------------------------------

@router.get("/board")
def board(request: Request, caller: Annotated[Principal, Depends(require(Right.BOARD))]) -> Response:
    hub = hub_of(request)
    view = board_view(hub.config, hub.store, hub.store.clock.now())
    return render(request, "board.html", caller, view=view)


@router.get("/board/live")
async def board_live(request: Request, caller: Annotated[Principal, Depends(require(Right.BOARD))]
                     ) -> StreamingResponse:
    live = live_of(request)
    fragment = templates.get_template("_board.html")

    async def current() -> str | None:
        try:  # each update re-reads the user: a disabled account's stream ends
            await asyncio.to_thread(principal_of, request)
        except NotLoggedIn:
            return None
        return fragment.render(view=await live.board.get(live.feed.current))

    return _stream(sse_stream(live.feed, "board", current))


# --- 去向显示牌 (public) -------------------------------------------------------------------------

@router.get("/display")
def display(request: Request, windows: WindowsQuery = None) -> Response:
    chosen = _filter(windows)
    hub = hub_of(request)
    view = display_view(hub.config, hub.store, hub.store.clock.now())
    return templates.TemplateResponse(request, "display.html", {
        "view": view, "cards": view.only(chosen), "windows": windows or ""})


@router.get("/display/live")
async def display_live(request: Request, windows: WindowsQuery = None) -> StreamingResponse:
    chosen = _filter(windows)
    live = live_of(request)
    fragment = templates.get_template("_display.html")

    async def current() -> str:
        view = await live.display.get(live.feed.current)
        return fragment.render(view=view, cards=view.only(chosen))

    return _stream(sse_stream(live.feed, "display", current))
