"""The city console (hub/web/city_app.py) on three halls in a real PostgreSQL: one login at `/login`
for the city page and every mounted hall console, the halls ranked by 满意率, a user limited to some
halls (403 elsewhere, pages and API), the hall selector, devices offline across halls, CSRF and
logout as in a hall's console, and `hall-hub user add --halls` / `hall-hub web` given city.toml."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from city_console_hall import DAY, OFFLINE, PASSWORD, RANKED, SmallCity, at, make_city
from fastapi.testclient import TestClient
from pg_server import PostgresServer, free_port
from web_hall import log_in_form

from hub.api_objects import attendance_object
from hub.city.console import NOBODY, UNKNOWN, owners_of
from hub.store.store import Store
from hub.store.users import all_users
from hub.web.city_app import create_city_app
from wire.clock import FixedClock

ROOT = Path(__file__).resolve().parents[1]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SELECTOR = re.compile(r'<nav class="halls"[^>]*>(.*?)</nav>', re.S)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[SmallCity]:
    made = make_city(tmp_path_factory.mktemp("city"), postgres_server)
    yield made
    made.close()


def _app(city: SmallCity) -> TestClient:
    return TestClient(create_city_app(city.city, city.accounts, city.stores, owners=lambda: {"h01": "w1"}))


def log_in(city: SmallCity, name: str, client: TestClient | None = None) -> TestClient:
    client = client or _app(city)
    return log_in_form(client, name, PASSWORD)


def selector(html: str) -> list[str]:
    found = SELECTOR.search(html)
    assert found is not None, html
    return re.findall(r'href="/h/([^/"]+)/"', found.group(1))


def test_the_city_page_ranks_the_halls_by_satisfaction(city: SmallCity) -> None:
    client = log_in(city, "insp")
    assert client.get("/", follow_redirects=False).headers["location"] == "/city"
    data = client.get("/api/v1/city").json()
    assert [h["hall"] for h in data["halls"]] == RANKED
    assert [(h["ratings"], h["rate_permille"]) for h in data["halls"]] == [(3, 1000), (3, 667), (2, 500)]
    assert [h["owner"] for h in data["halls"]] == ["w1", UNKNOWN, UNKNOWN]
    page = client.get("/city").text
    rows = re.findall(r'<tr data-hall="([^"]+)"', page)
    assert rows == RANKED and "100.0%" in page and "66.7%" in page and "50.0%" in page


def test_attendance_is_the_attendance_day_s(city: SmallCity) -> None:
    line = log_in(city, "insp").get("/api/v1/city").json()["halls"][0]
    config, store = city.city.hall(line["hall"]), city.stores[line["hall"]]
    rows = [r for r in attendance_object(config, store, at("18:00").date(), at("18:00"))
            if r["status"] not in ("holiday", "pending", "leave")]
    assert line["expected"] == len(rows) > 0
    assert line["on_time"] == sum(r["status"] == "on_time" for r in rows) > 0
    on_time, expected = line["on_time"], line["expected"]
    assert line["attendance_permille"] == (2000 * on_time + expected) // (2 * expected)


def test_an_offline_device_is_listed_across_halls(city: SmallCity) -> None:
    client = log_in(city, "insp")
    data = client.get("/api/v1/city").json()
    assert [(d["hall"], d["device"], d["name"]) for d in data["offline"]] == [(*OFFLINE, "入口")]
    assert data["offline"][0]["since"].startswith(f"{DAY}T18:00:00")
    assert {h["hall"]: h["offline"] for h in data["halls"]} == {"h01": 0, "h02": 1, "h03": 0}
    table = client.get("/city").text.split('id="city-offline"')[1]
    assert 'href="/h/h02/devices"' in table and "入口" in table and f"{DAY} 18:00:00" in table


def test_a_user_limited_to_one_hall_sees_only_that_hall(city: SmallCity) -> None:
    client = log_in(city, "one")
    assert [h["hall"] for h in client.get("/api/v1/city").json()["halls"]] == ["h02"]
    page = client.get("/city").text
    assert re.findall(r'<tr data-hall="([^"]+)"', page) == ["h02"]
    assert selector(page) == ["h02"]
    assert client.get("/h/h02/ratings").status_code == 200
    for path in ("/h/h01/ratings", "/h/h03/devices", "/h/h01/api/v1/board", "/h/h01/board"):
        answer = client.get(path)
        assert answer.status_code == 403 and "无权限" in answer.text, path
    assert client.get("/h/h01/api/v1/me").json()["detail"].startswith("无权限")


def test_the_hall_selector_lists_exactly_the_allowed_halls(city: SmallCity) -> None:
    assert selector(log_in(city, "insp").get("/h/h01/ratings").text) == ["h01", "h02", "h03"]
    two = log_in(city, "two")
    page = two.get("/h/h03/ratings").text
    assert selector(page) == ["h01", "h03"] and 'href="/h/h03/" aria-current="page"' in page
    assert 'href="/h/h03/attendance"' in page and 'action="/h/h03/ratings"' in page


def test_a_token_is_refused_in_a_hall_outside_its_user_s(city: SmallCity) -> None:
    from hub.store.users import issue_token

    token = issue_token(city.accounts, "one", "test")[1]
    client = _app(city)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/h/h02/api/v1/board", headers=bearer).status_code == 200
    assert client.get("/h/h03/api/v1/board", headers=bearer).status_code == 403
    assert client.get("/api/v1/city", headers=bearer).json()["halls"][0]["hall"] == "h02"
    assert client.get("/h/h02/api/v1/board").status_code == 401


def test_a_staff_account_goes_to_its_hall_and_not_the_city_page(city: SmallCity) -> None:
    client = log_in(city, "s1")
    assert client.get("/", follow_redirects=False).headers["location"] == "/h/h01/"
    assert client.get("/city").status_code == 403
    assert client.get("/h/h01/", follow_redirects=False).headers["location"] == "/h/h01/board"
    assert client.get("/h/h02/board").status_code == 403


def test_login_logout_and_csrf_as_in_a_hall_s_console(city: SmallCity) -> None:
    client = _app(city)
    anonymous = client.get("/h/h01/ratings?month=2026-11", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/h/h01/ratings%3Fmonth%3D2026-11"
    assert client.get("/h/h01/api/v1/board").status_code == 401
    assert client.get("/api/v1/city").status_code == 401
    form = client.get("/login")
    assert "hall_login" in form.headers["set-cookie"] and "SameSite=strict" in form.headers["set-cookie"]
    forged = client.post("/login", data={"name": "insp", "password": PASSWORD, "csrf": "forged"})
    assert forged.status_code == 403
    wrong = client.post("/login", data={"name": "insp", "password": "wrong password!",
                                        "csrf": client.cookies.get("hall_login")})
    assert wrong.status_code == 401
    log_in(city, "insp", client)
    cookie = client.cookies.get("hall_session")
    assert cookie and client.get("/h/h03/ratings").status_code == 200
    token = CSRF.search(client.get("/h/h01/leave").text)
    assert token is not None
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.post("/h/h01/logout", data={"csrf": "forged"}).status_code == 403
    out = client.post("/h/h01/logout", data={"csrf": token.group(1)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.set("hall_session", cookie)  # the dropped session is gone from every hall
    assert client.get("/h/h02/ratings", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/city").status_code == 401


def test_owners_are_read_from_the_locks_or_unknown(city: SmallCity, postgres_server: PostgresServer) -> None:
    assert owners_of(city.city) == {"h01": NOBODY, "h02": NOBODY, "h03": NOBODY}
    gone = city.city.city.model_copy(update={"store": f"postgresql://postgres@127.0.0.1:{free_port()}/x"})
    assert owners_of(dataclasses.replace(city.city, city=gone)) == {h: UNKNOWN for h in ("h01", "h02", "h03")}


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_city_users_from_the_command_line_and_the_city_console_served(city: SmallCity) -> None:
    path = str(city.city.path)
    unknown = _cli("user", "add", "--config", path, "--name", "x", "--role", "inspector", "--halls", "h09",
                   "--by", "t", stdin=f"{PASSWORD}\n")
    assert unknown.returncode == 2 and "h09" in unknown.stderr
    wrong_staff = _cli("user", "add", "--config", path, "--name", "x", "--role", "staff", "--staff", "S009",
                       "--halls", "h01", "--by", "t", stdin=f"{PASSWORD}\n")
    assert wrong_staff.returncode == 2 and "roster" in wrong_staff.stderr
    two_halls = _cli("user", "add", "--config", path, "--name", "x", "--role", "staff", "--staff", "S001",
                     "--halls", "h01,h02", "--by", "t", stdin=f"{PASSWORD}\n")
    assert two_halls.returncode == 2 and "one hall" in two_halls.stderr
    alone = _cli("user", "add", "--config", str(city.city.path.parent / "h01.toml"), "--name", "x", "--role",
                 "inspector", "--halls", "h01", "--by", "t", stdin=f"{PASSWORD}\n")
    assert alone.returncode == 2 and "--halls is for a city's users" in alone.stderr
    added = _cli("user", "add", "--config", path, "--name", "cli", "--role", "inspector", "--halls",
                 "h03,h01", "--by", "t", stdin=f"{PASSWORD}\n")
    assert added.returncode == 0 and "halls h03,h01" in added.stdout, added.stderr
    listed = {u["name"]: u for u in json.loads(_cli("user", "list", "--config", path, "--json").stdout)}
    assert listed["cli"]["halls"] == ["h03", "h01"] and "halls" not in listed["insp"]
    assert {u.name: u.halls for u in all_users(city.accounts)}["cli"] == ("h03", "h01")
    token = _cli("user", "token", "--config", path, "--name", "cli", "--by", "t").stdout.strip()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "web", "--config", path, "--listen",
                                f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"127.0.0.1:{port}" in line, line
        bearer = {"Authorization": f"Bearer {token}"}
        data = httpx.get(f"http://127.0.0.1:{port}/api/v1/city", headers=bearer, timeout=30).json()
        assert [h["hall"] for h in data["halls"]] == ["h01", "h03"]
        assert {h["owner"] for h in data["halls"]} == {NOBODY}
        assert httpx.get(f"http://127.0.0.1:{port}/h/h02/api/v1/board", headers=bearer,
                         timeout=30).status_code == 403
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_a_hall_store_without_the_halls_column_gets_it(postgres_server: PostgresServer) -> None:
    from sqlalchemy import create_engine, inspect, text

    url = postgres_server.create_database()
    Store(url, FixedClock(at("18:00"))).close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE users DROP COLUMN halls"))
    Store(url, FixedClock(at("18:00")), create=False).close()
    with engine.connect() as conn:
        assert "halls" in {c["name"] for c in inspect(conn).get_columns("users")}
    engine.dispose()
