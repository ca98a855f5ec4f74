"""A city for end-to-end tests and bench/city.py: a real PostgreSQL and Mosquitto, city workers as
real processes (`hall-hub run --config city.toml`, so they can be killed -9), and simulated halls in
sim processes of their own (tests/city_sim_process.py: one paho client per hall playing its devices
with the edge's delivery contract, every event kept until the hub's `committed` watermark covers
it, resent after `resend_seconds` and after every reconnect), driven from here over pipes.

Stores: halls of even index are schemas of one database `city`, the others databases of their own
(both of the operator's choices run); the workers' locks are in `city` too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from city_sim_process import PREFIX, TZ, Burst, SimProcess, SimSpec, Status
from mqtt_broker import Mosquitto
from pg_server import PostgresServer

from hub.audit import verify_log
from hub.city.config import CityConfig, load_city
from hub.city.locks import Holder, city_owners, conninfo
from hub.store.store import Store
from wire.clock import SystemClock
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]


class WorkersNotStopped(RuntimeError):
    def __init__(self, names: list[str], wait: float) -> None:
        super().__init__(f"worker(s) {', '.join(names)} still running {wait:g} s after SIGTERM: killed -9 "
                         "(their logs: worker-NAME.log)")
        self.names = names


class RemoteHall:
    """A simulated hall as seen from the driving process: what its devices issued, asked of the sim
    process that plays it."""

    def __init__(self, hall: str, process: SimProcess) -> None:
        self.hall = hall
        self.process = process

    def issued(self) -> dict[str, int]:
        return self.process.ask(Status()).issued[self.hall]


@dataclass(frozen=True)
class Tally:
    events: int  # distinct (device, seq) stored
    lost: int  # issued and not stored
    duplicated: int  # (device, seq) stored more than once
    verify_failed_halls: list[str]
    seqs_exact: bool  # every device's stored seqs are exactly 1..N


class City:
    def __init__(self, workdir: Path, pg: PostgresServer, broker: Mosquitto, halls: int, devices: int,
                 resend_seconds: float = 2.0, balance_seconds: float = 0.5, sim_processes: int = 2) -> None:
        self.workdir = workdir
        self.pg = pg
        self.broker = broker
        self.resend_seconds = resend_seconds
        self.sim_process_count = min(sim_processes, halls)
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
        self.sim_processes: list[SimProcess] = []
        self.sims: dict[str, RemoteHall] = {}

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

    def stop(self, wait: float = 60.0) -> None:
        """Stop the sim processes, then SIGTERM every worker at once. Workers still running `wait` s
        later are killed -9 and named in `WorkersNotStopped`, raised once nothing is left running."""
        for process in self.sim_processes:
            process.stop()
        for worker in self.workers.values():
            worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait
        killed: list[str] = []
        for name, worker in self.workers.items():
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
                killed.append(name)
        self.workers.clear()
        if killed:
            raise WorkersNotStopped(killed, wait)

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
        paths = sorted(self.workdir.glob("worker-*.log")) + sorted(self.workdir.glob("sim-*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-8000:]}" for p in paths)

    # --- halls ---------------------------------------------------------------------------

    def start_sims(self) -> None:
        """Start the sim processes, each with every `sim_processes`-th hall, and wait until each says
        every client of its is connected and subscribed: no burst starts before."""
        for index in range(self.sim_process_count):
            halls = self.halls[index::self.sim_process_count]
            spec = SimSpec(index, self.broker.port, {h: self.device_keys[h] for h in halls},
                           self.resend_seconds, self.workdir / f"sim-{index}.log")
            self.sim_processes.append(SimProcess(spec))
        for process in self.sim_processes:
            process.wait_ready(60)
            self.sims.update({hall: RemoteHall(hall, process) for hall in process.spec.halls})

    def burst(self, events_per_device: int, rate: float) -> float:
        """Every device publishes `events_per_device` events, round robin at about `rate` events/s
        in all, each sim process its share of the rate (in proportion to its devices); resends run
        in the sim processes meanwhile. Returns the seconds until the last event was published."""
        devices = sum(process.devices for process in self.sim_processes)
        start = time.monotonic()
        for process in self.sim_processes:
            process.ask(Burst(events_per_device, rate * process.devices / devices))
        while any(process.ask(Status()).bursting for process in self.sim_processes):
            time.sleep(0.05)
        return time.monotonic() - start

    def settle(self, timeout: float) -> bool:
        """Wait while the sim processes resend until every event is committed; False if some are
        not within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(process.ask(Status()).uncommitted == 0 for process in self.sim_processes):
                return True
            time.sleep(0.2)
        return False

    def issued(self) -> dict[str, dict[str, int]]:
        """Hall -> device -> the last seq it issued."""
        issued: dict[str, dict[str, int]] = {}
        for process in self.sim_processes:
            issued.update(process.ask(Status()).issued)
        return issued

    def resent(self) -> int:
        return sum(process.ask(Status()).resent for process in self.sim_processes)

    def tally(self) -> Tally:
        events = lost = duplicated = 0
        failed: list[str] = []
        exact = True
        issued_by_hall = self.issued()
        for hall_config in self.config.halls:
            hall = hall_config.hall
            issued = issued_by_hall[hall]
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
