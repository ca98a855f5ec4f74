"""Playing clips without blocking anyone: `play` queues (bounded; a clip that finds the queue full is
dropped and counted), one `sound` thread runs `aplay -q -D DEVICE -` with the scaled WAV on stdin.

A box without a sound card logs the failure (a warning the 1st, 2nd, 4th, 8th... time) and goes on.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge_agent.config import SoundSettings
from edge_agent.sound.clips import ClipError, clip_path, scaled_wav

log = logging.getLogger(__name__)
QUEUE_SIZE = 4  # clip sequences waiting; more are dropped (a prompt heard late is worse than none)
PLAY_TIMEOUT_S = 30.0

# Plays one WAV (bytes) on an ALSA device; raises OSError or CalledProcessError when it cannot.
Play = Callable[[str, bytes], None]


def aplay(device: str, wav: bytes) -> None:
    subprocess.run(["aplay", "-q", "-D", device, "-"], input=wav, check=True, capture_output=True,
                   timeout=PLAY_TIMEOUT_S)


class Voice(Protocol):
    def play(self, *clips: str) -> bool:
        """Queue clips to be played one after another; False when they were dropped."""
        ...


class Silent:
    """The voice of a box without `[sound]` (or with `enabled = false`)."""

    def play(self, *clips: str) -> bool:
        return False

    def close(self) -> None:
        return None


class ClipPlayer:
    def __init__(self, device: str, volume: int, clips_dir: Path | None, play: Play = aplay,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.device, self.volume, self.clips_dir = device, volume, clips_dir
        self._play = play
        self._queue: queue.Queue[tuple[str, ...] | None] = queue.Queue(queue_size)
        self._cache: dict[str, bytes] = {}
        self.dropped = 0
        self.failures = 0
        self.played: list[str] = []  # the clips played, in order, the last 50
        self._thread = threading.Thread(target=self._run, name="sound", daemon=True)
        self._thread.start()

    def play(self, *clips: str) -> bool:
        try:
            self._queue.put_nowait(tuple(clips))
        except queue.Full:
            self.dropped += 1
            log.debug("sound queue full: %s dropped (%d so far)", "+".join(clips), self.dropped)
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Play what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def _run(self) -> None:
        while True:
            clips = self._queue.get()
            try:
                if clips is None:
                    return
                for name in clips:
                    self._one(name)
            finally:
                self._queue.task_done()

    def _one(self, name: str) -> None:
        try:
            wav = self._cache.get(name)
            if wav is None:
                wav = self._cache[name] = scaled_wav(clip_path(name, self.clips_dir), self.volume)
            self._play(self.device, wav)
        except (ClipError, OSError, subprocess.SubprocessError) as exc:
            self.failures += 1
            detail = getattr(exc, "stderr", None) or str(exc)
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            log.log(logging.WARNING if self.failures & (self.failures - 1) == 0 else logging.DEBUG,
                    "sound: clip %s not played on %s: %s (%d failure(s))", name, self.device,
                    str(detail).strip()[:200], self.failures)
            return
        self.played = [*self.played[-49:], name]


def voice_for(settings: SoundSettings | None) -> ClipPlayer | Silent:
    if settings is None or not settings.enabled:
        return Silent()
    return ClipPlayer(settings.device, settings.volume, settings.clips_dir)
