"""Typed objects that pass between the hub's layers (ingest, store, rules, reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

AttendanceStatus = Literal["on_time", "late", "early_leave", "absent", "leave", "holiday", "pending"]


@dataclass(frozen=True)
class StoredEvent:
    """An accepted, signature-checked event as the store keeps it."""

    id: str
    hall: str
    device: str
    seq: int
    type: str
    ts: datetime  # device time of the reading (aware)
    received_at: datetime  # hub time of receipt (aware)
    body: dict[str, Any]
    raw: bytes  # the exact signed bytes received


@dataclass(frozen=True)
class Quarantined:
    received_at: datetime
    topic: str
    reason: str  # bad_signature, unknown_device, malformed, topic_mismatch, oversize, tamper
    detail: str
    payload: bytes


@dataclass(frozen=True)
class Leave:
    staff: str
    start: datetime
    end: datetime
    approver: str
    reason: str
    recorded_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    seq: int  # position in the chain, from 1
    at: datetime  # hub time the entry was appended
    kind: str  # event, quarantine, leave, roster, seq_reset, seq_gap, ...
    ref: str | None  # the event id for kind "event", else None or a short reference
    data: dict[str, Any]  # JSON-able content; for "event" it includes the raw bytes (as text)
    prev_hash: str  # hex sha256 of the previous entry, 64 zeros for the first
    hash: str  # hex sha256 over prev_hash and the canonical content of this entry


@dataclass(frozen=True)
class Session:
    name: str
    start: time
    end: time


@dataclass(frozen=True)
class Schedule:
    sessions: tuple[Session, ...]
    grace_minutes: int = 5
    absent_after_minutes: int = 120
    duplicate_punch_minutes: int = 3
    require_leave_punch: bool = True
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday = 1
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()  # 调休: weekend days worked


@dataclass(frozen=True)
class StaffMember:
    id: str
    name: str
    window: str
    cards: tuple[str, ...] = ()  # normalised to 10 uppercase hex digits


@dataclass(frozen=True)
class Punch:
    staff: str
    at: datetime  # aware, device time of the reading
    method: str
    event_id: str


@dataclass(frozen=True)
class SessionAttendance:
    staff: str
    name: str
    date: date
    session: str
    first: datetime | None
    last: datetime | None
    status: AttendanceStatus
    punches: tuple[datetime, ...] = field(default=())
