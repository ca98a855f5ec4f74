"""What the terminal page shows, as one thread-safe state: the punch lines (newest first), the face
tracked on the camera and the prompt. Writers (unit threads, the MQTT thread) change it and bump a
version; the page's stream waits on it (`wait`) and reads a `snapshot`, a plain dict for JSON."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from edge_agent.readings import FaceView
from edge_agent.terminal.punches import PunchLine

PENDING_AFTER_S = 1.5  # a punch the hub has not committed after this shows 已记录，待上传
PROMPT_SECONDS = 6.0  # a prompt of a tap (card+face: look at the camera) stays this long
WEEKDAYS = "一二三四五六日"
PROMPTS = {"look": "请正视摄像头", "blink": "请眨眼", "done": "请正视摄像头"}


class Board:
    def __init__(self, tz: tzinfo, lines: int, camera: bool, monotonic: Callable[[], float]) -> None:
        self.tz, self.camera = tz, camera
        self._monotonic = monotonic
        self._lines: deque[PunchLine] = deque(maxlen=lines)
        self._face: tuple[tuple[float, float, float, float], str] | None = None
        self._prompt: tuple[str, float] | None = None  # text, until (monotonic)
        self._version = 0
        self._changed = threading.Condition()

    # --- writers -------------------------------------------------------------------------

    def add(self, line: PunchLine) -> None:
        with self._changed:
            self._lines.appendleft(line)
            self._prompt = None
            self._bump()

    def prompt(self, text: str) -> None:
        with self._changed:
            self._prompt = (text, self._monotonic() + PROMPT_SECONDS)
            self._bump()

    def face(self, view: FaceView | None, width: int, height: int) -> str | None:
        """The face on the latest frame; returns its stage when it changed (None otherwise). The
        version moves only when the stage changes or the box moves by 2% of the frame or more."""
        face = None
        if view is not None and width and height:
            top, right, bottom, left = view.box
            face = ((left / width, top / height, right / width, bottom / height), view.stage)
        with self._changed:
            before = self._face
            if before is not None and face is not None and before[1] == face[1] and max(
                    abs(a - b) for a, b in zip(before[0], face[0], strict=True)) < 0.02:
                return None
            self._face = face
            self._bump()
            new_stage = face[1] if face else None
            return new_stage if new_stage != (before[1] if before else None) else None

    def verdict(self, event_id: str, status: str, text: str) -> bool:
        """The hub's judgement of a punch still on the screen; False when it is not (any more)."""
        with self._changed:
            for line in self._lines:
                if line.id == event_id:
                    line.verdict, line.verdict_status = text, status
                    self._bump()
                    return True
        return False

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()

    # --- readers -------------------------------------------------------------------------

    def wait(self, version: int, timeout: float) -> int:
        """Wait until the version is past `version` (or the timeout); returns the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version, timeout)
            return self._version

    def snapshot(self, now: datetime, watermark: int, link_up: bool) -> dict[str, Any]:
        mono = self._monotonic()
        local = now.astimezone(self.tz)
        offset = local.utcoffset()
        with self._changed:
            lines = list(self._lines)
            face, prompt = self._face, self._prompt
            version = self._version
        if prompt is not None and mono >= prompt[1]:
            prompt = None
        if prompt is not None:
            prompt_text = prompt[0]
        elif self.camera:
            prompt_text = PROMPTS[face[1]] if face else "请正视摄像头"
        else:
            prompt_text = "请刷卡"
        return {
            "version": version,
            "now_ms": int(now.timestamp() * 1000),
            "offset_min": int(offset.total_seconds() // 60) if offset is not None else 0,
            "date": f"{local.year}年{local.month}月{local.day}日 星期{WEEKDAYS[local.weekday()]}",
            "link": "connected" if link_up else "offline",
            "camera": self.camera,
            "face": {"box": [round(v, 4) for v in face[0]], "stage": face[1]} if face else None,
            "prompt": prompt_text,
            "lines": [self._line(line, mono, watermark, link_up) for line in lines],
        }

    def _line(self, line: PunchLine, mono: float, watermark: int, link_up: bool) -> dict[str, Any]:
        waiting = line.seq is not None and line.seq > watermark
        pending = waiting and (not link_up or mono - line.recorded_at >= PENDING_AFTER_S)
        return {
            "id": line.id,
            "time": line.at.astimezone(self.tz).strftime("%H:%M:%S"),
            "name": line.name,
            "staff": line.staff,
            "result": line.result,
            "ok": line.ok,
            "pending": pending,
            "verdict": line.verdict,
            "verdict_status": line.verdict_status,
        }
