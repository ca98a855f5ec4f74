"""The hub daemon: consumes device topics, stores what verifies, quarantines the rest, publishes the
signed `committed` watermarks and the roster.

Threads: paho's network thread only enqueues; the thread that calls `run` owns the store, the
watermarks and every decision. The embedded broker, when configured, has its own thread.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from hub.broker import EmbeddedBroker
from hub.config import HubConfig
from hub.domain import Quarantined, StoredEvent
from hub.faces import ENROLL_KIND, roster_body
from hub.ingest import Decoder
from hub.scheduler import HallScheduler
from hub.store.store import Store
from hub.watermark import Notice, Watermarks
from wire import topics
from wire.clock import Clock
from wire.envelope import format_ts, load_private_key, load_public_key, parse_ts, seal

log = logging.getLogger(__name__)
DRIFT_LIMIT_S = 300
BATCH = 500


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    received_at: datetime


class HubService:
    def __init__(
        self,
        config: HubConfig,
        clock: Clock,
        store: Store,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self._monotonic = monotonic
        self._key = load_private_key(config.private_key_hex())
        keys = {device: load_public_key(key) for device, key in config.device_keys().items()}
        self.decoder = Decoder(config.hall, config.topic_prefix, keys, config.ingest.max_message_bytes)
        self.watermarks = Watermarks()
        self._inbox: queue.Queue[_Message] = queue.Queue()
        self._seq = 0
        self._drifting: set[str] = set()
        self._online: dict[str, bool] = {}
        self._seen: dict[str, tuple[float, bool]] = {}  # device -> (monotonic last state, online)
        self.broker: EmbeddedBroker | None = None
        self.connected = threading.Event()
        self._republish = threading.Event()
        self._next_gallery_check = 0.0
        self._gallery_seq = -1
        self._client = self._make_client()

    # --- lifecycle -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._rebuild_watermarks()
        self._log_roster_if_changed()
        if self.config.broker.url == "embedded":
            self.broker = EmbeddedBroker(self.config.broker.listen)
            self.broker.start()
            host, port = self.broker.host, self.broker.port
        else:
            parts = urlsplit(self.config.broker.url)
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        gap_limit = self.config.ingest.resend_seconds * self.config.ingest.gap_after_resends
        scheduler = HallScheduler(self.config, self.store, self.clock, self.devices_seen, self._monotonic)
        scheduler.start()
        try:
            while not stop.is_set():
                if self._gallery_changed():
                    self._republish.set()
                if self._republish.is_set():
                    self._republish.clear()
                    self._publish_roster()
                    for device in self.watermarks.devices():
                        self._publish_watermark(device)
                self._ingest_batch(timeout=0.2)
                for notice in self.watermarks.overdue_gaps(self._monotonic(), gap_limit):
                    self._report(notice)
        finally:
            scheduler.shutdown()
            self._client.disconnect()
            self._client.loop_stop()
            while not self._inbox.empty():  # what paho already handed over is stored, not lost
                self._ingest_batch(timeout=0)
            if self.broker is not None:
                self.broker.stop()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config.broker
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"hall-hub-{self.config.hall}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.url.startswith("mqtts://"):
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=120)
        client.max_inflight_messages_set(200)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = _no_delay
        return client

    def _gallery_changed(self) -> bool:
        """An enrollment by another process: checked every few seconds, then the roster goes out."""
        now = self._monotonic()
        if now < self._next_gallery_check:
            return False
        self._next_gallery_check = now + 3.0
        last = self.store.last_audit(ENROLL_KIND)
        seq = last.seq if last else 0
        changed, self._gallery_seq = seq != self._gallery_seq, seq
        return changed

    def devices_seen(self) -> dict[str, tuple[float, bool]]:
        return dict(self._seen)

    # --- paho callbacks (network thread) -------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            log.warning("broker refused the hub: %s", reason)
            return
        for topic in topics.hub_subscriptions(self.config.topic_prefix, self.config.hall):
            client.subscribe(topic, qos=1)
        self._republish.set()  # the run thread republishes the roster and the watermarks
        self.connected.set()
        log.info("hub connected (session present: %s)", flags.session_present)
        log.info("ready: subscribed to %s/%s", self.config.topic_prefix, self.config.hall)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: mqtt.ReasonCode, properties: object) -> None:
        self.connected.clear()
        log.warning("hub lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Message(message.topic, bytes(message.payload), self.clock.now()))

    # --- ingest (run thread) -------------------------------------------------------------

    def _ingest_batch(self, timeout: float) -> int:
        try:
            first = self._inbox.get(timeout=timeout) if timeout else self._inbox.get_nowait()
        except queue.Empty:
            return 0
        messages = [first]
        while len(messages) < BATCH:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        items: list[StoredEvent | Quarantined] = []
        for message in messages:
            parts = topics.split(self.config.topic_prefix, message.topic)
            if parts is not None and parts.kind == "state":
                quarantined = self._device_state(parts.device, message)
                if quarantined is not None:
                    items.append(quarantined)
                continue
            items.append(self.decoder.decode(message.topic, message.payload, message.received_at))
        outcomes = self.store.ingest(items) if items else []
        touched: set[str] = set()
        now = self._monotonic()
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(item, StoredEvent):
                touched.add(item.device)
                if outcome == "stored":
                    notice = self.watermarks.accept(item.device, item.seq, now)
                    if notice is not None:
                        self._report(notice)
            else:
                log.warning("quarantined %s: %s %s", item.topic, item.reason, item.detail)
        for device in touched:
            self._publish_watermark(device)
        return len(messages)

    def _report(self, notice: Notice) -> None:
        log.warning("%s on %s: %s", notice.kind, notice.device, notice.detail)
        self.store.append(notice.kind, {"device": notice.device, **notice.detail}, ref=notice.device)
        self._publish_watermark(notice.device)

    def _device_state(self, device: str, message: _Message) -> Quarantined | None:
        """Retained device state: online/offline and clock drift go into the log."""
        def reject(reason: str, detail: str) -> Quarantined:
            return Quarantined(message.received_at, message.topic, reason, detail, message.payload)

        if device not in self.decoder.device_keys:
            return reject("unknown_device", f"state from unregistered device {device!r}")
        if len(message.payload) > self.config.ingest.max_message_bytes:
            return reject("oversize", f"state of {len(message.payload)} bytes")
        try:
            state = json.loads(message.payload)
            online = state["online"]
            if not isinstance(online, bool):
                raise TypeError("online is not a boolean")
            device_ts = parse_ts(state["ts"]) if "ts" in state else None
        except (ValueError, KeyError, TypeError) as exc:
            return reject("malformed", f"state: {exc}")
        self._seen[device] = (self._monotonic(), online)
        if self._online.get(device) != online:
            self._online[device] = online
            self.store.append("device_state", {"device": device, "online": online}, ref=device)
        if device_ts is not None and online:
            drift = abs((device_ts - message.received_at).total_seconds())
            if drift > DRIFT_LIMIT_S and device not in self._drifting:
                self._drifting.add(device)
                self.store.append("clock_drift", {"device": device, "seconds": int(drift)}, ref=device)
            elif drift <= DRIFT_LIMIT_S:
                self._drifting.discard(device)
        return None

    # --- publishing (hub-signed) ---------------------------------------------------------

    def _sealed(self, device: str, type_: str, body: dict[str, Any]) -> bytes:
        self._seq = max(self._seq + 1, time.time_ns() // 1_000_000)
        envelope = seal(self._key, hall=self.config.hall, device=device, seq=self._seq,
                        ts=format_ts(self.clock.now()), type=type_, body=body)
        return envelope.raw

    def _publish_watermark(self, device: str) -> None:
        payload = self._sealed(device, "committed", {"seq": self.watermarks.mark(device)})
        topic = topics.committed(self.config.topic_prefix, self.config.hall, device)
        self._client.publish(topic, payload, qos=1, retain=True)

    def _publish_roster(self) -> None:
        body = roster_body(self.config, self.store)
        topic = topics.roster(self.config.topic_prefix, self.config.hall)
        self._client.publish(topic, self._sealed("hub", "roster", body), qos=1, retain=True)

    # --- start-up ------------------------------------------------------------------------

    def _rebuild_watermarks(self) -> None:
        now = self._monotonic()
        for _hall, device, seq in self.store.device_history():
            self.watermarks.accept(device, seq, now)

    def _log_roster_if_changed(self) -> None:
        roster = {
            "staff": [vars(m) | {"cards": list(m.cards)} for m in self.config.roster()],
            "devices": self.config.device_keys(),
            "schedule": self.config.schedule.model_dump(mode="json"),
        }
        last = self.store.last_audit("roster")
        if last is None or last.data != roster:
            self.store.append("roster", roster)
            log.info("roster change recorded in the log")


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    """Small QoS 1 packets both ways: without TCP_NODELAY, Nagle waits for delayed ACKs (~40 ms)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
