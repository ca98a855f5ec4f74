"""The edge keeps what it acknowledged: an outbox that refuses writes (a full disk) while devices on
real pseudo-terminals keep sending, a corrupt outbox at start, the outbox epoch, the size warning,
and where the publisher stands in the outbox."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device_sims.buttonbus import ButtonBox, PointToPointSim
from device_sims.card import CardReaderSim
from edge_agent import config as edge_config
from edge_agent.agent import EdgeAgent
from edge_agent.drivers.buttonbus.codec import ACK, KEY, encode
from edge_agent.drivers.buttonbus.driver import BusDevice, ButtonBusDriver
from edge_agent.drivers.faults import FaultReporter, RecordError
from edge_agent.outbox import Outbox, OutboxError, Sweep
from edge_agent.readings import ButtonPress, DeviceError, Reading, UnitFault
from tests.drain_harness import fill_outbox
from tests.hall_harness import wait_for
from tests.mqtt_broker import free_port
from wire.clock import SystemClock
from wire.envelope import Envelope, generate_keypair

KEYS = generate_keypair()
CLOCK = SystemClock(ZoneInfo("Asia/Shanghai"))
THANKS = (2, "谢谢您的评价 Thank you")


def edge_config_for(tmp_path: Path, units: str = "", outbox: str = "") -> edge_config.EdgeConfig:
    """An edge config whose broker is nowhere (the agent keeps reading and recording offline)."""
    path = tmp_path / "edge.toml"
    path.write_text(
        f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{KEYS.private_hex}"\n'
        f'hub_public_key = "{KEYS.public_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
        f'[outbox]\npath = "outbox.db"\n{outbox}{units}', encoding="utf-8")
    return edge_config.load(path)


def card_unit(port: str) -> str:
    return f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{port}"\n'


def evaluator_unit(port: str) -> str:
    return f'[[units]]\nid = "eval"\nkind = "evaluator"\nport = "{port}"\nwindow = "03"\n'


class FullDisk(Outbox):
    """An outbox on a disk that is full while `full` is set: each put raises what SQLite raises then.
    `refused` lists the types of the events refused."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = False
        self.refused: list[str] = []

    def put(self, make: Callable[[int], Envelope], attachment: bytes | None = None) -> Envelope:
        if self.full:
            self.refused.append(make(self.last_seq() + 1).type)
            raise sqlite3.OperationalError("database or disk is full")
        return super().put(make, attachment)


@contextmanager
def running(agent: EdgeAgent) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), name="agent-under-test")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def events(outbox: Outbox) -> list[tuple[str, dict[str, Any]]]:
    return [(item.type, json.loads(item.payload)["body"]) for item in outbox.pending(limit=10_000)]


def nothing_raised(caplog: pytest.LogCaptureFixture) -> bool:
    """No traceback was logged: no unit thread, nor the supervisor, met an exception."""
    return not [record for record in caplog.records if record.exc_info]


# --- an outbox that refuses writes ------------------------------------------------------


def test_a_refused_key_press_is_not_acked_and_counts_once_when_the_device_sends_it_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with PointToPointSim(ButtonBox(1, 1)) as sim:
        config = edge_config_for(tmp_path, evaluator_unit(sim.path))
        disk = FullDisk(config.outbox.path)
        agent = EdgeAgent(config, CLOCK, outbox=disk)
        with running(agent):
            wait_for(lambda: sim.box.shown, 5, "the display set")  # the port is open: its display was set
            disk.full = True
            sim.press(None, 4)
            wait_for(lambda: disk.refused.count("rating") >= 3, 5, "the first send and two repeats")
            assert sim.box.acks_received == 0 and THANKS not in sim.box.shown
            disk.full = False
            assert sim.wait_acked(3.0)
            wait_for(lambda: THANKS in sim.box.shown, 5, "the thanks shown")  # a frame after the ack
            wait_for(lambda: [kind for kind, _ in events(disk)] == ["rating", "fault"], 5, "rating and fault")
            recorded = events(disk)
            unit_status = agent.units["eval"].status
    assert recorded[0][1] == {"window": "03", "level": 4, "keys": 5, "invited": False, "invite": None,
                              "ticket": None}
    refused = disk.refused.count("rating")  # the loop's attempts to report the fault are refused too
    fault = recorded[1][1]
    assert (fault["unit"], fault["code"], fault["count"]) == ("outbox", "outbox_write_failed", refused)
    assert f"({refused} rating)" in fault["detail"] and "database or disk is full" in fault["detail"]
    assert (sim.box.acks_received, sim.box.repeats_sent, sim.box.keys_lost) == (1, refused, 0)
    assert sim.box.shown.count(THANKS) == 1  # thanked once, for the press that was recorded
    assert unit_status == "ok" and nothing_raised(caplog)
    assert "outbox refused a rating event" in caplog.text


def test_a_refused_tap_is_logged_and_reported_and_the_reader_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = CardReaderSim()
    try:
        config = edge_config_for(tmp_path, card_unit(reader.path))
        disk = FullDisk(config.outbox.path)
        agent = EdgeAgent(config, CLOCK, outbox=disk)
        with running(agent):
            wait_for(lambda: agent.units["door"].status == "ok", 5, "the reader open")
            disk.full = True
            reader.tap("0A004A7B2C", hold_seconds=0.1)
            wait_for(lambda: disk.refused == ["clock"], 5, "the tap refused")
            disk.full = False
            reader.tap("67003B51C6", hold_seconds=0.1)
            wait_for(lambda: [kind for kind, _ in events(disk)] == ["clock", "fault"], 5, "clock and fault")
            recorded = events(disk)
            unit_status = agent.units["door"].status
    finally:
        reader.close()
    assert recorded[0][1] == {"method": "card", "card": "67003B51C6"}
    assert (recorded[1][1]["code"], recorded[1][1]["count"]) == ("outbox_write_failed", 1)
    assert "(1 clock)" in recorded[1][1]["detail"]
    assert unit_status == "ok" and nothing_raised(caplog)
    assert "outbox refused a clock event" in caplog.text


def test_refusals_are_reported_by_the_loop_when_no_reading_comes(tmp_path: Path) -> None:
    config = edge_config_for(tmp_path)
    disk = FullDisk(config.outbox.path)
    agent = EdgeAgent(config, CLOCK, monotonic=lambda: time.monotonic() * 50, outbox=disk)
    with running(agent):
        disk.full = True
        with pytest.raises(RecordError, match="fault event not recorded: database or disk is full"):
            agent.record(UnitFault("door", "port_lost", 1, "/dev/hall-card gone"))
        assert disk.refused == ["fault"] and events(disk) == []
        disk.full = False  # no reading follows: the loop's outbox check (every 0.1 s here) reports it
        wait_for(lambda: [body["code"] for _, body in events(disk)] == ["outbox_write_failed"], 5,
                 "the refusal reported")
    assert "(1 fault)" in events(Outbox(config.outbox.path))[0][1]["detail"]


# --- a corrupt outbox at start ------------------------------------------------------------


def damage_pages(path: Path) -> None:
    """A real outbox whose table pages were overwritten (a bad SD card), its first page intact."""
    fill_outbox(path, KEYS.private_hex, 300)
    with path.open("r+b") as file:
        file.seek(4096 * 2)
        file.write(os.urandom(4096 * 6))


@pytest.mark.parametrize("damage", ["not_sqlite", "damaged_pages"])
def test_a_corrupt_outbox_is_kept_aside_and_a_new_one_takes_readings(tmp_path: Path, damage: str) -> None:
    reader = CardReaderSim()
    try:
        config = edge_config_for(tmp_path, card_unit(reader.path))
        path = config.outbox.path
        if damage == "not_sqlite":
            path.write_bytes(b"this is not an outbox\n" * 100)
            path.with_name("outbox.db-wal").write_bytes(b"a stale write-ahead log")
        else:
            damage_pages(path)
        original = path.read_bytes()
        agent = EdgeAgent(config, CLOCK)
        kept = agent.outbox.kept_corrupt
        assert kept is not None and re.fullmatch(r"outbox\.db\.corrupt-\d{8}T\d{6}Z", kept.name)
        assert kept.read_bytes() == original  # kept whole, for inspection
        if damage == "not_sqlite":
            assert kept.with_name(kept.name + "-wal").read_bytes() == b"a stale write-ahead log"
        with running(agent):
            wait_for(lambda: agent.units["door"].status == "ok", 5, "the reader open")
            reader.tap("0A004A7B2C", hold_seconds=0.1)
            wait_for(lambda: len(events(agent.outbox)) == 2, 5, "two events")
            recorded = events(agent.outbox)
    finally:
        reader.close()
    (first, fault), (second, clock) = recorded
    assert (first, fault["unit"], fault["code"]) == ("fault", "outbox", "outbox_corrupt")
    assert str(kept) in fault["detail"]
    assert (second, clock) == ("clock", {"method": "card", "card": "0A004A7B2C"})
    reopened = Outbox(path)  # the new outbox is sound, and is not set aside again
    assert reopened.kept_corrupt is None and reopened.last_seq() == 2


def test_an_outbox_that_cannot_be_opened_is_not_taken_for_a_corrupt_one(tmp_path: Path) -> None:
    (tmp_path / "o.db").mkdir()  # a path that is no file at all: nothing to set aside
    with pytest.raises(OutboxError, match="cannot be opened"):
        Outbox(tmp_path / "o.db")
    assert [p.name for p in tmp_path.iterdir()] == ["o.db"]


# --- the epoch ----------------------------------------------------------------------------


def test_each_new_outbox_chooses_its_epoch_once(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "a.db")
    epoch = first.epoch
    first.close()
    assert re.fullmatch(r"[0-9a-f]{16}", epoch)
    assert Outbox(tmp_path / "a.db").epoch == epoch  # kept with the outbox
    assert Outbox(tmp_path / "b.db").epoch != epoch
    older = tmp_path / "older.db"  # made before outboxes had an epoch: it gets one at its next open
    with sqlite3.connect(older) as db:
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                         "INSERT INTO meta VALUES ('last_seq', 7), ('watermark', 7), ('trust_retained', 1);")
    db.close()
    upgraded = Outbox(older)
    assert re.fullmatch(r"[0-9a-f]{16}", upgraded.epoch) and upgraded.last_seq() == 7
    upgraded.close()
    assert Outbox(older).epoch == upgraded.epoch


# --- size ---------------------------------------------------------------------------------


def test_a_large_outbox_is_reported_once_each_time_it_passes_warn_mb(tmp_path: Path) -> None:
    config = edge_config_for(tmp_path, outbox="warn_mb = 0.25\n")
    agent = EdgeAgent(config, CLOCK, monotonic=lambda: time.monotonic() * 50)  # checks every 0.1 s

    def large() -> list[dict[str, Any]]:
        return [body for kind, body in events(agent.outbox) if body.get("code") == "outbox_large"]

    def fill() -> None:
        for _ in range(600):  # about 0.4 MiB of fault events
            agent.record(UnitFault("door", "bad_frame", 1, "x" * 400))

    with running(agent):
        fill()
        wait_for(lambda: large(), 5, "outbox_large reported")
        time.sleep(1.2)  # more checks
        # reported when passed (about 240 events of ~1.1 KiB), however far the fill went by the check
        assert len(large()) == 1 and 200 < large()[0]["count"] < 600
        assert "warn_mb = 0.25" in large()[0]["detail"]
        agent.outbox.commit(agent.outbox.last_seq(), retained=False)  # the hub took it all
        time.sleep(1.2)
        assert large() == [] and agent.outbox.usage().used_bytes < 0.25 * 1024 * 1024
        fill()
        wait_for(lambda: large(), 5, "outbox_large reported")  # passed again: reported again
        time.sleep(1.2)
        assert len(large()) == 1
        assert agent.outbox.last_seq() == 1202  # nothing dropped


# --- where the publisher stands -----------------------------------------------------------


def test_the_sweep_goes_on_where_it_stopped_and_starts_over_after_the_resend_interval() -> None:
    sweep = Sweep()
    assert sweep.after(0, now=0.0, resend_seconds=30) == 0
    sweep.handed(500, now=0.0)
    assert sweep.after(0, now=1.0, resend_seconds=30) == 500  # the next pass goes on after 500
    sweep.handed(1000, now=1.0)
    assert sweep.after(600, now=2.0, resend_seconds=30) == 1000
    assert sweep.sent == {1000: 1.0}  # the batch the watermark covers is forgotten
    assert sweep.after(1000, now=3.0, resend_seconds=30) == 1000 and sweep.sent == {}
    sweep.handed(1200, now=3.0)
    assert sweep.after(1000, now=32.9, resend_seconds=30) == 1200
    assert sweep.after(1000, now=33.0, resend_seconds=30) == 1000  # waited 30 s: over again
    sweep.handed(1200, now=33.0)
    sweep.sent.clear()  # a reconnect
    assert sweep.after(1000, now=33.1, resend_seconds=30) == 1000


# --- drivers: what was recorded, what was not ------------------------------------------------


class ScriptedPort:
    """An in-memory port: reads give `incoming` a few bytes at a time, then nothing; writes are kept,
    or fail as an unplugged adapter's do."""

    def __init__(self, incoming: bytes, writes_fail: bool = False) -> None:
        self.incoming, self.writes_fail = incoming, writes_fail
        self.written: list[bytes] = []

    def read(self, size: int = 1) -> bytes:
        time.sleep(0.002)
        data, self.incoming = self.incoming[:size], self.incoming[size:]
        return data

    def write(self, data: bytes) -> int:
        if self.writes_fail:
            raise OSError(5, "Input/output error")
        self.written.append(data)
        return len(data)

    def close(self) -> None:
        pass


def test_a_key_recorded_as_the_port_failed_counts_once_after_the_reopen() -> None:
    key = encode(1, KEY, bytes((7, 4)))  # seq 7, level 4: recorded, then the ACK cannot be written
    readings: list[Reading] = []
    last_seqs: dict[int, int] = {}  # what the agent's supervisor keeps across reopenings
    first = ButtonBusDriver("eval", ScriptedPort(key, writes_fail=True), CLOCK, readings.append,
                            [BusDevice(1, "eval")], polled=False)
    first.adopt_last_seqs(last_seqs)
    with pytest.raises(DeviceError, match="write failed"):
        first.run(threading.Event())
    port = ScriptedPort(key)  # reopened: the device sends the KEY whose ACK it never got
    second = ButtonBusDriver("eval", port, CLOCK, readings.append, [BusDevice(1, "eval")], polled=False)
    second.adopt_last_seqs(last_seqs)
    stop = threading.Event()
    thread = threading.Thread(target=second.run, args=(stop,))
    thread.start()
    wait_for(lambda: port.written, 5, "an ACK written")
    stop.set()
    thread.join(2)
    assert [(r.unit, r.key) for r in readings if isinstance(r, ButtonPress)] == [("eval", 4)]
    assert port.written == [encode(1, ACK, bytes((7,)))] and second.stats.repeats == 1


def test_a_bad_frame_report_that_was_not_recorded_goes_with_the_next_one() -> None:
    refusals, reported = [True], []

    def emit(reading: Reading) -> None:
        if refusals and refusals.pop():
            raise RecordError("database or disk is full")
        reported.append(reading)

    faults = FaultReporter("door", emit, monotonic=lambda: 0.0, interval=5.0)
    assert faults.update(2, 10, force=False) is False  # refused
    assert faults.update(3, 12, force=True) is True
    assert [(f.count, f.detail) for f in reported if isinstance(f, UnitFault)] == [
        (3, "3 bad frame(s), 12 byte(s) skipped")]
