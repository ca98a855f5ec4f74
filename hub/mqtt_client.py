"""The hub's paho client: paho's, less one wake-up per message received.

paho (2.x) queues every outgoing packet with `_packet_queue`, which also writes a byte to a socket
pair so that its network thread, possibly asleep in select(), wakes up to send it. For the PUBACK of
each QoS 1 message the hub receives, the caller is that network thread itself, awake: the byte, the
extra pass through select() and the read of the byte back cost a third of paho's work per message
(26 µs to 18 µs a message for a bare subscriber on the 2-core development machine). Here a packet
queued on the network thread is only queued: `_loop` asks `want_write()` at its next pass and sends
it then, as it does for anything queued while it runs. Packets queued from any other thread (the
hub's watermarks, roster, commands) take paho's own path.

This leans on paho's internals (`_packet_queue`, `_out_packet`, `_thread`), pinned to paho-mqtt 2.x
in pyproject.toml; `queues_quietly` says whether this paho has them as expected, and the client
falls back to paho's own path when it does not. The end-to-end tests and tests/test_mqtt_client.py
check that every message received is acknowledged.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt


def queues_quietly(client: mqtt.Client) -> bool:
    """Whether this paho keeps its outgoing packets and its thread where the override expects."""
    return all(hasattr(client, name) for name in ("_out_packet", "_thread", "_packet_queue"))


class HubClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quiet = queues_quietly(self)

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        thread = self._thread
        if getattr(self, "_quiet", False) and thread is not None and threading.current_thread() is thread:
            queued: Any = {"command": command, "mid": mid, "qos": qos, "pos": 0, "to_process": len(packet),
                           "packet": packet, "info": info}
            self._out_packet.append(queued)
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)
