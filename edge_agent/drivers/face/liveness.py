"""Blink liveness: the eye aspect ratio (EAR) of dlib's 68-point eye landmarks, and a blink detector.

EAR (Soukupova and Cech, 2016) of one eye, landmarks p1..p6 in dlib order (p1 and p4 the corners):
``(|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)``; about 0.25-0.35 for an open eye, under 0.2 closed.
A printed photo or a phone screen held up to the camera, still or moved around, keeps a constant
EAR and so never blinks. Pure: numbers in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLOSED_BELOW = 0.21
MIN_CLOSED_FRAMES = 2

Point = tuple[float, float]


def eye_aspect_ratio(eye: Sequence[Point]) -> float:
    """EAR of one eye given its 6 landmarks (face_recognition's "left_eye" or "right_eye")."""
    if len(eye) != 6:
        raise ValueError(f"an eye has 6 landmarks, got {len(eye)}")
    p = np.asarray(eye, dtype=np.float64)
    width = float(np.linalg.norm(p[0] - p[3]))
    if width == 0.0:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


def face_ear(landmarks: dict[str, list[Point]]) -> float:
    """Mean EAR of both eyes of one face_recognition.face_landmarks() entry."""
    return (eye_aspect_ratio(landmarks["left_eye"]) + eye_aspect_ratio(landmarks["right_eye"])) / 2.0


CLOSED_RATIO = 0.75  # closed eyes are at most this fraction of the face's open-eye level


class BlinkDetector:
    """Open, then closed (EAR < closed_below) for at least `min_closed_frames` frames, then open again.

    `observe` returns True on the frame that completes such a blink, False otherwise. Eyes must be
    seen open first, so a face that arrives with closed eyes (or a photo of one) does not count.
    """

    def __init__(self, closed_below: float = CLOSED_BELOW,
                 min_closed_frames: int = MIN_CLOSED_FRAMES) -> None:
        if min_closed_frames < 1:
            raise ValueError("min_closed_frames must be at least 1")
        self.closed_below = closed_below
        self.min_closed_frames = min_closed_frames
        self.blinks = 0
        self._seen_open = False
        self._closed_frames = 0
        self._open_level: float | None = None

    def observe(self, ear: float) -> bool:
        # closed: below the absolute threshold and clearly below this face's own open level
        if ear < self.closed_below and (self._open_level is None or ear < CLOSED_RATIO * self._open_level):
            if self._seen_open:
                self._closed_frames += 1
            return False
        if ear >= self.closed_below:
            self._open_level = ear if self._open_level is None else 0.7 * self._open_level + 0.3 * ear
        blinked = self._seen_open and self._closed_frames >= self.min_closed_frames
        self._seen_open = True
        self._closed_frames = 0
        if blinked:
            self.blinks += 1
        return blinked

    def reset(self) -> None:
        self._seen_open = False
        self._closed_frames = 0
        self._open_level = None
