"""The box as a witness (PROTOCOL.md 2.10): which head it signs, when it signs one with a `witness`
event, the head going back; and end to end, a real hub and edge agent through Mosquitto, where an entry
another process appends at the hub ends up signed by the box."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sims.card import CardReaderSim
from edge_agent.outbox import Outbox
from edge_agent.witness import Witness
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto

HEAD_5, HEAD_9 = f"5:{'a' * 64}", f"9:{'b' * 64}"


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def test_a_new_head_is_signed_by_the_next_event_or_by_a_witness_event_when_idle(outbox: Outbox) -> None:
    clock, faults = Ticking(), []
    witness = Witness(outbox, 60, clock, faults.append)
    assert witness.head() is None and not witness.due()
    witness.offer(HEAD_5)
    assert witness.head() == HEAD_5 and not witness.due()  # taken just now
    witness.signed(witness.head())  # an event signed it: nothing more to do
    clock.now = 120
    assert not witness.due()
    witness.offer(HEAD_9)
    clock.now = 179
    assert not witness.due()
    clock.now = 180
    assert witness.due()  # idle for witness_seconds: a `witness` event signs it
    witness.signed(HEAD_9)
    assert not witness.due() and faults == []


def test_a_head_that_goes_back_is_refused_and_reported_once(outbox: Outbox) -> None:
    clock, faults = Ticking(), []
    witness = Witness(outbox, 60, clock, faults.append)
    witness.offer(HEAD_9)
    witness.signed(HEAD_9)
    witness.offer(HEAD_5)  # fewer entries than the box signed: the hub's log was cut
    witness.offer(f"9:{'c' * 64}")  # same count, another hash: rewritten
    assert witness.head() == HEAD_9  # it keeps signing what it saw
    assert len(faults) == 1 and "中心链头回退" in faults[0] and HEAD_5[:24] in faults[0]
    witness.offer(f"12:{'d' * 64}")
    assert witness.head() == f"12:{'d' * 64}"
    restarted = Witness(outbox, 60, clock, faults.append)  # the floor survives a restart (outbox meta)
    restarted.offer(HEAD_5)
    assert restarted.head() is None and len(faults) == 2


# --- end to end -------------------------------------------------------------------------


@pytest.fixture
def reader() -> Iterator[CardReaderSim]:
    sim = CardReaderSim()
    yield sim
    sim.close()


def stored_heads(hall: Hall) -> list[tuple[str, str | None]]:
    with sqlite3.connect(hall.hub_db) as db:
        rows = db.execute("SELECT type, raw FROM events ORDER BY seq").fetchall()
    return [(type_, json.loads(raw).get("head")) for type_, raw in rows]


@pytest.mark.e2e
def test_the_box_signs_what_the_hub_appended(tmp_path: Path, broker: Mosquitto,
                                             reader: CardReaderSim) -> None:
    hall = Hall(tmp_path / "hall", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")],
                witness_seconds=1.0)
    hall.write_edge_config(reader.path)
    hall.start_hub()
    hall.start_edge()
    try:
        reader.tap("0A004A7B2C", hold_seconds=0.2)
        wait_for(lambda: len(hall.stored("clock")) == 1, 30, "the tap stored", hall)
        added = hall.cli("leave", "add", "--staff", "S001", "--from", "2026-11-30", "--to", "2026-11-30",
                         "--approver", "主任")
        assert added.returncode == 0, added.stderr
        position = int(hall.cli("log", "show", "--kind", "leave").stdout.split()[0].lstrip("#"))

        def witnessed() -> bool:
            heads = [head for type_, head in stored_heads(hall) if type_ == "witness" and head]
            return any(int(head.partition(":")[0]) >= position for head in heads)

        wait_for(witnessed, 30, "the leave entry witnessed by the box", hall)
        result = hall.cli("log", "verify")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "signed heads from 1 device(s) (entrance)" in result.stdout
    finally:
        hall.stop()
