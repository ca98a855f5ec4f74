"""The city console in headless Chromium: `hall-hub web --config city.toml` run as a process on three
halls in a real PostgreSQL (tests/city_console_hall.py: ratings and a punch in each), logged into
through its form. An inspector sees the halls ranked by 满意率 and follows the hall selector into one
hall's console; a user limited to one hall sees only it and is refused (403) in another.
Screenshot: var/screenshots/city.png (the README's docs/city.png is one of these)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_harness import BrowserPage
from city_console_hall import DAY, PASSWORD, RANKED, make_city
from pg_server import PostgresServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
CLOCK = f"{DAY}T18:00:00+08:00"  # the halls' day (city_console_hall stores it at 18:00)
RATES = {"h01": "100.0%", "h03": "66.7%", "h02": "50.0%"}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[str]:
    """The city console's base URL, served by `hall-hub web` in its own process."""
    made = make_city(tmp_path_factory.mktemp("city-browser"), postgres_server)
    made.close()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "web", "--config", str(made.city.path),
                                "--listen", f"127.0.0.1:{port}", "--clock", CLOCK],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the console says where it listens once it does
        assert f"127.0.0.1:{port}" in line, line + process.stdout.read()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def log_in(browser_page: BrowserPage, console: str, name: str) -> None:
    page = browser_page.page
    page.goto(console + "/city")
    assert "/login" in page.url  # sent to the login form first
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(console + "/city")


def hall_rows(browser_page: BrowserPage) -> list[str]:
    return browser_page.page.locator("#city-halls tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.hall)")


def test_the_halls_ranked_and_one_hall_s_console_from_the_selector(browser_page: BrowserPage,
                                                                   console: str) -> None:
    log_in(browser_page, console, "insp")
    page = browser_page.page
    assert page.inner_text("h1").startswith("全市大厅")
    assert "本月满意率" in page.inner_text("#city-halls thead")
    assert hall_rows(browser_page) == RANKED
    for place, hall in enumerate(RANKED, start=1):
        cells = page.locator(f'#city-halls tr[data-hall="{hall}"] td').all_inner_texts()
        assert cells[:3] == [str(place), hall, RATES[hall]]
        assert re.fullmatch(r"\d+\.\d% \(\d+/\d+\)", cells[4]), cells  # today's attendance, judged so far
    assert "入口" in page.inner_text("#city-offline")  # h02's entrance box is offline
    assert "各大厅数字每 30 秒重算一次" in page.inner_text("#city-cache")
    browser_page.screenshot("city")

    assert page.locator("nav.halls a").all_inner_texts() == ["全市", "h01", "h02", "h03"]
    page.click('nav.halls a[href="/h/h03/"]')
    page.wait_for_url(console + "/h/h03/board")
    assert page.inner_text("header strong") == "h03 大厅管理控制台"
    assert page.get_attribute('nav.halls a[aria-current="page"]', "href") == "/h/h03/"
    page.click('nav.halls a[href="/city"]')
    page.wait_for_url(console + "/city")
    assert browser_page.errors == []


def test_a_user_of_one_hall_is_refused_another(browser_page: BrowserPage, console: str) -> None:
    log_in(browser_page, console, "one")  # an inspector of h02 alone
    page = browser_page.page
    assert hall_rows(browser_page) == ["h02"]
    assert page.locator("nav.halls a").all_inner_texts() == ["全市", "h02"]
    refused = page.goto(console + "/h/h01/ratings")
    assert refused is not None and refused.status == 403
    assert "无权限" in page.inner_text("body")
    allowed = page.goto(console + "/h/h02/ratings")
    assert allowed is not None and allowed.status == 200
    assert page.inner_text("header strong") == "h02 大厅管理控制台"
    assert browser_page.errors == []
