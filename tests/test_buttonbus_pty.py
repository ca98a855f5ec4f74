"""ButtonBus simulators and driver through real pseudo-terminals, and the hall-sim CLI subcommands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import serial

from device_sims import buttonbus
from device_sims.buttonbus import ButtonBox, Corrupt, PointToPointSim, PolledBusSim, Press, parse_script
from device_sims.card import At, Noise, ScriptError, Wait
from device_sims.cli import main as sim_main
from edge_agent.drivers.buttonbus.codec import DisplayMode
from edge_agent.drivers.buttonbus.driver import BusDevice, ButtonBusDriver
from edge_agent.drivers.rdm6300.driver import open_serial
from edge_agent.readings import ButtonPress, DeviceError, DeviceHello, Reading, Transport, UnitFault
from wire.clock import FixedClock

HALL_TIME = datetime(2026, 11, 24, 9, 15, tzinfo=timezone(timedelta(hours=8)))
AWAY_TEXT = "暂离 · 会议 · 10:30 返回"
EVALUATOR, DESK = 1, 2


@dataclass
class Harness:
    driver: ButtonBusDriver
    readings: list[Reading]
    errors: list[DeviceError]
    thread: threading.Thread

    def presses(self) -> list[ButtonPress]:
        return [r for r in list(self.readings) if isinstance(r, ButtonPress)]

    def of_type(self, kind: type) -> list[Reading]:
        return [r for r in list(self.readings) if isinstance(r, kind)]


@contextmanager
def running_driver(path: str, devices: Sequence[BusDevice], polled: bool) -> Iterator[Harness]:
    """Open `path` as the agent would and run the driver in its own thread until the block ends."""
    port: Transport = open_serial(path, 9600)
    readings: list[Reading] = []
    errors: list[DeviceError] = []
    driver = ButtonBusDriver("port-1", port, FixedClock(HALL_TIME), readings.append, devices, polled=polled)
    stop = threading.Event()

    def run() -> None:
        try:
            driver.run(stop)
        except DeviceError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="buttonbus-test", daemon=True)
    thread.start()
    try:
        yield Harness(driver, readings, errors, thread)
    finally:
        stop.set()
        thread.join(2.0)
        port.close()
    assert not thread.is_alive()


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_point_to_point_repeats_are_acknowledged_and_make_one_press() -> None:
    with PointToPointSim(ButtonBox(1, EVALUATOR)) as sim:
        with running_driver(sim.path, [BusDevice(1, "eval-03")], polled=False) as run:
            sim.drop_acks(3)
            sim.press(None, 4)
            assert sim.wait_acked(3.0)
            assert (sim.box.repeats_sent, sim.box.acks_received) == (3, 4)
            sim.press(1, 5)
            assert sim.wait_acked(1.0)
            wait_until(lambda: len(run.presses()) == 2)
        assert run.errors == []
        assert run.presses() == [ButtonPress("eval-03", 1, key, HALL_TIME) for key in (4, 5)]
        stats = run.driver.stats
        assert (stats.acks_sent, stats.repeats, stats.bad_frames) == (5, 3, 0)


def test_point_to_point_show_and_power_cycle() -> None:
    long_text = "请对本次服务进行评价，谢谢您的配合与支持，祝您生活愉快" * 2
    with PointToPointSim(ButtonBox(7, DESK)) as sim:
        with running_driver(sim.path, [BusDevice(7, "desk-07")], polled=False) as run:
            run.driver.show(7, DisplayMode.AWAY, AWAY_TEXT)
            run.driver.show(7, DisplayMode.INVITE, long_text)
            wait_until(lambda: len(sim.box.shown) == 2)
            assert sim.box.shown[0] == (4, AWAY_TEXT)
            assert sim.box.shown[1][0] == 1 and long_text.startswith(sim.box.shown[1][1])
            assert len(sim.box.shown[1][1].encode()) == 63
            with pytest.raises(ValueError):
                run.driver.show(8, DisplayMode.IDLE, "")
            assert sim.press(None, 0x10) == 0
            assert sim.wait_acked(1.0)
            sim.restart()  # power cycle: HELLO, then the seq starts again at 0
            wait_until(lambda: any(isinstance(r, DeviceHello) for r in run.readings))
            assert sim.press(None, 0x11) == 0
            assert sim.wait_acked(1.0)
            wait_until(lambda: len(run.presses()) == 2)
        assert [p.key for p in run.presses()] == [0x10, 0x11]
        assert DeviceHello("desk-07", 7, DESK, 7, "1.0") in run.readings


BUS = [BusDevice(1, "eval-01"), BusDevice(2, "desk-02"), BusDevice(3, "eval-03")]


def bus_sim() -> PolledBusSim:
    return PolledBusSim([ButtonBox(1, EVALUATOR), ButtonBox(2, DESK), ButtonBox(3, EVALUATOR, keys=3)])


def test_polled_bus_of_three_devices() -> None:
    with bus_sim() as sim:
        with running_driver(sim.path, BUS, polled=True) as run:
            wait_until(lambda: len(run.of_type(DeviceHello)) == 3)
            sim.drop_acks(2)
            for addr, key in [(1, 5), (2, 0x10), (3, 3), (1, 4)]:
                sim.press(addr, key)
            sim.noise(b"hi\x00\x55")
            sim.corrupt()
            sim.noise(buttonbus.build_frame(9, 0x02, b"\x00\x01"))  # a device nobody configured
            for addr, key in [(2, 0x11), (3, 1), (1, 2)]:
                sim.press(addr, key)
            assert sim.wait_acked(3.0)
            wait_until(lambda: len(run.presses()) == 7)
            started, polls = time.monotonic(), run.driver.stats.polls
            time.sleep(0.3)
            rate = (run.driver.stats.polls - polls) / 3 / (time.monotonic() - started)
        assert run.errors == []
        assert 5 <= rate <= 40  # each address polled at least every 200 ms, no busy loop
        by_addr = {addr: [(p.unit, p.key) for p in run.presses() if p.addr == addr] for addr in (1, 2, 3)}
        assert by_addr == {
            1: [("eval-01", 5), ("eval-01", 4), ("eval-01", 2)],
            2: [("desk-02", 0x10), ("desk-02", 0x11)],
            3: [("eval-03", 3), ("eval-03", 1)],
        }
        assert set(run.of_type(DeviceHello)) == {
            DeviceHello("eval-01", 1, EVALUATOR, 5, "1.0"),
            DeviceHello("desk-02", 2, DESK, 7, "1.0"),
            DeviceHello("eval-03", 3, EVALUATOR, 3, "1.0"),
        }
        faults = [r for r in run.readings if isinstance(r, UnitFault)]
        assert faults and all(f.unit == "port-1" and f.code == "bad_frame" for f in faults)
        assert len(faults) <= 2 and sum(f.count for f in faults) == 2  # rate-limited, the rest flushed
        assert any("address(es) [9]" in f.detail for f in faults)
        stats = run.driver.stats
        assert (stats.presses, stats.repeats, stats.acks_sent) == (7, 2, 9)
        assert sum(box.repeats_sent for box in sim.boxes.values()) == 2


def test_polled_show_and_a_key_given_up_after_ten_repeats() -> None:
    with bus_sim() as sim:
        with running_driver(sim.path, BUS, polled=True) as run:
            run.driver.show(2, DisplayMode.AWAY, AWAY_TEXT)
            run.driver.show(3, DisplayMode.THANKS, "谢谢")
            sim.drop_acks(1000)
            sim.press(1, 3)
            assert not sim.wait_acked(3.0)  # given up after 10 repeats
            wait_until(lambda: sim.boxes[2].shown and sim.boxes[3].shown)
        first, desk, third = sim.boxes[1], sim.boxes[2], sim.boxes[3]
        assert (first.repeats_sent, first.acks_received, first.keys_lost) == (10, 11, 1)
        assert run.presses() == [ButtonPress("eval-01", 1, 3, HALL_TIME)]
        assert (desk.shown, third.shown, first.shown) == ([(4, AWAY_TEXT)], [(2, "谢谢")], [])


@pytest.mark.parametrize("polled", [False, True])
def test_closing_the_sim_raises_device_error(polled: bool) -> None:
    sim = bus_sim() if polled else PointToPointSim(ButtonBox(1, EVALUATOR))
    with running_driver(sim.path, BUS if polled else BUS[:1], polled=polled) as run:
        sim.press(1, 2)
        wait_until(lambda: len(run.presses()) == 1)
        sim.close()
        run.thread.join(2.0)
        assert not run.thread.is_alive()
    assert len(run.errors) == 1
    with pytest.raises(OSError):
        sim.noise(b"late")


class BrokenPort:
    """An in-memory transport whose read or write fails."""

    def __init__(self, read_error: Exception | None, write_error: Exception | None) -> None:
        self.read_error, self.write_error = read_error, write_error

    def read(self, size: int = 1) -> bytes:
        time.sleep(0.01)
        if self.read_error is not None:
            raise self.read_error
        return b""

    def write(self, data: bytes) -> int:
        if self.write_error is not None:
            raise self.write_error
        return len(data)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("read_error", "write_error", "polled", "expected"),
    [
        (OSError(5, "Input/output error"), None, False, DeviceError),
        (serial.SerialException("device reports readiness to read but returned no data"), None, False,
         DeviceError),
        (None, serial.SerialTimeoutException("write timeout"), True, DeviceError),
        (ValueError("a bug"), None, True, ValueError),  # not disguised as a port failure
    ],
)
def test_port_errors_become_device_error(
    read_error: Exception | None, write_error: Exception | None, polled: bool, expected: type
) -> None:
    readings: list[Reading] = []
    devices = BUS if polled else BUS[:1]
    driver = ButtonBusDriver("port-1", BrokenPort(read_error, write_error), FixedClock(HALL_TIME),
                             readings.append, devices, polled=polled)
    stop = threading.Event()
    safety_net = threading.Timer(2.0, stop.set)  # the error must come long before
    safety_net.start()
    with pytest.raises(expected) as raised:
        driver.run(stop)
    safety_net.cancel()
    error = read_error or write_error
    assert raised.value is error or raised.value.__cause__ is error
    assert readings == []


def test_script_parsing() -> None:
    text = "# morning\npress 1 5\npress 2 0x10  # toggle\nnoise 68 69\ncorrupt\nwait 0.5\nat 9:15\n"
    assert parse_script(text, {1, 2}, need_addr=True) == [
        Press(1, 5), Press(2, 0x10), Noise(b"hi"), Corrupt(), Wait(0.5), At(9, 15)
    ]
    assert parse_script("press 5\npress 1 4", {1}, need_addr=False) == [Press(None, 5), Press(1, 4)]
    for bad, line, need_addr in [
        ("press 5", 1, True),
        ("press 1 5\npress 3 5", 2, True),
        ("\npress 1 256", 2, False),
        ("wait -1", 1, False),
        ("press 1\n\nat 24:00", 3, False),
        ("noise zz", 1, False),
        ("hop", 1, False),
    ]:
        with pytest.raises(ScriptError, match=f"line {line}:"):
            parse_script(bad, {1, 2}, need_addr)


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["bus", "--device", "1:evaluator", "--press", "2:5", "--start-delay", "0"]) == 2
    assert "--press 2:5" in capsys.readouterr().err
    assert sim_main(["bus", "--device", "1:evaluator", "--device", "1:desk", "--start-delay", "0"]) == 2
    assert "twice" in capsys.readouterr().err
    script = tmp_path / "desk.txt"
    script.write_text("press 0x10\nflip\n", encoding="utf-8")
    assert sim_main(["desk", "--script", str(script), "--start-delay", "0"]) == 2
    assert f"{script}: line 2:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sim_main(["bus", "--device", "1:printer"])


def hall_sim_command() -> list[str]:
    script = Path(sys.executable).with_name("hall-sim")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from device_sims.cli import main; sys.exit(main())"]


def test_cli_bus_prints_the_pty_first_then_the_displays() -> None:
    command = [
        *hall_sim_command(), "bus", "--device", "1:evaluator", "--device", "2:desk",
        "--press", "1:5", "--press", "2:0x10", "--gap", "0.1", "--start-delay", "0.3", "--linger", "0.7",
    ]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        assert re.fullmatch(r"PTY /dev/pts/\d+\n", first), first
        devices = [BusDevice(1, "eval-01"), BusDevice(2, "desk-02")]
        with running_driver(first.split()[1], devices, polled=True) as run:
            run.driver.show(2, DisplayMode.AWAY, AWAY_TEXT)
            wait_until(lambda: len(run.presses()) == 2)
        assert process.wait(5.0) == 0, process.stderr.read()
        shown = [json.loads(line) for line in process.stdout.read().splitlines()]
    assert [(p.addr, p.key) for p in run.presses()] == [(1, 5), (2, 0x10)]
    assert shown == [{"addr": 2, "mode": 4, "text": AWAY_TEXT}]
