"""The face unit's supervisor: opens the camera (OpenCV: index, file or stream URL), runs the face
pipeline on its frames, and reopens a camera that stops or vanishes with backoff, reporting it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edge_agent.config import FaceUnit
from edge_agent.drivers.face.pipeline import FacePipeline
from edge_agent.drivers.face.source import FrameSource
from edge_agent.entrance import FaceSeen
from edge_agent.readings import DeviceError, FaceView, UnitFault
from wire.clock import Clock
from wire.faces import Gallery

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0
OnFrame = Callable[[np.ndarray, FaceView | None], None]  # each frame with the face tracked on it


class CameraRunner:
    def __init__(
        self,
        unit: FaceUnit,
        clock: Clock,
        gallery: Callable[[], Gallery | None],
        on_face: Callable[[FaceSeen], object],
        on_fault: Callable[[UnitFault], object],
        on_status: Callable[[str, str], None],
        monotonic: Callable[[], float] = time.monotonic,
        on_frame: OnFrame | None = None,
    ) -> None:
        self.unit, self.clock = unit, clock
        self._on_frame = on_frame
        self._on_face, self._on_fault, self._on_status = on_face, on_fault, on_status
        self._monotonic = monotonic
        self.pipeline = FacePipeline(gallery, require_live=unit.require_live,
                                     confirm_frames=unit.confirm_frames,
                                     cooldown_s=unit.cooldown_seconds, monotonic=monotonic)

    def run(self, stop: threading.Event) -> None:
        backoff, lost = 1.0, False
        while not stop.is_set():
            try:
                source = FrameSource(self.unit.source, self._monotonic)
            except DeviceError as exc:
                if not lost:
                    self._lost(str(exc))
                    lost = True
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if lost:
                self._on_fault(UnitFault(self.unit.id, "camera_restored", 1, f"{self.unit.source} 已恢复"))
            lost, backoff = False, 1.0
            log.info("unit %s: %s open", self.unit.id, self.unit.source)
            self._on_status("ok", "")
            try:
                self._frames(source, stop)
            except DeviceError as exc:
                self._lost(str(exc))
                lost = True
                stop.wait(backoff)
            finally:
                source.close()

    def _frames(self, source: FrameSource, stop: threading.Event) -> None:
        while not stop.is_set():
            frame = source.read()
            if frame is None:
                continue
            events = self.pipeline.process(frame)
            if self._on_frame is not None:
                self._on_frame(frame, self.pipeline.view())  # keeps a reference: no copy, no encoding
            for event in events:
                seen = FaceSeen(event.staff, event.distance_milli, event.decision, event.live, event.jpeg,
                                self.clock.now())
                log.info("unit %s: face %s (%s, %d, live=%s)", self.unit.id, event.staff, event.decision,
                         event.distance_milli, event.live)
                self._on_face(seen)

    def _lost(self, detail: str) -> None:
        log.warning("unit %s: camera %s lost: %s", self.unit.id, self.unit.source, detail)
        self._on_status("lost", detail)
        self._on_fault(UnitFault(self.unit.id, "camera_lost", 1, f"{self.unit.source}: {detail}"[:500]))
