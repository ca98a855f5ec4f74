"""Simulated halls in processes of their own, for tests/city_harness.py's City and bench/city.py.

A sim process owns a share of a city's halls: one paho client per hall (`HallSim`) playing its
devices with the edge's delivery contract (every event kept until the hub's `committed` watermark of
the same epoch covers it, resent after `resend_seconds` and after every reconnect). Each event is
signed when it is published, so its ts is the moment it was sent. One Python process signing and
publishing for 30 halls on one GIL was the limit of bench/city.py (about 400 events/s); several
processes sign and publish side by side.

A sim process has one thread: its loop selects over its pipe and its clients' sockets and drives
paho itself (`loop_read`, `loop_write`, `loop_misc`, `reconnect`); a paho network thread per client
costs about twice the CPU per QoS 1 publish (measured: 230 against 112 us).

The driving process holds a `SimProcess` for each, over a pipe: the sim process sends `Ready` once
every one of its clients is connected and subscribed (nothing is published before), then answers
each command (`Burst`, `Status`, `Stop`) with its `Progress`. Between commands its loop publishes
the burst's events as they fall due and resends what is due, as an edge does on its own. The
process's stderr is its log (`ready:` first), as a worker's."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import select
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

from wire.clock import SystemClock
from wire.envelope import KeyPair, format_ts, load_private_key, seal

PREFIX = "hall/v1"
TZ = ZoneInfo("Asia/Shanghai")
TEND_S = 0.2  # how often a sim process resends what is due, reconnects and keeps its clients alive
AT_ONCE = 50  # events published in a row before the loop reads its pipe (when behind the rate)
PACE_S = 0.01  # a burst publishes what fell due every PACE_S: one wake per event cost more than its event
RECONNECT_S = (0.2, 2.0)  # the first and the longest wait before a reconnect attempt


def _say(line: str) -> None:
    """A line in the process's log (its stderr)."""
    os.write(2, f"{line}\n".encode())


@dataclass
class _Device:
    id: str
    keys: KeyPair
    epoch: str
    seq: int = 0
    mark: int = 0
    pending: dict[int, tuple[bytes, float]] = field(default_factory=dict)  # seq -> (raw, sent at)


class HallSim:
    """A hall's devices on one MQTT client, driven by the sim process's loop (no thread of its own):
    `publish` issues the next event of a device; `tend` resends what the hub has not committed after
    `resend_seconds`, reconnects a lost client and keeps it alive. `subscribed` once the client is
    connected and subscribed to the hall's watermarks."""

    def __init__(self, port: int, hall: str, devices: dict[str, KeyPair], resend_seconds: float) -> None:
        self.hall = hall
        self.resend_seconds = resend_seconds
        self.subscribed = False
        self.resent = 0
        self._clock = SystemClock(TZ)
        self._devices = {d: _Device(d, keys, os.urandom(8).hex()) for d, keys in devices.items()}
        self._signers = {d: load_private_key(keys.private_hex) for d, keys in devices.items()}
        self._reconnect_wait, self._reconnect_at = RECONNECT_S[0], 0.0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{hall}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._connected
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._committed
        self.client.on_disconnect = self._lost
        self.client.connect("127.0.0.1", port)

    @property
    def device_ids(self) -> list[str]:
        return list(self._devices)

    def _connected(self, client: mqtt.Client, userdata: object, flags: object,
                   reason: mqtt.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            return
        if self._reconnect_at:
            _say(f"reconnected: {self.hall}")
        self._reconnect_wait, self._reconnect_at = RECONNECT_S[0], 0.0
        client.subscribe(f"{PREFIX}/{self.hall}/+/committed", qos=1)
        for device in self._devices.values():  # as the edge: everything uncovered goes out again
            for seq in device.pending:
                device.pending[seq] = (device.pending[seq][0], 0.0)

    def _lost(self, client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode,
              properties: object) -> None:
        _say(f"lost: {self.hall}: {reason}")
        self._reconnect_at = time.monotonic() + self._reconnect_wait

    def _subscribed(self, client: mqtt.Client, userdata: object, mid: int,
                    reasons: list[mqtt.ReasonCode], properties: object) -> None:
        self.subscribed = not any(reason.is_failure for reason in reasons)

    def _committed(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        envelope = json.loads(message.payload)
        body = envelope["body"]
        device = self._devices.get(envelope["device"])
        if device is None or body.get("epoch") != device.epoch:
            return
        device.mark = max(device.mark, int(body["seq"]))
        for seq in [s for s in device.pending if s <= device.mark]:
            del device.pending[seq]

    def publish(self, device_id: str) -> None:
        device = self._devices[device_id]
        device.seq += 1
        raw = seal(self._signers[device_id], hall=self.hall, device=device_id, seq=device.seq,
                   ts=format_ts(self._clock.now()), type="clock",
                   body={"method": "card", "card": f"5A{device.seq:08X}"}, epoch=device.epoch).raw
        device.pending[device.seq] = (raw, time.monotonic())
        self._send(device_id, raw)

    def _send(self, device_id: str, raw: bytes) -> None:
        self.client.publish(f"{PREFIX}/{self.hall}/{device_id}/evt/clock", raw, qos=1)

    def tend(self) -> None:
        now = time.monotonic()
        if self.client.socket() is None:  # lost: reconnect, waiting longer after each refusal
            if now >= self._reconnect_at:
                try:
                    self.client.reconnect()
                except OSError:
                    self._reconnect_wait = min(2 * self._reconnect_wait, RECONNECT_S[1])
                    self._reconnect_at = now + self._reconnect_wait
            return
        self.client.loop_misc()
        for device in self._devices.values():
            for seq in sorted(device.pending):
                raw, sent = device.pending[seq]
                if now - sent >= self.resend_seconds:
                    device.pending[seq] = (raw, now)
                    self.resent += 1
                    self._send(device.id, raw)

    def issued(self) -> dict[str, int]:
        return {d.id: d.seq for d in self._devices.values()}

    def uncommitted(self) -> int:
        return sum(len(d.pending) for d in self._devices.values())

    def close(self) -> None:
        self.client.on_disconnect = None  # not lost: closed
        self.client.disconnect()


def _exchange(sims: list[HallSim], timeout: float, pipe: Connection | None = None) -> bool:
    """Wait up to `timeout` for the clients' sockets (and the pipe), read and write what is ready;
    True when the pipe has something to read."""
    sockets = {sock: sim for sim in sims if (sock := sim.client.socket()) is not None}
    writers = [sock for sock, sim in sockets.items() if sim.client.want_write()]
    readers: list[object] = [*sockets, *([pipe] if pipe is not None else [])]
    readable, writable, _ = select.select(readers, writers, [], timeout)
    for sock in readable:
        if sock is not pipe:
            sockets[sock].client.loop_read()
    for sock in writable:
        if sockets[sock].client.socket() is sock:  # not lost while reading
            sockets[sock].client.loop_write()
    return pipe is not None and pipe in readable


# --- what passes over the pipe ------------------------------------------------------------------


@dataclass(frozen=True)
class SimSpec:
    """What a sim process is started with."""
    index: int
    port: int  # the broker's, on 127.0.0.1
    halls: dict[str, dict[str, KeyPair]]  # hall -> device -> its keys
    resend_seconds: float
    log: Path


@dataclass(frozen=True)
class Ready:
    halls: list[str]


@dataclass(frozen=True)
class Burst:
    """Every device of the process publishes `events_per_device` events, round robin over the
    process's devices at `rate` events/s in all."""
    events_per_device: int
    rate: float


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Stop:
    pass


Command = Burst | Status | Stop


@dataclass(frozen=True)
class Progress:
    issued: dict[str, dict[str, int]]  # hall -> device -> last seq issued
    uncommitted: int  # events not yet covered by a watermark
    resent: int
    bursting: bool


# --- the sim process ------------------------------------------------------------------------------


class _Schedule:
    """A burst under way: event `index` (round robin over `order`) is due `index / rate` s after the
    start."""

    def __init__(self, order: list[tuple[HallSim, str]], events_per_device: int, rate: float) -> None:
        self.order, self.rate = order, rate
        self.total = events_per_device * len(order)
        self.index = 0
        self.start = time.monotonic()

    @property
    def done(self) -> bool:
        return self.index >= self.total

    @property
    def next_at(self) -> float:
        return self.start + self.index / self.rate

    def publish_due(self) -> None:
        """Publish the events due by now, at most AT_ONCE of them."""
        now = time.monotonic()
        for _ in range(AT_ONCE):
            if self.done or self.next_at > now:
                return
            sim, device = self.order[self.index % len(self.order)]
            sim.publish(device)
            self.index += 1


def _progress(sims: list[HallSim], schedule: _Schedule | None) -> Progress:
    return Progress({sim.hall: sim.issued() for sim in sims}, sum(sim.uncommitted() for sim in sims),
                    sum(sim.resent for sim in sims), schedule is not None)


def serve(spec: SimSpec, conn: Connection) -> None:
    """A sim process's main: connect, say ready, then the loop until `Stop` (or the pipe closed)."""
    with spec.log.open("ab", buffering=0) as log:
        os.dup2(log.fileno(), 2)
    sims = [HallSim(spec.port, hall, devices, spec.resend_seconds) for hall, devices in spec.halls.items()]
    deadline = time.monotonic() + 60
    while not all(sim.subscribed for sim in sims):
        if time.monotonic() > deadline:
            late = " ".join(sim.hall for sim in sims if not sim.subscribed)
            raise TimeoutError(f"sim process {spec.index}: {late} not connected and subscribed in 60 s")
        for sim in sims:
            sim.tend()
        _exchange(sims, TEND_S)
    _say(f"ready: sim process {spec.index}: {' '.join(spec.halls)} connected and subscribed")
    conn.send(Ready(list(spec.halls)))
    order = [(sim, device) for sim in sims for device in sim.device_ids]
    schedule: _Schedule | None = None
    next_tend = time.monotonic()
    while True:
        if schedule is not None:
            schedule.publish_due()
            if schedule.done:
                schedule = None
        if time.monotonic() >= next_tend:
            for sim in sims:
                sim.tend()
            next_tend = time.monotonic() + TEND_S
        wake = next_tend if schedule is None else min(next_tend, schedule.next_at + PACE_S)
        if not _exchange(sims, max(0.0, wake - time.monotonic()), conn):
            continue
        try:
            command: Command = conn.recv()
        except EOFError:  # the driving process is gone
            break
        if isinstance(command, Burst):
            schedule = _Schedule(order, command.events_per_device, command.rate)
        conn.send(_progress(sims, schedule))
        if isinstance(command, Stop):
            break
    for sim in sims:
        sim.close()
    _say(f"stopped: sim process {spec.index}")


class SimProcess:
    """The driving side of one sim process. Every call is one command and its `Progress`; a lock
    keeps the pipe's request and reply together when a test asks while a burst runs."""

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        self.devices = sum(len(devices) for devices in spec.halls.values())
        context = multiprocessing.get_context("spawn")  # nothing of the driver's threads inherited
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(spec, child), name=f"city-sim-{spec.index}",
                                        daemon=True)
        self._process.start()
        child.close()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def wait_ready(self, timeout: float) -> Ready:
        """Block until the process says every client is connected and subscribed."""
        reply = self._reply(timeout, "Ready")
        if not isinstance(reply, Ready):
            raise RuntimeError(f"sim process {self.spec.index}: expected Ready, got {reply!r}")
        return reply

    def ask(self, command: Command, timeout: float = 30.0) -> Progress:
        with self._lock:
            self._conn.send(command)
            reply = self._reply(timeout, f"reply to {type(command).__name__}")
        if not isinstance(reply, Progress):
            raise RuntimeError(f"sim process {self.spec.index}: expected Progress, got {reply!r}")
        return reply

    def _reply(self, timeout: float, what: str) -> object:
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
            failure = f"gave no {what} within {timeout} s"
        except (EOFError, ConnectionResetError):
            failure = f"ended before its {what}"
        tail = self.spec.log.read_text(errors="replace")[-4000:] if self.spec.log.exists() else ""
        raise RuntimeError(f"sim process {self.spec.index} (pid {self.pid}) {failure}; "
                           f"its log {self.spec.log}:\n{tail}")

    def stop(self) -> None:
        """Ask the process to disconnect its clients and end; kill it if it does not."""
        if self._process.is_alive():
            # ended or stuck meanwhile: it is killed below, and a test's own failure stays the one shown
            with contextlib.suppress(RuntimeError):
                self.ask(Stop(), timeout=10)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)
        self._conn.close()
