"""Personal data: a face taken out of the gallery is logged and leaves the roster; what stays in the
log still verifies."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC
from pathlib import Path

from hub import config as hub_config
from hub.audit import verify_log
from hub.faces import ENROLL_KIND, gallery_entries, gallery_version, roster_body
from hub.store.store import Store
from wire.clock import SystemClock
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]


def test_revoke_takes_a_face_out_of_the_roster(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'hall = "h1"\nprivate_key = "{generate_keypair().private_hex}"\n'
                      '[store]\nurl = "sqlite:///hub.db"\n'
                      '[[staff]]\nid = "S001"\nname = "张伟"\n[[staff]]\nid = "S002"\nname = "王芳"\n',
                      encoding="utf-8")
    store = Store(hub_config.load(config).store.url, SystemClock(UTC))  # the CLI writes at real time too
    for staff, value in (("S001", 1), ("S002", 2), ("S001", 3)):
        store.append(ENROLL_KIND, {"staff": staff, "photo": "p.jpg", "sha256": "0" * 64,
                                   "encoding": [value] * 128}, ref=staff)
    before = gallery_version(store)
    result = subprocess.run([sys.executable, "-m", "hub.cli", "staff", "revoke", "--config", str(config),
                             "--staff", "S001", "--by", "办公室主任", "--reason", "离职", "--no-publish"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [entry["staff"] for entry in gallery_entries(store)] == ["S002"]
    assert gallery_version(store) > before  # the running hub republishes the roster on this
    body = roster_body(hub_config.load(config), store)
    assert [entry["staff"] for entry in body["gallery"]] == ["S002"]
    [entry] = [e for e in store.audit() if e.kind == "face_revoke"]
    assert {k: v for k, v in entry.data.items() if k != "author"} == {"staff": "S001", "by": "办公室主任",
                                                                      "reason": "离职"}
    assert entry.data["author"]["by"] == "办公室主任" and entry.data["author"]["via"] == "cli"
    assert verify_log(store, {}).ok
    again = subprocess.run([sys.executable, "-m", "hub.cli", "staff", "revoke", "--config", str(config),
                            "--staff", "S001", "--by", "x", "--no-publish"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 2 and "has no face in the gallery" in again.stderr
    store.append(ENROLL_KIND, {"staff": "S001", "photo": "new.jpg", "sha256": "1" * 64,
                               "encoding": [4] * 128}, ref="S001")  # enrolled again later
    assert [(e["staff"], e["encoding"][0]) for e in gallery_entries(store)] == [("S002", 2), ("S001", 4)]
    store.close()
