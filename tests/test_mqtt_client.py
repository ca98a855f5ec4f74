"""The hub's paho client (hub/mqtt_client.py) against a real Mosquitto: what its network thread
queues quietly (the PUBACK of every message received) still goes out, and what other threads queue
(the hub's watermarks) still wakes it."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from hub.mqtt_client import HubClient, queues_quietly
from tests.mqtt_broker import Mosquitto

TOPIC = "hall/v1/h1/entrance/evt/clock"


def test_this_paho_has_what_the_client_leans_on() -> None:
    assert HubClient(mqtt.CallbackAPIVersion.VERSION2)._quiet
    assert not queues_quietly(object())  # type: ignore[arg-type]


def received_by(broker: Mosquitto, client_id: str, seconds: float) -> list[bytes]:
    """What a persistent session receives within `seconds` of connecting."""
    got: list[bytes] = []
    client = HubClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe("hall/v1/h1/+/evt/#", qos=1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    time.sleep(seconds)
    client.disconnect()
    client.loop_stop()
    return got


def publish(broker: Mosquitto, count: int) -> None:
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    infos = [publisher.publish(TOPIC, f"{n}".encode(), qos=1) for n in range(count)]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()


def test_every_message_received_is_acknowledged(broker: Mosquitto) -> None:
    assert received_by(broker, "hub-under-test", 0.5) == []  # the session and its subscription
    done = threading.Event()
    got: list[bytes] = []

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        got.append(message.payload)
        if len(got) == 2000:
            done.set()

    client = HubClient(mqtt.CallbackAPIVersion.VERSION2, client_id="hub-under-test", clean_session=False)
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        publish(broker, 2000)  # more than the broker's 100 in flight: each PUBACK frees the next
        assert done.wait(30), f"{len(got)} of 2000 received"
        time.sleep(0.5)  # the last PUBACKs out
    finally:
        client.disconnect()
        client.loop_stop()
    assert got == [f"{n}".encode() for n in range(2000)]
    # a message not acknowledged would come again, as a duplicate, to the session resumed
    assert received_by(broker, "hub-under-test", 1.0) == []


def test_what_another_thread_publishes_goes_out_on_paho_s_own_path(broker: Mosquitto) -> None:
    received_by_subscriber = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.on_message = lambda _c, _u, _m: received_by_subscriber.set()
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("hall/v1/h1/+/committed", qos=1)
    watcher.loop_start()
    client = HubClient(mqtt.CallbackAPIVersion.VERSION2, client_id="hub-publishing")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        time.sleep(0.3)  # the watcher subscribed
        info = client.publish("hall/v1/h1/entrance/committed", b"{}", qos=1)  # from this thread
        info.wait_for_publish(5)
        assert info.is_published() and received_by_subscriber.wait(5)
    finally:
        for each in (client, watcher):
            each.disconnect()
            each.loop_stop()
