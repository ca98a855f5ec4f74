"""Enrollment and identification at the hub with real dlib models on ../shared/faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub import config as hub_config
from hub.faces import EnrollError, enroll, gallery, identify, roster_body
from hub.store.store import Store
from wire.clock import SystemClock
from wire.envelope import canonical, generate_keypair
from wire.faces import Gallery, dequantize, quantize

pytestmark = pytest.mark.face
ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
PEOPLE = {"obama": "S001", "biden": "S002", "kit_harington": "S003", "rose_leslie": "S004",
          "alex_lacamoire": "S005"}


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    if not FACES.is_dir():
        pytest.fail(f"{FACES} is missing: the tests read ../shared/faces beside the repository")
    tmp = tmp_path_factory.mktemp("faces")
    config = tmp / "hub.toml"
    staff = "".join(f'[[staff]]\nid = "{sid}"\nname = "{name}"\nwindow = "01"\n'
                    for name, sid in PEOPLE.items())
    config.write_text(f'hall = "h1"\nprivate_key = "{generate_keypair().private_hex}"\n'
                      f'[store]\nurl = "sqlite:///hub.db"\n{staff}', encoding="utf-8")
    loaded = hub_config.load(config)
    store = Store(loaded.store.url, SystemClock(loaded.tz))
    for name, sid in PEOPLE.items():
        enroll(loaded, store, sid, sorted((FACES / "enroll" / name).iterdir()))
    return config, store


def test_every_probe_is_recognised_and_the_stranger_refused(hall: tuple[Path, Store]) -> None:
    _, store = hall
    for name, sid in PEOPLE.items():
        found = identify(store, sorted((FACES / "probe" / name).iterdir()))
        assert [(f.staff, f.decision) for f in found] == [(sid, "match")], (name, found)
        assert 300 <= found[0].distance_milli <= 550
    stranger = identify(store, sorted((FACES / "strangers").iterdir()))
    assert [(f.staff, f.decision) for f in stranger] == [(None, "unknown")]


def test_a_scene_with_two_enrolled_people(hall: tuple[Path, Store]) -> None:
    _, store = hall
    found = identify(store, [FACES / "scenes" / "two_people.jpg"])
    assert len(found) == 2 and all(f.decision == "match" for f in found)
    assert len({f.staff for f in found}) == 2


def test_enrollment_refuses_no_face_and_several_faces(hall: tuple[Path, Store], tmp_path: Path) -> None:
    config, store = hall
    loaded = hub_config.load(config)
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 200, dtype=np.uint8)).save(blank)
    with pytest.raises(EnrollError, match="no face"):
        enroll(loaded, store, "S001", [blank])
    with pytest.raises(EnrollError, match="several faces"):
        enroll(loaded, store, "S001", [FACES / "scenes" / "two_people.jpg"])
    with pytest.raises(EnrollError, match="not on the roster"):
        enroll(loaded, store, "S999", [FACES / "enroll" / "obama" / "obama.jpg"])
    assert len(gallery(store) or []) == len(PEOPLE)  # nothing stored by a refused enrollment


def test_gallery_travels_as_integers(hall: tuple[Path, Store]) -> None:
    config, store = hall
    body = roster_body(hub_config.load(config), store)
    canonical(body)  # no floats anywhere
    assert b"." not in canonical(body["gallery"])
    rebuilt = Gallery.from_wire(body["gallery"])
    assert rebuilt is not None and sorted(set(rebuilt.staff_ids)) == sorted(PEOPLE.values())
    encoding = np.linspace(-0.3, 0.3, 128)
    assert np.max(np.abs(dequantize(quantize(encoding)) - encoding)) <= 0.5e-4


def test_identify_cli_json(hall: tuple[Path, Store]) -> None:
    config, _ = hall
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "staff", "identify", "--config", str(config), "--json",
         str(FACES / "probe" / "biden" / "biden2.jpg"), str(FACES / "strangers" / "lin-manuel-miranda.png")],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [set(r) for r in rows] == [{"photo", "staff", "name", "distance_milli", "decision"}] * 2
    assert (rows[0]["staff"], rows[0]["decision"]) == ("S002", "match")
    assert (rows[1]["staff"], rows[1]["decision"]) == (None, "unknown")
