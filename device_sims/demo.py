"""`hall-sim demo`: a whole simulated hall morning on one machine.

The hub (with its embedded amqtt broker, SQLite store), one entrance edge agent and a simulated
RDM6300 card reader on a pseudo-terminal run as separate processes sharing a ScaledClock, so the
morning from 08:15 to 12:08 plays in about a minute. Then it prints the attendance table, the
quarantine and the log verification, using the same commands an inspector would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from device_sims.card import CardReaderSim
from wire.clock import ScaledClock
from wire.envelope import generate_keypair

DAY = "2026-11-24"  # a Tuesday
START = datetime.fromisoformat(f"{DAY}T08:15:00+08:00")
SPEED = 300.0  # one real second is five hall minutes


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    window: str
    card: str  # as written in the roster: hex, or the printed decimal number


STAFF = [
    Person("S001", "张伟", "01", "0A004A7B2C"),
    Person("S002", "王芳", "01", "67003B51C6"),
    Person("S003", "李娜", "02", "0003909740"),  # roster holds the printed number of 67003BA86C
    Person("S004", "刘洋", "02", "1F00644BB6"),
    Person("S005", "陈静", "03", "2A00112233"),
    Person("S006", "杨磊", "03", "2A00445566"),
    Person("S007", "赵敏", "04", "2A00778899"),
    Person("S008", "黄强", "04", "2A00AABBCC"),
    Person("S009", "周杰", "05", "2A00DDEEFF"),
    Person("S010", "吴霞", "05", "2A00102030"),
]

# (hall time, step): who taps when; what a morning at the entrance looks like.
SCRIPT: list[tuple[str, str, str]] = [
    ("08:16", "tap", "0A004A7B2C"),
    ("08:18", "tap", "67003B51C6"),
    ("08:19", "tap", "67003B51C6"),  # tapped again a minute later: counts once
    ("08:20", "noise", "4e4f495345ffff00"),  # line noise on the serial cable
    ("08:21", "hold", "67003BA86C"),  # card left on the reader for minutes: one punch, not forty
    ("08:28", "tap", "1F00644BB6"),
    ("08:29", "tap", "2A00AABBCC"),
    ("08:34", "tap", "2A00445566"),  # inside the 5 minutes of grace
    ("08:41", "corrupt", "2A00778899"),  # a bad read, counted and skipped ...
    ("08:42", "tap", "2A00778899"),  # ... and the retry gets through: late
    ("08:56", "tap", "2A00112233"),  # late
    ("11:31", "tap", "2A00AABBCC"),  # leaves early
    ("12:00", "tap", "0A004A7B2C"),
    ("12:01", "tap", "67003B51C6"),
    ("12:02", "tap", "67003BA86C"),
    ("12:03", "tap", "1F00644BB6"),
    ("12:04", "tap", "2A00112233"),
    ("12:05", "tap", "2A00445566"),
    ("12:06", "tap", "2A00778899"),
]
# S009 never comes (absent); S010 is on approved leave for the day.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_configs(workdir: Path, port: int, pty_path: str) -> tuple[Path, Path]:
    hub_keys, edge_keys = generate_keypair(), generate_keypair()
    roster = "".join(
        f'[[staff]]\nid = "{p.id}"\nname = "{p.name}"\nwindow = "{p.window}"\ncards = ["{p.card}"]\n\n'
        for p in STAFF
    )
    hub = workdir / "hub.toml"
    hub.write_text(
        f'hall = "demo"\ntimezone = "Asia/Shanghai"\nprivate_key = "{hub_keys.private_hex}"\n\n'
        f'[broker]\nurl = "embedded"\nlisten = "127.0.0.1:{port}"\n\n'
        '[store]\nurl = "sqlite:///hub.db"\n\n'
        f'[[devices]]\nid = "entrance"\nname = "大厅入口"\npublic_key = "{edge_keys.public_hex}"\n\n'
        f"{roster}"
        "[schedule]\ngrace_minutes = 5\nabsent_after_minutes = 120\nduplicate_punch_minutes = 3\n"
        "require_leave_punch = true\n"
        'sessions = [{name = "上午", start = 08:30:00, end = 12:00:00},\n'
        '            {name = "下午", start = 14:30:00, end = 17:30:00}]\n',
        encoding="utf-8",
    )
    edge = workdir / "edge.toml"
    edge.write_text(
        f'hall = "demo"\ndevice = "entrance"\nprivate_key = "{edge_keys.private_hex}"\n'
        f'hub_public_key = "{hub_keys.public_hex}"\n\n'
        f'[broker]\nurl = "mqtt://127.0.0.1:{port}"\n\n'
        '[outbox]\npath = "outbox.db"\nresend_seconds = 5\n\n'
        f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{pty_path}"\n',
        encoding="utf-8",
    )
    return hub, edge


def stored_clock_events(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM events WHERE type = 'clock'").fetchone()[0])
    except sqlite3.Error:
        return 0


def run(workdir: Path) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    clock = ScaledClock(START, SPEED, time.time() + 6.0, START.tzinfo)  # type: ignore[arg-type]
    reader = CardReaderSim()
    hub_cfg, edge_cfg = write_configs(workdir, free_port(), reader.path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def cli(module: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              env=env, cwd=workdir, timeout=120)

    def spawn(module: str, config: Path) -> subprocess.Popen[bytes]:
        log = (workdir / f"{config.stem}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", module, "run", "--config", str(config),
                                 "--clock", clock.spec()], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=workdir)

    print(f"== 模拟大厅 simulated hall, {DAY}, clock x{SPEED:.0f}; files in {workdir}")
    leave = cli("hub.cli", "leave", "add", "--config", str(hub_cfg), "--staff", "S010", "--from", DAY,
                "--to", DAY, "--approver", "办公室主任", "--reason", "病假 sick leave")
    print(leave.stdout.strip() or leave.stderr.strip())
    hub = spawn("hub.cli", hub_cfg)
    time.sleep(1.5)
    edge = spawn("edge_agent.cli", edge_cfg)
    taps = 0
    try:
        for at, step, card in SCRIPT:
            moment = datetime.fromisoformat(f"{DAY}T{at}:00+08:00")
            time.sleep(clock.wall_seconds_until(moment))
            print(f"  {at} {step:<8} {card}", flush=True)
            if step == "tap":
                reader.tap(card, hold_seconds=0.1)
                taps += 1
            elif step == "hold":
                reader.tap(card, hold_seconds=1.2, interval=0.1)  # six hall minutes
                taps += 1
            elif step == "noise":
                reader.noise(bytes.fromhex(card))
            elif step == "corrupt":
                reader.corrupt(card)
        deadline = time.monotonic() + 30
        while stored_clock_events(workdir / "hub.db") < taps and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(clock.wall_seconds_until(datetime.fromisoformat(f"{DAY}T12:06:00+08:00")))
    finally:
        for process in (edge, hub):
            process.send_signal(signal.SIGTERM)
        for process in (edge, hub):
            process.wait(20)
        reader.close()

    print(f"\n== 考勤 attendance {DAY} (judged at 12:08; afternoon not yet decided)")
    table = cli("hub.cli", "attendance", "--config", str(hub_cfg), "--date", DAY,
                "--at", f"{DAY}T12:08:00+08:00")
    print(table.stdout)
    faults = cli("hub.cli", "log", "show", "--config", str(hub_cfg), "--kind", "event")
    print("== 设备故障 device faults reported by the edge")
    print("\n".join(line for line in faults.stdout.splitlines() if "fault" in line) or "(none)")
    verify = cli("hub.cli", "log", "verify", "--config", str(hub_cfg))
    print("\n== 日志校验 log verify")
    print((verify.stdout + verify.stderr).strip())
    return 0 if table.returncode == 0 and verify.returncode == 0 else 1


def main(workdir: str = "var/demo") -> int:
    return run(Path(workdir).resolve())
