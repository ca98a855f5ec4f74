"""The camera preview: the face unit's thread hands over each frame it already has (a reference, no
copy, no encoding: recognition never waits for the screen), and each viewer's stream encodes the
latest one as a small JPEG at most `fps` times a second, on its own thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

PREVIEW_WIDTH = 480
JPEG_QUALITY = 70


class Preview:
    def __init__(self, fps: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / fps
        self._monotonic = monotonic
        self._frame: Any = None  # a BGR numpy array
        self._count = 0
        self._new = threading.Condition()
        self.viewers = 0

    def offer(self, frame: Any) -> None:
        with self._new:
            self._frame = frame
            self._count += 1
            if self.viewers:
                self._new.notify_all()

    def jpegs(self, stop: threading.Event) -> Iterator[bytes]:
        """JPEGs of new frames, at most one per interval, until `stop` (or the caller stops)."""
        seen, due = -1, 0.0
        with self._new:
            self.viewers += 1
        try:
            while not stop.is_set():
                wait = due - self._monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                with self._new:
                    self._new.wait_for(lambda last=seen: self._count != last, timeout=1.0)
                    frame, count = self._frame, self._count
                if frame is None or count == seen:
                    continue
                seen, due = count, self._monotonic() + self.interval
                yield encode(frame)
        finally:
            with self._new:
                self.viewers -= 1


def encode(frame: Any, width: int = PREVIEW_WIDTH) -> bytes:
    import cv2  # only a face terminal has frames

    height, wide = frame.shape[:2]
    if wide > width:
        frame = cv2.resize(frame, (width, round(height * width / wide)), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"OpenCV cannot encode a frame of shape {frame.shape} as JPEG")
    return buffer.tobytes()
