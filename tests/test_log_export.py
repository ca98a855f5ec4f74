"""Verifiable exports (issue 11): `hall-hub log head`, `log export`, the standalone `hall-verify`, and
the attacks of someone with write access to the hub's database, each caught by `log verify` and by
`hall-verify` on a bundle exported after the attack; the honest cases verify clean."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert, select
from test_store import ENTRANCE, START, WINDOW, make_event, rating, sql

from hub import config as hub_config
from hub.audit import PERSONAL_FIELDS, head_problem, verify_log
from hub.config import HubConfig
from hub.export import export_bundle, signed_head
from hub.roster_history import roster_record
from hub.store.schema import audit, events
from hub.store.store import Store
from hub.watermark import Watermarks
from verifier.bundle import BundleError, read_bundle
from verifier.check import check_bundle
from wire.clock import FixedClock
from wire.envelope import canonical, generate_keypair, load_private_key
from wire.record import PERSONAL_KINDS, ZERO_HASH, entry_hash, sign_head

ROOT = Path(__file__).resolve().parents[1]
HUB = generate_keypair()
EPOCH_A, EPOCH_B = "a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2"


def write_config(folder: Path, url: str) -> Path:
    path = folder / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[store]\nurl = "{url}"\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{ENTRANCE.public_hex}"\n'
        f'[[devices]]\nid = "window1"\npublic_key = "{WINDOW.public_hex}"\n'
        '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ncards = ["0A004A7B2C"]\n', encoding="utf-8")
    return path


class Hall:
    """A hub store written as the daemon writes it: the roster, events with their watermark notices,
    a case closure, daily closes carrying the head."""

    def __init__(self, config: HubConfig, store: Store, clock: FixedClock) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.marks = Watermarks()

    def events(self, *items: Any) -> None:
        for item in items:
            self.clock.advance(60)
            self.store.ingest([item])
            notice = self.marks.accept(item.device, item.seq, 0, item.epoch)
            if notice is not None:  # as hub/service.py `_report` logs it
                self.store.append(notice.kind, notice.log_data(), ref=notice.device)

    def gap(self, device: str, start: int, end: int) -> None:
        self.store.append("seq_gap", {"device": device, "from": start, "to": end}, ref=device)

    def close(self, day: str) -> None:
        self.clock.advance(3600)
        self.store.append_with_head("daily_close", {"date": day, "ratings": 0}, ref=day)


@pytest.fixture
def hall(tmp_path: Path, store_url: str) -> Iterator[Hall]:
    config = hub_config.load(write_config(tmp_path, store_url))
    clock = FixedClock(START)
    store = Store(store_url, clock)
    made = Hall(config, store, clock)
    store.append("roster", roster_record(config))
    made.events(*(make_event(ENTRANCE, seq) for seq in range(1, 6)), *(rating(seq) for seq in (1, 2, 3)))
    store.append("case_closed", {"case": "C-1", "closed_by": "主任", "result": "已回访"}, ref="C-1")
    made.close("2026-11-23")
    made.events(*(make_event(ENTRANCE, seq) for seq in range(6, 9)), rating(4), rating(5))
    clock.advance(3600)
    store.append("device_state", {"device": "window1", "online": False}, ref="window1")
    yield made
    store.close()


def audit_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(select(audit).order_by(audit.c.seq))]


def rechain(url: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Rewrite the log behind the hub's back and recompute every position and hash, as an operator
    with write access to the database (not the devices' keys) could."""
    def rewrite(conn: Connection) -> None:
        rows = change(audit_rows(conn))
        prev = ZERO_HASH
        for seq, row in enumerate(rows, 1):
            row.update(seq=seq, prev_hash=prev)
            row["hash"] = prev = entry_hash(seq, row["at"], row["kind"], row["ref"], json.loads(row["data"]),
                                            prev)
        conn.execute(delete(audit))
        conn.execute(insert(audit), rows)
    sql(url, rewrite)


def without_event(device: str, seq: int) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def change(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [row for row in rows if not (row["kind"] == "event" and _is(row, device, seq))]
    return change


def _is(row: dict[str, Any], device: str, seq: int) -> bool:
    raw = json.loads(json.loads(row["data"])["raw"])
    return bool(raw["device"] == device and raw["seq"] == seq)


def delete_event_row(url: str, device: str, seq: int) -> None:
    sql(url, lambda c: c.execute(delete(events).where(events.c.device == device, events.c.seq == seq)))


def caught(hall: Hall, tmp_path: Path, expected: str, head: str | None = None) -> None:
    """`log verify` and `hall-verify` on an export made now both fail, naming `expected`."""
    report = verify_log(hall.store, hall.config.device_keys())
    assert not report.ok and expected in str(report.problem), report.problem
    out = tmp_path / f"after{len(list(tmp_path.iterdir()))}"
    proof = check_bundle(read_bundle(export_bundle(hall.config, hall.store, out).path))
    assert proof.problem is not None and expected in proof.problem, proof.problem
    if head is not None:
        assert head_problem(hall.store, head) is not None


def old_head(hall: Hall) -> str:
    last = hall.store.last_audit()
    assert last is not None
    return f"{last.seq}:{last.hash}"


# --- honest ---------------------------------------------------------------------------------


def test_honest_bundle_verifies_through_the_commands(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    clock = FixedClock(START)
    made = Hall(hub_config.load(config), Store(f"sqlite:///{tmp_path / 'hub.db'}", clock), clock)
    made.store.append("roster", roster_record(made.config))
    made.events(*(make_event(ENTRANCE, seq) for seq in range(1, 4)), rating(1))
    made.close("2026-11-24")
    made.store.close()

    def hub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", "log", *args, "--config", str(config)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    head = hub("head", "--json")
    assert head.returncode == 0, head.stderr
    signed = json.loads(head.stdout)
    assert signed["entries"] == 6 and signed["hub_public_key"] == HUB.public_hex
    text = hub("head").stdout.splitlines()
    assert text[0] == f"6:{signed['hash']}" and "sig=" in text[1]
    for out in ("bundle", "bundle.zip"):
        exported = hub("export", "--from", "2026-11-24", "--to", "2026-11-24", "--out", str(tmp_path / out))
        assert exported.returncode == 0, exported.stderr
        result = subprocess.run([sys.executable, "-m", "verifier.cli", str(tmp_path / out), "--hub-key",
                                 HUB.public_hex], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "核验通过 bundle verified: hall h1" in result.stdout
        assert "entries: 1..6 (6)" in result.stdout and "from the log's first entry" in result.stdout
        assert "events: 4" in result.stdout and "entrance 3, window1 1" in result.stdout
        assert "not proved" in result.stdout
    verified = hub("verify", "--head", f"6:{signed['hash']}")
    assert verified.returncode == 0 and "6 entries" in verified.stdout


def test_a_range_bundle_is_anchored_and_says_it_proves_the_range_only(hall: Hall, tmp_path: Path) -> None:
    hall.clock.advance(86400)
    hall.events(make_event(ENTRANCE, 9), make_event(ENTRANCE, 10))
    exported = export_bundle(hall.config, hall.store, tmp_path / "day.zip", START.date().replace(day=25),
                             START.date().replace(day=25))
    bundle = read_bundle(exported.path)
    assert [line["kind"] for line in bundle.roster_before] == ["roster"]
    proof = check_bundle(bundle, HUB.public_hex)
    assert proof.problem is None and proof.first > 1 and proof.devices == {"entrance": 2}
    assert proof.anchored == bundle.entries[0]["prev_hash"] != ZERO_HASH


def test_an_outbox_reset_and_a_logged_gap_for_missing_seqs_verify_clean(hall: Hall, tmp_path: Path) -> None:
    hall.events(make_event(ENTRANCE, 9, epoch=EPOCH_A), make_event(ENTRANCE, 11, epoch=EPOCH_A))
    hall.gap("entrance", 10, 10)  # seq 10 never came
    hall.events(make_event(ENTRANCE, 1, epoch=EPOCH_B), make_event(ENTRANCE, 2, epoch=EPOCH_B))  # new outbox
    hall.close("2026-11-25")
    assert [e.kind for e in hall.store.audit(kind="seq_reset")] == ["seq_reset"]
    report = verify_log(hall.store, hall.config.device_keys())
    assert report.ok, report.problem
    proof = check_bundle(read_bundle(export_bundle(hall.config, hall.store, tmp_path / "b").path))
    assert proof.problem is None and (proof.gaps, proof.resets) == (1, 1)


def test_a_hole_in_the_newest_minutes_is_an_open_gap_not_a_removal(hall: Hall) -> None:
    hall.events(make_event(ENTRANCE, 10))  # 9 still on its way: the hub has not reported a gap yet
    report = verify_log(hall.store, hall.config.device_keys())
    assert report.ok and any("seqs 9..9" in note for note in report.notes)


# --- attacks --------------------------------------------------------------------------------


def test_a_deleted_signed_event_is_caught_by_seq_continuity(hall: Hall, store_url: str,
                                                            tmp_path: Path) -> None:
    head = old_head(hall)
    rechain(store_url, without_event("entrance", 7))  # after the first daily close: its head still holds
    delete_event_row(store_url, "entrance", 7)
    caught(hall, tmp_path, "device entrance seqs 7..7 are missing", head)


def test_a_deleted_event_before_a_daily_close_is_caught_by_its_head(hall: Hall, store_url: str,
                                                                    tmp_path: Path) -> None:
    rechain(store_url, without_event("entrance", 3))
    delete_event_row(store_url, "entrance", 3)
    caught(hall, tmp_path, "the head it carries does not match the chain before it")


def test_a_deleted_last_event_is_caught_only_by_a_head_taken_before(hall: Hall, store_url: str,
                                                                    tmp_path: Path) -> None:
    """The device's last event leaves no hole and no daily close came after it: the log alone holds
    (README, the limits), a head kept outside shows the cut."""
    head = old_head(hall)
    rechain(store_url, without_event("entrance", 8))
    delete_event_row(store_url, "entrance", 8)
    assert verify_log(hall.store, hall.config.device_keys()).ok
    problem = head_problem(hall.store, head)
    assert problem is not None and "holds fewer entries" in problem
    bundle = read_bundle(export_bundle(hall.config, hall.store, tmp_path / "b").path)
    assert check_bundle(bundle).problem is None and f"{bundle.head['entries']}:{bundle.head['hash']}" != head


def test_an_edited_entry_recomputed_is_caught_by_the_daily_close_head(hall: Hall, store_url: str,
                                                                      tmp_path: Path) -> None:
    head = old_head(hall)

    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            if row["kind"] == "case_closed":
                row["data"] = canonical({"case": "C-1", "closed_by": "主任", "result": "群众满意"}).decode()
        return rows

    rechain(store_url, edit)
    caught(hall, tmp_path, "the head it carries does not match the chain before it", head)


def test_two_reordered_entries_are_caught(hall: Hall, store_url: str, tmp_path: Path) -> None:
    def swap(conn: Connection) -> None:
        rows = audit_rows(conn)
        conn.execute(delete(audit))
        rows[2]["seq"], rows[3]["seq"] = rows[3]["seq"], rows[2]["seq"]
        conn.execute(insert(audit), rows)
    sql(store_url, swap)
    caught(hall, tmp_path, "previous hash does not match entry 2")
    rechain(store_url, lambda rows: rows)  # and with every hash recomputed: the times give it away
    caught(hall, tmp_path, "time goes backwards")


def test_a_forged_seq_gap_over_stored_seqs_is_a_removal(hall: Hall, store_url: str, tmp_path: Path) -> None:
    def forge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        gap = {**rows[-1], "kind": "seq_gap", "ref": "entrance",
               "data": canonical({"device": "entrance", "from": 4, "to": 5}).decode()}
        return [*rows, gap]

    rechain(store_url, forge)
    caught(hall, tmp_path, "a forged gap (a removal covered)")


def test_an_event_whose_signature_fails_is_caught(hall: Hall, store_url: str, tmp_path: Path) -> None:
    forged = make_event(ENTRANCE, 3, key=load_private_key(generate_keypair().private_hex))

    def replace(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            if row["kind"] == "event" and _is(row, "entrance", 3):
                data = json.loads(row["data"])
                row["ref"], row["data"] = forged.id, canonical({**data, "raw": forged.raw.decode()}).decode()
        return rows

    rechain(store_url, replace)
    caught(hall, tmp_path, "signature does not verify")


def test_a_bundle_file_edited_after_export_is_caught_by_the_manifest(hall: Hall, tmp_path: Path) -> None:
    path = export_bundle(hall.config, hall.store, tmp_path / "b").path
    entries = path / "entries.jsonl"
    entries.write_bytes(entries.read_bytes().replace("已回访".encode(), "满意".encode()))
    with pytest.raises(BundleError, match="entries.jsonl was changed after export"):
        read_bundle(path)
    result = subprocess.run([sys.executable, "-m", "verifier.cli", str(path)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 1 and "entries.jsonl was changed after export" in result.stdout


def test_a_head_signed_by_another_key_is_caught(hall: Hall, tmp_path: Path) -> None:
    path = export_bundle(hall.config, hall.store, tmp_path / "b").path
    good = json.loads((path / "head.json").read_bytes())
    other = sign_head(load_private_key(generate_keypair().private_hex), "h1", good["entries"], good["hash"],
                      good["at"])
    (path / "head.json").write_bytes(canonical(other))
    manifest = json.loads((path / "manifest.json").read_bytes())  # made consistent by the forger
    manifest["files"]["head.json"] = hashlib.sha256(canonical(other)).hexdigest()
    (path / "manifest.json").write_bytes(canonical(manifest))
    proof = check_bundle(read_bundle(path))
    assert proof.problem is not None and "is signed by key" in proof.problem
    assert "not the hub's key" in proof.problem
    assert signed_head(hall.config, hall.store)["hub_public_key"] == HUB.public_hex


def test_the_verifier_imports_nothing_of_the_hub() -> None:
    code = ("import sys, verifier.cli, verifier.check, verifier.bundle; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'hub', 'sqlalchemy', 'pydantic'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
    assert set(PERSONAL_FIELDS) == PERSONAL_KINDS  # what an export withholds is what the hub hides
