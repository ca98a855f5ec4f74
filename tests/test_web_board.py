"""The live board and the public display without a browser: who may see them, what the display
shows and never shows, the windows filter, and the change feed's SSE stream on a real server."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from browser_harness import serve_app
from fastapi.testclient import TestClient
from test_hub_window import EDGE, at
from web_hall import PASSWORD, WebHall, make_web_hall

from hub.domain import StoredEvent
from hub.ingest import Decoder
from hub.web.app import create_app
from hub.web.live import Change, LiveFeed, sse_stream
from hub.web.live_views import WindowFilter
from wire.clock import FixedClock
from wire.envelope import format_ts, load_private_key, load_public_key, seal

CARDS = ("0A004A7B2C", "67003B51C6")  # the roster's cards (tests/test_hub_window.py)


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHall]:
    made = make_web_hall(tmp_path_factory.mktemp("board"))
    yield made
    made.store.close()


@pytest.fixture(scope="module")
def client(hall: WebHall) -> Iterator[TestClient]:
    """The console as it stood at 10:15: S001 on duty at 01, S002 away at a meeting until 10:30."""
    store = hall.reopen("10:15")
    yield TestClient(create_app(hall.config, store))
    store.close()


def login(client: TestClient, name: str) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token.group(1),
                                       "next": "/"}, follow_redirects=False)
    assert done.status_code == 303, done.text


def test_the_display_needs_no_login_and_shows_names_and_numbers_never_cards(client: TestClient) -> None:
    page = client.get("/display")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="zh-CN">' in html and "工作人员去向" in html
    assert "张伟" in html and "工号 S001" in html and "王芳" in html and "工号 S002" in html
    assert "暂离 · 会议 · 10:30 返回" in html and "在岗" in html
    assert "本月满意率" in html
    for card in CARDS:
        assert card not in html and card.lower() not in html
    assert "13800000000" not in html  # a complainant's contact: never on a page
    assert "<form" not in html and "<button" not in html and "<input" not in html  # no controls
    assert 'sse-connect="/display/live"' in html and "/static/vendor/htmx-ext-sse.min.js" in html
    assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(("spec", "shown"), [("02", ["02"]), ("01-01", ["01"]), ("01,02", ["01", "02"]),
                                             ("1-2", ["01", "02"]), ("03-06", [])])
def test_the_display_shows_the_chosen_windows(client: TestClient, spec: str, shown: list[str]) -> None:
    page = client.get("/display", params={"windows": spec})
    assert page.status_code == 200
    assert re.findall(r'class="dwin [^"]*" data-window="(\w+)"', page.text) == shown
    assert f"/display/live?windows={spec.replace(',', '%2C')}" in page.text
    if not shown:
        assert "没有要显示的窗口" in page.text


@pytest.mark.parametrize("spec", ["01;02", "a b", "01-02-03", ","])
def test_a_malformed_windows_filter_is_400(client: TestClient, spec: str) -> None:
    assert client.get("/display", params={"windows": spec}).status_code == 400
    assert client.get("/display/live", params={"windows": spec}).status_code == 400


def test_the_window_filter() -> None:
    chosen = WindowFilter.parse("01-06, 10")
    assert [w for w in ("01", "06", "07", "10", "x") if chosen.admits(w)] == ["01", "06", "10"]
    assert WindowFilter.parse(None).admits("anything") and WindowFilter.parse(" ").admits("x")
    with pytest.raises(ValueError):
        WindowFilter.parse("01..06")


@pytest.mark.parametrize("path", ["/board", "/board/live"])
def test_the_board_and_its_stream_redirect_to_the_login_form(hall: WebHall, path: str) -> None:
    client = TestClient(create_app(hall.config, hall.store))
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/login?next={path}"


@pytest.mark.parametrize("who", ["insp", "mgr", "s1"])
def test_every_role_sees_the_board_as_its_home_page(hall: WebHall, who: str) -> None:
    store = hall.reopen("10:15")
    try:
        client = TestClient(create_app(hall.config, store))
        login(client, who)
        home = client.get("/", follow_redirects=False)
        assert home.status_code == 303 and home.headers["location"] == "/board"
        page = client.get("/board")
        assert page.status_code == 200
        html = page.text
        assert "大厅看板" in html and 'sse-connect="/board/live"' in html and 'href="/board"' in html
        assert "01号窗口" in html and "张伟" in html and "在岗" in html
        assert "王芳" in html and "暂离 · 会议 · 预计 10:30 返回" in html
        assert "今日评价 1 次 · 满意率 100.0%" in html  # window 01 by 10:15 (the repeat is not counted)
        assert "今日评价 1 次 · 满意率 0.0%" in html  # window 02: the bad rating while nobody was there
        assert "设备状态" in html and "entrance" in html and "今日发现" in html
        for card in CARDS:
            assert card not in html
    finally:
        store.close()


# --- the change feed and its stream --------------------------------------------------------------

def _sign_event(seq: int, hm: str, state: str, reason: str | None) -> StoredEvent:
    """A desk sign of S001 at window 01, signed by the test hall's entrance key."""
    moment = at(hm)
    body = {"window": "01", "desk": "S001", "state": state, "reason": reason,
            "back_at": format_ts(at("10:45")) if state == "away" else None}
    raw = seal(load_private_key(EDGE.private_hex), hall="h1", device="entrance", seq=seq,
               ts=format_ts(moment), type="sign", body=body).raw
    decoder = Decoder("h1", "hall/v1", {"entrance": load_public_key(EDGE.public_hex)}, 131072)
    item = decoder.decode("hall/v1/h1/entrance/evt/sign", raw, moment)
    assert isinstance(item, StoredEvent), item
    return item


def _events(lines: Iterator[str], want: int, deadline: float) -> list[tuple[str, str]]:
    """(event name, data) of the next `want` SSE messages."""
    found: list[tuple[str, str]] = []
    name, data = "", []
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and name:
            found.append((name, "\n".join(data)))
            name, data = "", []
            if len(found) == want:
                break
    return found


def test_the_display_stream_sends_the_state_then_each_change(tmp_path: Path) -> None:
    hall = make_web_hall(tmp_path)
    reader = hall.reopen("10:15")
    try:
        with serve_app(create_app(hall.config, reader, live_poll_seconds=0.1)) as base, \
                httpx.Client(base_url=base, timeout=10) as http, \
                http.stream("GET", "/display/live?windows=01") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-store"
            lines = stream.iter_lines()
            [(event, first)] = _events(lines, 1, time.monotonic() + 10)
            assert event == "display" and "张伟" in first and "暂离" not in first and "02号窗口" not in first
            sent = time.monotonic()
            assert hall.store.ingest([_sign_event(20, "10:12", "away", "errand")]) == ["stored"]
            [(event, second)] = _events(lines, 1, time.monotonic() + 10)
            assert event == "display" and "暂离 · 外出 · 10:45 返回" in second
            assert time.monotonic() - sent < 2.0  # within 2 s of the event reaching the store
    finally:
        reader.close()
        hall.store.close()


@dataclass
class _Head:
    seq: int


class _FakeStore:
    """What the feed reads: the log's head and the clock."""

    def __init__(self) -> None:
        self.seq = 1
        self.clock = FixedClock(datetime.fromisoformat("2026-11-24T10:00:00+08:00"))

    def last_audit(self) -> _Head:
        return _Head(self.seq)


def test_a_client_that_stops_reading_is_dropped_without_holding_up_the_others() -> None:
    async def scenario() -> None:
        store = _FakeStore()
        feed = LiveFeed(store, store.clock.now().tzinfo, poll_seconds=60, queue_size=2)  # type: ignore[arg-type]
        reading, stalled = await feed.subscribe(), await feed.subscribe()
        for n in range(5):
            feed.publish(Change(n, "2026-11-24T10:00"))
            assert (await reading.queue.get()) == Change(n, "2026-11-24T10:00")
        assert stalled.dropped and not reading.dropped and feed.clients == 1
        feed.close()
        assert await reading.queue.get() is None and feed.clients == 0

    asyncio.run(scenario())


def test_streams_send_the_state_first_heartbeats_and_end_when_the_feed_closes() -> None:
    async def scenario() -> list[str]:
        store = _FakeStore()
        feed = LiveFeed(store, store.clock.now().tzinfo, poll_seconds=0.02)  # type: ignore[arg-type]
        renders = iter(["<p>一</p>", "<p>二\n三</p>"])

        async def render() -> str:
            return next(renders)

        stream = sse_stream(feed, "board", render, heartbeat_s=0.05)
        got = [await anext(stream), await anext(stream), await anext(stream)]
        store.seq = 2  # a new log entry: the poller notices it
        got.append(await anext(stream))
        feed.close()
        got += [chunk async for chunk in stream]
        return got

    got = asyncio.run(scenario())
    assert got[0] == "retry: 2000\n\n"
    assert got[1] == "event: board\ndata: <p>一</p>\n\n"
    assert got[2] == ": heartbeat\n\n"
    assert got[3] == "event: board\ndata: <p>二\ndata: 三</p>\n\n"
    assert len(got) == 4  # closed: the stream ended
