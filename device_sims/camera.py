"""Simulated IP camera: MJPEG over HTTP on loopback, as cheap IP cameras serve it.

`GET /stream.mjpg` answers `multipart/x-mixed-replace; boundary=frame`; each part is
`--frame`, `Content-Type: image/jpeg`, `Content-Length`, a blank line and the JPEG bytes, so
`cv2.VideoCapture(url)` reads it like a real camera. A playlist thread renders the frames at `fps`:
an empty room, a photo, a video file, a photo whose eyes blink (closed by this module's own image
processing), a photo moved about (held to the camera), or no camera at all for a while.
"""

from __future__ import annotations

import enum
import itertools
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import face_recognition
import numpy as np
from PIL import Image

from device_sims.camera_script import (
    Blink,
    CameraError,
    Empty,
    Moved,
    Photo,
    Step,
    Vanish,
    Video,
    Wait,
    parse_script,
)

Frame = np.ndarray  # RGB, uint8, shape (height, width, 3)
STREAM_PATH = "/stream.mjpg"
BOUNDARY = "frame"

__all__ = ["Blink", "CameraError", "CameraSim", "Empty", "Moved", "Photo", "Step", "Vanish", "Video",
           "Wait", "parse_script"]


# --- frames: this module's own rendering ------------------------------------------------------


def empty_scene(size: tuple[int, int]) -> Frame:
    """A plain room: a lit wall fading down to a darker floor, and a door frame."""
    width, height = size
    rows = np.linspace(0.0, 1.0, height)[:, None]
    wall = np.array([196, 190, 178]) * (1.0 - 0.25 * rows)
    floor_from = int(height * 0.78)
    frame = np.repeat(wall[:, None, :], width, axis=1).astype(np.uint8)
    frame[floor_from:] = (112, 100, 88)
    cv2.rectangle(frame, (int(width * 0.68), int(height * 0.18)), (int(width * 0.86), floor_from),
                  (140, 120, 96), max(2, width // 160))
    return frame


def load_photo(path: Path) -> Frame:
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except OSError as exc:
        raise CameraError(f"{path}: cannot read the photo ({exc})") from exc


def place(photo: Frame, size: tuple[int, int], scale: float = 1.0,
          center: tuple[float, float] | None = None) -> Frame:
    """`photo` fitted inside the frame (letterboxed on the empty scene), times `scale`, centred on
    `center` (default the frame's centre); parts outside the frame are cut off."""
    width, height = size
    fit = min(width / photo.shape[1], height / photo.shape[0]) * scale
    new_w, new_h = max(1, round(photo.shape[1] * fit)), max(1, round(photo.shape[0] * fit))
    resized = cv2.resize(photo, (new_w, new_h), interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
    cx, cy = center if center is not None else (width / 2, height / 2)
    left, top = round(cx - new_w / 2), round(cy - new_h / 2)
    frame = empty_scene(size)
    x0, y0, x1, y1 = max(0, left), max(0, top), min(width, left + new_w), min(height, top + new_h)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = resized[y0 - top : y1 - top, x0 - left : x1 - left]
    return frame


def close_eyes(photo: Frame) -> Frame:
    """The photo with its eyes shut: each eye polygon (dilated) filled with the skin colour of a
    band just below it, soft-edged, then a dark lid line across the lower part of the eye."""
    found = face_recognition.face_landmarks(photo)
    if not found:
        raise CameraError("no face found to blink")
    shut = photo.astype(np.float32)
    for eye in ("left_eye", "right_eye"):
        points = np.array(found[0][eye], np.float32)
        (x0, y0), (x1, y1) = points.min(0).astype(int), points.max(0).astype(int)
        eye_w, eye_h = max(x1 - x0, 2), max(y1 - y0, 1)
        band = photo[y1 + eye_h // 2 : y1 + eye_h // 2 + eye_h, x0 : x1 + 1].reshape(-1, 3)
        skin = np.median(band, axis=0) if len(band) else photo[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3).mean(0)
        mask = np.zeros(photo.shape[:2], np.uint8)
        cv2.fillPoly(mask, [points.astype(np.int32)], 255)
        grow = max(3, int(eye_w * 0.5)) | 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (grow, grow), 0)[..., None]
        shut = shut * (1.0 - alpha) + skin.astype(np.float32) * alpha
        # landmarks 0 and 3 are the corners; 1, 2 the upper lid, 5, 4 the lower lid beneath them
        lid = [points[0], 0.2 * points[1] + 0.8 * points[5], 0.2 * points[2] + 0.8 * points[4], points[3]]
        cv2.polylines(shut, [np.array(lid, np.int32)], False, (skin * 0.3).tolist(),
                      max(1, round(eye_w * 0.12)), cv2.LINE_AA)
    return np.clip(shut, 0, 255).astype(np.uint8)


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CameraError("JPEG encoding failed")
    return data.tobytes()


def _frames_of(seconds: float, fps: float) -> int:
    return max(1, round(seconds * fps))


def blink_schedule(frames: int, blinks: int, fps: float) -> list[bool]:
    """For each frame, whether the eyes are shut: `blinks` blinks of about 0.2 s, evenly spread."""
    shut_for = max(2, round(0.2 * fps))
    if frames < blinks * (shut_for + 2):
        raise CameraError(f"{frames} frames are too few for {blinks} blink(s) of {shut_for} frames")
    schedule = [False] * frames
    for index in range(blinks):
        start = int((index + 0.5) * frames / blinks - shut_for / 2)
        schedule[start : start + shut_for] = [True] * shut_for
    return schedule


# --- the stream -----------------------------------------------------------------------------


_Clip = Iterator[Frame | None] | Vanish  # a step ready to play


class CameraState(enum.Enum):
    NEW = "new"
    STREAMING = "streaming"
    VANISHED = "vanished"
    CLOSED = "closed"


class _FrameHub:
    """The latest JPEG, numbered; readers wait for a newer one. `cut()` ends every reader."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._jpeg = b""
        self._number = 0
        self._generation = 0

    def publish(self, jpeg: bytes) -> None:
        with self._changed:
            self._jpeg, self._number = jpeg, self._number + 1
            self._changed.notify_all()

    def cut(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def frames(self, timeout: float) -> Iterator[bytes]:
        """Each newer JPEG as it comes, until `cut()` or `timeout` seconds without one."""
        with self._changed:
            generation, seen = self._generation, self._number - 1
        while (newer := self._newer(generation, seen, timeout)) is not None:
            seen, jpeg = newer
            yield jpeg

    def _newer(self, generation: int, seen: int, timeout: float) -> tuple[int, bytes] | None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._generation != generation or self._number > seen,
                                          timeout):
                return None
            if self._generation != generation:
                return None
            return self._number, self._jpeg


class _StreamHandler(BaseHTTPRequestHandler):
    server: _StreamServer
    timeout = 5.0  # a client that stops reading is dropped after this long

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        if self.path.split("?", 1)[0] != STREAM_PATH:
            self.send_error(404, f"the stream is at {STREAM_PATH}")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for jpeg in self.server.hub.frames(timeout=self.timeout):
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode("ascii") + jpeg + b"\r\n")
        except OSError:
            return  # the client went away

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server signature
        return


class _StreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, hub: _FrameHub) -> None:
        self.hub = hub
        super().__init__(("127.0.0.1", port), _StreamHandler)


class CameraSim:
    """An IP camera on 127.0.0.1. Steps queue up and a background thread plays them at `fps`;
    between steps (and after the last) the current frame keeps streaming, as a camera does."""

    def __init__(self, size: tuple[int, int] = (640, 360), fps: float = 15, port: int = 0,
                 jpeg_quality: int = 85) -> None:
        if fps <= 0 or min(size) < 16:
            raise CameraError(f"need fps > 0 and a frame of at least 16x16, got {fps} and {size}")
        self.size, self.fps, self.jpeg_quality = size, fps, jpeg_quality
        self.state = CameraState.NEW
        self.failure: CameraError | None = None  # set when the camera could not come back after a vanish
        self._port = port
        self._hub = _FrameHub()
        self._steps: queue.Queue[_Clip] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._closing = threading.Event()
        self._server: _StreamServer | None = None
        self._first_frame = empty_scene(size)
        self._first_jpeg = encode_jpeg(self._first_frame, jpeg_quality)
        self._player = threading.Thread(target=self._play_loop, name="camera-player", daemon=True)

    @property
    def url(self) -> str:
        if self.state is CameraState.NEW:
            raise RuntimeError("the camera has no URL before start()")
        return f"http://127.0.0.1:{self._port}{STREAM_PATH}"

    def __enter__(self) -> CameraSim:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> CameraSim:
        if self.state is not CameraState.NEW:
            raise RuntimeError(f"start() on a camera that is {self.state.value}")
        self._hub.publish(self._first_jpeg)
        self._serve()
        self.state = CameraState.STREAMING
        self._player.start()
        return self

    def close(self) -> None:
        """Stop playing and close the server; readers see the stream end."""
        if self.state is CameraState.CLOSED:
            return
        started = self.state is not CameraState.NEW
        self.state = CameraState.CLOSED
        self._closing.set()
        self._stop_serving()
        if started:
            self._player.join()
            self._stop_serving()  # in case the player brought the server back from a vanish meanwhile
        with self._idle:
            self._idle.notify_all()

    # the playlist: each call prepares its frames now (errors surface here) and queues the step

    def empty(self, seconds: float) -> None:
        self.play([Empty(seconds)])

    def photo(self, path: str | Path, seconds: float) -> None:
        self.play([Photo(Path(path), seconds)])

    def video(self, path: str | Path) -> None:
        self.play([Video(Path(path))])

    def blink(self, path: str | Path, seconds: float, blinks: int = 1) -> None:
        self.play([Blink(Path(path), seconds, blinks)])

    def moved(self, path: str | Path, seconds: float) -> None:
        self.play([Moved(Path(path), seconds)])

    def stop_stream(self, seconds: float) -> None:
        self.play([Vanish(seconds)])

    def wait(self, seconds: float) -> None:
        self.play([Wait(seconds)])

    def play(self, steps: Sequence[Step]) -> None:
        if self.state is CameraState.CLOSED:
            raise RuntimeError("the camera is closed")
        prepared = [self._prepare(step) for step in steps]
        with self._idle:
            self._pending += len(prepared)
        for item in prepared:
            self._steps.put(item)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued step has played (True), or `timeout` passed (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0 or self._closing.is_set(), timeout)

    def _prepare(self, step: Step) -> _Clip:
        """The step's frames, one per tick (None: keep the current frame); a vanish stays as it is.
        Files are read here, on the caller's thread, so their errors reach the caller."""
        count = _frames_of(getattr(step, "seconds", 0.0), self.fps)
        match step:
            case Empty():
                return itertools.repeat(empty_scene(self.size), count)
            case Wait():
                return itertools.repeat(None, count)
            case Photo(path):
                return itertools.repeat(place(load_photo(path), self.size), count)
            case Moved(path):
                return self._moving(load_photo(path), count)
            case Blink(path, _, blinks):
                photo = load_photo(path)
                try:
                    opened, shut = place(photo, self.size), place(close_eyes(photo), self.size)
                except CameraError as exc:
                    raise CameraError(f"{path}: {exc}") from exc
                return (shut if closed else opened for closed in blink_schedule(count, blinks, self.fps))
            case Video(path):
                capture = cv2.VideoCapture(str(path))
                readable = capture.isOpened() and capture.read()[0]
                capture.release()
                if not readable:
                    raise CameraError(f"{path}: cannot read the video")
                return self._video_frames(path)
        return step

    def _moving(self, photo: Frame, count: int) -> Iterator[Frame]:
        """The photo swept left and right, bobbing and breathing in size: a hand-held print."""
        width, height = self.size
        fit = min(width / photo.shape[1], height / photo.shape[0])
        for index in range(count):
            phase = 2 * math.pi * index / max(count, 2 * self.fps)
            scale = 0.9 + 0.1 * math.sin(2 * phase)
            spare_x = max(0.0, (width - photo.shape[1] * fit * scale) / 2)
            center = (width / 2 + 0.9 * spare_x * math.sin(phase),
                      height / 2 + 0.05 * height * math.sin(3 * phase))
            yield place(photo, self.size, scale, center)

    def _video_frames(self, path: Path) -> Iterator[Frame]:
        """The file in real time: each tick shows the source frame due at that moment."""
        capture = cv2.VideoCapture(str(path))
        source_fps = capture.get(cv2.CAP_PROP_FPS) or self.fps
        shown, read, frame = 0, 0, None
        try:
            while True:
                due = int(shown / self.fps * source_fps)
                while read <= due:
                    ok, frame = capture.read()
                    if not ok:
                        return
                    read += 1
                assert frame is not None
                yield place(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), self.size)
                shown += 1
        finally:
            capture.release()

    def _play_loop(self) -> None:
        tick = 1.0 / self.fps
        next_at = time.monotonic()
        current, jpeg = self._first_frame, self._first_jpeg

        def show(frame: Frame | None) -> bool:
            nonlocal next_at, current, jpeg
            if frame is not None and frame is not current:
                current, jpeg = frame, encode_jpeg(frame, self.jpeg_quality)
            self._hub.publish(jpeg)
            next_at = max(next_at + tick, time.monotonic() - tick)
            return not self._closing.wait(max(0.0, next_at - time.monotonic()))

        while not self._closing.is_set():
            try:
                clip = self._steps.get_nowait()
            except queue.Empty:
                show(None)
                continue
            if isinstance(clip, Vanish):
                self._vanish(clip.seconds)
                next_at = time.monotonic()
            else:
                for frame in clip:
                    if not show(frame):
                        break
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _vanish(self, seconds: float) -> None:
        self.state = CameraState.VANISHED
        self._stop_serving()
        if self._closing.wait(seconds):
            return
        try:
            self._serve()
        except CameraError as exc:  # the port was taken meanwhile: the camera stays gone
            self.failure = exc
            self.state = CameraState.CLOSED
            self._closing.set()
            return
        self.state = CameraState.STREAMING

    def _serve(self) -> None:
        try:
            self._server = _StreamServer(self._port, self._hub)
        except OSError as exc:
            raise CameraError(f"cannot listen on 127.0.0.1:{self._port}: {exc.strerror or exc}") from exc
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                         name="camera-http", daemon=True).start()

    def _stop_serving(self) -> None:
        """Refuse new connections and drop the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self._hub.cut()
