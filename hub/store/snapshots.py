"""Face snapshots (PROTOCOL.md 2.7): the JPEG of a face punch, kept apart from the log.

A version-2 clock event signs only the snapshot's SHA-256 (`photo_sha256`); the JPEG arrives on its
own topic and is kept here, in a table outside the hash chain, so that it can be purged once it is
older than `[face] keep_snapshot_days` (personal data is kept no longer than needed). The purge is a
log entry naming every snapshot it removed with its SHA-256, and the signed clock events keep theirs:
`log verify` still holds, and a snapshot still here must match the hash its event signed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from hub.domain import AuditEntry, StoredEvent
from hub.store.rows import naive_utc
from hub.store.schema import snapshots
from hub.store.store import Store
from wire.envelope import format_ts

CHUNK = 200  # snapshots read at a time when checking them all (each up to 48 KiB)


@dataclass(frozen=True)
class Snapshot:
    event_id: str
    device: str
    sha256: str
    jpeg: bytes


def snapshot_hash(event: StoredEvent) -> str | None:
    """The SHA-256 a version-2 clock event signs for its snapshot, if it has one."""
    value = event.body.get("photo_sha256") if event.type == "clock" else None
    return value if isinstance(value, str) else None


def keep_snapshot(store: Store, event: StoredEvent, jpeg: bytes, received_at: datetime) -> bool:
    """Keep the JPEG of `event` if it is the one the event signed and none is kept yet."""
    sha = hashlib.sha256(jpeg).hexdigest()
    if snapshot_hash(event) != sha:
        return False
    with store.writing() as conn:
        if conn.execute(select(snapshots.c.event_id).where(snapshots.c.event_id == event.id)).first():
            return False
        conn.execute(insert(snapshots), [{
            "event_id": event.id, "device": event.device, "sha256": sha, "jpeg": jpeg,
            "taken_utc": naive_utc(event.ts), "received_at": format_ts(received_at)}])
    return True


def snapshot_of(store: Store, event_id: str) -> bytes | None:
    with store.reading() as conn:
        row = conn.execute(select(snapshots.c.jpeg).where(snapshots.c.event_id == event_id)).first()
    return None if row is None else bytes(row.jpeg)


def view_snapshot(store: Store, event_id: str, viewer: str) -> bytes | None:
    """A face punch's snapshot for a manager: the view is logged (`personal_view`) with the viewer's
    name before the bytes are returned; None (and nothing logged) when none is kept."""
    if not viewer.strip():
        raise ValueError("viewing a snapshot needs the viewer's name")
    jpeg = snapshot_of(store, event_id)
    if jpeg is not None:
        store.append("personal_view", {"viewer": viewer.strip(), "what": "face_snapshot", "ids": [event_id]},
                     ref=viewer.strip()[:64])
    return jpeg


def purge_snapshots(store: Store, before: datetime, keep_days: int) -> AuditEntry | None:
    """Remove the snapshots taken before `before`; None when there were none. The log entry comes
    first: a purge that fails after it is done again by the next one, never done unlogged."""
    cutoff = naive_utc(before)
    with store.reading() as conn:
        rows = conn.execute(select(snapshots.c.event_id, snapshots.c.sha256)
                            .where(snapshots.c.taken_utc < cutoff).order_by(snapshots.c.taken_utc)).all()
    if not rows:
        return None
    entry = store.append("snapshot_purge", {
        "before": format_ts(before), "keep_days": keep_days, "count": len(rows),
        "snapshots": [{"event": row.event_id, "sha256": row.sha256} for row in rows]})
    with store.writing() as conn:
        conn.execute(delete(snapshots).where(snapshots.c.event_id.in_([row.event_id for row in rows])))
    return entry


def snapshot_problem(store: Store) -> str | None:
    """The first snapshot whose bytes are not the ones its clock event signed, if any."""
    last = ""
    while True:
        with store.reading() as conn:
            rows = conn.execute(select(snapshots).where(snapshots.c.event_id > last)
                                .order_by(snapshots.c.event_id).limit(CHUNK)).all()
        if not rows:
            return None
        signed = store.events_by_id([row.event_id for row in rows])
        for row in rows:
            event = signed.get(row.event_id)
            actual = hashlib.sha256(bytes(row.jpeg)).hexdigest()
            if event is None or snapshot_hash(event) is None:
                return f"snapshot of {row.event_id} has no clock event that signs it (inserted)"
            if actual != snapshot_hash(event) or actual != row.sha256:
                return f"snapshot of {row.event_id} is not the JPEG its event signed (altered)"
        last = rows[-1].event_id
