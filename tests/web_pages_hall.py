"""The web console's hall (tests/web_hall.py) with what the pages add: a face punch whose snapshot is
kept, and console sessions (the login form, like a browser) for each kind of user."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from test_hub_window import EDGE, at
from web_hall import WebHall, log_in_form, make_web_hall

from hub.domain import StoredEvent
from hub.store.snapshots import keep_snapshot
from hub.web.app import create_app
from wire.envelope import format_ts, load_private_key, seal

PICTURE = b"\xff\xd8" + b"snapshot of S001" + bytes(range(16))
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def add_face_punch(hall: WebHall) -> str:
    """A signed face punch of S001 at 12:00 (seq 9 of the entrance) and its snapshot; its id."""
    moment = at("12:00") + timedelta(seconds=9)
    body = {"method": "face", "staff": "S001", "distance_milli": 400, "live": True,
            "photo_sha256": hashlib.sha256(PICTURE).hexdigest()}
    envelope = seal(load_private_key(EDGE.private_hex), hall="h1", device="entrance", seq=9,
                    ts=format_ts(moment), type="clock", body=body)
    event = StoredEvent(envelope.id, "h1", "entrance", 9, "clock", moment, moment, body, envelope.raw)
    assert hall.store.ingest([event]) == ["stored"]
    assert keep_snapshot(hall.store, event, PICTURE, moment)
    return envelope.id


def make_pages_hall(tmp_path: Path) -> tuple[WebHall, str]:
    hall = make_web_hall(tmp_path)
    return hall, add_face_punch(hall)


def log_in(hall: WebHall, name: str) -> TestClient:
    """A client logged in through the login form (its own cookies)."""
    client = TestClient(create_app(hall.config, hall.store))
    return log_in_form(client, name)


def csrf_of(client: TestClient) -> str:
    found = CSRF_INPUT.search(client.get("/").text)
    assert found is not None
    return found.group(1)
