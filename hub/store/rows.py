"""Rows and log entries of the hub's tables, to and from the domain's objects."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from hub.domain import AuditEntry, Leave, Quarantined, StoredEvent
from wire.envelope import canonical, format_ts, parse_ts

QUARANTINE_KEEP = 4096  # bytes of a quarantined payload kept; its size and SHA-256 cover all of it


def payload_fields(payload: bytes) -> dict[str, str]:
    """A quarantined payload as JSON-able text: UTF-8 as is, anything else as base64."""
    try:
        return {"payload": payload.decode("utf-8"), "payload_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"payload": base64.b64encode(payload).decode("ascii"), "payload_encoding": "base64"}


def naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("query bounds must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None)


def event_row(item: StoredEvent, received_at: str) -> dict[str, Any]:
    """The event's row; `received_at` is format_ts(item.received_at), made once for its log entry too."""
    return {
        "id": item.id,
        "hall": item.hall,
        "device": item.device,
        "seq": item.seq,
        "type": item.type,
        "ts": _signed_ts(item),
        "ts_utc": naive_utc(item.ts),
        "received_at": received_at,
        "body": _body_text(item),
        "raw": item.raw,
        "epoch": item.epoch,
    }


def _body_text(item: StoredEvent) -> str:
    """The body's canonical JSON, cut from the signed bytes: they are canonical (the decoder made
    sure), `body` sorts first, and it ends at the envelope's `,"device":"`, the last one in them (a
    quote inside a string is escaped, so each is a key, and no object follows the envelope's)."""
    raw = item.raw
    end = raw.rfind(b',"device":"')
    if raw.startswith(b'{"body":') and end > 0:
        return raw[8:end].decode("utf-8")
    return canonical(item.body).decode("utf-8")


def _signed_ts(item: StoredEvent) -> str:
    """The event's `ts` text exactly as signed: as the decoder read it, else read from the raw bytes."""
    return item.ts_text if item.ts_text is not None else str(json.loads(item.raw)["ts"])


def event_data(item: StoredEvent, received_at: str) -> bytes:
    """The content of the event's log entry, {"raw", "received_at"}, as its canonical bytes."""
    return canonical({"raw": item.raw.decode("utf-8"), "received_at": received_at})


def leave_of(data: Mapping[str, Any]) -> Leave:
    """A leave from its log entry's content."""
    return Leave(
        staff=str(data["staff"]),
        start=datetime.fromisoformat(str(data["start"])),
        end=datetime.fromisoformat(str(data["end"])),
        approver=str(data["approver"]),
        reason=str(data["reason"]),
        recorded_at=datetime.fromisoformat(str(data["recorded_at"])),
        id=int(data.get("id") or 0),
    )


def stored_event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        hall=row.hall,
        device=row.device,
        seq=row.seq,
        type=row.type,
        ts=parse_ts(row.ts),
        received_at=datetime.fromisoformat(row.received_at),
        body=json.loads(row.body),
        raw=bytes(row.raw),
        epoch=row.epoch,
    )


def tamper(item: StoredEvent) -> Quarantined:
    return Quarantined(
        received_at=item.received_at,
        topic=f"{item.hall}/{item.device}/evt/{item.type}",
        reason="tamper",
        detail=f"event id {item.id} already stored with different content",
        payload=item.raw,
    )


def quarantine_row(item: Quarantined) -> dict[str, Any]:
    return {
        "received_at": format_ts(item.received_at),
        "topic": safe_text(item.topic),
        "reason": safe_text(item.reason),
        "detail": safe_text(item.detail),
        "payload": item.payload[:QUARANTINE_KEEP],
        "size": len(item.payload),
        "sha256": hashlib.sha256(item.payload).hexdigest(),
    }


def quarantine_data(item: Quarantined) -> dict[str, Any]:
    """The log entry: the kept head of the payload, with the size and SHA-256 of all of it."""
    return {
        "topic": safe_text(item.topic),
        "reason": safe_text(item.reason),
        "detail": safe_text(item.detail),
        **payload_fields(item.payload[:QUARANTINE_KEEP]),
        "size": len(item.payload),
        "sha256": hashlib.sha256(item.payload).hexdigest(),
        "received_at": format_ts(item.received_at),
    }


def safe_text(value: str) -> str:
    """Text any database takes and JSON encodes: no NUL (PostgreSQL refuses it in text), no lone
    surrogate (not UTF-8), both written as escapes."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def audit_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=datetime.fromisoformat(row.at),
        kind=row.kind,
        ref=row.ref,
        data=json.loads(row.data),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
