"""A unit slow to start never delays another: with a face unit configured (OpenCV and dlib take
seconds to load), the card reader on a pseudo-terminal is open and reading within 2 s of the agent
process starting, whether the camera is absent or a stream that never answers. And the test
harness plays nothing before the agents said `ready:`."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_sims.card import CardReaderSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto, free_port
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 24, 0, 20, tzinfo=UTC)  # 08:20 in the hall

pytestmark = pytest.mark.e2e


@contextmanager
def silent_stream() -> Iterator[str]:
    """An http URL whose server takes the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/stream.mjpg"


@contextmanager
def absent_file(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "no-such-camera.mp4")


def wait_for_line(log: Path, pattern: str, seconds: float) -> float:
    """Monotonic time the pattern first appeared in the log (polled every 10 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text(errors="replace") if log.exists() else "", re.M):
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"no line matching {pattern!r} within {seconds} s:\n{log.read_text()}")


@pytest.mark.face
@pytest.mark.parametrize("camera", ["absent", "silent_stream"])
def test_the_card_reader_reads_within_2s_whatever_the_camera_does(tmp_path: Path, camera: str) -> None:
    keys, reader = generate_keypair(), CardReaderSim()
    source = silent_stream() if camera == "silent_stream" else absent_file(tmp_path)
    with source as url:
        config = tmp_path / "edge.toml"
        config.write_text(
            f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{keys.private_hex}"\n'
            f'hub_public_key = "{keys.public_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
            f'[outbox]\npath = "outbox.db"\n'
            f'[[units]]\nid = "cam"\nkind = "face"\nsource = "{url}"\n'
            f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{reader.path}"\n',
            encoding="utf-8")
        log = tmp_path / "edge.log"
        with log.open("ab") as out:
            started = time.monotonic()
            agent = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
                                     cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            opened = wait_for_line(log, r"unit door: \S+ open$", 10) - started
            reader.tap("0A004A7B2C", hold_seconds=0.1)
            read = wait_for_line(log, r"unit door card 0A004A7B2C", 10) - started
            if camera == "absent":  # the face stack loaded meanwhile, and the camera was tried
                wait_for_line(log, r"unit cam: camera \S+ lost", 20)
        finally:
            agent.terminate()
            agent.wait(20)
            reader.close()
    print(f"camera {camera}: card reader open {opened:.2f} s, first tap read {read:.2f} s after start")
    assert opened < 2.0, log.read_text()
    assert read < 2.5, log.read_text()  # the tap was played after the open line, then read at once
    assert "ready:" not in log.read_text()  # the camera never opened, and there is no broker


def test_the_harness_starts_the_hall_clock_once_edge_and_hub_are_ready(tmp_path: Path,
                                                                       broker: Mosquitto) -> None:
    reader = CardReaderSim()
    hall = Hall(tmp_path / "hall", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")],
                clock_spec="2026-11-24T08:20:00+08:00,speed=60")
    hall.write_edge_config(reader.path)
    try:
        hall.start_hub()
        hall.start_edge()  # returns once both logged `ready:`, and starts the clock then
        assert hall.clock_anchor is not None and hall.ready_lines("hub") == hall.ready_lines("edge") == 1
        reader.tap("0A004A7B2C", hold_seconds=0.1)
        wait_for(lambda: hall.stored("clock"), 20, "the tap", hall)
        elapsed = time.time() - hall.clock_anchor
        with sqlite3.connect(hall.hub_db) as db:
            (ts,) = db.execute("SELECT ts_utc FROM events WHERE type = 'clock'").fetchone()
        db.close()
        hall_seconds = (datetime.fromisoformat(str(ts)).replace(tzinfo=UTC) - START).total_seconds()
        assert 0 <= hall_seconds <= 60 * elapsed  # stamped on the clock started when all were ready
    finally:
        hall.stop()
        reader.close()
