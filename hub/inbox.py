"""What paho's thread hands the run thread (a bounded inbox), and the collapsing of repeated rejects.

The inbox is bounded by count and bytes at once (back-pressure on paho's socket, see
`HubService._on_message`); repeated rejects of one reason on one topic within a minute are stored
once and counted (`RejectCollapser`).
"""

from __future__ import annotations

import queue
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from hub.domain import Quarantined
from wire.envelope import format_ts

INBOX_MESSAGES = 10_000  # messages handed over by paho and not yet taken by the run thread, at most
INBOX_BYTES = 64 * 1024 * 1024  # and their payloads' bytes, at most (plus one message)
REJECT_WINDOW_S = 60.0
MAX_REJECT_WINDOWS = 256  # open (topic, reason) windows; past that, new topics share topic "*"


class Message(NamedTuple):  # a tuple: made on paho's thread for every message, cheaply
    topic: str
    payload: bytes
    received_at: datetime


class Inbox(queue.Queue[Message]):
    """Paho's thread to the run thread, bounded by count and bytes at once: each message weighs its
    payload, but at least INBOX_BYTES / INBOX_MESSAGES, against INBOX_BYTES (`qsize` is that weight)."""

    def __init__(self) -> None:
        super().__init__(maxsize=INBOX_BYTES)

    def _init(self, maxsize: int) -> None:
        self.queue: deque[Message] = deque()
        self.weight = 0

    def _qsize(self) -> int:
        return self.weight

    def take_batch(self, timeout: float, most: int, gather_s: float, idle_s: float) -> list[Message]:
        """Up to `most` messages: the first within `timeout` (0: only if one is here), then those that
        come within `gather_s` of it, ending sooner after `idle_s` of quiet (0 and 0: only what is
        here already)."""
        try:
            first = self.get(timeout=timeout) if timeout else self.get_nowait()
        except queue.Empty:
            return []
        messages = [first]
        deadline = time.monotonic() + gather_s
        while len(messages) < most:
            try:
                messages.append(self.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                messages.append(self.get(timeout=min(left, idle_s)))
            except queue.Empty:
                break
        return messages

    def qsize_messages(self) -> int:
        with self.mutex:
            return len(self.queue)

    def _put(self, item: Message) -> None:
        self.queue.append(item)
        self.weight += _weight(item)

    def _get(self) -> Message:
        item = self.queue.popleft()
        self.weight -= _weight(item)
        return item


def _weight(message: Message) -> int:
    return max(len(message.payload), INBOX_BYTES // INBOX_MESSAGES)


@dataclass
class _RejectWindow:
    opened: float  # monotonic time of the reject that was stored
    repeats: int = 0
    first_at: datetime | None = None  # receipt of the first and last repeat
    last_at: datetime | None = None
    bytes: int = 0
    detail: str = ""


class RejectCollapser:
    """Rejects that repeat: the first of (topic, reason) in a window of `window_s` seconds is stored
    and logged as usual; the others in that window are only counted (no quarantine row); when the
    window closes, its count becomes one log entry of kind "quarantine". A flood over many topics
    opens at most `max_windows` windows; past that, new topics share the topic "*" per reason."""

    def __init__(self, window_s: float = REJECT_WINDOW_S, max_windows: int = MAX_REJECT_WINDOWS) -> None:
        self.window_s = window_s
        self.max_windows = max_windows
        self._open: dict[tuple[str, str], _RejectWindow] = {}

    def admit(self, item: Quarantined, now: float) -> bool:
        """True: store this reject. False: a repeat within an open window, counted."""
        key = (item.topic, item.reason)
        if key not in self._open and len(self._open) >= self.max_windows:
            key = ("*", item.reason)
        window = self._open.get(key)
        if window is None:
            self._open[key] = _RejectWindow(now)
            return True
        window.repeats += 1
        window.first_at = window.first_at or item.received_at
        window.last_at = item.received_at
        window.bytes += len(item.payload)
        window.detail = item.detail[:200]
        return False

    def close(self, now: float, everything: bool = False) -> list[dict[str, Any]]:
        """Close the windows `window_s` old (or all): the log entries of those with repeats."""
        done = [key for key, window in self._open.items()
                if everything or now - window.opened >= self.window_s]
        entries = []
        for topic, reason in done:
            window = self._open.pop((topic, reason))
            if window.repeats and window.first_at and window.last_at:
                entries.append({"topic": topic, "reason": reason, "repeats": window.repeats,
                                "first_at": format_ts(window.first_at),
                                "last_at": format_ts(window.last_at), "bytes": window.bytes,
                                "detail": window.detail})
        return entries
