"""The hub's paho client: paho's, less one wake-up and three reads per message received.

paho (2.x) queues every outgoing packet with `_packet_queue`, which also writes a byte to a socket
pair so that its network thread, possibly asleep in select(), wakes up to send it. For the PUBACK of
each QoS 1 message the hub receives, the caller is that network thread itself, awake: the byte, the
extra pass through select() and the read of the byte back cost a third of paho's work per message
(26 µs to 18 µs a message for a bare subscriber on the 2-core development machine). Here a packet
queued on the network thread is only queued: `_loop` asks `want_write()` at its next pass and sends
it then, as it does for anything queued while it runs. Packets queued from any other thread (the
hub's watermarks, roster, commands) take paho's own path.

paho also reads each packet in three or four recv() calls from the socket (its command byte, its
length byte by byte, the rest), each a system call that lets go of the GIL and takes it back, which
the hub's run thread holds most of the time. Here `_sock_recv` reads up to READ_BYTES at once and
serves paho's small reads from what it read; `loop_read` goes on reading packets while any of them
are left (select() cannot see them: they are no longer in the socket). A bare subscriber's work per
message went from 18 to 13 µs on the 2-core development machine.

This leans on paho's internals (`_packet_queue`, `_out_packet`, `_thread`, `_sock_recv`, `_sock`),
pinned to paho-mqtt 2.x in pyproject.toml; `queues_quietly` says whether this paho has them as
expected, and the client falls back to paho's own path when it does not. The end-to-end tests and
tests/test_mqtt_client.py check that every message received is acknowledged, and comes out whole.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt

READ_BYTES = 65536  # one recv() for many packets: the broker has at most its in-flight window unacknowledged


def queues_quietly(client: mqtt.Client) -> bool:
    """Whether this paho keeps its outgoing packets, its thread and its socket where the overrides
    expect."""
    return all(hasattr(client, name) for name in ("_out_packet", "_thread", "_packet_queue", "_sock_recv",
                                                  "_sock"))


class HubClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quiet = queues_quietly(self)
        self._read_from: Any = None  # the socket that `_read` was read from (a reconnect makes another)
        self._read = b""
        self._read_at = 0  # what paho has taken of `_read`

    def _sock_recv(self, bufsize: int) -> bytes:
        if not getattr(self, "_quiet", False):
            return super()._sock_recv(bufsize)
        at = self._read_at
        if self._read_from is not self._sock or at >= len(self._read):
            self._read_from, self._read, self._read_at = self._sock, b"", 0
            data = super()._sock_recv(READ_BYTES)  # raises as paho expects (BlockingIOError...)
            if not data:
                return data  # the connection closed
            self._read, at = data, 0
        chunk = self._read[at:at + bufsize]
        self._read_at = at + len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        result = super().loop_read(max_packets)
        while (result == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None
               and self._read_from is self._sock and self._read_at < len(self._read)):
            result = super().loop_read(max_packets)
        return result

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        thread = self._thread
        if getattr(self, "_quiet", False) and thread is not None and threading.current_thread() is thread:
            queued: Any = {"command": command, "mid": mid, "qos": qos, "pos": 0, "to_process": len(packet),
                           "packet": packet, "info": info}
            self._out_packet.append(queued)
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)
