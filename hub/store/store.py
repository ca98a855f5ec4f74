"""The hub's store: events, quarantine, leaves and the hash-chained audit log, over SQLAlchemy Core.

One implementation for SQLite (`sqlite:///path`) and PostgreSQL (`postgresql://...`, run through the
psycopg 3 driver). Every table is insert-only. Every writing transaction first takes the store-wide
writer lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`), so reading the last
audit entry and appending after it is safe when several processes (the hub daemon, a CLI adding a
leave) write at once. Readers never take it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import Row
from sqlalchemy.pool import ConnectionPoolEntry

from hub.domain import AuditEntry, Leave, Quarantined, StoredEvent
from hub.store.schema import audit, events, leaves, metadata, quarantine
from wire.clock import Clock
from wire.envelope import canonical, format_ts, parse, parse_ts

Outcome = Literal["stored", "duplicate", "tamper", "quarantined"]

ZERO_HASH = "0" * 64
MAX_REF_LEN = 64
# Key of the PostgreSQL advisory lock that serialises writers ("HALL" in ASCII).
PG_WRITER_LOCK = 0x48414C4C
CHUNK = 500  # rows per round trip when streaming


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL: `postgresql://` runs through psycopg 3."""
    if url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://"):
        return url
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    raise ValueError(f"store URL must be sqlite:///path or postgresql://..., not {url!r}")


def entry_hash(seq: int, at: str, kind: str, ref: str | None, data: dict[str, Any], prev: str) -> str:
    """sha256 hex over the canonical form of an entry's content and the previous entry's hash."""
    content = {"seq": seq, "at": at, "kind": kind, "ref": ref, "data": data, "prev": prev}
    return hashlib.sha256(canonical(content)).hexdigest()


def payload_fields(payload: bytes) -> dict[str, str]:
    """A quarantined payload as JSON-able text: UTF-8 as is, anything else as base64."""
    try:
        return {"payload": payload.decode("utf-8"), "payload_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"payload": base64.b64encode(payload).decode("ascii"), "payload_encoding": "base64"}


class Store:
    def __init__(self, url: str, clock: Clock) -> None:
        self.clock = clock
        self._sqlite = url.startswith("sqlite:")
        self._engine: Engine = create_engine(
            sqlalchemy_url(url), connect_args={"timeout": 60} if self._sqlite else {}
        )
        if self._sqlite:
            event.listen(self._engine, "connect", _sqlite_connect)
            event.listen(self._engine, "begin", _sqlite_begin)
        with self._writing() as conn:
            metadata.create_all(conn)

    def close(self) -> None:
        self._engine.dispose()

    # --- writing ---------------------------------------------------------------------------

    def ingest(self, items: Sequence[StoredEvent | Quarantined]) -> list[Outcome]:
        """Store a batch in one transaction; one outcome per item, in order."""
        ids = {item.id for item in items if isinstance(item, StoredEvent)}
        outcomes: list[Outcome] = []
        with self._writing() as conn:
            known = _raws_by_id(conn, ids)
            chain = _Chain.after_last(conn, self.clock)
            event_rows: list[dict[str, Any]] = []
            quarantine_rows: list[dict[str, Any]] = []
            for item in items:
                if isinstance(item, Quarantined):
                    quarantine_rows.append(_quarantine_row(item))
                    chain.add("quarantine", _quarantine_data(item), None)
                    outcomes.append("quarantined")
                elif isinstance(item, StoredEvent):
                    stored_raw = known.get(item.id)
                    if stored_raw is None:
                        known[item.id] = item.raw
                        event_rows.append(_event_row(item))
                        chain.add("event", _event_data(item), item.id)
                        outcomes.append("stored")
                    elif stored_raw == item.raw:
                        outcomes.append("duplicate")
                    else:
                        alert = _tamper(item)
                        quarantine_rows.append(_quarantine_row(alert))
                        chain.add("quarantine", _quarantine_data(alert), item.id)
                        outcomes.append("tamper")
                else:
                    raise TypeError(f"cannot ingest {type(item).__name__}")
            if event_rows:
                conn.execute(insert(events), event_rows)
            if quarantine_rows:
                conn.execute(insert(quarantine), quarantine_rows)
            chain.write(conn)
        return outcomes

    def append(self, kind: str, data: dict[str, Any], ref: str | None = None) -> AuditEntry:
        """Append a manual or derived entry (roster, seq_reset, seq_gap, findings...)."""
        with self._writing() as conn:
            chain = _Chain.after_last(conn, self.clock)
            entry = chain.add(kind, data, ref)
            chain.write(conn)
        return entry

    def add_leave(self, leave: Leave) -> AuditEntry:
        row = {
            "staff": leave.staff,
            "start": format_ts(leave.start),
            "end": format_ts(leave.end),
            "approver": leave.approver,
            "reason": leave.reason,
            "recorded_at": format_ts(leave.recorded_at),
        }
        with self._writing() as conn:
            conn.execute(insert(leaves), [row])
            chain = _Chain.after_last(conn, self.clock)
            entry = chain.add("leave", dict(row), leave.staff)
            chain.write(conn)
        return entry

    # --- reading ---------------------------------------------------------------------------

    def leaves(self, staff: str | None = None) -> list[Leave]:
        query = select(leaves).order_by(leaves.c.start, leaves.c.id)
        if staff is not None:
            query = query.where(leaves.c.staff == staff)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Leave(
                staff=row.staff,
                start=datetime.fromisoformat(row.start),
                end=datetime.fromisoformat(row.end),
                approver=row.approver,
                reason=row.reason,
                recorded_at=datetime.fromisoformat(row.recorded_at),
            )
            for row in rows
        ]

    def events(
        self,
        type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        device: str | None = None,
    ) -> list[StoredEvent]:
        """Stored events with `since <= ts < until` (device time), ordered by ts, then seq."""
        query = select(events).order_by(events.c.ts_utc, events.c.seq, events.c.id)
        if type is not None:
            query = query.where(events.c.type == type)
        if device is not None:
            query = query.where(events.c.device == device)
        if since is not None:
            query = query.where(events.c.ts_utc >= _naive_utc(since))
        if until is not None:
            query = query.where(events.c.ts_utc < _naive_utc(until))
        with self._engine.connect() as conn:
            return [_stored_event(row) for row in conn.execute(query)]

    def events_by_id(self, ids: Collection[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        with self._engine.connect() as conn:
            for part in _chunks(sorted(ids)):
                for row in conn.execute(select(events).where(events.c.id.in_(part))):
                    found[row.id] = _stored_event(row)
        return found

    def event_ids(self) -> Iterator[str]:
        """Every stored event id, in id order, streamed in chunks."""
        last: str | None = None
        while True:
            query = select(events.c.id).order_by(events.c.id).limit(CHUNK)
            if last is not None:
                query = query.where(events.c.id > last)
            with self._engine.connect() as conn:
                ids = list(conn.scalars(query))
            yield from ids
            if len(ids) < CHUNK:
                return
            last = ids[-1]

    def event_count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(events)) or 0)

    def quarantined(self, limit: int = 1000) -> list[Quarantined]:
        """The latest `limit` quarantined messages, newest first."""
        query = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Quarantined(
                received_at=datetime.fromisoformat(row.received_at),
                topic=row.topic,
                reason=row.reason,
                detail=row.detail,
                payload=bytes(row.payload),
            )
            for row in rows
        ]

    def audit(self, after_seq: int = 0, limit: int | None = None,
              kind: str | None = None) -> Iterator[AuditEntry]:
        """Entries with seq > after_seq (of one kind, if given) in chain order, streamed in chunks."""
        last, remaining = after_seq, limit
        while remaining is None or remaining > 0:
            size = CHUNK if remaining is None else min(CHUNK, remaining)
            query = select(audit).where(audit.c.seq > last).order_by(audit.c.seq).limit(size)
            if kind is not None:
                query = query.where(audit.c.kind == kind)
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            yield from (_audit_entry(row) for row in rows)
            if len(rows) < size:
                return
            last = rows[-1].seq
            if remaining is not None:
                remaining -= len(rows)

    def entries(self, kind: str) -> Iterator[AuditEntry]:
        return self.audit(kind=kind)

    def last_audit(self, kind: str | None = None) -> AuditEntry | None:
        query = select(audit).order_by(audit.c.seq.desc()).limit(1)
        if kind is not None:
            query = query.where(audit.c.kind == kind)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _audit_entry(row)

    def device_history(self) -> Iterator[tuple[str, str, int]]:
        """(hall, device, seq) of every stored event in the order it was accepted."""
        last = 0
        while True:
            query = (
                select(audit.c.seq, events.c.hall, events.c.device, events.c.seq.label("event_seq"))
                .join(events, events.c.id == audit.c.ref)
                .where(audit.c.kind == "event", audit.c.seq > last)
                .order_by(audit.c.seq)
                .limit(CHUNK)
            )
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield row.hall, row.device, row.event_seq
            if len(rows) < CHUNK:
                return
            last = rows[-1].seq

    # --- internals -------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction holding the store-wide writer lock; commits on success."""
        with self._engine.connect() as conn:
            if self._sqlite:
                conn.execution_options(hub_writer=True)  # _sqlite_begin emits BEGIN IMMEDIATE
            with conn.begin():
                if not self._sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITER_LOCK})
                yield conn


@dataclass
class _Chain:
    """Audit entries appended after the current last one, within one writing transaction."""

    clock: Clock
    seq: int
    hash: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def after_last(cls, conn: Connection, clock: Clock) -> _Chain:
        last = conn.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
        return cls(clock, 0, ZERO_HASH) if last is None else cls(clock, last.seq, last.hash)

    def add(self, kind: str, data: dict[str, Any], ref: str | None) -> AuditEntry:
        if ref is not None and len(ref) > MAX_REF_LEN:
            raise ValueError(f"audit ref longer than {MAX_REF_LEN} characters: {ref[:80]!r}")
        at = self.clock.now()
        at_text = format_ts(at)
        # Normalise through JSON so the returned entry equals what a reader gets back.
        data = json.loads(canonical(data))
        seq, prev = self.seq + 1, self.hash
        digest = entry_hash(seq, at_text, kind, ref, data, prev)
        self.rows.append(
            {"seq": seq, "at": at_text, "kind": kind, "ref": ref,
             "data": canonical(data).decode("utf-8"), "prev_hash": prev, "hash": digest}
        )
        self.seq, self.hash = seq, digest
        return AuditEntry(seq, datetime.fromisoformat(at_text), kind, ref, data, prev, digest)

    def write(self, conn: Connection) -> None:
        if self.rows:
            conn.execute(insert(audit), self.rows)
            self.rows = []


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the pysqlite serialisable recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    writer = conn.get_execution_options().get("hub_writer", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _raws_by_id(conn: Connection, ids: Collection[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for part in _chunks(sorted(ids)):
        for row in conn.execute(select(events.c.id, events.c.raw).where(events.c.id.in_(part))):
            found[row.id] = bytes(row.raw)
    return found


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("query bounds must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _event_row(item: StoredEvent) -> dict[str, Any]:
    return {
        "id": item.id,
        "hall": item.hall,
        "device": item.device,
        "seq": item.seq,
        "type": item.type,
        "ts": parse(item.raw).ts,  # the text exactly as signed
        "ts_utc": _naive_utc(item.ts),
        "received_at": format_ts(item.received_at),
        "body": canonical(item.body).decode("utf-8"),
        "raw": item.raw,
    }


def _event_data(item: StoredEvent) -> dict[str, Any]:
    return {"raw": item.raw.decode("utf-8"), "received_at": format_ts(item.received_at)}


def _stored_event(row: Row[Any]) -> StoredEvent:
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
    )


def _tamper(item: StoredEvent) -> Quarantined:
    return Quarantined(
        received_at=item.received_at,
        topic=f"{item.hall}/{item.device}/evt/{item.type}",
        reason="tamper",
        detail=f"event id {item.id} already stored with different content",
        payload=item.raw,
    )


def _quarantine_row(item: Quarantined) -> dict[str, Any]:
    return {
        "received_at": format_ts(item.received_at),
        "topic": item.topic,
        "reason": item.reason,
        "detail": item.detail,
        "payload": item.payload,
    }


def _quarantine_data(item: Quarantined) -> dict[str, Any]:
    return {
        "topic": item.topic,
        "reason": item.reason,
        "detail": item.detail,
        **payload_fields(item.payload),
        "received_at": format_ts(item.received_at),
    }


def _audit_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=datetime.fromisoformat(row.at),
        kind=row.kind,
        ref=row.ref,
        data=json.loads(row.data),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
