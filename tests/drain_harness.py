"""A backlog drain: an outbox filled with signed readings, the edge agent as a real process, and a
plain paho subscriber standing in for the hub (it publishes the signed `committed` watermark over
the contiguous run it received, as hub/service.py does). Used by tests/test_edge_drain.py and
bench/drain.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent.outbox import Outbox
from wire.envelope import KeyPair, format_ts, generate_keypair, load_private_key, seal

ROOT = Path(__file__).resolve().parents[1]
HALL, DEVICE = "h1", "entrance"
PREFIX = f"hall/v1/{HALL}/{DEVICE}"
TS = "2026-11-24T08:30:00.000+08:00"


def fill_outbox(path: Path, private_hex: str, count: int) -> None:
    """`count` signed clock readings, seq 1..count, as the agent would have committed them while the
    hub was away: the outbox is created by its own code, the rows go in in one transaction."""
    created = Outbox(path)
    epoch = created.epoch
    created.close()
    key = load_private_key(private_hex)
    rows = []
    for seq in range(1, count + 1):
        envelope = seal(key, hall=HALL, device=DEVICE, seq=seq, ts=TS, type="clock",
                        body={"method": "card", "card": f"5A{seq:08X}"}, epoch=epoch)
        rows.append((seq, envelope.id, envelope.type, envelope.raw))
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO outbox (seq, id, type, payload) VALUES (?, ?, ?, ?)", rows)
        db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (count,))
    db.close()


def outbox_left(path: Path) -> int:
    with sqlite3.connect(path) as db:
        left = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    db.close()
    return left


@dataclass
class HubStandIn:
    """Subscribes to the device's events and state; every `interval` seconds publishes, signed with
    the hub key and retained, the watermark over the contiguous run of seqs received, for the epoch
    the events carry (PROTOCOL.md 2.4)."""

    port: int
    hub_keys: KeyPair
    interval: float = 0.1
    seqs: list[int] = field(default_factory=list)
    states: list[dict[str, object]] = field(default_factory=list)
    first_at: float | None = None

    def __post_init__(self) -> None:
        self._key = load_private_key(self.hub_keys.private_hex)
        self._lock = threading.Lock()
        self._mark = self._published = self._watermark_seq = 0
        self._epoch: str | None = None
        self._stop = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hub-stand-in")
        self._client.on_message = self._message
        self._client.connect("127.0.0.1", self.port)
        self._client.subscribe([(f"{PREFIX}/evt/#", 1), (f"{PREFIX}/state", 1)])
        self._client.loop_start()
        self._thread = threading.Thread(target=self._publish_loop, name="hub-stand-in", daemon=True)
        self._thread.start()

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        if message.topic.endswith("/state"):
            self.states.append(payload["body"])  # a signed state envelope (PROTOCOL.md 2.5)
            return
        with self._lock:
            if self.first_at is None:
                self.first_at = time.monotonic()
            self.seqs.append(int(payload["seq"]))
            self._epoch = payload.get("epoch")
            if payload["seq"] == self._mark + 1:
                self._mark += 1

    def _publish_loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                mark, epoch = self._mark, self._epoch
            if mark != self._published:
                self._watermark_seq += 1
                envelope = seal(self._key, hall=HALL, device=DEVICE, seq=self._watermark_seq,
                                ts=format_ts(datetime.now(UTC)), type="committed",
                                body={"seq": mark, "epoch": epoch})
                self._client.publish(f"{PREFIX}/committed", envelope.raw, qos=1, retain=True)
                self._published = mark

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._client.disconnect()
        self._client.loop_stop()


@dataclass(frozen=True)
class Drained:
    readings: int
    seconds: float  # from the first reading the hub received to the outbox empty
    received: list[int]  # seqs in the order the hub received them
    states: list[dict[str, object]]
    edge_peak_rss_mb: float

    @property
    def per_second(self) -> float:
        return self.readings / self.seconds


def drain(workdir: Path, broker_port: int, count: int, timeout: float) -> Drained:
    """Fill an outbox with `count` readings, start the hub stand-in, then the edge agent; returns
    once the outbox is empty (every reading covered by the watermark)."""
    workdir.mkdir(parents=True, exist_ok=True)
    edge_keys, hub_keys = generate_keypair(), generate_keypair()
    outbox = workdir / "outbox.db"
    fill_outbox(outbox, edge_keys.private_hex, count)
    config = workdir / "edge.toml"
    config.write_text(
        f'hall = "{HALL}"\ndevice = "{DEVICE}"\nprivate_key = "{edge_keys.private_hex}"\n'
        f'hub_public_key = "{hub_keys.public_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:{broker_port}"\n'
        f'[outbox]\npath = "{outbox}"\nresend_seconds = 120\n', encoding="utf-8")
    hub = HubStandIn(broker_port, hub_keys)
    log = (workdir / "edge.log").open("ab")
    edge = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        while outbox_left(outbox):
            if time.monotonic() > deadline or edge.poll() is not None:
                raise AssertionError(f"outbox not drained: {outbox_left(outbox)} left, "
                                     f"{len(hub.seqs)} received; see {workdir / 'edge.log'}")
            time.sleep(0.02)
        done = time.monotonic()
        peak = _peak_rss_mb(edge.pid)
        time.sleep(0.3)  # a late duplicate would show now
    finally:
        edge.send_signal(signal.SIGTERM)
        edge.wait(15)
        hub.close()
        log.close()
    assert hub.first_at is not None
    return Drained(count, done - hub.first_at, list(hub.seqs), list(hub.states), peak)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
