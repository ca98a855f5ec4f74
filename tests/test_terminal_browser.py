"""The entrance terminal's page live in headless Chromium (issue 13): a real hub and a real edge
agent (`hall-edge run` with `[terminal] listen` and `[sound] device = "null"`) on a real Mosquitto,
a card reader simulator on a pty and the simulated MJPEG camera read by OpenCV.

A tap shows the owner's name within a second and the hub's judgement when its `show` arrives; an
unknown card says so; a face gets its box on the preview and then its name; with the hub stopped a
tap still shows the name and 已记录，待上传. Screenshot: var/screenshots/terminal.png (the README's
docs/terminal.png is one of these)."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_harness import BrowserPage
from playwright.sync_api import Page, expect

from device_sims.camera import CameraSim
from device_sims.card import CardReaderSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto, free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.face]

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
OBAMA = FACES / "enroll" / "obama" / "obama.jpg"
STAFF = [StaffSpec("S001", "张伟", "01", "0A004A7B2C"), StaffSpec("S002", "欧巴马", "02", "67003B51C6"),
         StaffSpec("S003", "王芳", "03", "1F00644BB6")]
UNKNOWN_CARD = "0B00112233"
CLOCK = "2026-11-24T08:42:00+08:00,speed=1"  # 12 minutes into the morning session: 迟到 12 分钟
SHOWN_MS = 1_000  # a punch is on the screen within a second
HUB_MS = 10_000


@dataclass
class TerminalHall:
    hall: Hall
    reader: CardReaderSim
    camera: CameraSim
    url: str


@pytest.fixture(scope="module")
def terminal_hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerminalHall]:
    workdir = tmp_path_factory.mktemp("terminal")
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    reader, camera = CardReaderSim(), CameraSim(fps=12).start()
    hall = Hall(workdir / "hall", broker.url, STAFF, clock_spec=CLOCK)
    port = free_port()
    hall.write_edge_config(reader.path, (
        f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{reader.path}"\n'
        f'[[units]]\nid = "cam"\nkind = "face"\nsource = "{camera.url}"\nrequire_live = true\n'
        f'[terminal]\nlisten = "127.0.0.1:{port}"\n[sound]\ndevice = "null"\n'))
    try:
        enrolled = hall.cli("staff", "enroll", "--staff", "S002", "--by", "管理员", "--no-publish",
                            str(OBAMA), "--clock", "2026-11-24T08:00:00+08:00")  # the hall is live on the day
        assert enrolled.returncode == 0, enrolled.stderr
        hall.start_hub()
        hall.start_edge()
        log = hall.workdir / "edge.log"
        wait_for(lambda: "1 face encoding(s)" in log.read_text(), 30, "the gallery at the edge", hall)
        yield TerminalHall(hall, reader, camera, f"http://127.0.0.1:{port}/")
    finally:
        hall.stop()
        camera.close()
        reader.close()
        broker.stop()


def open_terminal(browser_page: BrowserPage, url: str) -> Page:
    page = browser_page.page
    page.goto(url)
    expect(page.locator("#date")).to_contain_text("2026年11月24日 星期二")
    expect(page.locator("#clock")).to_contain_text("08:")  # the box's hall clock, not the browser's
    return page


def tap(live: TerminalHall, card: str) -> float:
    started = time.monotonic()
    live.reader.tap(card, hold_seconds=0.05, interval=0.05)
    return started


def test_a_tap_shows_the_name_within_a_second_and_then_the_hubs_judgement(
        terminal_hall: TerminalHall, browser_page: BrowserPage) -> None:
    page = open_terminal(browser_page, terminal_hall.url)
    started = tap(terminal_hall, "0A004A7B2C")
    latest = page.locator("#latest")
    expect(latest).to_contain_text("张伟", timeout=SHOWN_MS)
    assert time.monotonic() - started < 1.0 + 0.1  # the tap's own frames take 0.05 s
    expect(latest).to_contain_text("工号 S001")
    expect(latest.locator(".result")).to_have_text("签到成功")
    expect(latest.locator(".verdict")).to_have_text("迟到 12 分钟", timeout=HUB_MS)
    expect(latest).not_to_contain_text("待上传")
    assert browser_page.errors == []


def test_an_unknown_card_says_so(terminal_hall: TerminalHall, browser_page: BrowserPage) -> None:
    page = open_terminal(browser_page, terminal_hall.url)
    tap(terminal_hall, UNKNOWN_CARD)
    expect(page.locator("#latest .result")).to_have_text("未登记的卡", timeout=SHOWN_MS)
    expect(page.locator("#latest")).to_have_class(re.compile(r"\bbad\b"))  # in the failure colour
    assert browser_page.errors == []


def test_a_face_gets_its_box_on_the_preview_and_then_its_name(
        terminal_hall: TerminalHall, browser_page: BrowserPage) -> None:
    page = open_terminal(browser_page, terminal_hall.url)
    expect(page.locator("#camera")).to_be_visible()
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0")  # the MJPEG preview
    camera = terminal_hall.camera
    camera.photo(OBAMA, 1.5)  # a still face: recognised, then asked to blink; then it blinks
    camera.blink(OBAMA, 6, blinks=2)
    expect(page.locator("#facebox")).to_be_visible(timeout=HUB_MS)
    expect(page.locator("#prompt")).to_have_text("请眨眼", timeout=HUB_MS)
    expect(page.locator("#latest .result")).to_have_text("签到成功", timeout=20_000)
    expect(page.locator("#latest .name")).to_have_text("欧巴马")
    expect(page.locator("#latest .verdict")).to_contain_text("迟到", timeout=HUB_MS)
    expect(page.locator("#lines")).to_contain_text("张伟")  # the earlier punches, below
    expect(page.locator("#lines")).to_contain_text("未登记的卡")
    browser_page.screenshot("terminal", full_page=False)
    camera.empty(1)
    assert browser_page.errors == []


def test_with_the_hub_stopped_a_tap_still_shows_the_name_and_waits_to_upload(
        terminal_hall: TerminalHall, browser_page: BrowserPage) -> None:
    page = open_terminal(browser_page, terminal_hall.url)
    hall = terminal_hall.hall
    hall.kill_hub(signal.SIGTERM)
    tap(terminal_hall, "1F00644BB6")
    latest = page.locator("#latest")
    expect(latest).to_contain_text("王芳", timeout=SHOWN_MS)
    expect(latest.locator(".pending")).to_have_text("已记录，待上传", timeout=5_000)
    ready = hall.ready_lines("hub")
    hall.start_hub()  # back: the outbox sends it, and the hub's judgement follows
    wait_for(lambda: hall.ready_lines("hub") > ready, 30, "the hub ready again", hall)
    expect(latest.locator(".pending")).to_have_count(0, timeout=HUB_MS)
    assert any(b.get("card") == "1F00644BB6" for b in hall.stored("clock"))
    assert browser_page.errors == []
