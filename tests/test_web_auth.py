"""Logging in to the console: the login form, the session cookie's flags, CSRF on every state change,
the login rate limit, logout; users made through the command line; the console served by a real
`hall-hub web` process and inside `hall-hub run`, answered over real HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from test_hub_window import ROOT, hub_cli
from web_hall import PASSWORD, WebHall, free_port, make_web_hall

from hub.web.app import create_app


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[WebHall]:
    made = make_web_hall(tmp_path)
    yield made
    made.store.close()


@pytest.fixture
def client(hall: WebHall) -> TestClient:
    return TestClient(create_app(hall.config, hall.store), base_url="http://hall.test")


def login_csrf(client: TestClient) -> str:
    form = client.get("/login")
    assert form.status_code == 200 and "登录" in form.text
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD, csrf: str | None = None) -> httpx.Response:
    token = login_csrf(client) if csrf is None else csrf
    return client.post("/login", data={"name": name, "password": password, "csrf": token, "next": "/"},
                       follow_redirects=False)


def page_csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None
    return found.group(1)


def test_login_sets_a_strict_httponly_session_cookie(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login?next=/"
    answer = login(client, "mgr")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("hall_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags and "max-age=28800" in flags
    assert "secure" not in flags  # plain http here; `[web] secure_cookie` or https adds it
    home = client.get("/")
    assert home.status_code == 200 and "mgr" in home.text and "中心负责人" in home.text
    assert '<html lang="zh-CN">' in home.text
    assert home.headers["x-frame-options"] == "DENY" and "default-src 'self'" in home.headers[
        "content-security-policy"]
    assert client.get("/api/v1/me").json()["role"] == "manager"  # the session works for the API too


def test_wrong_password_unknown_user_and_disabled_user_are_refused(client: TestClient) -> None:
    for name, password in (("mgr", "wrong password!"), ("nobody", PASSWORD), ("gone", PASSWORD)):
        answer = login(client, name, password)
        assert answer.status_code == 401 and "用户名或密码错误" in answer.text
        assert "hall_session" not in answer.headers.get("set-cookie", "")
    assert client.get("/api/v1/me").status_code == 401


def test_login_without_its_csrf_token_is_refused(client: TestClient) -> None:
    login_csrf(client)
    answer = login(client, "mgr", csrf="forged")
    assert answer.status_code == 403 and "CSRF" in answer.text
    fresh = TestClient(client.app, base_url="http://hall.test")  # no login cookie at all
    assert fresh.post("/login", data={"name": "mgr", "password": PASSWORD, "csrf": "x"}).status_code == 403


def test_rate_limit_after_five_failures_even_with_the_right_password(client: TestClient) -> None:
    for _ in range(5):
        assert login(client, "insp", "wrong password!").status_code == 401
    blocked = login(client, "insp")
    assert blocked.status_code == 429 and "登录失败次数过多" in blocked.text
    assert login(client, "mgr").status_code == 303  # another name from the same address is not blocked


def test_state_changes_with_a_session_need_the_csrf_token(client: TestClient) -> None:
    assert login(client, "insp").status_code == 303
    refused = client.post("/api/v1/log/verify")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.post("/api/v1/log/verify", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    token = page_csrf(client)
    verified = client.post("/api/v1/log/verify", headers={"X-CSRF-Token": token})
    assert verified.status_code == 200 and verified.json()["ok"] is True
    assert client.post("/logout", follow_redirects=False).status_code == 403  # the form needs it too
    out = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/api/v1/me").status_code == 401  # the session is gone on the server


def test_disabling_a_user_ends_their_session(client: TestClient, hall: WebHall) -> None:
    from hub.store.users import disable_user

    assert login(client, "s1").status_code == 303
    assert client.get("/api/v1/me").json()["staff"] == "S001"
    disable_user(hall.store, "s1", "test")
    assert client.get("/api/v1/me").status_code == 401


def test_next_never_leaves_the_site(client: TestClient) -> None:
    token = login_csrf(client)
    answer = client.post("/login", data={"name": "mgr", "password": PASSWORD, "csrf": token,
                                         "next": "//evil.example/"}, follow_redirects=False)
    assert answer.headers["location"] == "/"


# --- the command line ------------------------------------------------------------------------


def user_cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    by = () if args[0] == "list" else ("--by", "管理员")  # who adds, disables, issues: named in the log
    return subprocess.run([sys.executable, "-m", "hub.cli", "user", *args, *by, "--config", str(config)],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_user_commands(hall: WebHall) -> None:
    config = hall.config_path
    short = user_cli(config, "add", "--name", "zhang", "--role", "manager", stdin="short\n")
    assert short.returncode == 2 and "密码太短" in short.stderr
    empty = user_cli(config, "add", "--name", "zhang", "--role", "manager", stdin="\n")
    assert empty.returncode == 2 and "密码为空" in empty.stderr
    nostaff = user_cli(config, "add", "--name", "li", "--role", "staff", stdin=f"{PASSWORD}\n")
    assert nostaff.returncode == 2 and "--staff" in nostaff.stderr
    added = user_cli(config, "add", "--name", "zhang", "--role", "staff", "--staff", "S002",
                     stdin="a long enough secret\n")
    assert added.returncode == 0, added.stderr
    again = user_cli(config, "add", "--name", "zhang", "--role", "manager", stdin=f"{PASSWORD}\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    issued = user_cli(config, "token", "--name", "zhang")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert len(token) >= 43 and "shown once" in issued.stderr
    listed = {u["name"]: u for u in json.loads(user_cli(config, "list", "--json").stdout)}
    assert listed["zhang"] == {"name": "zhang", "role": "staff", "staff": "S002", "disabled": False,
                               "tokens": listed["zhang"]["tokens"]} and len(listed["zhang"]["tokens"]) == 1
    assert listed["gone"]["disabled"] is True and listed["old"]["tokens"] == []
    table = user_cli(config, "list").stdout
    assert "scrypt" not in table and "窗口人员" in table
    client = TestClient(create_app(hall.config, hall.store))
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=bearer).json()["staff"] == "S002"
    assert login(TestClient(client.app), "zhang", "a long enough secret").status_code == 303
    revoked = user_cli(config, "revoke-token", "--id", listed["zhang"]["tokens"][0])
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    assert user_cli(config, "disable", "--name", "zhang").returncode == 0
    log = hub_cli(config, "log", "show", "--json").stdout
    entries = [e for e in json.loads(log) if e["ref"] == "zhang" or e["data"].get("user") == "zhang"]
    assert [e["kind"] for e in entries] == ["user_add", "token_issue", "token_revoke", "user_disable"]
    assert "a long enough secret" not in log and token not in log and "scrypt" not in log
    assert hub_cli(config, "log", "verify").returncode == 0


# --- real processes over real HTTP -------------------------------------------------------------


def _wait_for_line(process: subprocess.Popen[str], wanted: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if wanted in line:
            return line
    raise AssertionError(f"no {wanted!r} from the process: {''.join(seen)}")


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def test_hall_hub_web_serves_the_api_alone(hall: WebHall) -> None:
    port = free_port()
    config = hall.config_path
    config.write_text(config.read_text(encoding="utf-8").replace(
        'private_key = "', '# private_key = "') + f'[web]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "web", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        line = _wait_for_line(process, "web console ready")
        assert f"http://127.0.0.1:{port}/" in line
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/board",
                           headers={"Authorization": f"Bearer {hall.tokens['insp']}"}, timeout=10)
        assert answer.status_code == 200 and [w["window"] for w in answer.json()["windows"]] == ["01", "02"]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/board", timeout=10).status_code == 401
    finally:
        code = _stop(process)
    assert code == 0


def test_a_taken_port_is_an_error_without_a_traceback(hall: WebHall) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = hall.config_path
        config.write_text(config.read_text(encoding="utf-8") + f'[web]\nlisten = "127.0.0.1:{port}"\n',
                          encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "hub.cli", "web", "--config", str(config)],
                                capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "web console could not listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_hall_hub_run_serves_the_console_in_its_own_thread(hall: WebHall) -> None:
    web, mqtt = free_port(), free_port()
    config = hall.config_path
    config.write_text(config.read_text(encoding="utf-8")
                      + f'[broker]\nlisten = "127.0.0.1:{mqtt}"\n[web]\nlisten = "127.0.0.1:{web}"\n',
                      encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        _wait_for_line(process, f"web console ready: http://127.0.0.1:{web}/")
        answer = httpx.get(f"http://127.0.0.1:{web}/api/v1/attendance?date=2026-11-24",
                           headers={"Authorization": f"Bearer {hall.tokens['s1']}"}, timeout=10)
        assert answer.status_code == 200 and {r["staff"] for r in answer.json()} == {"S001"}
    finally:
        code = _stop(process)
    assert code == 0


def test_web_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('hall = "h1"\n[web]\nlisten = "8080"\nsession_hours = 0\ncolour = "red"\n',
                      encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "hub.cli", "check", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    for key in ("web.listen", "web.session_hours", "web.colour"):
        assert f"{config}: {key}:" in result.stderr, result.stderr
