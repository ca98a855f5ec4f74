"""The window box: the evaluator and the desk box of each service window, as the hall sees them.

Turns new key presses into `rating` and `sign` events, keeps the window's invitation and desk state,
and drives both displays. Pure logic: events leave through `record`, display texts through `show`;
the drivers and the outbox are the agent's. Thread-safe (presses come from unit threads, hub
commands from the MQTT thread, expiry from the main loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from edge_agent.readings import ButtonPress
from wire.envelope import format_ts, uuid7

# ButtonBus display modes (PROTOCOL.md section 3)
IDLE, INVITE, THANKS, ON_DUTY, AWAY, PAUSED = range(6)
DESK_KEYS = {0x11: "meeting", 0x12: "errand", 0x13: "break", 0x14: "field"}
TOGGLE, INVITE_KEY, PAUSE = 0x10, 0x18, 0x1F
REASON_ZH = {"meeting": "会议", "errand": "办事", "break": "休息", "field": "外勤", "other": "其他"}
THANKS_SECONDS = 3.0

Record = Callable[[str, dict[str, Any], str], object]  # type, body, ts
Show = Callable[[str, int, str], None]  # unit id, mode, text


@dataclass(frozen=True)
class WindowDevice:
    unit: str  # the unit id that owns this device (a point-to-point unit or a bus member)
    kind: str  # "evaluator" or "desk"
    window: str
    desk: str  # desk id in sign events (desk boxes)
    keys: int = 5


@dataclass
class _Invitation:
    id: str
    ticket: str | None
    until: float  # monotonic


@dataclass
class _Window:
    evaluator: WindowDevice | None = None
    desk: WindowDevice | None = None
    invitation: _Invitation | None = None
    thanks_until: float | None = None
    state: str = "on_duty"
    reason: str | None = None
    back_at: datetime | None = None


class WindowBoxes:
    def __init__(
        self,
        devices: list[WindowDevice],
        away_minutes: dict[str, int],
        invite_seconds: float,
        now: Callable[[], datetime],
        monotonic: Callable[[], float],
        record: Record,
        show: Show,
    ) -> None:
        self._by_unit = {device.unit: device for device in devices}
        self._windows: dict[str, _Window] = {}
        for device in devices:
            window = self._windows.setdefault(device.window, _Window())
            setattr(window, device.kind, device)
        self._away_minutes = away_minutes
        self._invite_seconds = invite_seconds
        self._now, self._monotonic = now, monotonic
        self._record, self._show = record, show
        self._lock = threading.RLock()

    def handles(self, unit: str) -> bool:
        return unit in self._by_unit

    # --- presses -------------------------------------------------------------------------

    def press(self, press: ButtonPress) -> str | None:
        """Handle one new press; returns the event type recorded, or None for an unknown key."""
        device = self._by_unit[press.unit]
        with self._lock:
            window = self._windows[device.window]
            if device.kind == "evaluator":
                return self._rating(device, window, press)
            return self._desk_key(device, window, press)

    def _rating(self, device: WindowDevice, window: _Window, press: ButtonPress) -> str | None:
        if not 1 <= press.key <= 5:
            return None
        invitation = window.invitation
        invited = invitation is not None and self._monotonic() < invitation.until
        body = {
            "window": device.window,
            "level": press.key,
            "keys": device.keys,
            "invited": invited,
            "invite": invitation.id if invited and invitation else None,
            "ticket": invitation.ticket if invited and invitation else None,
        }
        self._record("rating", body, format_ts(press.at))  # raises if the outbox refused it: no ACK
        window.invitation = None  # the first press inside an invitation closes it
        window.thanks_until = self._monotonic() + THANKS_SECONDS
        self._show(device.unit, THANKS, "谢谢您的评价 Thank you")
        return "rating"

    def _desk_key(self, device: WindowDevice, window: _Window, press: ButtonPress) -> str | None:
        key = press.key
        if key == INVITE_KEY:
            self._open_invitation(window, uuid7(), self._invite_seconds, None)
            return None
        if key == TOGGLE:
            state, reason = ("away", "other") if window.state == "on_duty" else ("on_duty", None)
        elif key in DESK_KEYS:
            state, reason = "away", DESK_KEYS[key]
        elif key == PAUSE:
            state, reason = ("paused", None) if window.state != "paused" else ("on_duty", None)
        else:
            return None
        back_at = (
            (press.at + timedelta(minutes=self._away_minutes.get(reason, 30))).replace(microsecond=0)
            if state == "away" and reason else None
        )
        body = {
            "window": device.window,
            "desk": device.desk,
            "state": state,
            "reason": reason,
            "back_at": format_ts(back_at) if back_at else None,
        }
        # The state changes only once the reading is in the outbox: a refused write raises, the
        # press is not acknowledged, and the device's retransmission toggles from the same state.
        self._record("sign", body, format_ts(press.at))
        window.state, window.reason, window.back_at = state, reason, back_at
        self._show_desk(window)
        return "sign"

    # --- hub commands --------------------------------------------------------------------

    def invite(self, window_id: str, seconds: float, ticket: str | None, invite_id: str) -> None:
        with self._lock:
            window = self._windows.get(window_id)
            if window is None or window.evaluator is None:
                raise ValueError(f"本机没有 {window_id} 号窗口的评价器 (no evaluator for window {window_id})")
            self._open_invitation(window, invite_id, seconds, ticket)

    def show(self, window_id: str, display: str, mode: int, text: str) -> None:
        with self._lock:
            window = self._windows.get(window_id)
            device = getattr(window, display, None) if window else None
            if device is None:
                raise ValueError(f"本机没有 {window_id} 号窗口的 {display} 显示 (no such display)")
            self._show(device.unit, mode, text)

    def refresh(self) -> None:
        """Put every display in its current state (after start, a reconnect or `sync`)."""
        with self._lock:
            for window in self._windows.values():
                self._show_evaluator_idle(window)
                self._show_desk(window)

    def tick(self) -> None:
        """Called often by the main loop: expire invitations and thanks."""
        now = self._monotonic()
        with self._lock:
            for window in self._windows.values():
                expired = window.invitation is not None and now >= window.invitation.until
                thanked = window.thanks_until is not None and now >= window.thanks_until
                if expired:
                    window.invitation = None
                if thanked:
                    window.thanks_until = None
                if expired or thanked:
                    self._show_evaluator_idle(window)

    # --- displays ------------------------------------------------------------------------

    def _open_invitation(self, window: _Window, invite_id: str, seconds: float,
                         ticket: str | None) -> None:
        window.invitation = _Invitation(invite_id, ticket, self._monotonic() + seconds)
        window.thanks_until = None
        if window.evaluator is not None:
            text = f"请评价 · {ticket}" if ticket else "请评价 Please rate"
            self._show(window.evaluator.unit, INVITE, text)

    def _show_evaluator_idle(self, window: _Window) -> None:
        if window.evaluator is not None and window.invitation is None and window.thanks_until is None:
            self._show(window.evaluator.unit, IDLE, "欢迎评价")

    def _show_desk(self, window: _Window) -> None:
        if window.desk is None:
            return
        if window.state == "away":
            reason = REASON_ZH.get(window.reason or "other", "其他")
            back = f" · {window.back_at.strftime('%H:%M')} 返回" if window.back_at else ""
            self._show(window.desk.unit, AWAY, f"暂离 · {reason}{back}")
        elif window.state == "paused":
            self._show(window.desk.unit, PAUSED, "暂停服务")
        else:
            self._show(window.desk.unit, ON_DUTY, f"在岗 · {window.desk.window}号窗口")
