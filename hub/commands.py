"""Commands from the hub to an edge box (PROTOCOL.md `cmd/{name}`), signed with the hub's key.

Used by `hall-hub send ...`: publishes one command and waits for the box's `ack` event to reach the
store through the running hub.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from hub.config import HubConfig
from hub.store.store import Store
from wire import topics
from wire.clock import Clock
from wire.envelope import format_ts, load_private_key, seal


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HubSequence:
    """The hub sequence (PROTOCOL.md 2.6): the `seq` of everything the hub signs. max(last + 1,
    milliseconds since the epoch): it grows within a process even when the clock stands still, and
    across processes and restarts with the clock. Thread-safe."""

    def __init__(self, now_ms: Callable[[], int] = wall_ms) -> None:
        self._now_ms = now_ms
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, self._now_ms())
            return self._last


HUB_SEQ = HubSequence()  # one per process: commands, the roster and the watermarks share it


def broker_address(config: HubConfig) -> tuple[str, int]:
    if config.broker.url == "embedded":
        host, _, port = config.broker.listen.rpartition(":")
        return ("127.0.0.1" if host in ("", "0.0.0.0") else host), int(port)
    parts = urlsplit(config.broker.url)
    return parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)


def send(config: HubConfig, clock: Clock, device: str, name: str, body: dict[str, Any]) -> str:
    """Publish a signed command; returns its id."""
    envelope = seal(load_private_key(config.private_key_hex()), hall=config.hall, device=device,
                    seq=HUB_SEQ.next(), ts=format_ts(clock.now()), type=name, body=body)
    publish(config, topics.command(config.topic_prefix, config.hall, device, name), envelope.raw)
    return envelope.id


def publish_roster(config: HubConfig, clock: Clock, body: dict[str, Any]) -> None:
    """The signed retained roster (after an enrollment, so edges use the new gallery at once)."""
    envelope = seal(load_private_key(config.private_key_hex()), hall=config.hall, device="hub",
                    seq=HUB_SEQ.next(), ts=format_ts(clock.now()), type="roster", body=body)
    publish(config, topics.roster(config.topic_prefix, config.hall), envelope.raw, retain=True)


def publish(config: HubConfig, topic: str, payload: bytes, retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"hall-hub-cli-{time.time_ns() % 10**12}")
    if config.broker.username is not None:
        client.username_pw_set(config.broker.username, config.broker.password)
    tls = config.broker.client_tls()  # mqtts:// against ca_file; the embedded broker's own certificate
    if tls is not None:
        client.tls_set_context(tls)
    host, port = broker_address(config)
    client.connect(host, port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        if not info.is_published():
            raise RuntimeError(f"the broker at {host}:{port} did not take the message")
    finally:
        client.disconnect()
        client.loop_stop()


def wait_ack(store: Store, clock: Clock, command_id: str, timeout: float) -> dict[str, Any] | None:
    """The body of the box's ack for the command, once the hub has stored it."""
    since = clock.now() - timedelta(minutes=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in store.events(type="ack", since=since):
            if event.body.get("cmd") == command_id:
                return event.body
        time.sleep(0.2)
    return None
