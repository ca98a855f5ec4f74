"""A small hall for end-to-end tests: keys, config files, and the hub and edge agent as real
processes (so they can be killed), talking through a real broker."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hub.service import HubService
from wire.clock import start_clock
from wire.envelope import KeyPair, generate_keypair

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StaffSpec:
    id: str
    name: str
    window: str
    card: str


@dataclass
class Hall:
    """`clock_spec` with an `anchor=`: the hall clock runs from that epoch. Without one
    (`START,speed=N`), the clock stands at START until the edge agent (and the hub, when started) has
    logged `ready:`; `start_edge` then starts it and keeps the epoch in `clock_anchor`."""

    workdir: Path
    broker_url: str
    staff: list[StaffSpec]
    resend_seconds: float = 2.0
    clock_spec: str | None = None
    require_leave_punch: bool = False
    extra_devices: dict[str, str] = field(default_factory=dict)  # device id -> public key hex
    edge_device: str = "entrance"
    witness_seconds: float | None = None  # the edge's `witness_seconds` (default: the agent's)
    hub_keys: KeyPair = field(default_factory=generate_keypair)
    edge_keys: KeyPair = field(default_factory=generate_keypair)
    hub: subprocess.Popen[bytes] | None = None
    edge: subprocess.Popen[bytes] | None = None
    clock_anchor: float | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hub_config = self.workdir / "hub.toml"
        self.edge_config = self.workdir / "edge.toml"
        self.hub_db = self.workdir / "hub.db"
        self.outbox_db = self.workdir / "outbox.db"
        self.anchor_file = self.workdir / "clock.anchor"
        self._hub_ready_before = 0
        self.write_hub_config()

    def write_hub_config(self, store_url: str | None = None) -> None:
        staff = "".join(
            f'\n[[staff]]\nid = "{s.id}"\nname = "{s.name}"\nwindow = "{s.window}"\ncards = ["{s.card}"]\n'
            for s in self.staff
        )
        self.hub_config.write_text(
            f'hall = "h1"\nprivate_key = "{self.hub_keys.private_hex}"\n'
            f'[broker]\nurl = "{self.broker_url}"\n'
            f'[store]\nurl = "{store_url or "sqlite:///" + str(self.hub_db)}"\n'
            f"[ingest]\nresend_seconds = {self.resend_seconds}\n"
            f'[[devices]]\nid = "{self.edge_device}"\npublic_key = "{self.edge_keys.public_hex}"\n'
            + "".join(f'[[devices]]\nid = "{d}"\npublic_key = "{k}"\n' for d, k in self.extra_devices.items())
            + f"{staff}\n"
            "[schedule]\ngrace_minutes = 5\nabsent_after_minutes = 120\nduplicate_punch_minutes = 3\n"
            f"require_leave_punch = {'true' if self.require_leave_punch else 'false'}\n"
            'sessions = [{name = "上午", start = 08:30:00, end = 12:00:00},'
            ' {name = "下午", start = 14:30:00, end = 17:30:00}]\n',
            encoding="utf-8",
        )

    def write_edge_config(self, port: str, units: str | None = None) -> None:
        """The edge config with one card reader on `port`, or with the given [[units]] tables."""
        units = units or f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{port}"\n'
        self.edge_config.write_text(
            f'hall = "h1"\ndevice = "{self.edge_device}"\nprivate_key = "{self.edge_keys.private_hex}"\n'
            f'hub_public_key = "{self.hub_keys.public_hex}"\nheartbeat_seconds = 5\n'
            + (f"witness_seconds = {self.witness_seconds}\n" if self.witness_seconds else "") +
            f'[broker]\nurl = "{self.broker_url}"\n'
            f'[outbox]\npath = "{self.outbox_db}"\nresend_seconds = {self.resend_seconds}\n' + units,
            encoding="utf-8",
        )

    # --- processes -----------------------------------------------------------------------

    def _spawn(self, module: str, config: Path, name: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", module, "run", "--config", str(config), "--log-level", "DEBUG"]
        if self.clock_spec:
            deferred = "anchor=" not in self.clock_spec
            args += ["--clock", self.clock_spec + (f",anchor=@{self.anchor_file}" if deferred else "")]
        log = (self.workdir / f"{name}.log").open("ab")
        return subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def start_hub(self) -> None:
        self._hub_ready_before = self.ready_lines("hub")
        self.hub = self._spawn("hub.cli", self.hub_config, "hub")

    def start_edge(self, wait: bool = True) -> None:
        """Start the edge agent; with `wait`, return once it has logged `ready:` (every unit open, so
        a pty drops nothing, and the broker connected), and the hub too when it was started. A
        deferred hall clock starts then."""
        before = self.ready_lines("edge")
        self.edge = self._spawn("edge_agent.cli", self.edge_config, "edge")
        if not wait:
            return
        wait_for(lambda: self.ready_lines("edge") > before, 20, "edge agent ready", self)
        if self.hub is not None and self.hub.poll() is None:
            wait_for(lambda: self.ready_lines("hub") > self._hub_ready_before, 20, "hub ready", self)
        if self.clock_spec and "anchor=" not in self.clock_spec and not self.anchor_file.exists():
            self.clock_anchor = start_clock(self.anchor_file)

    def ready_lines(self, name: str) -> int:
        """How many `ready:` lines the process `name` (edge, hub) has logged, restarts included."""
        log = self.workdir / f"{name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return len(re.findall(r": ready: ", text))

    @staticmethod
    def _end(process: subprocess.Popen[bytes] | None, sig: int) -> None:
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def kill_hub(self, sig: int = signal.SIGKILL) -> None:
        self._end(self.hub, sig)

    def kill_edge(self, sig: int = signal.SIGKILL) -> None:
        self._end(self.edge, sig)

    def stop(self) -> None:
        self.kill_edge(signal.SIGTERM)
        self.kill_hub(signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-6000:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )

    # --- reading what happened -----------------------------------------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", *args, "--config", str(self.hub_config)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )

    def stored(self, type_: str = "clock") -> list[dict[str, object]]:
        """Bodies of stored events of one type, read straight from the hub's SQLite file."""
        if not self.hub_db.exists():
            return []
        with sqlite3.connect(self.hub_db) as db:
            try:
                rows = db.execute(
                    "SELECT body FROM events WHERE type = ? ORDER BY ts_utc, seq", (type_,)
                ).fetchall()
            except sqlite3.OperationalError:
                return []
        return [json.loads(body) for (body,) in rows]

    def outbox_seqs(self) -> list[int]:
        if not self.outbox_db.exists():
            return []
        with sqlite3.connect(self.outbox_db) as db:
            try:
                return [seq for (seq,) in db.execute("SELECT seq FROM outbox ORDER BY seq")]
            except sqlite3.OperationalError:
                return []

    def outbox_last_seq(self) -> int:
        if not self.outbox_db.exists():
            return 0
        with sqlite3.connect(self.outbox_db) as db:
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            except sqlite3.OperationalError:
                return 0
        return int(row[0]) if row else 0


@contextmanager
def hub_in_thread(service: HubService, connect_timeout: float = 15) -> Iterator[threading.Thread]:
    """A HubService running on a thread of the test, connected and subscribed; stopped after."""
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="hub")
    thread.start()
    try:
        assert service.connected.wait(connect_timeout), "the hub did not connect to the broker"
        time.sleep(0.5)  # the subscriptions are in place at the broker
        yield thread
    finally:
        stop.set()
        thread.join(15)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, hall: Hall | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                         + (hall.logs() if hall else ""))
