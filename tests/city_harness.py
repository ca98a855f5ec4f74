"""A city for end-to-end tests and bench/city.py: a real PostgreSQL and Mosquitto, city workers as
real processes (`hall-hub run --config city.toml`, so they can be killed -9), and simulated halls:
one paho client per hall playing its devices with the edge's delivery contract (every event kept
until the hub's `committed` watermark covers it, resent after `resend_seconds` and after every
reconnect).

Stores: halls of even index are schemas of one database `city`, the others databases of their own
(both of the operator's choices run); the workers' locks are in `city` too."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import psycopg
from mqtt_broker import Mosquitto
from pg_server import PostgresServer

from hub.audit import verify_log
from hub.city.config import CityConfig, load_city
from hub.city.locks import Holder, city_owners, conninfo
from hub.store.store import Store
from wire.clock import SystemClock
from wire.envelope import KeyPair, format_ts, generate_keypair, load_private_key, seal

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "hall/v1"
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class _Device:
    id: str
    keys: KeyPair
    epoch: str
    seq: int = 0
    mark: int = 0
    pending: dict[int, tuple[bytes, float]] = field(default_factory=dict)  # seq -> (raw, sent at)


class HallSim:
    """A hall's devices on one MQTT client: `publish` issues the next event of a device; what the
    hub has not committed is published again every `resend_seconds`."""

    def __init__(self, port: int, hall: str, devices: dict[str, KeyPair], resend_seconds: float) -> None:
        self.hall = hall
        self.resend_seconds = resend_seconds
        self._clock = SystemClock(TZ)
        self._devices = {d: _Device(d, keys, os.urandom(8).hex()) for d, keys in devices.items()}
        self._signers = {d: load_private_key(keys.private_hex) for d, keys in devices.items()}
        self._lock = threading.Lock()
        self.resent = 0
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{hall}")
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._connected
        self._client.on_message = self._committed
        self._client.reconnect_delay_set(0.2, 2)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                   properties: object) -> None:
        client.subscribe(f"{PREFIX}/{self.hall}/+/committed", qos=1)
        with self._lock:  # as the edge: everything uncovered goes out again after a reconnect
            for device in self._devices.values():
                for seq in device.pending:
                    device.pending[seq] = (device.pending[seq][0], 0.0)

    def _committed(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        envelope = json.loads(message.payload)
        body = envelope["body"]
        with self._lock:
            device = self._devices.get(envelope["device"])
            if device is None or body.get("epoch") != device.epoch:
                return
            device.mark = max(device.mark, int(body["seq"]))
            for seq in [s for s in device.pending if s <= device.mark]:
                del device.pending[seq]

    def publish(self, device_id: str) -> None:
        with self._lock:
            device = self._devices[device_id]
            device.seq += 1
            raw = seal(self._signers[device_id], hall=self.hall, device=device_id, seq=device.seq,
                       ts=format_ts(self._clock.now()), type="clock",
                       body={"method": "card", "card": f"5A{device.seq:08X}"}, epoch=device.epoch).raw
            device.pending[device.seq] = (raw, time.monotonic())
        self._send(device_id, raw)

    def _send(self, device_id: str, raw: bytes) -> None:
        self._client.publish(f"{PREFIX}/{self.hall}/{device_id}/evt/clock", raw, qos=1)

    def resend_due(self) -> None:
        now = time.monotonic()
        due: list[tuple[str, bytes]] = []
        with self._lock:
            for device in self._devices.values():
                for seq in sorted(device.pending):
                    raw, sent = device.pending[seq]
                    if now - sent >= self.resend_seconds:
                        device.pending[seq] = (raw, now)
                        due.append((device.id, raw))
        self.resent += len(due)
        for device_id, raw in due:
            self._send(device_id, raw)

    def issued(self) -> dict[str, int]:
        with self._lock:
            return {d.id: d.seq for d in self._devices.values()}

    def uncommitted(self) -> int:
        with self._lock:
            return sum(len(d.pending) for d in self._devices.values())

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass(frozen=True)
class Tally:
    events: int  # distinct (device, seq) stored
    lost: int  # issued and not stored
    duplicated: int  # (device, seq) stored more than once
    verify_failed_halls: list[str]
    seqs_exact: bool  # every device's stored seqs are exactly 1..N


class City:
    def __init__(self, workdir: Path, pg: PostgresServer, broker: Mosquitto, halls: int, devices: int,
                 resend_seconds: float = 2.0, balance_seconds: float = 0.5) -> None:
        self.workdir = workdir
        self.pg = pg
        self.broker = broker
        self.resend_seconds = resend_seconds
        workdir.mkdir(parents=True, exist_ok=True)
        self.halls = [f"h{i:02d}" for i in range(1, halls + 1)]
        self.device_keys = {h: {f"d{j:02d}": generate_keypair() for j in range(1, devices + 1)}
                            for h in self.halls}
        self.hub_keys = {h: generate_keypair() for h in self.halls}
        self.city_url = pg.create_database(f"city_{os.urandom(4).hex()}")
        self.config_path = workdir / "city.toml"
        self._write_config(balance_seconds)
        self.config: CityConfig = load_city(self.config_path)
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.sims: dict[str, HallSim] = {}

    def store_url(self, index: int, hall: str) -> str:
        if index % 2 == 0:
            return f"{self.city_url}?options=-csearch_path%3D{hall}"
        return self.pg.create_database(f"{hall}_{os.urandom(4).hex()}")

    def _write_config(self, balance_seconds: float) -> None:
        text = (f'[city]\nname = "test"\nstore = "{self.city_url}"\n'
                f"balance_seconds = {balance_seconds}\n")
        (self.workdir / "halls").mkdir(exist_ok=True)
        for index, hall in enumerate(self.halls):
            devices = "".join(f'[[devices]]\nid = "{d}"\npublic_key = "{k.public_hex}"\n'
                              for d, k in self.device_keys[hall].items())
            body = (f'hall = "{hall}"\nprivate_key = "{self.hub_keys[hall].private_hex}"\n'
                    f'[broker]\nurl = "{self.broker.url}"\n'
                    f'[store]\nurl = "{self.store_url(index, hall)}"\n'
                    f"[ingest]\nresend_seconds = {self.resend_seconds}\ngap_after_resends = 5\n"
                    + devices)
            if index % 2 == 0:  # an included file, as a hall's own hub.toml
                (self.workdir / "halls" / f"{hall}.toml").write_text(body, encoding="utf-8")
                text += f'\n[[halls]]\ninclude = "halls/{hall}.toml"\n'
            else:  # inline: the same keys under [[halls]]
                inline = re.sub(r"^\[(\[?)(\w+)(\]?)\]$", r"[\1halls.\2\3]", body, flags=re.M)
                text += "\n[[halls]]\n" + inline
        self.config_path.write_text(text, encoding="utf-8")

    # --- workers -------------------------------------------------------------------------

    def start_worker(self, name: str) -> None:
        log = (self.workdir / f"worker-{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--config", str(self.config_path)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.workers.pop(name)
        process.send_signal(sig)
        process.wait(60)

    def stop(self) -> None:
        for sim in self.sims.values():
            sim.close()
        for name in list(self.workers):
            self.kill_worker(name, signal.SIGTERM)

    def holders(self) -> dict[str, Holder | None]:
        """Hall -> its owner (lock session pid, worker name `host-pid`), or None."""
        try:
            return city_owners(self.config)
        except psycopg.OperationalError:
            return dict.fromkeys(self.halls)

    def halls_of(self, name: str) -> list[str]:
        """The halls the worker process `name` owns now."""
        suffix = f"-{self.workers[name].pid}"
        return [h for h, o in self.holders().items() if o is not None and o.worker.endswith(suffix)]

    def owners(self) -> dict[str, int | None]:
        """Hall -> backend pid of its owner's lock session (None: nobody owns it)."""
        try:
            return {h: None if o is None else o.pid for h, o in city_owners(self.config).items()}
        except psycopg.OperationalError:
            return dict.fromkeys(self.halls)

    def ready_count(self, hall: str) -> int:
        """`ready:` lines of a hall's service (one per connect) over every worker's log."""
        pattern = f"ready: subscribed to {PREFIX}/{hall}\n"
        return sum(path.read_text(errors="replace").count(pattern)
                   for path in self.workdir.glob("worker-*.log"))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-8000:]}"
                         for p in sorted(self.workdir.glob("worker-*.log")))

    # --- halls ---------------------------------------------------------------------------

    def start_sims(self) -> None:
        for hall in self.halls:
            self.sims[hall] = HallSim(self.broker.port, hall, self.device_keys[hall], self.resend_seconds)

    def burst(self, events_per_device: int, rate: float, during: float | None = None) -> None:
        """Every device publishes `events_per_device` events, round robin at about `rate` events/s
        in all; resends due are sent meanwhile."""
        order = [(h, d) for h in self.halls for d in self.device_keys[h]]
        total, start = events_per_device * len(order), time.monotonic()
        for index in range(total):
            hall, device = order[index % len(order)]
            self.sims[hall].publish(device)
            if index % 50 == 0:
                for sim in self.sims.values():
                    sim.resend_due()
            time.sleep(max(0.0, start + (index + 1) / rate - time.monotonic()))

    def settle(self, timeout: float) -> bool:
        """Resend until every event is committed; False if some are not within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(sim.uncommitted() == 0 for sim in self.sims.values()):
                return True
            for sim in self.sims.values():
                sim.resend_due()
            time.sleep(0.2)
        return False

    def tally(self) -> Tally:
        events = lost = duplicated = 0
        failed: list[str] = []
        exact = True
        for hall_config in self.config.halls:
            hall = hall_config.hall
            issued = self.sims[hall].issued()
            with psycopg.connect(conninfo(hall_config.store.url), autocommit=True) as conn:
                rows = conn.execute("SELECT device, seq FROM events").fetchall()
            counts = Counter((str(device), int(seq)) for device, seq in rows)
            events += len(counts)
            duplicated += sum(n - 1 for n in counts.values())
            for device, last in issued.items():
                seqs = sorted(seq for (d, seq) in counts if d == device)
                lost += last - len(set(seqs) & set(range(1, last + 1)))
                exact &= seqs == list(range(1, last + 1))
            store = Store(hall_config.store.url, SystemClock(TZ), create=False)
            try:
                if not verify_log(store, hall_config.device_keys()).ok:
                    failed.append(hall)
            finally:
                store.close()
        return Tally(events, lost, duplicated, failed, exact)


def wait_until(predicate: object, timeout: float, what: str, city: City | None = None) -> float:
    """Poll `predicate` until true; returns the seconds it took."""
    assert callable(predicate)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n" + (city.logs() if city else ""))


def now_text() -> str:
    return datetime.now(TZ).isoformat(timespec="seconds")
