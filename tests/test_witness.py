"""Device witnesses of the audit chain (issue 11, PROTOCOL.md 2.10): every event a device signs carries the
chain head the hub last sent it, so whoever rewrites the log and recomputes every hash still contradicts
a signature they cannot make. Each attack is caught by `log verify` and by `hall-verify` on an export
made after it, on SQLite and PostgreSQL; the honest cases verify clean."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, update
from test_log_export import HUB, audit_rows, caught, rechain, write_config
from test_store import ENTRANCE, START, WINDOW, Device, sql

from hub import config as hub_config
from hub.audit import verify_log
from hub.config import HubConfig
from hub.domain import Leave, StoredEvent
from hub.export import export_bundle
from hub.ingest import Decoder
from hub.roster_history import roster_record
from hub.store.schema import audit, events, leaves
from hub.store.store import Store
from hub.watermark import Watermarks
from verifier.bundle import read_bundle
from verifier.check import check_bundle
from wire import topics
from wire.clock import FixedClock
from wire.envelope import WireError, canonical, format_ts, generate_keypair, load_public_key, seal

EPOCHS = {"entrance": "e1e1e1e1e1e1e1e1", "window1": "f2f2f2f2f2f2f2f2"}
CARD = {"method": "card", "card": "0A004A7B2C"}


def rating_body(level: int) -> dict[str, Any]:
    return {"window": "w1", "level": level, "keys": 5, "invited": False, "invite": None, "ticket": None}


class WitnessedHall:
    """A store written as the daemon writes it, with devices that witness: each device holds the head
    the hub last sent it (after each of its stored events, as `committed` carries it) and signs it into
    its next event; an idle device signs it with a `witness` event."""

    def __init__(self, config: HubConfig, store: Store, clock: FixedClock) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.marks = Watermarks()
        self.seqs = dict.fromkeys(EPOCHS, 0)
        self.epochs = dict(EPOCHS)
        self.held: dict[str, str | None] = dict.fromkeys(EPOCHS)
        keys = {device: load_public_key(key) for device, key in config.device_keys().items()}
        self.decoder = Decoder("h1", config.topic_prefix, keys, 65536)

    def event(self, device: Device, type: str = "clock", body: dict[str, Any] | None = None,
              minutes: float = 1) -> StoredEvent:
        self.clock.advance(minutes * 60)
        self.seqs[device.name] += 1
        envelope = seal(device.key, hall="h1", device=device.name, seq=self.seqs[device.name],
                        ts=format_ts(self.clock.now()), type=type, body=CARD if body is None else body,
                        epoch=self.epochs[device.name], head=self.held[device.name])
        item = self.decoder.decode(topics.event(self.config.topic_prefix, "h1", device.name, type),
                                   envelope.raw, self.clock.now())
        assert isinstance(item, StoredEvent), item
        assert self.store.ingest([item]) == ["stored"]
        notice = self.marks.accept(item.device, item.seq, 0, item.epoch)
        if notice is not None:  # as hub/service.py `_report` logs it
            self.store.append(notice.kind, notice.log_data(), ref=notice.device)
        self.held[device.name] = self.store.witness_head()  # the `committed` watermark it is sent
        return item

    def witness(self, *devices: Device) -> None:
        for device in devices:
            self.event(device, "witness", {}, minutes=0.5)


@pytest.fixture
def hall(tmp_path: Path, store_url: str) -> Iterator[WitnessedHall]:
    config = hub_config.load(write_config(tmp_path, store_url))
    clock = FixedClock(START)
    store = Store(store_url, clock)
    made = WitnessedHall(config, store, clock)
    store.append("roster", roster_record(config))
    for level in (5, 1, 4):  # the second, a bad rating, is what someone would like to see gone
        made.event(ENTRANCE)
        made.event(WINDOW, "rating", rating_body(level))
    clock.advance(60)
    store.add_leave(Leave("S001", START, START + timedelta(hours=9), "主任", "病假 sick", clock.now()))
    store.append("case_closed", {"case": "C-1", "closed_by": "主任", "result": "已回访"}, ref="C-1")
    made.event(ENTRANCE)
    made.event(WINDOW, "rating", rating_body(5))
    made.witness(ENTRANCE, WINDOW)
    yield made
    store.close()


def rating_row(rows: list[dict[str, Any]], level: int) -> dict[str, Any]:
    return next(row for row in rows if row["kind"] == "event"
                and json.loads(json.loads(row["data"])["raw"])["body"].get("level") == level)


# --- honest ---------------------------------------------------------------------------------


def test_events_sign_the_head_and_verify_names_the_witnesses(hall: WitnessedHall, tmp_path: Path) -> None:
    report = verify_log(hall.store, hall.config.device_keys())
    assert report.ok, report.problem
    assert "signed heads from 2 device(s) (entrance, window1)" in report.witnesses
    head = hall.store.witness_head()
    last = hall.store.last_audit()
    assert head is not None and last is not None and last.kind == "event"
    assert int(head.partition(":")[0]) < last.seq  # the trailing witness events are not asked to be witnessed
    bundle = read_bundle(export_bundle(hall.config, hall.store, tmp_path / "b").path)
    proof = check_bundle(bundle, HUB.public_hex)
    assert proof.problem is None and "entrance, window1" in proof.witnesses


def test_a_witness_event_without_a_head_is_refused(hall: WitnessedHall) -> None:
    envelope = seal(ENTRANCE.key, hall="h1", device="entrance", seq=99, ts=format_ts(hall.clock.now()),
                    type="witness", body={}, epoch=EPOCHS["entrance"])
    item = hall.decoder.decode("hall/v1/h1/entrance/evt/witness", envelope.raw, hall.clock.now())
    assert not isinstance(item, StoredEvent) and item.reason == "malformed"
    with pytest.raises(ValueError, match="version 2 envelope only"):
        seal(ENTRANCE.key, hall="h1", device="entrance", seq=1, ts=format_ts(START), type="witness", body={},
             head=f"1:{'0' * 64}")


def test_a_device_offline_for_a_day_a_hub_restart_and_an_outbox_reset_verify_clean(
        hall: WitnessedHall, store_url: str, tmp_path: Path) -> None:
    for device in ("entrance", "window1"):
        hall.store.append("device_state", {"device": device, "online": False}, ref=device)
    hall.clock.advance(86400)
    hall.store.append("daily_close", {"date": "2026-11-24", "ratings": 4}, ref="2026-11-24")  # nobody online
    hall.store.close()
    hall.store = Store(store_url, hall.clock, create=False)  # the hub restarts
    for device in ("entrance", "window1"):
        hall.store.append("device_state", {"device": device, "online": True}, ref=device)
    hall.event(ENTRANCE)
    hall.epochs["entrance"], hall.seqs["entrance"] = "0123456789abcdef", 0  # a new outbox, numbered from 1
    hall.held["entrance"] = None  # its witness floor went with the old outbox
    hall.event(ENTRANCE)
    hall.event(WINDOW, "rating", rating_body(5))
    hall.witness(ENTRANCE, WINDOW)
    report = verify_log(hall.store, hall.config.device_keys())
    assert report.ok, report.problem
    assert "entries appended while every device was offline" in report.witnesses
    proof = check_bundle(read_bundle(export_bundle(hall.config, hall.store, tmp_path / "b").path))
    assert proof.problem is None and proof.resets == 1


# --- attacks --------------------------------------------------------------------------------


def test_a_deleted_bad_rating_with_a_forged_gap_is_caught_by_the_witness(
        hall: WitnessedHall, store_url: str, tmp_path: Path) -> None:
    """The best the operator can do: remove the rating, its row, and log a seq_gap for its seq as if it
    never arrived; seq continuity is satisfied, the witnesses are not."""
    bad_id = rating_row(sql_rows(store_url), 1)["ref"]

    def remove(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        bad = next(row for row in rows if row["ref"] == bad_id)
        seq = json.loads(json.loads(bad["data"])["raw"])["seq"]
        gap = {**bad, "kind": "seq_gap", "ref": "window1",
               "data": canonical({"device": "window1", "from": seq, "to": seq,
                                  "epoch": EPOCHS["window1"]}).decode()}
        return [gap if row is bad else row for row in rows]

    rechain(store_url, remove)
    sql(store_url, lambda c: c.execute(delete(events).where(events.c.id == bad_id)))
    caught(hall, tmp_path, "were removed, inserted, reordered or rewritten")


def test_a_leave_approver_edited_and_the_chain_recomputed_is_caught(hall: WitnessedHall, store_url: str,
                                                                    tmp_path: Path) -> None:
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            if row["kind"] == "leave":
                row["data"] = canonical({**json.loads(row["data"]), "approver": "局长"}).decode()
        return rows

    rechain(store_url, edit)
    sql(store_url, lambda c: c.execute(update(leaves).values(approver="局长")))
    caught(hall, tmp_path, "signed at its seq")


def test_the_newest_hour_truncated_with_its_rows_is_caught_when_a_device_signs_again(
        hall: WitnessedHall, store_url: str, tmp_path: Path) -> None:
    hall.clock.advance(3600)
    cut_from = hall.clock.now()
    for level in (1, 2):
        hall.event(WINDOW, "rating", rating_body(level), minutes=5)
    hall.event(ENTRANCE, minutes=5)
    cut = [row for row in sql_rows(store_url) if datetime.fromisoformat(row["at"]) >= cut_from]

    def truncate(conn: Connection) -> None:
        conn.execute(delete(audit).where(audit.c.seq >= cut[0]["seq"]))
        refs = [row["ref"] for row in cut if row["kind"] == "event"]
        conn.execute(delete(events).where(events.c.id.in_(refs)))
    sql(store_url, truncate)
    assert verify_log(hall.store, hall.config.device_keys()).ok  # the log alone cannot tell yet
    hall.marks = Watermarks()  # the hub restarts on the cut store: its watermarks come from what is left
    for _hall, device, seq, epoch in hall.store.device_history():
        hall.marks.accept(device, seq, 0, epoch)
    hall.seqs["window1"] -= 2  # the box resends what the hub lost (same seqs), numbering on after them
    hall.event(WINDOW, "rating", rating_body(5))  # signs the head it held before the cut
    caught(hall, tmp_path, "its newest entries were cut")


def test_two_entries_of_the_same_moment_reordered_are_caught(hall: WitnessedHall, store_url: str,
                                                             tmp_path: Path) -> None:
    def swap(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        i = next(i for i, row in enumerate(rows) if row["kind"] == "leave")
        assert rows[i]["at"] == rows[i + 1]["at"]  # the leave and the case closure: one moment
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
        return rows

    rechain(store_url, swap)
    caught(hall, tmp_path, "signed at its seq")


def test_a_whole_chain_forged_under_a_new_hub_key_is_caught(hall: WitnessedHall, store_url: str,
                                                            tmp_path: Path) -> None:
    """A forger with the database and a hub key of their own exports a consistent bundle: its head is
    signed, its hashes link, the device events are byte for byte the devices'; the witnesses in them
    contradict the forged positions, and a pinned hub key refuses it outright."""
    rechain(store_url, lambda rows: [row for row in rows if row["kind"] != "case_closed"])
    forged_key = generate_keypair()
    text = (tmp_path / "hub.toml").read_text(encoding="utf-8")
    text = text.replace(HUB.private_hex, forged_key.private_hex)
    (tmp_path / "forged.toml").write_text(text, encoding="utf-8")
    forged = hub_config.load(tmp_path / "forged.toml")
    bundle = read_bundle(export_bundle(forged, hall.store, tmp_path / "forged").path)
    proof = check_bundle(bundle)
    assert proof.problem is not None and "signed at its seq" in proof.problem, proof.problem
    pinned = check_bundle(bundle, HUB.public_hex)
    assert pinned.problem is not None and "not the key you gave" in pinned.problem
    report = verify_log(hall.store, hall.config.device_keys())
    assert not report.ok and "signed at its seq" in str(report.problem)


def sql_rows(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    sql(url, lambda conn: found.extend(audit_rows(conn)))
    return found


def test_the_envelope_head_is_strict() -> None:
    good = seal(ENTRANCE.key, hall="h1", device="entrance", seq=1, ts=format_ts(START), type="clock",
                body=CARD, epoch=EPOCHS["entrance"], head=f"12:{'ab' * 32}")
    assert json.loads(good.raw)["head"] == f"12:{'ab' * 32}"
    from wire.envelope import parse
    assert parse(good.raw).head == f"12:{'ab' * 32}"
    for bad in ("0:" + "ab" * 32, "12:" + "AB" * 32, "12", 12):
        obj = {**json.loads(good.raw), "head": bad}
        with pytest.raises(WireError, match="head"):
            parse(canonical(obj))
    v1 = {**json.loads(good.raw), "v": 1}
    del v1["epoch"]
    with pytest.raises(WireError, match="extra"):
        parse(canonical(v1))


def test_protocol_2_10_vector() -> None:
    """docs/PROTOCOL.md 2.10: the `witness` event of the vector, from the seed 01..20."""
    from wire.envelope import load_private_key, parse
    key = load_private_key(bytes(range(1, 33)).hex())
    head = "7:" + "5d41402abc4b2a76b9719d911017c592" * 2
    envelope = seal(key, hall="h1", device="entrance", seq=2, ts="2026-11-24T08:35:02.480+08:00",
                    type="witness", body={}, id="0193a5c2-7d4e-7c1a-9f3b-5e2d8a4c6b12",
                    epoch="3f9a0c1d5e7b2a48", head=head)
    text = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("### 2.10")[1].split("## Version 1")[0]
    assert envelope.sig in section and envelope.raw.decode() in section
    assert canonical(envelope.unsigned()).decode() in section
    assert parse(envelope.raw).head == head
