"""The city page's lines (hub/city/console.py `HallLines`): each hall's month summary is computed once
per CACHE_SECONDS however many requests of `/city` and `/api/v1/city` come, recomputed after, and a
hall whose line cannot be computed is shown as unread, never a failed page.

Calls are counted through `line_of`, time is the test's own monotonic clock: no sleeping. The halls
are on SQLite (the cache reads each hall's store as the console does; the city's locks are not read:
`owners` is given)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from city_console_hall import EDGE, PASSWORD, at, store_events
from fastapi.testclient import TestClient
from web_hall import log_in_form

from hub.city.config import CityConfig, CitySection
from hub.city.console import CACHE_SECONDS, HallLine, HallLines, hall_line
from hub.config import HubConfig
from hub.config import load as load_config
from hub.store.store import Store
from hub.store.users import add_user
from hub.web.city_app import create_city_app
from wire.clock import FixedClock

RATING = {"window": "01", "keys": 5, "invited": False, "invite": None, "ticket": None}
HALLS = ("h01", "h02")


@dataclass
class Counted:
    """hall_line, counting its calls per hall; a hall in `failing` raises instead."""

    calls: list[str] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    def __call__(self, config: HubConfig, store: Store, now: datetime) -> HallLine:
        self.calls.append(config.hall)
        if config.hall in self.failing:
            raise OSError(f"could not reach the store of {config.hall}\nsecond line")
        return hall_line(config, store, now)


@dataclass
class Ticking:
    """A monotonic clock the test moves."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Page:
    client: TestClient
    count: Counted
    clock: Ticking
    stores: dict[str, Store]


def _city(base: Path) -> CityConfig:
    halls = []
    for hall in HALLS:
        path = base / f"{hall}.toml"
        path.write_text(
            f'hall = "{hall}"\n[store]\nurl = "sqlite:///{base / hall}.db"\n'
            f'[[devices]]\nid = "entrance"\nname = "入口"\npublic_key = "{EDGE.public_hex}"\n'
            '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ncards = ["0A004A7B2C"]\n'
            '[ratings]\nrepeat_seconds = 30\n', encoding="utf-8")
        halls.append(load_config(path, read_key=False))
    return CityConfig(base / "city.toml", CitySection(name="c1", store="postgresql://unused/c1"), halls)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    city, clock = _city(tmp_path), FixedClock(at("18:00"))
    stores = {hall.hall: Store(hall.store.url, clock, device_keys=hall.device_keys()) for hall in city.halls}
    store_events(stores["h01"], "h01", [("09:30", "rating", {**RATING, "level": 5})])
    store_events(stores["h02"], "h02", [("09:30", "rating", {**RATING, "level": 5}),
                                        ("10:30", "rating", {**RATING, "level": 1})])
    accounts = Store(f"sqlite:///{tmp_path / 'city.db'}", clock)
    add_user(accounts, "insp", "inspector", None, PASSWORD, "test")
    add_user(accounts, "one", "inspector", None, PASSWORD, "test", ["h02"])
    count, ticking = Counted(), Ticking()
    lines = HallLines(city, stores, monotonic=ticking, line_of=count)
    client = TestClient(create_city_app(city, accounts, stores, owners=lambda: {"h01": "w1"}, lines=lines))
    yield Page(client, count, ticking, stores)
    for store in [accounts, *stores.values()]:
        store.close()


def log_in(page: Page, name: str) -> TestClient:
    client = page.client
    return log_in_form(client, name, PASSWORD)


def rates(client: TestClient) -> dict[str, int | None]:
    return {h["hall"]: h["rate_permille"] for h in client.get("/api/v1/city").json()["halls"]}


def test_requests_within_the_window_reuse_each_hall_s_line(page: Page) -> None:
    client = log_in(page, "insp")
    assert rates(client) == {"h01": 1000, "h02": 500}
    assert sorted(page.count.calls) == ["h01", "h02"]
    page.clock.now += CACHE_SECONDS - 0.1
    assert client.get("/city").status_code == 200
    assert rates(client) == {"h01": 1000, "h02": 500}
    assert sorted(page.count.calls) == ["h01", "h02"]  # three more requests, nothing recomputed
    page.clock.now += 0.1
    assert rates(client) == {"h01": 1000, "h02": 500}
    assert sorted(page.count.calls) == ["h01", "h01", "h02", "h02"]


def test_a_new_rating_shows_once_the_window_has_passed(page: Page) -> None:
    client = log_in(page, "insp")
    assert rates(client)["h01"] == 1000
    store_events(page.stores["h01"], "h01", [("11:30", "rating", {**RATING, "level": 1})])
    assert rates(client)["h01"] == 1000  # the line of a moment ago
    page.clock.now += CACHE_SECONDS
    assert rates(client)["h01"] == 500
    data = client.get("/api/v1/city").json()
    assert [h["hall"] for h in data["halls"]] == ["h01", "h02"] and data["halls"][0]["owner"] == "w1"


def test_only_the_halls_a_user_may_see_are_computed(page: Page) -> None:
    assert rates(log_in(page, "one")) == {"h02": 500}
    assert page.count.calls == ["h02"]


def test_a_hall_that_fails_is_shown_as_unread_and_retried_after_the_window(page: Page) -> None:
    page.count.failing.add("h02")
    client = log_in(page, "insp")
    data = client.get("/api/v1/city").json()
    assert [h["hall"] for h in data["halls"]] == ["h01"]
    assert data["unread"] == [{"hall": "h02", "problem": "OSError: could not reach the store of h02",
                               "owner": "未知"}]
    html = client.get("/city")
    assert html.status_code == 200
    row = html.text.split('<tr data-hall="h02" class="unread">')[1].split("</tr>")[0]
    assert "读取失败" in row and "could not reach the store of h02" in row
    assert page.count.calls.count("h02") == 1  # the failure is kept for the window too
    page.count.failing.clear()
    page.clock.now += CACHE_SECONDS
    data = client.get("/api/v1/city").json()
    assert [h["hall"] for h in data["halls"]] == ["h01", "h02"] and data["unread"] == []
    assert "读取失败" not in client.get("/city").text
