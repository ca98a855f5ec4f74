"""Camera frames: the only I/O of the face unit. OpenCV's VideoCapture opens a camera index ("0"), a
video file or an http(s)/rtsp stream URL; every failure becomes DeviceError, so the supervisor
(edge_agent/camera.py) reports the camera lost and reopens it with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from edge_agent.readings import DeviceError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
STALL_SECONDS = 5.0  # a live source that delivers no frame for this long is lost
RETRY_WAIT_SECONDS = 0.05  # between failed reads of a live source


class Capture(Protocol):
    """The part of cv2.VideoCapture a FrameSource uses (tests pass a fake)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def is_live(spec: str) -> bool:
    """A camera index or a stream URL (frames may pause); otherwise a file, whose end is final."""
    return spec.strip().isdigit() or spec.strip().lower().startswith(STREAM_SCHEMES)


def open_source(spec: str) -> Capture:
    """cv2.VideoCapture of a camera index ("0"), a file path or an http(s)/rtsp URL. Not checked:
    FrameSource raises DeviceError when it did not open."""
    text = spec.strip()
    if not text:
        raise DeviceError("empty camera source")
    try:
        return cv2.VideoCapture(int(text)) if text.isdigit() else cv2.VideoCapture(text)
    except cv2.error as exc:
        raise DeviceError(f"cannot open camera source {spec!r}: {exc}") from exc


class FrameSource:
    """Frames of one source. `read` returns a BGR frame, or None after a failed read of a live source
    (a camera or stream may hiccup); it raises DeviceError when the source cannot be opened, when a
    live source delivered nothing for `stall_s`, or at the end of a video file ("stream ended")."""

    def __init__(
        self,
        spec: str,
        monotonic: Callable[[], float] = time.monotonic,
        opener: Callable[[str], Capture] = open_source,
        stall_s: float = STALL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.live = is_live(spec)
        self.frames = 0
        self._monotonic, self._stall_s, self._sleep = monotonic, stall_s, sleep
        self._capture = opener(spec)
        if not self._capture.isOpened():
            self._capture.release()
            raise DeviceError(f"cannot open camera source {spec!r}")
        self._last_frame_at = monotonic()

    def read(self) -> np.ndarray | None:
        try:
            ok, frame = self._capture.read()
        except cv2.error as exc:
            raise DeviceError(f"{self.spec}: read failed: {exc}") from exc
        now = self._monotonic()
        if ok and frame is not None and frame.size:
            self.frames += 1
            self._last_frame_at = now
            return frame
        if not self.live:
            raise DeviceError(f"{self.spec}: stream ended after {self.frames} frames")
        if now - self._last_frame_at >= self._stall_s:
            raise DeviceError(f"{self.spec}: no frame for {now - self._last_frame_at:.1f} s")
        self._sleep(RETRY_WAIT_SECONDS)
        return None

    def close(self) -> None:
        self._capture.release()
