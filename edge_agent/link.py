"""The edge's MQTT link (paho-mqtt 2.x): persistent session, QoS 1, retained state with a last will
(its payload asked of `will_payload` before each connect, so a signed will is sealed per session),
reconnect with backoff from 1 s to 2 min. The link knows topics and bytes, not events or rules."""

from __future__ import annotations

import enum
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge_agent.config import BrokerConfig

log = logging.getLogger(__name__)


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    retained: bool


class MqttLink:
    def __init__(
        self,
        broker: BrokerConfig,
        client_id: str,
        will_topic: str,
        subscriptions: list[str],
        on_message: Callable[[Inbound], None],
        on_connected: Callable[[], None],
        *,
        will_payload: Callable[[], bytes],
    ) -> None:
        self._subscriptions = subscriptions
        self._will_topic = will_topic
        self._will_payload = will_payload
        self._on_message = on_message
        self._on_connected = on_connected
        self._state = LinkState.CLOSED
        self._state_changed = threading.Condition()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,  # persistent session: commands reach a box that reconnects
            protocol=mqtt.MQTTv311,
        )
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.on_pre_connect = self._pre_connect  # each (re)connect carries a freshly sealed will
        client.reconnect_delay_set(min_delay=1, max_delay=120)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(10_000)  # a big backlog waits in the outbox, not in memory
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_socket_open = _no_delay
        self._client = client
        self._broker = broker

    @property
    def state(self) -> LinkState:
        return self._state

    def start(self) -> None:
        self._set(LinkState.CONNECTING)
        self._client.connect_async(self._broker.host, self._broker.port, self._broker.keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Hand a message to paho (QoS 1); False when the link is down (the caller keeps it)."""
        if self._state is not LinkState.CONNECTED:
            return False
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def wait_connected(self, timeout: float) -> bool:
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._state is LinkState.CONNECTED, timeout)

    def close(self, final_state: bytes | None, state_topic: str) -> None:
        """Publish the last state (offline) if connected, then disconnect cleanly."""
        if final_state is not None and self._state is LinkState.CONNECTED:
            info = self._client.publish(state_topic, final_state, qos=1, retain=True)
            info.wait_for_publish(timeout=3)
        self._client.disconnect()
        self._client.loop_stop()
        self._set(LinkState.CLOSED)

    # paho callbacks, on paho's network thread -------------------------------------------

    def _pre_connect(self, client: mqtt.Client, userdata: object) -> None:
        client.will_set(self._will_topic, self._will_payload(), qos=1, retain=True)

    def _connected(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                   reason: mqtt.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            self._set(LinkState.DISCONNECTED)
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._set(LinkState.CONNECTED)
        log.info("connected to %s:%s (session present: %s)", self._broker.host, self._broker.port,
                 flags.session_present)
        self._on_connected()

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                      reason: mqtt.ReasonCode, properties: object) -> None:
        if self._state is not LinkState.CLOSED:
            log.warning("broker connection lost (%s); reconnecting with backoff", reason)
            self._set(LinkState.DISCONNECTED)

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._on_message(Inbound(message.topic, bytes(message.payload), bool(message.retain)))

    def _set(self, state: LinkState) -> None:
        with self._state_changed:
            self._state = state
            self._state_changed.notify_all()


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    """Small QoS 1 packets both ways: without TCP_NODELAY, Nagle waits for delayed ACKs (~40 ms)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
