"""End to end for the face terminal: enrollment at the hub, the gallery in the signed roster, a
simulated MJPEG camera read by OpenCV at the edge, a card reader on a pty, through Mosquitto.

Card+face agreement counts for the card's owner; a card shown with someone else's face is kept as a
suspected buddy punch with both pieces of evidence; a photo held up without blinking never clocks in."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device_sims.camera import CameraSim
from device_sims.card import CardReaderSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto

pytestmark = [pytest.mark.e2e, pytest.mark.face]
FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
OBAMA, BIDEN = FACES / "enroll" / "obama" / "obama.jpg", FACES / "enroll" / "biden" / "biden.jpg"
def TODAY() -> str:  # noqa: N802
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


STAFF = [StaffSpec("S001", "欧巴马", "01", "0A004A7B2C"), StaffSpec("S002", "拜登", "02", "67003B51C6")]


def units(card_pty: str, camera_url: str) -> str:
    return (f'[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "{card_pty}"\n'
            f'[[units]]\nid = "cam"\nkind = "face"\nsource = "{camera_url}"\nrequire_live = true\n'
            "cooldown_seconds = 1\ncard_face_seconds = 15\n")


def test_card_and_face_agree_disagree_and_a_photo_never_passes(tmp_path: Path, broker: Mosquitto) -> None:
    reader, camera = CardReaderSim(), CameraSim(fps=12).start()
    hall = Hall(tmp_path / "hall", broker.url, STAFF)
    hall.write_edge_config(reader.path, units(reader.path, camera.url))
    try:
        enrolled = hall.cli("staff", "enroll", "--staff", "S001", "--by", "管理员", "--no-publish",
                            str(OBAMA))
        assert enrolled.returncode == 0, enrolled.stderr
        hall.start_hub()
        hall.start_edge()
        log = hall.workdir / "edge.log"
        wait_for(lambda: "1 face encoding(s)" in log.read_text(), 20, "the gallery at the edge", hall)
        # enrolled while everything runs: the edge takes the new gallery at once, no restart
        enrolled = hall.cli("staff", "enroll", "--staff", "S002", "--by", "管理员", str(BIDEN))
        assert enrolled.returncode == 0 and "roster published" in enrolled.stdout, enrolled.stderr
        wait_for(lambda: "2 face encoding(s)" in log.read_text(), 20, "the new gallery at the edge", hall)

        # a photo held still, then moved around: no blink, never a live punch
        camera.photo(OBAMA, 4)
        camera.moved(OBAMA, 4)
        camera.empty(2)
        camera.wait_idle(20)

        # S001 taps and shows a live face (a blink): one card+face punch for S001
        reader.tap("0A004A7B2C", hold_seconds=0.1)
        camera.blink(OBAMA, 5, blinks=2)
        wait_for(lambda: any(b["method"] == "card+face" for b in hall.stored("clock")), 40,
                 "the card+face punch", hall)
        camera.empty(2)
        camera.wait_idle(20)

        # S002's card with S001's face: kept, as a suspected buddy punch
        reader.tap("67003B51C6", hold_seconds=0.1)
        camera.blink(OBAMA, 5, blinks=2)
        wait_for(lambda: sum(b["method"] == "card+face" for b in hall.stored("clock")) == 2, 40,
                 "the second card+face event", hall)
        camera.empty(1)

        clock = hall.stored("clock")
        live = [b for b in clock if b.get("live") is True]
        first, second = [b for b in clock if b["method"] == "card+face"]
        assert (first["card"], first["staff"], first["live"]) == ("0A004A7B2C", "S001", True)
        assert (second["card"], second["staff"]) == ("67003B51C6", "S001")
        assert 0 < int(first["distance_milli"]) < 550
        assert re.fullmatch(r"[0-9a-f]{64}", str(first["photo_sha256"]))  # the JPEG's, signed
        assert len(live) == 2, [(b["method"], b.get("live"), b.get("card")) for b in clock]
        assert all(b["live"] is False for b in clock if b["method"] == "face")

        with sqlite3.connect(hall.hub_db) as db:
            event_id = db.execute("SELECT id FROM events WHERE body LIKE '%card+face%' ORDER BY ts_utc"
                                  ).fetchone()[0]
        snapshot = tmp_path / "evidence.jpg"
        extracted = hall.cli("staff", "photo", "--event", event_id, "--out", str(snapshot))
        assert extracted.returncode == 0, extracted.stderr
        assert snapshot.read_bytes()[:2] == b"\xff\xd8" and snapshot.stat().st_size <= 48 * 1024
        assert hashlib.sha256(snapshot.read_bytes()).hexdigest() in {first["photo_sha256"],
                                                                       second["photo_sha256"]}

        findings = json.loads(hall.cli("findings", "--date", TODAY(), "--json").stdout)
        buddy = [f for f in findings if f["kind"] == "buddy_punch"]
        assert [(f["staff"], f["detail"]["face"]) for f in buddy] == [("S002", "S001")]
        assert buddy[0]["sources"]
        rows = json.loads(hall.cli("attendance", "--date", TODAY(), "--json").stdout)
        punched = {r["staff"] for r in rows if r["first"]}
        assert "S001" in punched and "S002" not in punched  # the buddy punch counts for nobody
    finally:
        hall.stop()
        camera.close()
        reader.close()
