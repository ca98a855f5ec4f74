"""Frames in, confirmed faces out. Pure per frame: numpy, OpenCV and face_recognition calls only, the
clock injected (`monotonic`), the gallery pulled from a provider on every frame (the roster may
change under it).

Per frame: HOG detection on a downscaled RGB copy (boxes scaled back to the full frame), faces under
`min_face_px` ignored, the largest one tracked. Its 68-point landmarks give the eye aspect ratio for
blink liveness on every frame. Only a steady face (centre moved < `steady_px` since the last frame)
is encoded, on the full-resolution frame, and matched; `confirm_frames` consecutive steady frames
agreeing on one identity (a staff member, "match" or "review", or nobody, "unknown") confirm it.
Once confirmed, the face is re-encoded only every `recheck_s` to notice a change of person.

Emission for a confirmed face (one successful event per presence in front of the camera):
- live (a blink within the last `blink_window_s`), or `require_live` off: one FaceEvent, unless the
  same identity had a successful event within `cooldown_s`;
- `require_live` and no blink `liveness_window_s` after confirmation: one FaceEvent with
  live=False (a failed liveness attempt, for the caller to record), at most once per cooldown; the
  face may still blink later and then gets its live event.
Unknown faces follow the same rules with staff=None. Without a gallery nothing is encoded or emitted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import face_recognition
import numpy as np

from edge_agent.drivers.face.liveness import BlinkDetector, face_ear
from edge_agent.drivers.face.matcher import Decision, Gallery, Match
from edge_agent.readings import FaceView

MAX_JPEG_BYTES = 48 * 1024
CROP_MARGIN = 0.25  # of the face box, on each side
JPEG_QUALITIES = (90, 80, 70, 60, 50, 40, 30, 20)

Box = tuple[int, int, int, int]  # top, right, bottom, left in full-frame pixels (face_recognition's order)


STILL_SIZE_CHANGE = 0.25  # a face whose box grows or shrinks more than this per frame is moving


@dataclass(frozen=True)
class FaceEvent:
    staff: str | None  # None: a face nobody in the gallery matches
    distance_milli: int  # best distance of the confirming frames x 1000
    decision: Decision
    live: bool  # a blink was seen within the liveness window
    jpeg: bytes  # the face with a margin, at most MAX_JPEG_BYTES


@dataclass
class _Track:
    box: Box
    blink: BlinkDetector
    last_blink: float | None = None
    identity: str | None = None  # meaningful while streak > 0
    streak: int = 0
    best: Match | None = None
    best_crop: np.ndarray | None = None
    confirmed_at: float | None = None
    last_encoded: float = -math.inf
    done: bool = False  # the successful event of this presence was emitted (or suppressed by cooldown)
    failed_reported: bool = False
    centre: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.centre = _centre(self.box)


def _centre(box: Box) -> tuple[float, float]:
    top, right, bottom, left = box
    return (left + right) / 2.0, (top + bottom) / 2.0


def _size(box: Box) -> int:
    top, right, bottom, left = box
    return min(bottom - top, right - left)


def crop_face(frame: np.ndarray, box: Box, margin: float = CROP_MARGIN) -> np.ndarray:
    """The face box grown by `margin` of its size on each side, clipped to the frame (a copy)."""
    top, right, bottom, left = box
    dy, dx = int((bottom - top) * margin), int((right - left) * margin)
    height, width = frame.shape[:2]
    return frame[max(0, top - dy):min(height, bottom + dy), max(0, left - dx):min(width, right + dx)].copy()


def encode_jpeg(image: np.ndarray, limit: int = MAX_JPEG_BYTES) -> bytes:
    """JPEG of `image`, lowering the quality (then halving the size) until it fits in `limit` bytes."""
    while True:
        for quality in JPEG_QUALITIES:
            ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ValueError(f"OpenCV cannot encode an image of shape {image.shape} as JPEG")
            if len(buffer) <= limit:
                return buffer.tobytes()
        height, width = image.shape[:2]
        if min(height, width) < 32:
            raise ValueError(f"no JPEG of shape {image.shape} fits in {limit} bytes")
        image = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)


class FacePipeline:
    def __init__(
        self,
        gallery_provider: Callable[[], Gallery | None],
        require_live: bool,
        confirm_frames: int = 3,
        cooldown_s: float = 30.0,
        downscale: float = 0.5,
        min_face_px: int = 60,
        steady_px: float = 20.0,
        monotonic: Callable[[], float] = time.monotonic,
        liveness_window_s: float = 4.0,
        blink_window_s: float = 5.0,
        recheck_s: float = 1.0,
        upsample: int = 1,
        blink_factory: Callable[[], BlinkDetector] = BlinkDetector,
    ) -> None:
        if not 0.0 < downscale <= 1.0:
            raise ValueError(f"downscale must be in (0, 1], got {downscale}")
        if confirm_frames < 1:
            raise ValueError(f"confirm_frames must be at least 1, got {confirm_frames}")
        self._gallery = gallery_provider
        self.require_live = require_live
        self.confirm_frames = confirm_frames
        self.cooldown_s = cooldown_s
        self.downscale = downscale
        self.min_face_px = min_face_px
        self.steady_px = steady_px
        self.liveness_window_s = liveness_window_s
        self.blink_window_s = blink_window_s
        self.recheck_s = recheck_s
        self.upsample = upsample
        self._monotonic = monotonic
        self._blink_factory = blink_factory
        self._track: _Track | None = None
        self._last_success: dict[str | None, float] = {}
        self._last_failure: dict[str | None, float] = {}
        self.frames = 0
        self.encodings = 0  # face encodings computed: the expensive step, for benchmarks

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        """Faces of at least min_face_px in full-frame coordinates, largest first."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR frame (h, w, 3), got shape {frame_bgr.shape}")
        small = frame_bgr
        if self.downscale < 1.0:
            small = cv2.resize(frame_bgr, None, fx=self.downscale, fy=self.downscale,
                               interpolation=cv2.INTER_AREA)
        rgb_small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        height, width = frame_bgr.shape[:2]
        boxes: list[Box] = []
        for top, right, bottom, left in face_recognition.face_locations(
                rgb_small, number_of_times_to_upsample=self.upsample, model="hog"):
            box = (max(0, round(top / self.downscale)), min(width, round(right / self.downscale)),
                   min(height, round(bottom / self.downscale)), max(0, round(left / self.downscale)))
            if _size(box) >= self.min_face_px:
                boxes.append(box)
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]), reverse=True)

    def process(self, frame_bgr: np.ndarray) -> list[FaceEvent]:
        now = self._monotonic()
        self.frames += 1
        boxes = self.detect(frame_bgr)
        if not boxes:
            self._track = None
            return []
        previous_size = _size(self._track.box) if self._track is not None else None
        track, steady = self._follow(boxes[0])
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        # Blinks count only on a still face: a photo moved or tilted towards the camera makes the
        # landmarks jitter, and that must never add up to a blink.
        still = steady and previous_size is not None and (
            abs(_size(track.box) - previous_size) <= STILL_SIZE_CHANGE * previous_size)
        landmarks = face_recognition.face_landmarks(rgb, [track.box], model="large")
        if not still:
            track.blink.reset()
        elif landmarks and track.blink.observe(face_ear(landmarks[0])):
            track.last_blink = now
        gallery = self._gallery()
        if gallery is None or len(gallery) == 0:
            return []
        if not steady:
            if track.confirmed_at is None:
                track.streak = 0  # confirmation needs consecutive steady frames
            return []
        if track.confirmed_at is None or now - track.last_encoded >= self.recheck_s:
            encodings = face_recognition.face_encodings(rgb, known_face_locations=[track.box])
            self.encodings += 1
            track.last_encoded = now
            if encodings:
                track = self._agree(track, gallery.best(encodings[0]), frame_bgr, now)
        return self._emit(track, now)

    def view(self) -> FaceView | None:
        """The face tracked after the last frame, or None when there was none."""
        track = self._track
        if track is None:
            return None
        if track.done:
            return FaceView(track.box, "done")
        if track.confirmed_at is not None and self.require_live:
            return FaceView(track.box, "blink")
        return FaceView(track.box, "look")

    def _follow(self, box: Box) -> tuple[_Track, bool]:
        """Continue the tracked face when `box` is near it, else start a new track. Returns the
        track and whether the face is steady (its centre moved less than steady_px)."""
        previous = self._track
        if previous is not None:
            (x0, y0), (x1, y1) = previous.centre, _centre(box)
            moved = math.hypot(x1 - x0, y1 - y0)
            if moved < max(self.steady_px, _size(previous.box) / 2.0):
                previous.box, previous.centre = box, (x1, y1)
                return previous, moved < self.steady_px
        self._track = _Track(box, self._blink_factory())
        return self._track, False

    def _agree(self, track: _Track, match: Match, frame: np.ndarray, now: float) -> _Track:
        if track.confirmed_at is not None and match.staff != track.identity:
            # Another person on the same spot: start over, blink history included.
            track = self._track = _Track(track.box, self._blink_factory())
            track.last_encoded = now
        if track.streak and match.staff == track.identity:
            track.streak += 1
            if track.best is None or match.distance < track.best.distance:
                track.best, track.best_crop = match, crop_face(frame, track.box)
        else:
            track.identity, track.streak = match.staff, 1
            track.best, track.best_crop = match, crop_face(frame, track.box)
        if track.confirmed_at is None and track.streak >= self.confirm_frames:
            track.confirmed_at = now
        return track

    def _emit(self, track: _Track, now: float) -> list[FaceEvent]:
        if track.confirmed_at is None or track.done or track.best is None or track.best_crop is None:
            return []
        identity = track.identity
        live = track.last_blink is not None and now - track.last_blink <= self.blink_window_s
        if live or not self.require_live:
            track.done = True
            if self._cooling(self._last_success, identity, now):
                return []
            self._last_success[identity] = now
            return [self._event(track, live)]
        if track.failed_reported or now - track.confirmed_at < self.liveness_window_s:
            return []
        track.failed_reported = True
        cooling = self._cooling(self._last_success, identity, now)
        if cooling or self._cooling(self._last_failure, identity, now):
            return []
        self._last_failure[identity] = now
        return [self._event(track, False)]

    def _cooling(self, last: dict[str | None, float], identity: str | None, now: float) -> bool:
        return identity in last and now - last[identity] < self.cooldown_s

    @staticmethod
    def _event(track: _Track, live: bool) -> FaceEvent:
        assert track.best is not None and track.best_crop is not None
        return FaceEvent(track.identity, round(track.best.distance * 1000), track.best.decision, live,
                         encode_jpeg(track.best_crop))
