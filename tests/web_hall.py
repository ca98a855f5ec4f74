"""A hall for the web console's tests: the day of tests/test_hub_window.py in a real SQLite store,
a complaint, and one console user of each kind with an API token."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient
from test_hub_window import at, make_hall

from hub import config as hub_config
from hub.complaints import NewComplaint, add_complaint
from hub.config import HubConfig
from hub.store.store import Store
from hub.store.users import add_user, disable_user, issue_token, revoke_tokens
from wire.clock import FixedClock

PASSWORD = "correct horse battery"
DAY = "2026-11-24"


def log_in_form(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    """`client` logged in through a console's login form: the form (its CSRF cookie), then the post."""
    client.get("/login")
    answer = client.post("/login", data={"name": name, "password": password,
                                         "csrf": client.cookies.get("hall_login"), "next": "/"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


@dataclass
class WebHall:
    config_path: Path
    config: HubConfig
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)  # identity -> bearer token
    complaint: str = ""

    def reopen(self, clock: str) -> Store:
        """The same store read at another moment of the day (reads only)."""
        return Store(self.config.store.url, FixedClock(at(clock)), create=False,
                     device_keys=self.config.device_keys())


def make_web_hall(tmp_path: Path) -> WebHall:
    config_path, store = make_hall(tmp_path)
    config = hub_config.load(config_path)
    hall = WebHall(config_path, config, store)
    hall.complaint = add_complaint(config, store, NewComplaint("oral", "02", "前台", "态度不好",
                                                               staff="S002", contact="13800000000")).id
    for name, role, staff in (("insp", "inspector", None), ("mgr", "manager", None),
                              ("s1", "staff", "S001"), ("s2", "staff", "S002"),
                              ("gone", "inspector", None), ("old", "inspector", None)):
        add_user(store, name, role, staff, PASSWORD, "test")  # type: ignore[arg-type]
        hall.tokens[name] = issue_token(store, name, "test")[1]
    disable_user(store, "gone", "test")
    revoke_tokens(store, by="test", name="old")
    hall.tokens["bad"] = "not-a-token"
    return hall


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
