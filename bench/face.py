"""Face terminal benchmark: the FacePipeline against the naive per-frame detect + encode, on one core.

Video: ../shared/faces/video/short_hamilton_clip.mp4 (275 frames, 640x360, 29.97 fps). None of the
enroll/ photos appears in it (its one person, Lin-Manuel Miranda, is the stranger of the tests), so
the bench enrolls a face from the video itself: the first frame where full-resolution HOG finds a
face at least min_face_px tall. The five enroll/ people are in the gallery too.

- frames_per_s: FacePipeline.process over every frame (decoding not counted), require_live off, its
  clock the video's own time (frame index / fps), cv2.setNumThreads(1).
- recognize_ms: from the first frame with that face to the FaceEvent naming it, as a live camera
  would see it: video time between the two frames plus the processing of the last one, or the
  processing time of all those frames if that is longer (a pipeline slower than the camera).
- naive_frames_per_s: face_locations + face_encodings on every full frame, same frames; ratio.
- match_ms_10k: Gallery.best of one probe against 10,000 random entries, median of 100 runs.
- edge_rss_mb: maximum resident set size after the pipeline pass (before the naive pass).

Run: .venv/bin/python bench/face.py. The last line printed is one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import face_recognition  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.drivers.face import FacePipeline, Gallery  # noqa: E402
from edge_agent.drivers.face.source import FrameSource  # noqa: E402
from edge_agent.readings import DeviceError  # noqa: E402

FACES = ROOT.parent / "shared" / "faces"
VIDEO = FACES / "video" / "short_hamilton_clip.mp4"
FPS = 29.97
MIN_FACE_PX = 60
VIDEO_STAFF = "V001"


def frames() -> Iterator[np.ndarray]:
    source = FrameSource(str(VIDEO))
    try:
        while True:
            frame = source.read()
            if frame is not None:
                yield frame
    except DeviceError:
        return
    finally:
        source.close()


def enroll_from_video() -> tuple[int, np.ndarray]:
    """Index of the first frame with a face >= MIN_FACE_PX and that face's encoding."""
    for index, frame in enumerate(frames()):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        boxes = [b for b in face_recognition.face_locations(rgb, model="hog")
                 if min(b[2] - b[0], b[1] - b[3]) >= MIN_FACE_PX]
        if boxes:
            return index, face_recognition.face_encodings(rgb, known_face_locations=boxes[:1])[0]
    raise SystemExit(f"no face of {MIN_FACE_PX} px or more in {VIDEO}")


def enroll_photos() -> tuple[list[str], list[np.ndarray]]:
    staff, encodings = [], []
    for folder in sorted((FACES / "enroll").iterdir()):
        for photo in sorted(folder.iterdir()):
            rgb = face_recognition.load_image_file(photo)
            found = face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb, model="hog"))
            if found:
                staff.append(folder.name)
                encodings.append(found[0])
    return staff, encodings


def pipeline_pass(gallery: Gallery, first_face: int) -> dict[str, float]:
    index = 0
    pipeline = FacePipeline(lambda: gallery, require_live=False, min_face_px=MIN_FACE_PX,
                            monotonic=lambda: index / FPS)
    total = 0.0
    since_face = 0.0
    recognized_at: int | None = None
    last_ms = 0.0
    for index, frame in enumerate(frames()):  # noqa: B007 (the clock reads index)
        start = time.perf_counter()
        events = pipeline.process(frame)
        spent = time.perf_counter() - start
        total += spent
        if index >= first_face and recognized_at is None:
            since_face += spent
            if any(e.staff == VIDEO_STAFF for e in events):
                recognized_at, last_ms = index, spent * 1000
    if recognized_at is None:
        raise SystemExit("the pipeline never recognised the face enrolled from the video")
    video_ms = (recognized_at - first_face) / FPS * 1000 + last_ms
    return {"frames": pipeline.frames, "frames_per_s": pipeline.frames / total,
            "recognize_ms": max(video_ms, since_face * 1000), "recognized_frame": recognized_at,
            "encodings": pipeline.encodings}


def naive_pass() -> float:
    count, total = 0, 0.0
    for frame in frames():
        start = time.perf_counter()
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb, model="hog"))
        total += time.perf_counter() - start
        count += 1
    return count / total


def match_10k() -> float:
    rng = np.random.default_rng(7)
    encodings = rng.normal(0.0, 0.09, (10_000, 128))
    gallery = Gallery([f"S{i:05d}" for i in range(10_000)], encodings)
    probe = rng.normal(0.0, 0.09, 128)
    runs = []
    for _ in range(100):
        start = time.perf_counter()
        gallery.best(probe)
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def main() -> None:
    cv2.setNumThreads(1)
    first_face, video_encoding = enroll_from_video()
    staff, encodings = enroll_photos()
    gallery = Gallery([VIDEO_STAFF, *staff], np.stack([video_encoding, *encodings]))
    print(f"enrolled {VIDEO_STAFF} from video frame {first_face} (none of the {len(staff)} enroll/ "
          f"photos appears in the video)")
    piped = pipeline_pass(gallery, first_face)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pipeline: {piped['frames']} frames, {piped['encodings']} encodings, "
          f"recognised at frame {piped['recognized_frame']}")
    naive = naive_pass()
    result = {
        "frames_per_s": round(piped["frames_per_s"], 1),
        "recognize_ms": round(piped["recognize_ms"]),
        "naive_frames_per_s": round(naive, 1),
        "ratio": round(piped["frames_per_s"] / naive, 2),
        "match_ms_10k": round(match_10k(), 3),
        "edge_rss_mb": round(rss_mb, 1),
        "enrolled_from_video_frame": first_face,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
