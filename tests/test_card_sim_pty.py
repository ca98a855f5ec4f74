"""Card reader simulator and RDM6300 driver: in-memory transport, a real pty, and the hall-sim CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import serial

from device_sims.card import (
    At,
    CardReaderSim,
    Corrupt,
    Noise,
    ScriptError,
    Tap,
    Wait,
    build_frame,
    card_data,
    parse_script,
)
from device_sims.cli import main as sim_main
from edge_agent.drivers.rdm6300.driver import Rdm6300Driver, open_serial
from edge_agent.readings import CardRead, DeviceError, Transport, UnitFault
from wire.clock import FixedClock

HALL_TIME = datetime(2026, 11, 24, 8, 29, 31, tzinfo=timezone(timedelta(hours=8)))
GOOD = bytes.fromhex("02 30 41 30 30 34 41 37 42 32 43 31 37 03")  # PROTOCOL.md example, 0A004A7B2C


class ScriptedTransport:
    """Returns one scripted (advance seconds, chunk or exception) per read; stops the run at the end."""

    def __init__(self, steps: list[tuple[float, bytes | Exception]], stop: threading.Event) -> None:
        self.steps, self.stop, self.mono = list(steps), stop, 0.0

    def read(self, size: int = 1) -> bytes:
        if not self.steps:
            self.stop.set()
            return b""
        advance, item = self.steps.pop(0)
        self.mono += advance
        if isinstance(item, Exception):
            raise item
        return item

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


def run_scripted(
    steps: list[tuple[float, bytes | Exception]],
) -> tuple[list[CardRead | UnitFault], Rdm6300Driver]:
    stop = threading.Event()
    transport = ScriptedTransport(steps, stop)
    readings: list[CardRead | UnitFault] = []
    driver = Rdm6300Driver("card1", transport, FixedClock(HALL_TIME), readings.append, lambda: transport.mono)
    driver.run(stop)
    return readings, driver


def test_faults_are_rate_limited_and_flushed() -> None:
    bad = build_frame("0A004A7B2C", corrupt=True)
    readings, driver = run_scripted(
        [(0.0, bad), (1.0, bad), (1.0, b"xyz"), (1.0, GOOD), (3.0, b""), (1.0, bad)]
    )
    assert readings == [
        UnitFault("card1", "bad_frame", 1, "1 bad frame(s), 0 byte(s) skipped"),
        CardRead("card1", "0A004A7B2C", HALL_TIME),
        UnitFault("card1", "bad_frame", 1, "1 bad frame(s), 3 byte(s) skipped"),  # at t=6, 5 s later
        UnitFault("card1", "bad_frame", 1, "1 bad frame(s), 0 byte(s) skipped"),  # flushed on return
    ]
    assert (driver.stats.frames, driver.stats.taps, driver.stats.bad_frames) == (1, 1, 3)


def test_a_held_card_is_one_read_until_a_gap_of_one_second() -> None:
    readings, driver = run_scripted([(0.0, GOOD), (0.5, GOOD), (0.9, GOOD + GOOD), (1.0, GOOD)])
    assert [r for r in readings if isinstance(r, CardRead)] == [
        CardRead("card1", "0A004A7B2C", HALL_TIME)
    ] * 2
    assert (driver.stats.frames, driver.stats.taps) == (5, 2)


class SerialException(Exception):  # shaped like pyserial's, without its OSError base
    pass


@pytest.mark.parametrize(
    "error",
    [
        OSError(5, "Input/output error"),
        serial.SerialException("device reports readiness to read but returned no data"),
        SerialException("port gone"),
    ],
)
def test_port_errors_become_device_error_and_flush_faults(error: Exception) -> None:
    stop = threading.Event()
    readings: list[CardRead | UnitFault] = []
    transport = ScriptedTransport([(0.0, b"\x02\x30"), (0.1, b"??"), (0.1, error)], stop)
    driver = Rdm6300Driver("card1", transport, FixedClock(HALL_TIME), readings.append, lambda: transport.mono)
    with pytest.raises(DeviceError) as raised:
        driver.run(stop)
    assert raised.value.__cause__ is error
    assert [r.count for r in readings if isinstance(r, UnitFault)] == [1]


def test_other_errors_are_not_disguised() -> None:
    with pytest.raises(ValueError):
        run_scripted([(0.0, ValueError("a bug"))])


def test_card_forms_and_script_parsing() -> None:
    assert card_data("0A004a7b2c") == "0A004A7B2C"
    assert card_data("0004881196") == "00004A7B2C"  # printed number, first byte 0x00
    assert card_data("0x6700395100") == "6700395100"
    assert card_data("dec:3887558") == "00003B51C6"
    assert build_frame("0A004A7B2C") == GOOD
    assert build_frame("0A004A7B2C", corrupt=True)[11:13] != b"17"
    script = (
        "# morning\ntap 0A004A7B2C 0.3\ntap 0004881196  # printed number\n"
        "noise 68 69\ncorrupt 0A004A7B2C\nwait 1.5\nat 8:21\n"
    )
    assert parse_script(script, default_hold=0.5) == [
        Tap("0A004A7B2C", 0.3),
        Tap("00004A7B2C", 0.5),
        Noise(b"hi"),
        Corrupt("0A004A7B2C"),
        Wait(1.5),
        At(8, 21),
    ]
    for bad, line in [
        ("tap 12345", 1),
        ("wait 1\nwait -1", 2),
        ("\n\nat 25:00", 3),
        ("tap 0A004A7B2C\nhop", 2),
    ]:
        with pytest.raises(ScriptError, match=f"line {line}:"):
            parse_script(bad)


def test_at_step_waits_for_the_hall_clock() -> None:
    asked: list[datetime] = []

    class FastClock:
        def now(self) -> datetime:
            return HALL_TIME

        def wall_seconds_until(self, moment: datetime) -> float:
            asked.append(moment)
            return 0.01

    with CardReaderSim() as sim:
        sim.play([At(9, 5)], FastClock())
        with pytest.raises(ValueError, match="needs a clock"):
            sim.play([At(9, 5)])
    assert asked == [HALL_TIME.replace(hour=9, minute=5, second=0)]


@dataclass
class Harness:
    driver: Rdm6300Driver
    readings: list[CardRead | UnitFault]
    stop: threading.Event
    thread: threading.Thread
    errors: list[DeviceError]
    port: Transport

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(2.0)
        self.port.close()


def start_driver(sim: CardReaderSim) -> Harness:
    """Open the sim's pty as the agent would and run the driver in its own thread."""
    port = open_serial(sim.path, 9600)
    readings: list[CardRead | UnitFault] = []
    errors: list[DeviceError] = []
    driver = Rdm6300Driver("entrance-card", port, FixedClock(HALL_TIME), readings.append)
    stop = threading.Event()

    def run() -> None:
        try:
            driver.run(stop)
        except DeviceError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="rdm6300-test", daemon=True)
    thread.start()
    return Harness(driver, readings, stop, thread, errors, port)


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sim_to_driver_over_a_pty() -> None:
    with CardReaderSim() as sim:
        run = start_driver(sim)
        try:
            sim.play([Tap("0A004A7B2C", 1.5), Noise(b"hello\xff"), Corrupt("67003B51C6"), Tap("0003887558")])
            sim.write(build_frame("0000000000"))
            wait_until(lambda: run.driver.stats.phantom_reads == 1)
        finally:
            run.finish()
    assert not run.thread.is_alive() and run.errors == []
    assert [r for r in run.readings if isinstance(r, CardRead)] == [
        CardRead("entrance-card", "0A004A7B2C", HALL_TIME),
        CardRead("entrance-card", "00003B51C6", HALL_TIME),
    ]
    faults = [r for r in run.readings if isinstance(r, UnitFault)]
    assert faults and all(f.code == "bad_frame" for f in faults)
    assert sum(f.count for f in faults) == 1
    skipped = [re.fullmatch(r"\d+ bad frame\(s\), (\d+) byte\(s\) skipped", f.detail) for f in faults]
    assert sum(int(m.group(1)) for m in skipped if m) == 6 and all(skipped)
    stats = run.driver.stats
    assert (stats.frames, stats.taps, stats.phantom_reads, stats.bad_frames) == (15 + 3, 2, 1, 1)


def test_closing_the_sim_raises_device_error() -> None:
    sim = CardReaderSim()
    run = start_driver(sim)
    try:
        sim.tap("67003BA86C", 0.1)
        wait_until(lambda: run.driver.stats.taps == 1)
        sim.close()  # Linux: the slave then polls readable but reads no data (or EIO)
        run.thread.join(2.0)
    finally:
        run.finish()
    assert not run.thread.is_alive()
    assert len(run.errors) == 1
    assert run.readings == [CardRead("entrance-card", "67003BA86C", HALL_TIME)]


def test_writes_nobody_reads_are_dropped_not_blocking() -> None:
    with CardReaderSim(write_timeout=0.05) as sim:
        started = time.monotonic()
        sim.noise(b"x" * 65536)  # far more than a pty's input queue holds
        assert time.monotonic() - started < 1.0
        assert 0 < sim.dropped_bytes < 65536
    with pytest.raises(OSError):
        sim.noise(b"late")


def hall_sim_command() -> list[str]:
    script = Path(sys.executable).with_name("hall-sim")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from device_sims.cli import main; sys.exit(main())"]


def test_cli_prints_the_pty_first_and_sends_the_frames() -> None:
    command = [*hall_sim_command(), "card", "--tap", "0A004A7B2C", "--start-delay", "0.5", "--linger", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert re.fullmatch(r"PTY /dev/pts/\d+\n", first), first
        port = open_serial(first.split()[1], 9600)
        received = b""
        deadline = time.monotonic() + 3.0
        while received.count(GOOD) < 3 and time.monotonic() < deadline:
            received += port.read(64)
        port.close()
        assert process.wait(5.0) == 0
    assert received == GOOD * 3  # hold 0.3 s, a frame every 0.1 s


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["card", "--tap", "XYZ", "--start-delay", "0"]) == 2
    assert "--tap" in capsys.readouterr().err
    script = tmp_path / "day.txt"
    script.write_text("tap 0A004A7B2C\nat 08:21\n", encoding="utf-8")
    assert sim_main(["card", "--script", str(script)]) == 2
    assert "--timezone" in capsys.readouterr().err
    script.write_text("tap 0A004A7B2C\nflip 1\n", encoding="utf-8")
    assert sim_main(["card", "--script", str(script)]) == 2
    assert f"{script}: line 2:" in capsys.readouterr().err
