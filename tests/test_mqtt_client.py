"""The hub's paho client (hub/mqtt_client.py) against a real Mosquitto: what its network thread
queues quietly (the PUBACK of every message received) still goes out, what other threads queue
(the hub's watermarks) still wakes it, and what it reads many packets at a time comes out whole and
in order, across packets cut by its reads and across a reconnect."""

from __future__ import annotations

import threading
import time
from pathlib import Path

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


def publish(broker: Mosquitto, count: int, payloads: list[bytes] | None = None) -> None:
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    payloads = payloads or [f"{n}".encode() for n in range(count)]
    infos = [publisher.publish(TOPIC, payload, qos=1) for payload in payloads]
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


class Collector:
    """A HubClient's messages, each as received; `wait(n)` until n have come."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.got: list[bytes] = []
        self.lock = threading.Condition()
        self.client = HubClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe("hall/v1/h1/+/evt/#", qos=1)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append(message.payload)
            self.lock.notify_all()

    def wait(self, count: int, seconds: float = 30) -> None:
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.got) >= count, seconds), f"{len(self.got)} of {count}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_packets_cut_by_its_reads_come_out_whole_and_in_order(broker: Mosquitto) -> None:
    # lengths on each side of the remaining-length byte boundaries and of READ_BYTES (64 KiB)
    sizes = [1, 127, 128, 16_383, 16_384, 65_000, 65_536, 70_000, 200_000]
    payloads = [bytes([n % 251]) * sizes[n % len(sizes)] + f"#{n}".encode() for n in range(270)]
    collector = Collector(broker, "hub-reading")
    try:
        time.sleep(0.3)  # subscribed
        publish(broker, len(payloads), payloads)
        collector.wait(len(payloads))
    finally:
        collector.close()
    assert collector.got == payloads


def test_a_reconnect_reads_the_new_connection_from_its_start(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    collector = Collector(broker, "hub-reconnecting")
    try:
        time.sleep(0.3)
        publish(broker, 500)
        collector.wait(500)
        broker.stop()  # no persistence: the session is lost; on_connect subscribes again
        broker = Mosquitto(tmp_path / "mosquitto-again", port=broker.port)
        broker.start()
        deadline = time.monotonic() + 20
        while not collector.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        publish(broker, 500, [f"again {n}".encode() for n in range(500)])
        collector.wait(1000)
    finally:
        collector.close()
        broker.stop()
    assert collector.got[500:] == [f"again {n}".encode() for n in range(500)]
