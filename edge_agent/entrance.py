"""The entrance terminal: card taps and recognised faces become `clock` events.

In card+face mode (a hall setting against buddy punching, 代打卡) a tap waits up to N seconds for a
live face: the face and the card together make one `card+face` event, whoever the face is (a face
that is not the card's owner is a suspected buddy punch, decided and recorded by the hub with both
pieces of evidence, never discarded); a tap with no face in time is recorded as a plain `card` punch.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from wire.envelope import Envelope, format_ts


class Record(Protocol):
    """Commits one event: type, body, ts and the snapshot whose SHA-256 the body holds."""

    def __call__(self, type_: str, body: dict[str, Any], ts: str,
                 attachment: bytes | None = None) -> object: ...


@dataclass(frozen=True)
class FaceSeen:
    staff: str | None
    distance_milli: int
    decision: str
    live: bool
    jpeg: bytes
    at: datetime


@dataclass(frozen=True)
class Clocked:
    """What the entrance did with a tap or a face, for the terminal's screen and voice: a `clock`
    event recorded (`event_id` None when the outbox refused it), or a tap that waits for a face."""

    kind: Literal["recorded", "waiting"]
    method: str  # card, face, card+face
    card: str | None
    staff: str | None  # the face's staff id (face, card+face)
    live: bool | None
    at: datetime
    event_id: str | None = None
    seq: int | None = None


OnClock = Callable[[Clocked], None]


@dataclass
class _PendingCard:
    card: str
    at: datetime
    until: float  # monotonic


def card_owner(card: str, staff: list[dict[str, Any]]) -> str | None:
    """The staff id whose roster card matches a read: 10 hex digits exactly, or a printed decimal
    number matching the last four data bytes."""
    for member in staff:
        for listed in member.get("cards", []):
            text = str(listed).strip()
            if text.isdigit() and len(text) <= 10:
                if f"{int(text):08X}" == card[2:]:
                    return str(member["id"])
            elif text.upper().removeprefix("0X") == card:
                return str(member["id"])
    return None


class Entrance:
    def __init__(self, card_face_seconds: float | None, record: Record,
                 monotonic: Callable[[], float], require_live: bool = True,
                 on_clock: OnClock = lambda clocked: None) -> None:
        self.card_face_seconds = card_face_seconds
        self.require_live = require_live
        self._record, self._monotonic = record, monotonic
        self.on_clock = on_clock  # the terminal's screen and voice
        self._pending: _PendingCard | None = None
        self._lock = threading.Lock()

    def card(self, card: str, at: datetime) -> None:
        if self.card_face_seconds is None:
            self._clock({"method": "card", "card": card}, at)
            return
        with self._lock:
            self._expire_locked(force=True)
            self._pending = _PendingCard(card, at, self._monotonic() + self.card_face_seconds)
        self.on_clock(Clocked("waiting", "card+face", card, None, None, at))

    def face(self, seen: FaceSeen) -> str | None:
        """Record a recognised face; returns the method recorded, or None when nothing was."""
        body: dict[str, Any] = {
            "staff": seen.staff,
            "distance_milli": seen.distance_milli,
            "live": seen.live,
            "photo_sha256": hashlib.sha256(seen.jpeg).hexdigest(),  # the JPEG travels apart (2.7)
        }
        with self._lock:
            pending = self._pending
            usable = seen.live or not self.require_live  # a failed liveness attempt keeps the tap waiting
            if pending is not None and usable and self._monotonic() <= pending.until:
                self._pending = None
                self._clock({"method": "card+face", "card": pending.card, **body}, pending.at, seen.jpeg)
                return "card+face"
        if seen.staff is None:
            return None  # an unknown face without a card: nothing to clock
        self._clock({"method": "face", **body}, seen.at, seen.jpeg)
        return "face"

    def tick(self) -> None:
        with self._lock:
            self._expire_locked(force=False)

    def _expire_locked(self, force: bool) -> None:
        pending = self._pending
        if pending is None or (not force and self._monotonic() <= pending.until):
            return
        self._pending = None
        self._clock({"method": "card", "card": pending.card}, pending.at)

    def _clock(self, body: dict[str, Any], at: datetime, jpeg: bytes | None = None) -> None:
        """Record one clock event (a refused write raises from `record` as before), then tell the
        terminal what was recorded."""
        envelope = self._record("clock", body, format_ts(at), jpeg)
        recorded = envelope if isinstance(envelope, Envelope) else None
        self.on_clock(Clocked("recorded", body["method"], body.get("card"), body.get("staff"),
                               body.get("live"), at, recorded.id if recorded else None,
                               recorded.seq if recorded else None))
