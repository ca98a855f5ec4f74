"""The console's pages in headless Chromium: log in through the form, read the monthly sheet (its
coloured cells and legend), close a case from the ledger; screenshots to var/screenshots/. Nothing
may be requested from another host (the guard of tests/browser_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_harness import BrowserPage, serve_app
from web_hall import DAY, PASSWORD, WebHall
from web_pages_hall import make_pages_hall

from hub.web.app import create_app

pytestmark = pytest.mark.browser
MONTH = DAY[:7]


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHall]:
    made, _ = make_pages_hall(tmp_path_factory.mktemp("browser"))
    yield made
    made.store.close()


@pytest.fixture(scope="module")
def console(hall: WebHall) -> Iterator[str]:
    store = hall.reopen("18:00")  # the server thread's own store, at the end of the hall's day
    try:
        with serve_app(create_app(hall.config, store)) as base_url:
            yield base_url
    finally:
        store.close()


def log_in(browser_page: BrowserPage, console: str, name: str, target: str) -> None:
    page = browser_page.page
    page.goto(console + target)
    assert "/login" in page.url  # sent to the login form first
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(console + target)


def test_reading_the_monthly_sheet(browser_page: BrowserPage, console: str) -> None:
    log_in(browser_page, console, "insp", f"/attendance/month?month={MONTH}")
    page = browser_page.page
    assert page.inner_text("h1") == f"考勤月表 · {MONTH}"
    legend = page.locator("#legend li")
    assert "旷旷工" in legend.all_inner_texts() and legend.first.is_visible()  # the code, then its name
    assert page.locator("#legend .st-absent").evaluate("e => getComputedStyle(e).backgroundColor") == \
        "rgb(244, 182, 182)"
    row = page.locator("#month-sheet tbody tr", has_text="张伟")
    cell = row.locator("td").nth(23)  # 24 November
    assert cell.inner_text().split() == ["上正", "下旷"]
    assert cell.get_attribute("title") == f"{DAY} 上午 正常; 下午 旷工"
    assert cell.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(244, 182, 182)"
    browser_page.screenshot("attendance-month")
    page.select_option("select[name=window]", "02")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert "window=02" in page.url
    assert page.locator("#month-sheet tbody tr").count() == 1 and "王芳" in page.inner_text("#month-sheet")
    assert browser_page.errors == []


def test_closing_a_case_from_the_ledger(browser_page: BrowserPage, console: str, hall: WebHall) -> None:
    log_in(browser_page, console, "mgr", f"/cases?from={DAY}&to={DAY}")
    page = browser_page.page
    form = page.locator("#cases form").first
    case = (form.get_attribute("action") or "").split("/")[2]
    assert case and page.inner_text(f"#c-{case} td.state") in ("待整改", "逾期")
    form.locator("input[name=result]").fill("已电话回访, 群众满意")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"**/cases#c-{case}")
    row = page.locator(f"#c-{case}")
    assert "已办结" in row.inner_text() and "已电话回访" in row.inner_text() and "mgr" in row.inner_text()
    assert row.locator("form").count() == 0
    browser_page.screenshot("ledger")
    entry = hall.store.last_audit("case_closed")
    assert entry is not None and entry.data["case"] == case and entry.data["closed_by"] == "mgr"
    assert browser_page.errors == []


def test_a_phone_sees_the_sheet_scroll_sideways(browser_page: BrowserPage, console: str) -> None:
    page = browser_page.page
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(browser_page, console, "s1", f"/attendance/month?month={MONTH}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # the page does not overflow
    scroller = page.locator("div.scroll").first
    assert scroller.evaluate("e => e.scrollWidth > e.clientWidth")  # the table scrolls inside its box
    assert "王芳" not in page.inner_text("main")
    browser_page.screenshot("attendance-month-phone")
