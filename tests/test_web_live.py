"""The live test of issue 9 in headless Chromium: a real hub (`hall-hub run` with `[web] listen`) on
a real Mosquitto, a real window edge box with a card reader and a ButtonBus desk simulator on ptys.
A desk key press changes the board (logged in) and the public display without a reload; the
display recovers by itself after the hub restarts. Screenshots: var/screenshots/board.png and
display.png."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_harness import BrowserPage, save_screenshot
from playwright.sync_api import Page, expect
from web_hall import free_port

from device_sims.buttonbus import ButtonBox, PolledBusSim
from device_sims.card import CardReaderSim
from tests.hall_harness import ROOT, Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

STAFF = [StaffSpec("S001", "张伟", "01", "0A004A7B2C"), StaffSpec("S002", "王芳", "02", "67003B51C6")]
PASSWORD = "live board password"
CLOCK = "2026-11-24T09:00:00+08:00,speed=1"  # in the morning session; stands until the edge is ready
DESK, EVALUATOR = 2, 1  # bus addresses
AWAY_MEETING, ON_DUTY = 0x11, 0x10  # desk keys
LIVE_MS = 10_000
UNITS = """
[window]
invite_seconds = 5
away_minutes = {{meeting = 45, errand = 30, break = 15, field = 120, other = 30}}
[[units]]
id = "door"
kind = "card"
driver = "rdm6300"
port = "{card}"
[[units]]
id = "bus1"
kind = "bus"
driver = "buttonbus"
port = "{bus}"
devices = [
  {{addr = 1, kind = "evaluator", window = "01"}},
  {{addr = 2, kind = "desk", window = "01", desk = "S001"}},
]
"""


@dataclass
class LiveHall:
    hall: Hall
    bus: PolledBusSim
    url: str


@pytest.fixture
def live_hall(tmp_path: Path, broker: Mosquitto) -> Iterator[LiveHall]:
    """The hub with its console, the window box, and 张伟 clocked in at window 01."""
    reader = CardReaderSim()
    bus = PolledBusSim([ButtonBox(EVALUATOR, 1), ButtonBox(DESK, 2)])
    hall = Hall(tmp_path / "hall", broker.url, STAFF, edge_device="win01", clock_spec=CLOCK)
    port = free_port()
    with hall.hub_config.open("a", encoding="utf-8") as config:
        config.write(f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
    hall.write_edge_config(bus.path, UNITS.format(card=reader.path, bus=bus.path))
    added = subprocess.run([sys.executable, "-m", "hub.cli", "user", "add", "--config", str(hall.hub_config),
                            "--name", "insp", "--role", "inspector", "--by", "管理员",
                            "--clock", "2026-11-24T08:59:00+08:00"],
                           input=PASSWORD + "\n", text=True,
                           capture_output=True, cwd=ROOT, timeout=60)
    assert added.returncode == 0, added.stderr
    hall.start_hub()
    hall.start_edge()
    try:
        reader.tap(STAFF[0].card, hold_seconds=0.05, interval=0.05)
        wait_for(lambda: len(hall.stored("clock")) == 1, 20, "张伟 clocks in", hall)
        yield LiveHall(hall, bus, f"http://127.0.0.1:{port}")
    finally:
        hall.stop()
        bus.close()
        reader.close()


def open_pages(browser_page: BrowserPage, url: str) -> tuple[Page, Page]:
    """The board, logged in as the inspector, and the display in a second page of the same context."""
    board = browser_page.page
    board.goto(url + "/")  # the home page: the login form, then the board
    board.fill("#name", "insp")
    board.fill("#password", PASSWORD)
    board.click("button[type=submit]")
    board.wait_for_url(url + "/board")
    display = board.context.new_page()
    display.on("pageerror", lambda error: browser_page.errors.append(str(error)))
    display.goto(url + "/display?windows=01-02")
    for page in (board, display):
        expect(page.locator('[data-window="01"]')).to_contain_text("张伟", timeout=LIVE_MS)
        expect(page.locator('[data-window="01"]')).to_contain_text("在岗")
        page.evaluate("window.sameDocument = true")  # gone if the page reloads
    return board, display


def press(live: LiveHall, key: int, signs: int) -> None:
    live.bus.press(DESK, key)
    wait_for(lambda: len(live.hall.stored("sign")) == signs, 20, f"sign event {signs}", live.hall)


def test_a_desk_key_press_changes_the_board_and_the_display_without_a_reload(
        live_hall: LiveHall, browser_page: BrowserPage) -> None:
    board, display = open_pages(browser_page, live_hall.url)
    expect(display.locator(".dwin")).to_have_count(2)
    expect(display.locator('[data-window="01"]')).to_contain_text("工号 S001")
    press(live_hall, AWAY_MEETING, 1)
    expect(board.locator('[data-window="01"]')).to_contain_text("暂离 · 会议 · 预计", timeout=LIVE_MS)
    expect(display.locator('[data-window="01"]')).to_contain_text("暂离 · 会议 ·", timeout=LIVE_MS)
    expect(display.locator('[data-window="01"] .sign')).to_contain_text("返回")
    for page in (board, display):
        assert page.evaluate("window.sameDocument") is True
    expect(board.locator(".live-status")).to_have_text("实时")
    board.bring_to_front()  # a page in the background draws no frames to take
    browser_page.screenshot("board")
    display.bring_to_front()
    save_screenshot(display, "display")
    assert browser_page.errors == []


def test_the_display_recovers_by_itself_after_the_hub_restarts(
        live_hall: LiveHall, browser_page: BrowserPage) -> None:
    _, display = open_pages(browser_page, live_hall.url)
    hall = live_hall.hall
    started = time.monotonic()
    hall.kill_hub(signal.SIGTERM)  # the console stops with the hub, its open streams ended
    assert hall.hub is not None and hall.hub.returncode == 0 and time.monotonic() - started < 8
    expect(display.locator(".live-status")).to_have_text("连接中断，正在重连…", timeout=LIVE_MS)
    ready = hall.ready_lines("hub")
    hall.start_hub()
    wait_for(lambda: hall.ready_lines("hub") > ready, 30, "the hub ready again", hall)
    press(live_hall, AWAY_MEETING, 1)
    expect(display.locator('[data-window="01"]')).to_contain_text("暂离 · 会议", timeout=LIVE_MS)
    press(live_hall, ON_DUTY, 2)
    expect(display.locator('[data-window="01"] .sign')).to_have_text("在岗", timeout=LIVE_MS)
    expect(display.locator(".live-status")).to_have_text("")
    assert display.evaluate("window.sameDocument") is True
    assert browser_page.errors == []
