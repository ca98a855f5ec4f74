"""End to end: pseudo-terminal card reader -> edge agent -> real Mosquitto -> hub -> store -> rules.

Each test runs the hub and the edge agent as real processes, so they can be killed."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sims.card import CardReaderSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto, publish
from wire.envelope import load_private_key, seal

pytestmark = pytest.mark.e2e

STAFF = [
    StaffSpec("S001", "张伟", "01", "0A004A7B2C"),
    StaffSpec("S002", "王芳", "02", "67003B51C6"),
    StaffSpec("S003", "李娜", "03", "0003909740"),  # the printed decimal number of 67003BA86C
    StaffSpec("S004", "刘洋", "04", "1F00644BB6"),
]


@pytest.fixture
def reader() -> Iterator[CardReaderSim]:
    sim = CardReaderSim()
    yield sim
    sim.close()


def make_hall(tmp_path: Path, broker: Mosquitto, reader: CardReaderSim, **options: object) -> Hall:
    hall = Hall(tmp_path / "hall", broker.url, STAFF, **options)  # type: ignore[arg-type]
    hall.write_edge_config(reader.path)
    return hall


def burst_cards(count: int, start: int = 0) -> list[str]:
    return [f"5A{n:08X}" for n in range(start + 1, start + count + 1)]


def stored_cards(hall: Hall) -> list[str]:
    return [str(body["card"]) for body in hall.stored("clock")]


def test_taps_become_the_right_attendance(tmp_path: Path, broker: Mosquitto,
                                          reader: CardReaderSim) -> None:
    # hall time runs 300x: one real second is five minutes, from 08:20, once the hub and the edge
    # agent are ready (the clock stands until then: a loaded machine starts them late)
    hall = make_hall(tmp_path, broker, reader, clock_spec="2026-11-24T08:20:00+08:00,speed=300")
    hall.start_hub()
    hall.start_edge()
    assert hall.clock_anchor is not None
    anchor = hall.clock_anchor
    try:
        time.sleep(max(0.0, anchor + 1.0 - time.time()))  # 08:25
        reader.tap("0A004A7B2C", hold_seconds=1.2)  # held: one punch
        reader.noise(b"\x00\xffgarbage\x03")
        time.sleep(max(0.0, anchor + 4.0 - time.time()))  # 08:40: after 08:30 + 5 min grace
        reader.tap("67003BA86C", hold_seconds=0.2)  # S003 by printed number
        reader.corrupt("67003B51C6")
        wait_for(lambda: len(stored_cards(hall)) == 2, 30, "two punches stored", hall)
        assert hall.cli("leave", "add", "--staff", "S004", "--from", "2026-11-24",
                        "--to", "2026-11-24", "--approver", "主任").returncode == 0
        result = hall.cli("attendance", "--date", "2026-11-24", "--at", "2026-11-24T13:00:00+08:00",
                          "--json")
        assert result.returncode == 0, result.stderr
        rows = {(r["staff"], r["session"]): r for r in json.loads(result.stdout)}
        assert rows["S001", "上午"]["status"] == "on_time"
        assert rows["S001", "上午"]["first"].startswith("2026-11-24T08:2")
        assert rows["S003", "上午"]["status"] == "late"  # matched by the printed number
        assert rows["S002", "上午"]["status"] == "absent"  # corrupt frame only: no punch
        assert rows["S004", "上午"]["status"] == "leave"
        assert rows["S001", "下午"]["status"] == "pending"
        assert set(json.loads(result.stdout)[0]) == {"staff", "name", "date", "session", "first",
                                                     "last", "status", "flags", "extended_minutes"}
        assert (rows["S003", "上午"]["flags"], rows["S002", "上午"]["flags"]) == (["late"], ["absent"])

        def bad_frames() -> int:
            return sum(int(f["count"]) for f in hall.stored("fault") if f["code"] == "bad_frame")

        wait_for(lambda: bad_frames() == 1, 15, "the corrupt frame reported as a fault", hall)
        assert any("skipped" in str(f["detail"]) for f in hall.stored("fault"))
    finally:
        hall.stop()


def test_broker_down_20s_without_persistence_loses_nothing(tmp_path: Path, broker: Mosquitto,
                                                            reader: CardReaderSim) -> None:
    hall = make_hall(tmp_path, broker, reader)
    hall.start_hub()
    hall.start_edge()
    cards = burst_cards(12)
    try:
        for card in cards[:4]:
            reader.tap(card, hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 4, 30, "first taps stored", hall)
        broker.stop()
        down_until = time.monotonic() + 20
        for card in cards[4:]:
            reader.tap(card, hold_seconds=0.1)
            time.sleep(1.5)
        time.sleep(max(0.0, down_until - time.monotonic()))
        broker.start()  # same port, nothing retained, nothing queued
        wait_for(lambda: len(stored_cards(hall)) >= len(cards), 90, "every tap stored", hall)
        time.sleep(2 * hall.resend_seconds)  # resends must stay harmless
        assert sorted(stored_cards(hall)) == sorted(cards)  # exactly once each
        wait_for(lambda: hall.outbox_seqs() == [], 30, "outbox drained by the watermark", hall)
    finally:
        hall.stop()


def test_edge_killed_during_a_burst_loses_nothing(tmp_path: Path, broker: Mosquitto,
                                                  reader: CardReaderSim) -> None:
    hall = make_hall(tmp_path, broker, reader)
    hall.start_hub()
    hall.start_edge()
    first, second = burst_cards(15), burst_cards(5, start=15)
    try:
        for card in first:
            reader.tap(card, hold_seconds=0.05, interval=0.05)
        wait_for(lambda: hall.outbox_last_seq() >= len(first), 30, "burst recorded", hall)
        hall.kill_edge(signal.SIGKILL)  # while the burst is still being published
        pending_at_kill = hall.outbox_seqs()
        hall.start_edge()
        for card in second:
            reader.tap(card, hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) >= 20, 60, "every tap stored", hall)
        time.sleep(2 * hall.resend_seconds)
        assert sorted(stored_cards(hall)) == sorted(first + second)
        assert isinstance(pending_at_kill, list)
    finally:
        hall.stop()


def test_hub_killed_and_restarted_loses_nothing(tmp_path: Path, broker: Mosquitto,
                                                reader: CardReaderSim) -> None:
    hall = make_hall(tmp_path, broker, reader)
    hall.start_hub()
    hall.start_edge()
    cards = burst_cards(10)
    try:
        for card in cards[:3]:
            reader.tap(card, hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 3, 30, "first taps stored", hall)
        hall.kill_hub(signal.SIGKILL)
        for card in cards[3:]:
            reader.tap(card, hold_seconds=0.1)
        wait_for(lambda: hall.outbox_last_seq() >= 10, 20, "taps recorded while the hub is down", hall)
        assert len(hall.outbox_seqs()) >= 7  # held at the edge until the hub commits them
        hall.start_hub()
        wait_for(lambda: len(stored_cards(hall)) >= 10, 60, "every tap stored", hall)
        time.sleep(2 * hall.resend_seconds)
        assert sorted(stored_cards(hall)) == sorted(cards)
        verify = hall.cli("log", "verify")
        assert verify.returncode == 0, verify.stderr
    finally:
        hall.stop()


def test_bad_messages_are_quarantined_while_good_traffic_flows(tmp_path: Path, broker: Mosquitto,
                                                               reader: CardReaderSim) -> None:
    hall = make_hall(tmp_path, broker, reader)
    hall.start_hub()
    hall.start_edge()
    try:
        reader.tap("0A004A7B2C", hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 1, 30, "a good tap", hall)
        good_key = load_private_key(hall.edge_keys.private_hex)
        forged_key = load_private_key(hall.hub_keys.private_hex)  # a real key, but not the device's
        topic = "hall/v1/h1/entrance/evt/clock"
        common = {"hall": "h1", "device": "entrance", "ts": "2026-11-24T08:31:00.000+08:00",
                  "type": "clock"}
        forged = seal(forged_key, seq=900, body={"method": "card", "card": "0A004A7B2C"}, **common)
        original = seal(good_key, seq=901, body={"method": "card", "card": "0A004A7B2C"}, **common)
        tampered_bytes = original.raw.replace(b"0A004A7B2C", b"67003B51C6")
        same_id = seal(good_key, seq=901, id=original.id,
                       body={"method": "card", "card": "1F00644BB6"}, **common)
        unknown = seal(good_key, seq=1, body={"method": "card", "card": "0A004A7B2C"},
                       **{**common, "device": "backdoor"})
        bad_body = seal(good_key, seq=902, body={"method": "card", "card": "not-a-card"}, **common)
        publish(broker.port, [
            (topic, forged.raw),
            (topic, original.raw),
            (topic, tampered_bytes),
            (topic, same_id.raw),
            ("hall/v1/h1/backdoor/evt/clock", unknown.raw),
            (topic, b"{not json"),
            (topic, bad_body.raw),
            ("hall/v1/h1/entrance/evt/rating", original.raw),  # wrong topic for a clock event
            (topic, b"x" * 200_000),
        ])
        reader.tap("67003B51C6", hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 3, 30, "good traffic still flowing", hall)

        def reasons() -> list[str]:
            result = hall.cli("quarantine", "--json")
            return sorted(item["reason"] for item in json.loads(result.stdout or "[]"))

        # the second bad_signature and malformed on the same topic within a minute are counted, not stored
        expected = sorted(["bad_signature", "tamper", "unknown_device", "malformed", "topic_mismatch",
                           "oversize"])
        wait_for(lambda: reasons() == expected, 20, f"quarantine reasons {expected}", hall)
        assert hall.cli("log", "verify").returncode == 0
    finally:
        hall.stop()
    entries = json.loads(hall.cli("log", "show", "--kind", "quarantine", "--json").stdout)
    repeats = {(e["data"]["reason"], e["data"]["repeats"]) for e in entries if "repeats" in e["data"]}
    assert repeats == {("bad_signature", 1), ("malformed", 1)}  # written out when the hub stopped


def test_log_verify_catches_an_edited_and_a_deleted_row(tmp_path: Path, broker: Mosquitto,
                                                        reader: CardReaderSim) -> None:
    hall = make_hall(tmp_path, broker, reader)
    hall.start_hub()
    hall.start_edge()
    try:
        for card in burst_cards(4):
            reader.tap(card, hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 4, 30, "taps stored", hall)
    finally:
        hall.stop()
    ok = hall.cli("log", "verify")
    assert ok.returncode == 0 and "entries" in ok.stdout, ok.stdout + ok.stderr
    backup = hall.workdir / "backup.db"
    with sqlite3.connect(hall.hub_db) as db, sqlite3.connect(backup) as copy:
        db.backup(copy)
    with sqlite3.connect(hall.hub_db) as db:
        seq = db.execute("SELECT min(seq) FROM audit WHERE kind = 'event'").fetchone()[0]
        db.execute("UPDATE audit SET data = replace(data, '5A00000001', '5A00000009') WHERE seq = ?",
                   (seq,))
    edited = hall.cli("log", "verify")
    assert edited.returncode != 0
    assert f"entry {seq}" in edited.stderr
    with sqlite3.connect(backup) as copy, sqlite3.connect(hall.hub_db) as db:
        copy.backup(db)
    assert hall.cli("log", "verify").returncode == 0
    with sqlite3.connect(hall.hub_db) as db:
        db.execute("DELETE FROM audit WHERE seq = ?", (seq + 1,))
    deleted = hall.cli("log", "verify")
    assert deleted.returncode != 0
    assert f"entry {seq + 1}" in deleted.stderr or f"entry {seq + 2}" in deleted.stderr


def test_unplugged_reader_is_reported_and_reopened(tmp_path: Path, broker: Mosquitto) -> None:
    """The config names a stable symlink (as udev makes); unplugging removes it, replugging
    points it at a new device. The agent reports both and never crashes; SIGTERM exits 0."""
    link = tmp_path / "hall-card"
    first = CardReaderSim()
    link.symlink_to(first.path)
    hall = Hall(tmp_path / "hall", broker.url, STAFF)
    hall.write_edge_config(str(link))
    hall.start_hub()
    hall.start_edge()
    second: CardReaderSim | None = None
    try:
        first.tap("0A004A7B2C", hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 1, 30, "tap before unplugging", hall)
        first.close()
        link.unlink()

        def fault_codes() -> list[str]:
            return [str(f["code"]) for f in hall.stored("fault")]

        wait_for(lambda: "port_lost" in fault_codes(), 30, "port_lost reported", hall)
        time.sleep(3)  # a few reopen attempts against a missing device
        assert hall.edge is not None and hall.edge.poll() is None  # still running
        second = CardReaderSim()
        link.symlink_to(second.path)
        wait_for(lambda: "port_restored" in fault_codes(), 60, "port_restored reported", hall)
        time.sleep(0.5)
        second.tap("67003B51C6", hold_seconds=0.1)
        wait_for(lambda: len(stored_cards(hall)) == 2, 30, "tap after replugging", hall)
        hall.kill_edge(signal.SIGTERM)
        assert hall.edge.returncode == 0
    finally:
        hall.stop()
        if second is not None:
            second.close()
