"""`hall-hub broker export --bridge-to`: a hall's Mosquitto bridged to the city's, both real."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import Mosquitto, free_port, publish
from test_broker_acl import write_hub_config

from hub import config as hub_config
from hub.cli_broker import add_device

ROOT = Path(__file__).resolve().parents[1]
P = "hall/v1/h1"


def _subscriber(port: int, topic: str, username: str | None = None, password: str | None = None
                ) -> tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{time.monotonic_ns()}")
    if username is not None:
        client.username_pw_set(username, password)
    client.on_message = lambda c, u, m: got.put((m.topic, bytes(m.payload)))
    subscribed = queue.Queue[int]()
    client.on_subscribe = lambda *args: subscribed.put(1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=10)
    return client, got


def _device_publish(port: int, secret: str, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="a")
    client.username_pw_set("a", secret)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.e2e
def test_a_hall_broker_bridges_its_topics_to_the_city_broker(tmp_path: Path) -> None:
    city = Mosquitto(tmp_path / "city")
    city.start()
    port = free_port()
    path = write_hub_config(tmp_path / "hub", port)
    secret = add_device(hub_config.load(path), "a").secret
    exported = subprocess.run(
        [sys.executable, "-m", "hub.cli", "broker", "export", "--config", str(path), "--out",
         str(tmp_path / "mosquitto"), "--bridge-to", city.url], cwd=ROOT, capture_output=True, text=True,
        timeout=60)
    assert exported.returncode == 0, exported.stderr
    conf = (tmp_path / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert f"address 127.0.0.1:{city.port}" in conf and "cleansession false" in conf
    hall = Mosquitto(tmp_path / "mosquitto", port=port, conf=tmp_path / "mosquitto" / "mosquitto.conf")
    hall.start()
    up, up_got = _subscriber(city.port, f"{P}/#")
    down, down_got = None, None
    try:
        deadline = time.monotonic() + 30
        while up_got.empty() and time.monotonic() < deadline:  # until the bridge is connected
            _device_publish(port, secret, f"{P}/a/evt/clock", b"probe")
            time.sleep(0.5)
        assert up_got.get(timeout=1) == (f"{P}/a/evt/clock", b"probe")
        down, down_got = _subscriber(port, f"{P}/a/committed", "a", secret)
        publish(city.port, [(f"{P}/a/committed", b"mark")])
        assert down_got.get(timeout=15) == (f"{P}/a/committed", b"mark")
        publish(city.port, [(f"{P}/a/committed", b"mark 2")])
        assert down_got.get(timeout=15) == (f"{P}/a/committed", b"mark 2")
    finally:
        for client in (up, down):
            if client is not None:
                client.disconnect()
                client.loop_stop()
        hall.stop()
        city.stop()
