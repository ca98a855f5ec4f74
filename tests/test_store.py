"""The store and the inspector's log check, on SQLite and on a real PostgreSQL (`store_url`)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, create_engine, delete, insert, select, update

from hub.audit import render_entry, verify_log
from hub.domain import Leave, Quarantined, StoredEvent
from hub.store.schema import audit, events
from hub.store.store import ZERO_HASH, Store, entry_hash, sqlalchemy_url
from wire.clock import FixedClock
from wire.envelope import PrivateKey, canonical, format_ts, generate_keypair, load_private_key, seal

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 24, 8, 0, tzinfo=TZ)


@dataclass(frozen=True)
class Device:
    name: str
    key: PrivateKey
    public_hex: str


def make_device(name: str) -> Device:
    pair = generate_keypair()
    return Device(name, load_private_key(pair.private_hex), pair.public_hex)


ENTRANCE = make_device("entrance")
WINDOW = make_device("window1")
KEYS = {ENTRANCE.name: ENTRANCE.public_hex, WINDOW.name: WINDOW.public_hex}


def make_event(
    device: Device,
    seq: int,
    ts: datetime | str = START,
    *,
    type: str = "clock",
    body: dict[str, Any] | None = None,
    id: str | None = None,
    key: PrivateKey | None = None,
    epoch: str | None = None,
) -> StoredEvent:
    envelope = seal(
        key or device.key, hall="h1", device=device.name, seq=seq,
        ts=ts if isinstance(ts, str) else format_ts(ts), type=type,
        body=body if body is not None else {"method": "card", "card": "0A004A7B2C"}, id=id,
        epoch=epoch,
    )
    return StoredEvent(envelope.id, envelope.hall, envelope.device, envelope.seq, envelope.type,
                       envelope.timestamp, START + timedelta(seconds=seq), envelope.body, envelope.raw,
                       envelope.epoch)


def rating(seq: int, level: int = 5) -> StoredEvent:
    body = {"window": "w1", "level": level, "keys": 5, "invited": False, "invite": None, "ticket": None}
    return make_event(WINDOW, seq, START + timedelta(minutes=seq), type="rating", body=body)


def leave(staff: str, day: int) -> Leave:
    start = datetime(2026, 11, day, 8, 30, tzinfo=TZ)
    return Leave(staff, start, start + timedelta(hours=9), "head", "病假 sick", START)


def sql(url: str, change: Callable[[Connection], object]) -> None:
    """Change the database behind the store's back, as someone with database access could."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            change(conn)
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def store(store_url: str, clock: FixedClock) -> Iterator[Store]:
    opened = Store(store_url, clock)
    yield opened
    opened.close()


# --- ingest ---------------------------------------------------------------------------------


def test_stored_duplicate_tamper(store: Store) -> None:
    first = make_event(ENTRANCE, 1)
    forged = make_event(ENTRANCE, 1, body={"method": "card", "card": "FFFFFFFFFF"}, id=first.id)

    assert store.ingest([first]) == ["stored"]
    assert store.ingest([first]) == ["duplicate"]
    assert store.ingest([forged]) == ["tamper"]

    assert store.event_count() == 1
    assert store.events() == [first]
    [alert] = store.quarantined()
    assert (alert.reason, alert.payload) == ("tamper", forged.raw)
    assert first.id in alert.detail
    last = store.last_audit()
    assert last is not None and (last.seq, last.kind, last.ref) == (2, "quarantine", first.id)
    assert last.data["reason"] == "tamper"


def test_same_id_twice_in_one_batch(store: Store) -> None:
    event = make_event(ENTRANCE, 1)
    changed = make_event(ENTRANCE, 1, body={"method": "face", "staff": "s1"}, id=event.id)
    other = make_event(ENTRANCE, 2)

    assert store.ingest([event, event, changed, other]) == ["stored", "duplicate", "tamper", "stored"]
    assert store.event_count() == 2
    assert [e.kind for e in store.audit()] == ["event", "quarantine", "event"]
    assert verify_log(store, KEYS).ok


def test_quarantine_keeps_payload(store: Store) -> None:
    binary = Quarantined(START, "hall/v1/h1/entrance/evt/clock", "malformed", "not UTF-8", b"\xff\xfe\x00x")
    text = Quarantined(START, "hall/v1/h1/x/evt/clock", "unknown_device", "device 'x'", "中".encode())

    assert store.ingest([binary, text]) == ["quarantined", "quarantined"]

    assert store.quarantined() == [text, binary]  # newest first
    assert store.quarantined(limit=1) == [text]
    first, second = store.audit()
    assert first.data["payload_encoding"] == "base64"
    assert base64.b64decode(first.data["payload"]) == binary.payload
    assert second.data["payload_encoding"] == "utf-8"
    assert second.data["payload"].encode() == text.payload
    assert second.data["reason"] == "unknown_device" and second.data["topic"] == text.topic


def test_leaves(store: Store) -> None:
    late, early, other = leave("s1", 26), leave("s1", 25), leave("s2", 25)
    entries = [store.add_leave(item) for item in (late, early, other)]

    assert [e.kind for e in entries] == ["leave"] * 3
    assert entries[0].ref == "s1" and entries[0].data["start"] == "2026-11-26T08:30:00.000+08:00"
    assert store.leaves("s1") == [early, late]
    assert store.leaves() == [early, other, late]
    assert store.leaves("nobody") == []


def test_events_range_query_by_device_time(store: Store, store_url: str) -> None:
    at_nine_b = make_event(ENTRANCE, 3, START + timedelta(hours=1))
    at_nine_a = make_event(ENTRANCE, 2, START + timedelta(hours=1))
    at_eight = make_event(ENTRANCE, 1, START)
    utc = make_event(ENTRANCE, 4, "2026-11-24T02:30:00.000Z")  # 10:30 in the hall
    rated = rating(1)  # 08:01
    store.ingest([at_nine_b, utc, at_nine_a, at_eight, rated])

    assert store.events() == [at_eight, rated, at_nine_a, at_nine_b, utc]
    assert store.events(type="clock", since=START + timedelta(hours=1)) == [at_nine_a, at_nine_b, utc]
    half_ten = datetime(2026, 11, 24, 10, 30, tzinfo=TZ)
    assert store.events(since=START + timedelta(minutes=30), until=half_ten) == [at_nine_a, at_nine_b]
    assert store.events(until=half_ten + timedelta(milliseconds=1), type="clock")[-1] == utc
    assert store.events(device="window1") == [rated]
    assert store.events(type="rating", until=START) == []

    def wire_ts(conn: Connection) -> None:
        assert conn.scalar(select(events.c.ts).where(events.c.id == utc.id)) == "2026-11-24T02:30:00.000Z"

    sql(store_url, wire_ts)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.events(since=datetime(2026, 11, 24))


# --- the chain ------------------------------------------------------------------------------


def test_audit_chain_after_mixed_appends(store: Store, clock: FixedClock) -> None:
    store.ingest([make_event(ENTRANCE, 1), rating(1)])
    clock.advance(1.5)
    roster = store.append("roster", {"staff": [{"id": "s1", "name": "张三"}]})
    store.add_leave(leave("s1", 25))
    store.ingest([Quarantined(START, "t", "malformed", "x", b"?"), make_event(ENTRANCE, 2)])
    gap = store.append("seq_gap", {"device": "entrance", "from": 3, "to": 4}, ref="entrance")

    chain = list(store.audit())
    assert [e.seq for e in chain] == list(range(1, 8))
    assert [e.kind for e in chain] == ["event", "event", "roster", "leave", "quarantine", "event", "seq_gap"]
    assert chain[0].prev_hash == ZERO_HASH
    for before, entry in zip(chain, chain[1:], strict=False):
        assert entry.prev_hash == before.hash
    for entry in chain:
        assert entry.hash == entry_hash(entry.seq, format_ts(entry.at), entry.kind, entry.ref,
                                        entry.data, entry.prev_hash)
    assert chain[2] == roster and chain[6] == gap
    assert roster.at == START + timedelta(seconds=1.5)
    assert format_ts(roster.at) == "2026-11-24T08:00:01.500+08:00"
    assert store.last_audit("roster") == roster and store.last_audit() == gap
    assert store.last_audit("nothing") is None
    assert [e.seq for e in store.audit(after_seq=2, limit=3)] == [3, 4, 5]

    report = verify_log(store, KEYS)
    assert (report.ok, report.entries, report.first_bad, report.problem) == (True, 7, None, None)
    line = render_entry(chain[0])
    assert line.startswith("#1 2026-11-24T08:00:00.000+08:00 event(事件) entrance/1 clock")
    assert "card=" in line and "\n" not in line


def test_long_chain_streams_across_chunks(store: Store) -> None:
    batch = [make_event(ENTRANCE, seq) for seq in range(1, 1101)]
    assert set(store.ingest(batch)) == {"stored"}
    store.append("finding", {"note": "明察暗访"})

    assert [e.seq for e in store.audit(after_seq=450, limit=600)] == list(range(451, 1051))
    assert sum(1 for _ in store.audit()) == 1101
    assert [seq for _, _, seq, _ in store.device_history()] == list(range(1, 1101))
    report = verify_log(store, KEYS)
    assert report.ok and report.entries == 1101


def test_device_history_in_acceptance_order(store: Store) -> None:
    a2, b1, a1 = make_event(ENTRANCE, 2), rating(1), make_event(ENTRANCE, 1, epoch="00000000000000e1")
    store.ingest([a2, b1])
    store.append("roster", {"staff": []})
    store.ingest([a1, a2, make_event(WINDOW, 1, id=b1.id)])  # duplicate and tamper are not history

    expected = [("h1", "entrance", 2, None), ("h1", "window1", 1, None),
                ("h1", "entrance", 1, "00000000000000e1")]
    assert list(store.device_history()) == expected


def test_a_store_of_an_earlier_release_gets_the_epoch_column(store_url: str, clock: FixedClock) -> None:
    first = Store(store_url, clock)
    first.ingest([make_event(ENTRANCE, 1)])
    first.close()
    sql(store_url, lambda conn: conn.exec_driver_sql("ALTER TABLE events DROP COLUMN epoch"))

    reader = Store(store_url, clock, create=False)  # a read-only command on the older store
    assert list(reader.device_history()) == [("h1", "entrance", 1, None)]
    reader.ingest([make_event(ENTRANCE, 2, epoch="00000000000000e1")])
    assert [epoch for *_, epoch in reader.device_history()] == [None, "00000000000000e1"]
    assert verify_log(reader, KEYS).ok
    reader.close()


def test_concurrent_writers_keep_the_chain(store_url: str, clock: FixedClock) -> None:
    Store(store_url, clock).close()  # create the tables once, like a deployed hub
    per_thread = 30
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    written: dict[str, list[int]] = {"daemon": [], "cli": []}

    def daemon() -> None:
        writer = Store(store_url, clock)
        try:
            barrier.wait()
            for seq in range(1, per_thread + 1):
                writer.ingest([make_event(ENTRANCE, seq)])
                written["daemon"].append(writer.last_audit("event").seq)  # type: ignore[union-attr]
        except BaseException as exc:  # reported by the main thread below
            errors.append(exc)
        finally:
            writer.close()

    def cli() -> None:
        writer = Store(store_url, clock)
        try:
            barrier.wait()
            for index in range(per_thread):
                if index % 3 == 0:
                    entry = writer.add_leave(leave(f"s{index}", 25))
                else:
                    entry = writer.append("finding", {"index": index})
                written["cli"].append(entry.seq)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer.close()

    threads = [threading.Thread(target=daemon, name="daemon"), threading.Thread(target=cli, name="cli")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []

    reader = Store(store_url, clock)
    try:
        report = verify_log(reader, KEYS)
        assert report.ok, report.problem
        assert report.entries == 2 * per_thread
        assert written["cli"] == sorted(written["cli"])
        assert sorted(written["cli"] + written["daemon"]) == list(range(1, 2 * per_thread + 1))
        assert len(reader.leaves()) == per_thread // 3
    finally:
        reader.close()


# --- what the inspector's check catches -----------------------------------------------------


@dataclass
class Hall:
    store: Store
    url: str
    events: list[StoredEvent]  # the events logged at entries 1, 2, 3, 7, 8


@pytest.fixture
def hall(store: Store, store_url: str) -> Hall:
    first = [make_event(ENTRANCE, 1), make_event(ENTRANCE, 2), rating(1)]
    later = [make_event(ENTRANCE, 3, START + timedelta(hours=1)), rating(2, level=1)]
    store.ingest(first)
    store.append("roster", {"staff": [{"id": "s1", "name": "张三"}]})  # 4
    store.add_leave(leave("s1", 25))  # 5
    store.ingest([Quarantined(START, "t", "malformed", "not JSON", b"{")])  # 6
    store.ingest(later)  # 7, 8
    assert verify_log(store, KEYS).ok
    return Hall(store, store_url, first + later)


def expect_bad(
    hall: Hall, first_bad: int | None, problem: str, keys: dict[str, str] = KEYS, entries: int = 8
) -> None:
    report = verify_log(hall.store, keys)
    assert not report.ok
    assert report.entries == entries
    assert report.first_bad == first_bad
    assert report.problem is not None and problem in report.problem, report.problem


def test_verify_counts_the_intact_log(hall: Hall) -> None:
    assert verify_log(hall.store, KEYS).entries == 8


def test_verify_catches_edited_entry(hall: Hall) -> None:
    edited = canonical({"staff": [{"id": "s1", "name": "李四"}]}).decode()
    sql(hall.url, lambda conn: conn.execute(update(audit).where(audit.c.seq == 4).values(data=edited)))
    expect_bad(hall, 4, "entry 4: hash does not match its content (altered)")


def test_verify_catches_edited_entry_with_recomputed_hash(hall: Hall) -> None:
    entry = next(hall.store.audit(after_seq=3, limit=1))
    data = {"staff": []}
    digest = entry_hash(4, format_ts(entry.at), entry.kind, entry.ref, data, entry.prev_hash)
    sql(hall.url, lambda conn: conn.execute(
        update(audit).where(audit.c.seq == 4).values(data=canonical(data).decode(), hash=digest)))
    expect_bad(hall, 5, "entry 5: previous hash does not match entry 4 (removed or reordered)")


def test_verify_catches_deleted_entry(hall: Hall) -> None:
    sql(hall.url, lambda conn: conn.execute(delete(audit).where(audit.c.seq == 4)))
    expect_bad(hall, 4, "entry 4: chain position 4 expected, found 5 (entry removed)", entries=7)


def test_verify_catches_swapped_entries(hall: Hall) -> None:
    def swap(conn: Connection) -> None:
        rows = {row.seq: row._asdict() for row in conn.execute(select(audit).where(audit.c.seq.in_([5, 6])))}
        for seq, other in ((5, 6), (6, 5)):
            conn.execute(update(audit).where(audit.c.seq == seq).values(
                {key: value for key, value in rows[other].items() if key != "seq"}))

    sql(hall.url, swap)
    expect_bad(hall, 5, "entry 5: previous hash does not match entry 4 (removed or reordered)")


@pytest.mark.parametrize("column", ["raw", "ts", "body"])
def test_verify_catches_altered_event_row(hall: Hall, column: str) -> None:
    target = hall.events[3]  # logged at entry 7
    other = make_event(ENTRANCE, 3, START + timedelta(hours=2), body={"method": "face"}, id=target.id)
    values = {
        "raw": {"raw": other.raw},
        "ts": {"ts": "2026-11-24T10:00:00.000+08:00"},
        "body": {"body": canonical(other.body).decode()},
    }[column]
    sql(hall.url, lambda conn: conn.execute(update(events).where(events.c.id == target.id).values(values)))
    expect_bad(hall, 7, f"entry 7: event row {target.id} differs from its log entry (altered)")


def test_verify_catches_deleted_event_row(hall: Hall) -> None:
    target = hall.events[2]  # logged at entry 3
    sql(hall.url, lambda conn: conn.execute(delete(events).where(events.c.id == target.id)))
    expect_bad(hall, 3, f"entry 3: event row {target.id} missing from events table (removed)")


def test_verify_catches_event_row_without_entry(hall: Hall) -> None:
    smuggled = make_event(ENTRANCE, 9)

    def add(conn: Connection) -> None:
        row = conn.execute(select(events).where(events.c.id == hall.events[0].id)).one()._asdict()
        conn.execute(insert(events).values({**row, "id": smuggled.id, "seq": 9, "raw": smuggled.raw}))

    sql(hall.url, add)
    expect_bad(hall, None, f"event row {smuggled.id} has no log entry")


def test_verify_catches_forged_signature(hall: Hall) -> None:
    forged = make_event(ENTRANCE, 4, key=make_device("attacker").key)
    hall.store.ingest([forged])  # the store keeps what it is given; the signature check is the inspector's
    report = verify_log(hall.store, KEYS)
    assert (report.ok, report.entries, report.first_bad) == (False, 9, 9)
    assert report.problem == f"entry 9: event {forged.id} signature does not verify"


def test_verify_rejects_events_of_unknown_devices(hall: Hall) -> None:
    expect_bad(hall, 3, "entry 3: event", keys={ENTRANCE.name: ENTRANCE.public_hex})
    report = verify_log(hall.store, {ENTRANCE.name: ENTRANCE.public_hex})
    assert report.problem is not None and "no known public key" in report.problem


def test_store_url_forms() -> None:
    assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("sqlite:///hub.db") == "sqlite:///hub.db"
    with pytest.raises(ValueError, match="mysql"):
        sqlalchemy_url("mysql://u@h/db")
