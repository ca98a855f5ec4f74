"""The entrance terminal's screen and voice, as the agent sees them: what the entrance recorded
(`clocked`), each camera frame (`frame`) and the hub's judgement of a punch (`hub_show`, the `show`
command with `display = "terminal"`, PROTOCOL.md 2.11) go to the board and the speaker; the page
is served only when `[terminal]` is configured. Called from unit threads and the MQTT thread."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from edge_agent.config import TerminalSettings
from edge_agent.entrance import Clocked
from edge_agent.outbox import OutboxError
from edge_agent.readings import FaceView
from edge_agent.sound import Voice
from edge_agent.terminal.board import Board
from edge_agent.terminal.preview import Preview
from edge_agent.terminal.punches import PunchJudge, Roster
from edge_agent.terminal.server import TerminalServer
from wire.clock import Clock

log = logging.getLogger(__name__)
VERDICTS = ("on_time", "late", "absent", "early_leave", "leave", "holiday", "not_live")
SHOW_KEYS = {"display", "event", "status", "minutes", "text"}


class EntranceScreen:
    def __init__(
        self,
        settings: TerminalSettings | None,
        clock: Clock,
        tz: tzinfo,
        roster: Roster,
        voice: Voice,
        camera: bool,
        require_live: bool,
        watermark: Callable[[], int],
        link_up: Callable[[], bool],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or TerminalSettings()
        self.clock, self.voice = clock, voice
        self._watermark, self._link_up, self._monotonic = watermark, link_up, monotonic
        self.judge = PunchJudge(roster, tz, self.settings.repeat_minutes, require_live)
        self.board = Board(tz, self.settings.lines, camera, monotonic)
        self.preview = Preview(self.settings.preview_fps, monotonic) if camera else None
        self.server: TerminalServer | None = None
        if settings is not None:
            try:
                self.server = TerminalServer(settings.address, self.snapshot, self.board.wait, self.preview)
            except OSError as exc:  # the punches are recorded all the same; only the page is missing
                log.error("terminal page: cannot listen on %s: %s", settings.listen, exc)

    def start(self) -> None:
        if self.server is not None:
            self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def snapshot(self) -> dict[str, Any]:
        try:
            watermark = self._watermark()
        except (OutboxError, sqlite3.Error, OSError):  # a failed read: recent punches show as waiting
            watermark = 0
        return self.board.snapshot(self.clock.now(), watermark, self._link_up())

    # --- from the entrance, the camera and the hub --------------------------------------------

    def clocked(self, clocked: Clocked) -> None:
        said = self.judge.said(clocked, self._monotonic())
        if said.line is not None:
            self.board.add(said.line)
        if said.prompt is not None:
            self.board.prompt(said.prompt)
        if said.clips:
            self.voice.play(*said.clips)

    def frame(self, frame: Any, view: FaceView | None) -> None:
        if self.preview is not None:
            self.preview.offer(frame)
        height, width = frame.shape[:2]
        if self.board.face(view, width, height) == "blink":
            self.voice.play("blink")

    def hub_show(self, body: dict[str, Any]) -> None:
        """The hub's judgement of a punch: raises ValueError for a body not as PROTOCOL.md 2.11
        says. A punch no longer on the screen is fine: nothing is shown."""
        event, status, minutes, text = (body.get(k) for k in ("event", "status", "minutes", "text"))
        if set(body) - SHOW_KEYS:
            raise ValueError(f"show: unknown key(s) {', '.join(sorted(set(body) - SHOW_KEYS))}")
        if not isinstance(event, str) or not 0 < len(event) <= 64:
            raise ValueError("show: event must be the id of a clock event")
        if status not in VERDICTS or not isinstance(text, str) or len(text) > 32:
            raise ValueError(f"show: status must be one of {', '.join(VERDICTS)}, text at most 32 characters")
        if minutes is not None and (type(minutes) is not int or minutes < 0):
            raise ValueError("show: minutes must be a non-negative integer or null")
        if not self.board.verdict(event, str(status), text):
            log.debug("show: punch %s is no longer on the screen", event)
