"""The simulated IP camera, read as a real one: OpenCV (FFmpeg backend) on its MJPEG-over-HTTP URL,
faces and eye landmarks measured by face_recognition in this file's own code."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import face_recognition
import numpy as np
import pytest

from device_sims.camera import (
    Blink,
    CameraSim,
    CameraState,
    Empty,
    Moved,
    Photo,
    Vanish,
    Video,
    Wait,
    parse_script,
)
from device_sims.card import ScriptError

pytestmark = pytest.mark.face
ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
OBAMA = FACES / "enroll" / "obama" / "obama.jpg"
ROSE = FACES / "enroll" / "rose_leslie" / "img1.jpg"  # eyes wide open: EAR about 0.39 on the stream
CLIP = FACES / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(autouse=True)
def _faces_present() -> None:
    if not FACES.is_dir():
        pytest.fail(f"{FACES} is missing (see ../shared/faces/README.md)", pytrace=False)


@pytest.fixture
def camera() -> Iterator[CameraSim]:
    with CameraSim() as sim:
        yield sim


def read_for(capture: cv2.VideoCapture, seconds: float) -> list[np.ndarray]:
    """Every frame OpenCV reads for `seconds` (or until the stream ends), as RGB."""
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames


def distinct(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive repeats dropped: a still image streams as the same JPEG, decoded the same."""
    return [frame for index, frame in enumerate(frames)
            if index == 0 or not np.array_equal(frame, frames[index - 1])]


def eye_aspect_ratio(eye: list[tuple[int, int]]) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|) over the six points of one eye (Soukupova and Cech, 2016)."""
    p = np.array(eye, dtype=float)
    vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
    return float(vertical / (2.0 * np.linalg.norm(p[0] - p[3])))


def mean_ear(frame: np.ndarray) -> float | None:
    found = face_recognition.face_landmarks(frame)
    if len(found) != 1:
        return None
    return (eye_aspect_ratio(found[0]["left_eye"]) + eye_aspect_ratio(found[0]["right_eye"])) / 2


def test_opencv_reads_the_mjpeg_stream_at_its_size_and_rate() -> None:
    with CameraSim(size=(480, 272), fps=10) as sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/stream\.mjpg", sim.url)
        capture = cv2.VideoCapture(sim.url)
        assert capture.isOpened() and capture.getBackendName() == "FFMPEG"
        read_for(capture, 0.5)  # FFmpeg's probe buffers a few frames first
        frames = read_for(capture, 2.0)
        capture.release()
    assert all(frame.shape == (272, 480, 3) for frame in frames)
    assert 14 <= len(frames) <= 26, f"{len(frames)} frames in 2 s at 10 fps"


def test_the_wire_format_is_multipart_jpeg(camera: CameraSim) -> None:
    port = int(camera.url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: camera\r\n\r\n")
        data = b""
        while data.count(b"--frame\r\n") < 3:
            chunk = conn.recv(65536)
            assert chunk, f"the camera closed the stream after {len(data)} bytes"
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"\r\nContent-Type: multipart/x-mixed-replace; boundary=frame" in head
    match = re.match(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", body)
    assert match is not None, body[:120]
    jpeg = body[match.end() : match.end() + int(match.group(1))]
    assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")
    assert body[match.end() + len(jpeg) :].startswith(b"\r\n--frame\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /other HTTP/1.0\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.0 404")


def test_the_photo_step_shows_the_face(camera: CameraSim) -> None:
    capture = cv2.VideoCapture(camera.url)
    before = read_for(capture, 0.6)
    camera.photo(OBAMA, 1.5)
    frames = distinct(read_for(capture, 1.2))
    capture.release()
    assert face_recognition.face_locations(before[-1]) == []
    shown = frames[-1]
    assert len(face_recognition.face_locations(shown)) == 1
    enrolled = face_recognition.face_encodings(face_recognition.load_image_file(OBAMA))[0]
    assert face_recognition.face_distance([enrolled], face_recognition.face_encodings(shown)[0])[0] < 0.4


def test_the_blink_step_closes_the_eyes_then_opens_them(camera: CameraSim) -> None:
    capture = cv2.VideoCapture(camera.url)
    camera.blink(ROSE, 3, blinks=2)
    frames = read_for(capture, 3.3)
    capture.release()
    shown = [frame for frame in distinct(frames) if face_recognition.face_locations(frame)]
    ears = [mean_ear(frame) for frame in shown]
    assert None not in ears
    # the stream alternates open, shut, open, shut, open; measured: open 0.39, shut 0.17
    assert len(ears) == 5, ears
    opened, shut = [ears[0], ears[2], ears[4]], [ears[1], ears[3]]
    assert min(opened) > 0.30 and max(shut) < 0.20, ears
    shut_frames = sum(np.array_equal(frame, shown[1]) for frame in frames)
    assert 2 <= shut_frames <= 8, f"{shut_frames} shut frames in a blink at 15 fps"


def test_the_moved_step_moves_the_face_about(camera: CameraSim) -> None:
    capture = cv2.VideoCapture(camera.url)
    camera.moved(OBAMA, 2.5)
    frames = distinct(read_for(capture, 2.4))
    capture.release()
    samples = frames[2::6]
    boxes = [face_recognition.face_locations(frame) for frame in samples]
    assert all(len(found) == 1 for found in boxes), boxes
    centres = np.array([((left + right) / 2, (top + bottom) / 2) for (top, right, bottom, left), in boxes])
    sizes = [bottom - top for (top, _, bottom, _), in boxes]
    assert np.ptp(centres[:, 0]) > 60, centres
    assert max(sizes) > min(sizes), sizes


def test_vanish_ends_the_stream_and_refuses_then_comes_back(camera: CameraSim) -> None:
    capture = cv2.VideoCapture(camera.url)
    assert read_for(capture, 0.5)
    camera.stop_stream(1.5)
    started = time.monotonic()
    read_for(capture, 5.0)
    assert time.monotonic() - started < 2.0, "the reader did not see the stream end"
    assert not capture.read()[0]
    capture.release()
    assert camera.state is CameraState.VANISHED
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(camera.url.split(":")[2].split("/")[0])), timeout=2)
    assert camera.wait_idle(timeout=3)
    assert camera.state is CameraState.STREAMING
    again = cv2.VideoCapture(camera.url)
    assert again.isOpened() and again.read()[0]
    again.release()


def test_the_video_step_plays_the_file(camera: CameraSim) -> None:
    capture = cv2.VideoCapture(camera.url)
    camera.video(CLIP)
    frames = distinct(read_for(capture, 1.5))
    capture.release()
    moving = [frame for frame in frames if frame.std() > 30]  # the clip, not the plain empty room
    assert len(moving) >= 10
    assert all(frame.shape == (360, 640, 3) for frame in moving)


def test_script_steps_and_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "me.jpg").write_bytes(OBAMA.read_bytes())
    text = f"# a morning at the door\nempty 2\nphoto me.jpg 3\nvideo {CLIP}\nblink me.jpg 3 2\n" \
           "moved me.jpg 3  # held up\nvanish 2\nwait 1\nblink me.jpg 1\n"
    me = tmp_path / "me.jpg"
    assert parse_script(text, base=tmp_path) == [Empty(2), Photo(me, 3), Video(CLIP), Blink(me, 3, 2),
                                                 Moved(me, 3), Vanish(2), Wait(1), Blink(me, 1, 1)]
    for bad, message in [("empty\n", "line 1: expected `empty SECONDS`"),
                         ("wait 1\nphoto gone.jpg 2\n", "line 2: no such file"),
                         ("\nblink me.jpg 2 x\n", "line 2: blinks must be a whole number"),
                         ("vanish -1\n", "line 1: seconds must be"),
                         ("zoom 3\n", "line 1: unknown step 'zoom'")]:
        with pytest.raises(ScriptError, match=re.escape(message)):
            parse_script(bad, base=tmp_path)


def test_cli_prints_the_url_first_then_streams(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; from device_sims.cli import main; sys.exit(main())",
               "camera", "--photo", str(OBAMA), "--seconds", "1.5", "--start-delay", "0", "--fps", "10"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(command, **pipes, text=True, cwd=ROOT) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.fullmatch(r"URL (http://127\.0\.0\.1:\d+/stream\.mjpg)\n", first)
        assert match is not None, first
        capture = cv2.VideoCapture(match.group(1))
        ok, frame = capture.read()
        capture.release()
        assert ok and frame.shape == (360, 640, 3)
        assert proc.wait(timeout=15) == 0, proc.stderr.read() if proc.stderr else ""
    script = tmp_path / "bad.txt"
    script.write_text("empty 1\nblink nowhere.jpg 2\n")
    result = subprocess.run([*command[:4], "--script", str(script)], capture_output=True, text=True, cwd=ROOT,
                            timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert f"hall-sim camera: {script}: line 2: no such file" in result.stderr
