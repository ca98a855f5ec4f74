"""The terminal's face unit with real dlib models on ../shared/faces: matcher, blink liveness, the
frame pipeline and the frame source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import face_recognition
import numpy as np
import pytest
from PIL import Image

from edge_agent.drivers.face import (
    MATCH_BELOW,
    REVIEW_BELOW,
    BlinkDetector,
    FaceEvent,
    FacePipeline,
    Gallery,
    dequantize,
    eye_aspect_ratio,
    quantize,
)
from edge_agent.drivers.face.pipeline import MAX_JPEG_BYTES, encode_jpeg
from edge_agent.drivers.face.source import FrameSource
from edge_agent.readings import DeviceError

pytestmark = pytest.mark.face
ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
PEOPLE = {"obama": "S001", "biden": "S002", "kit_harington": "S003", "rose_leslie": "S004",
          "alex_lacamoire": "S005"}
VIDEO = FACES / "video" / "short_hamilton_clip.mp4"


def load_rgb(path: Path, longest: int = 800) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    scale = longest / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    return np.asarray(image)


def encode_all(path: Path) -> list[np.ndarray]:
    rgb = load_rgb(path)
    return list(face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb, model="hog")))


def only_file(folder: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert len(files) == 1, folder
    return files[0]


@pytest.fixture(scope="module")
def enc() -> dict[str, list[np.ndarray]]:
    """Encodings computed once: enroll/<person>, probe/<person>, stranger, scene."""
    if not FACES.is_dir():
        pytest.fail(f"{FACES} is missing: the tests read ../shared/faces beside the repository")
    found: dict[str, list[np.ndarray]] = {}
    for person in PEOPLE:
        found[f"enroll/{person}"] = encode_all(only_file(FACES / "enroll" / person))
        found[f"probe/{person}"] = encode_all(only_file(FACES / "probe" / person))
    found["stranger"] = encode_all(only_file(FACES / "strangers"))
    found["scene"] = encode_all(FACES / "scenes" / "two_people.jpg")
    return found


@pytest.fixture(scope="module")
def gallery(enc: dict[str, list[np.ndarray]]) -> Gallery:
    for person in PEOPLE:
        assert len(enc[f"enroll/{person}"]) == 1, person
    return Gallery(list(PEOPLE.values()), np.stack([enc[f"enroll/{p}"][0] for p in PEOPLE]))


def obama_frame(canvas: tuple[int, int] = (480, 640), shift: int = 0) -> np.ndarray:
    """The obama enrollment photo (BGR, 240 px wide) on a grey canvas, moved `shift` px right."""
    photo = cv2.cvtColor(load_rgb(only_file(FACES / "enroll" / "obama"), longest=300), cv2.COLOR_RGB2BGR)
    frame = np.full((*canvas, 3), 128, dtype=np.uint8)
    frame[60:60 + photo.shape[0], 40:40 + photo.shape[1]] = photo
    matrix = np.float32([[1, 0, shift], [0, 1, 0]])
    return cv2.warpAffine(frame, matrix, (canvas[1], canvas[0]), borderValue=(128, 128, 128))


class Clock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


# --- matcher ---------------------------------------------------------------------------------------

def test_thresholds_leave_review_band() -> None:
    assert 0.52 < MATCH_BELOW < REVIEW_BELOW < 0.71


@pytest.mark.parametrize("person", list(PEOPLE))
def test_every_probe_matches_its_own_person(enc: dict[str, list[np.ndarray]], gallery: Gallery,
                                            person: str) -> None:
    assert len(enc[f"probe/{person}"]) == 1
    match = gallery.best(enc[f"probe/{person}"][0])
    assert (match.staff, match.decision) == (PEOPLE[person], "match")
    assert match.distance < MATCH_BELOW


def test_stranger_is_unknown(enc: dict[str, list[np.ndarray]], gallery: Gallery) -> None:
    assert len(enc["stranger"]) == 1
    match = gallery.best(enc["stranger"][0])
    assert (match.staff, match.decision) == (None, "unknown")
    assert match.distance > REVIEW_BELOW


def test_two_people_scene_matches_obama_and_biden(enc: dict[str, list[np.ndarray]], gallery: Gallery) -> None:
    matches = [gallery.best(e) for e in enc["scene"]]
    assert len(matches) == 2
    assert sorted(m.staff or "" for m in matches) == [PEOPLE["obama"], PEOPLE["biden"]]
    assert all(m.decision == "match" for m in matches)


def test_several_encodings_per_staff(enc: dict[str, list[np.ndarray]]) -> None:
    rows = [enc["enroll/biden"][0], enc["probe/obama"][0], enc["enroll/obama"][0]]
    two_for_obama = Gallery([PEOPLE["biden"], PEOPLE["obama"], PEOPLE["obama"]], np.stack(rows))
    match = two_for_obama.best(enc["probe/obama"][0])
    assert match.staff == PEOPLE["obama"] and match.distance == pytest.approx(0.0, abs=1e-9)


def test_quantize_round_trip_has_no_floats(enc: dict[str, list[np.ndarray]]) -> None:
    original = enc["enroll/obama"][0]
    wire = quantize(original)
    assert len(wire) == 128 and all(type(v) is int for v in wire)
    assert "." not in json.dumps(wire)
    assert np.max(np.abs(dequantize(json.loads(json.dumps(wire))) - original)) <= 1e-4


# --- liveness ----------------------------------------------------------------------------------------

def test_eye_aspect_ratio_of_a_drawn_eye() -> None:
    eye = [(0.0, 0.0), (3.0, -1.5), (7.0, -1.5), (10.0, 0.0), (7.0, 1.5), (3.0, 1.5)]
    assert eye_aspect_ratio(eye) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        eye_aspect_ratio(eye[:5])


def test_synthetic_blink_is_seen_once() -> None:
    detector = BlinkDetector(closed_below=0.21, min_closed_frames=2)
    sequence = [0.30] * 5 + [0.12, 0.10, 0.15] + [0.31] * 5
    results = [detector.observe(ear) for ear in sequence]
    assert results == [False] * 8 + [True] + [False] * 4
    assert detector.blinks == 1


def test_a_flicker_or_closed_eyes_are_not_blinks() -> None:
    flicker = BlinkDetector(min_closed_frames=2)
    assert not any(flicker.observe(ear) for ear in [0.3, 0.3, 0.1, 0.3, 0.3])  # one closed frame
    closed_from_start = BlinkDetector()
    assert not any(closed_from_start.observe(ear) for ear in [0.1] * 10)


@pytest.mark.parametrize("ear", [0.05, 0.2, 0.21, 0.28, 0.4])
def test_constant_ear_never_blinks(ear: float) -> None:
    detector = BlinkDetector()
    assert not any(detector.observe(ear) for _ in range(300))


def test_static_photo_never_gives_a_live_event(gallery: Gallery) -> None:
    frame = obama_frame()
    pipeline = FacePipeline(lambda: gallery, require_live=True, monotonic=Clock(0.2))
    events = [event for _ in range(30) for event in pipeline.process(frame)]
    assert [(e.staff, e.live) for e in events] == [(PEOPLE["obama"], False)]  # one failed attempt
    assert events[0].decision == "match"


def test_photo_moved_around_never_gives_a_live_event(gallery: Gallery) -> None:
    pipeline = FacePipeline(lambda: gallery, require_live=True, monotonic=Clock(0.2))
    events: list[FaceEvent] = []
    for step in range(30):
        events += pipeline.process(obama_frame(shift=5 * step))
    assert pipeline.encodings >= 3  # it was recognised, not skipped as unsteady
    assert not any(e.live for e in events)
    assert [(e.staff, e.live, e.decision) for e in events] == [(PEOPLE["obama"], False, "match")]


class BlinkAtFourthFrame(BlinkDetector):
    """A stand-in for a person who blinks: the detector reports a blink on its fourth frame."""

    def observe(self, ear: float) -> bool:
        self.blinks += 1
        return self.blinks == 4


def test_blink_gives_one_live_event_then_cooldown(gallery: Gallery) -> None:
    clock = Clock(0.1)
    pipeline = FacePipeline(lambda: gallery, require_live=True, cooldown_s=30.0, monotonic=clock,
                            blink_factory=BlinkAtFourthFrame)
    frame, empty = obama_frame(), np.full((480, 640, 3), 128, dtype=np.uint8)
    first = [event for _ in range(10) for event in pipeline.process(frame)]
    assert [(e.staff, e.live, e.decision) for e in first] == [(PEOPLE["obama"], True, "match")]
    assert 0 < first[0].distance_milli < 550 and len(first[0].jpeg) <= MAX_JPEG_BYTES
    assert cv2.imdecode(np.frombuffer(first[0].jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    assert pipeline.process(empty) == []  # the person leaves
    again = [event for _ in range(10) for event in pipeline.process(frame)]
    assert again == []  # back within the cooldown
    clock.now += 31.0
    assert pipeline.process(empty) == []
    later = [event for _ in range(10) for event in pipeline.process(frame)]
    assert [(e.staff, e.live) for e in later] == [(PEOPLE["obama"], True)]


def test_no_gallery_no_events() -> None:
    pipeline = FacePipeline(lambda: None, require_live=False, monotonic=Clock(0.1))
    assert [e for _ in range(6) for e in pipeline.process(obama_frame())] == []
    assert pipeline.encodings == 0


# --- video and source --------------------------------------------------------------------------------

def test_video_through_pipeline(gallery: Gallery) -> None:
    cv2.setNumThreads(1)
    source = FrameSource(str(VIDEO))
    pipeline = FacePipeline(lambda: gallery, require_live=False, monotonic=Clock(1 / 29.97))
    events: list[FaceEvent] = []
    with pytest.raises(DeviceError, match="stream ended after 275 frames"):
        while True:
            frame = source.read()
            assert frame is not None and frame.shape == (360, 640, 3)
            events += pipeline.process(frame)
    source.close()
    assert pipeline.frames == 275
    assert 3 <= pipeline.encodings < 60  # only steady faces, and only until confirmed
    assert events and all(e.staff is None and e.decision == "unknown" for e in events)  # nobody enrolled
    assert all(e.distance_milli >= 620 and len(e.jpeg) <= MAX_JPEG_BYTES for e in events)


def test_jpeg_fits_48_kib() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    data = encode_jpeg(noise)
    assert len(data) <= 48 * 1024 and data[:2] == b"\xff\xd8"


def test_source_that_cannot_open_is_a_device_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="cannot open"):
        FrameSource(str(tmp_path / "missing.mp4"))


class DeadCamera:
    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        return False, None

    def release(self) -> None:
        pass


def test_live_source_that_stalls_is_a_device_error() -> None:
    clock = Clock(1.0)
    source = FrameSource("0", clock, opener=lambda spec: DeadCamera(), stall_s=5.0, sleep=lambda s: None)
    assert source.read() is None
    with pytest.raises(DeviceError, match="no frame"):
        for _ in range(10):
            source.read()
