"""Face snapshots kept apart from the log (PROTOCOL.md 2.7): a version-2 clock event signs the JPEG's
SHA-256, the JPEG comes on its own topic and is kept outside the hash chain, and snapshots older than
`[face] keep_snapshot_days` are purged with a log entry while `log verify` still holds."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from edge_agent.outbox import Outbox
from hub import config as hub_config
from hub.audit import verify_log
from hub.domain import StoredEvent
from hub.scheduler import HallScheduler
from hub.service import HubService
from hub.snapshots import MAX_WAITING
from hub.store.snapshots import keep_snapshot, purge_snapshots, snapshot_of
from hub.store.store import Store, sqlalchemy_url
from tests.hall_harness import hub_in_thread, wait_for
from tests.mqtt_broker import Mosquitto, publish
from wire.clock import FixedClock, SystemClock
from wire.envelope import format_ts, generate_keypair, load_private_key, seal

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
DEVICE, HUB = generate_keypair(), generate_keypair()
KEYS = {"entrance": DEVICE.public_hex}
EPOCH = "00000000000000e1"
P = "hall/v1/h1/entrance"


def jpeg(n: int) -> bytes:
    return b"\xff\xd8" + f"snapshot {n}".encode() + os.urandom(16)


def face_punch(seq: int, at: datetime, picture: bytes) -> StoredEvent:
    body = {"method": "face", "staff": "S001", "distance_milli": 400, "live": True,
            "photo_sha256": hashlib.sha256(picture).hexdigest()}
    envelope = seal(load_private_key(DEVICE.private_hex), hall="h1", device="entrance", seq=seq,
                    ts=format_ts(at), type="clock", body=body, epoch=EPOCH)
    return StoredEvent(envelope.id, "h1", "entrance", seq, "clock", at, at, body, envelope.raw, EPOCH)


def write_config(folder: Path, broker_url: str = "mqtt://127.0.0.1:1") -> Path:
    path = folder / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "{broker_url}"\n'
        f'[store]\nurl = "sqlite:///hub.db"\n[face]\nkeep_snapshot_days = 90\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{DEVICE.public_hex}"\n', encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    write_config(tmp_path)
    opened = Store(f"sqlite:///{tmp_path / 'hub.db'}", FixedClock(NOW))
    yield opened
    opened.close()


def test_a_snapshot_is_kept_only_if_its_event_signed_it(store: Store) -> None:
    picture = jpeg(1)
    event = face_punch(1, NOW, picture)
    store.ingest([event])
    assert not keep_snapshot(store, event, jpeg(2), NOW)  # another picture: not the signed one
    assert keep_snapshot(store, event, picture, NOW)
    assert not keep_snapshot(store, event, picture, NOW)  # kept once
    assert snapshot_of(store, event.id) == picture
    assert verify_log(store, KEYS).ok


def test_old_snapshots_are_purged_and_the_log_still_verifies(store: Store, tmp_path: Path) -> None:
    old_picture, new_picture = jpeg(1), jpeg(2)
    old, new = face_punch(1, NOW - timedelta(days=100), old_picture), face_punch(2, NOW, new_picture)
    store.ingest([old, new])
    keep_snapshot(store, old, old_picture, NOW)
    keep_snapshot(store, new, new_picture, NOW)

    entry = purge_snapshots(store, NOW - timedelta(days=90), 90)
    assert entry is not None and entry.kind == "snapshot_purge"
    assert entry.data["snapshots"] == [{"event": old.id, "sha256": hashlib.sha256(old_picture).hexdigest()}]
    assert snapshot_of(store, old.id) is None and snapshot_of(store, new.id) == new_picture
    assert purge_snapshots(store, NOW - timedelta(days=90), 90) is None  # nothing left to purge
    report = verify_log(store, KEYS)
    assert report.ok, report.problem

    out = subprocess.run([sys.executable, "-m", "hub.cli", "staff", "photo", "--config",
                          str(tmp_path / "hub.toml"), "--event", old.id, "--out", str(tmp_path / "x.jpg")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode != 0 and "purged on" in out.stderr
    assert entry.data["snapshots"][0]["sha256"] in out.stderr  # the hash stays, named
    kept = subprocess.run([sys.executable, "-m", "hub.cli", "staff", "photo", "--config",
                           str(tmp_path / "hub.toml"), "--event", new.id, "--out", str(tmp_path / "y.jpg")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "y.jpg").read_bytes() == new_picture


def test_an_altered_or_inserted_snapshot_fails_verification(store: Store, tmp_path: Path) -> None:
    picture = jpeg(1)
    event = face_punch(1, NOW, picture)
    store.ingest([event])
    keep_snapshot(store, event, picture, NOW)
    engine = create_engine(sqlalchemy_url(f"sqlite:///{tmp_path / 'hub.db'}"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE snapshots SET jpeg = :j"), {"j": jpeg(9)})
    report = verify_log(store, KEYS)
    assert not report.ok and "altered" in str(report.problem)
    with engine.begin() as conn:
        conn.execute(text("UPDATE snapshots SET jpeg = :j, event_id = 'made-up'"), {"j": picture})
    report = verify_log(store, KEYS)
    assert not report.ok and "inserted" in str(report.problem)
    engine.dispose()


def test_the_daily_close_purges_what_is_older_than_keep_snapshot_days(tmp_path: Path) -> None:
    config = hub_config.load(write_config(tmp_path))
    clock = FixedClock(NOW)
    store = Store(config.store.url, clock)
    pictures = [jpeg(n) for n in range(3)]
    ages = (91, 89, 1)  # days
    events = [face_punch(n + 1, NOW - timedelta(days=days), pictures[n]) for n, days in enumerate(ages)]
    store.ingest(events)
    for event, picture in zip(events, pictures, strict=True):
        keep_snapshot(store, event, picture, NOW)
    scheduler = HallScheduler(config, store, clock, dict)
    scheduler.check()
    scheduler.check()
    purges = list(store.entries("snapshot_purge"))
    assert [[s["event"] for s in e.data["snapshots"]] for e in purges] == [[events[0].id]]
    assert [snapshot_of(store, e.id) is not None for e in events] == [False, True, True]
    assert verify_log(store, KEYS).ok
    store.close()


def test_the_edge_outbox_keeps_a_snapshot_until_its_event_is_committed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    key = load_private_key(DEVICE.private_hex)
    picture = jpeg(1)
    for seq_attachment in (picture, None):
        outbox.put(lambda seq: seal(key, hall="h1", device="entrance", seq=seq, ts=format_ts(NOW),
                                    type="clock", body={"method": "card", "card": "0A004A7B2C"},
                                    epoch=outbox.epoch), seq_attachment)
    assert [item.attachment for item in outbox.pending()] == [picture, None]
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.db")  # durable: a restart still has it
    assert [item.attachment for item in reopened.pending()] == [picture, None]
    reopened.commit(1, retained=False)
    assert [item.attachment for item in reopened.pending()] == [None]
    assert reopened._db.execute("SELECT count(*) FROM attachment").fetchone()[0] == 0
    reopened.close()


# --- through Mosquitto, at a running hub --------------------------------------------------------


def test_the_hub_keeps_the_snapshot_its_event_signs_and_nothing_a_stranger_sends(
        tmp_path: Path, broker: Mosquitto) -> None:
    config = hub_config.load(write_config(tmp_path, broker.url))
    store = Store(config.store.url, SystemClock(TZ))
    service = HubService(config, SystemClock(TZ), store)
    now = SystemClock(TZ).now()
    picture = jpeg(1)
    event = face_punch(1, now, picture)
    with hub_in_thread(service):
        junk = [(f"{P}/snapshot", os.urandom(1024)) for _ in range(3 * MAX_WAITING)]
        publish(broker.port, [*junk, (f"{P}/snapshot", picture), (f"{P}/evt/clock", event.raw),
                              ("hall/v1/h1/stranger/snapshot", picture),
                              (f"{P}/snapshot", b"\xff\xd8" + bytes(48 * 1024))])
        wait_for(lambda: snapshot_of(store, event.id) is not None, 15, "the snapshot kept")
        wait_for(lambda: len(store.quarantined()) == 2, 15, "the two refused snapshots quarantined")
    assert snapshot_of(store, event.id) == picture
    assert sorted(q.reason for q in store.quarantined()) == ["oversize", "unknown_device"]
    assert len(service.snapshots._waiting) <= MAX_WAITING and service.snapshots.forgotten >= 2 * MAX_WAITING
    with store.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM snapshots")).scalar() == 1
    assert verify_log(store, KEYS).ok
    store.close()
