"""The console's print buttons (issue 10): a manager sends a complaint's receipt or the month's notice
to a printer of `[web] printers`; the job goes out as a hub-signed `print` command through a real
Mosquitto, and the sending is logged with the user's name."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from test_hub_window import HUB
from web_hall import PASSWORD, WebHall, make_web_hall

from hub.web.app import create_app
from tests.mqtt_broker import Mosquitto
from wire.envelope import load_public_key, open_signed

TOPIC = "hall/v1/h1/entrance/cmd/print"
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


class Commands:
    """What reaches the entrance box's print topic."""

    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        self.arrived = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="entrance-stand-in")
        self._client.on_message = self._message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(TOPIC, qos=1)
        self._client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.payloads.append(bytes(message.payload))
        self.arrived.set()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def printing(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[WebHall, TestClient, Commands]]:
    hall = make_web_hall(tmp_path)
    config = hall.config.model_copy(update={
        "broker": hall.config.broker.model_copy(update={"url": broker.url}),
        "web": hall.config.web.model_copy(update={"printers": ["entrance:printer"]}),
    })
    hall.config = config
    commands = Commands(broker.port)
    try:
        yield hall, TestClient(create_app(config, hall.store)), commands
    finally:
        commands.close()
        hall.store.close()


def log_in(client: TestClient, name: str) -> str:
    """Log the client in through the form; the session's CSRF token."""
    client.cookies.clear()
    client.get("/login")
    answer = client.post("/login", data={"name": name, "password": PASSWORD,
                                         "csrf": client.cookies.get("hall_login"), "next": "/"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    found = CSRF_INPUT.search(client.get("/report").text) or CSRF_INPUT.search(client.get("/").text)
    assert found is not None
    return found.group(1)


def test_a_manager_prints_a_complaint_receipt_and_the_sending_is_logged(
        printing: tuple[WebHall, TestClient, Commands]) -> None:
    hall, client, commands = printing
    csrf = log_in(client, "mgr")
    page = client.get(f"/complaints/{hall.complaint}").text
    assert "打印投诉回执" in page and "entrance:printer" in page
    answer = client.post(f"/complaints/{hall.complaint}/print",
                         data={"target": "entrance:printer", "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert commands.arrived.wait(10), "no print command reached the box's topic"
    command = open_signed(commands.payloads[0], load_public_key(HUB.public_hex))
    assert command.type == "print" and command.device == "entrance"
    assert (command.body["unit"], command.body["title"], command.body["qr"]) == (
        "printer", "投诉受理回执", hall.complaint)
    assert "13800000000" not in str(command.body)  # the complainant's contact is never printed
    logged = [e.data for e in hall.store.audit() if e.kind == "print_job"]
    assert logged == [{"by": "mgr", "target": "entrance:printer", "title": "投诉受理回执",
                       "command": command.id, "of": hall.complaint,
                       "author": {"by": "mgr", "os_user": None, "host": None, "via": "web"}}]


def test_the_months_notice_carries_the_log_head(printing: tuple[WebHall, TestClient, Commands]) -> None:
    hall, client, commands = printing
    csrf = log_in(client, "mgr")
    answer = client.post("/report/print", data={"target": "entrance:printer", "month": "2026-11",
                                                "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert commands.arrived.wait(10)
    command = open_signed(commands.payloads[0], load_public_key(HUB.public_hex))
    assert command.body["title"] == "月度公示" and re.fullmatch(r"[0-9]+:[0-9a-f]{64}", command.body["qr"])


def test_who_and_where_may_print(printing: tuple[WebHall, TestClient, Commands]) -> None:
    hall, client, commands = printing
    csrf = log_in(client, "insp")
    assert "打印投诉回执" not in client.get(f"/complaints/{hall.complaint}").text
    refused = client.post(f"/complaints/{hall.complaint}/print",
                          data={"target": "entrance:printer", "csrf": csrf}, follow_redirects=False)
    assert refused.status_code == 403
    csrf = log_in(client, "mgr")
    no_token = client.post(f"/complaints/{hall.complaint}/print", data={"target": "entrance:printer"},
                           follow_redirects=False)
    assert no_token.status_code == 403
    elsewhere = client.post(f"/complaints/{hall.complaint}/print",
                            data={"target": "windows:printer", "csrf": csrf}, follow_redirects=False)
    assert elsewhere.status_code == 400 and "[web] printers" in elsewhere.text
    assert not commands.arrived.wait(1) and not [e for e in hall.store.audit() if e.kind == "print_job"]
