"""The hub's store: events, quarantine, leaves and the hash-chained audit log, over SQLAlchemy Core.

One implementation for SQLite (`sqlite:///path`) and PostgreSQL (`postgresql://...`, run through the
psycopg 3 driver). Every table is insert-only. Every writing transaction first takes the store-wide
writer lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`), so reading the last
audit entry and appending after it is safe when several processes (the hub daemon, a CLI adding a
leave) write at once. Readers never take it.

What the rules read is only what verifies (the check `hall-hub log verify` makes of the whole log,
applied row by row): leave and the other manual records come from log entries whose hash holds and
that the next entry links to; events, given the devices' keys, from their signed bytes, skipping
rows that do not match them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, inspect, select, text
from sqlalchemy.engine import Row
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import bindparam

from hub.domain import AuditEntry, Leave, Quarantined, StoredEvent
from hub.provenance import Provenance
from hub.store.bulk import insert_rows
from hub.store.chain import ZERO_HASH, Chain, ClockBehind, ClockPolicy, entry_hash, holds, next_number
from hub.store.pg_schema import PG_WRITER_LOCK, schema_writer_key
from hub.store.rows import (
    audit_entry,
    event_data,
    event_row,
    leave_of,
    naive_utc,
    quarantine_data,
    quarantine_row,
    stored_event,
    tamper,
)
from hub.store.schema import OPTIONAL_TABLES, audit, columns_missing, events, leaves, metadata, quarantine
from wire.clock import Clock
from wire.envelope import WireError, format_ts, load_public_key, parse, verify

__all__ = ["ZERO_HASH", "ClockBehind", "StaleRef", "Store", "StoreFenced", "StoreMissing", "entry_hash",
           "sqlalchemy_url"]
log = logging.getLogger(__name__)

Outcome = Literal["stored", "duplicate", "tamper", "quarantined"]

# Key of the PostgreSQL advisory lock that serialises writers ("HALL" in ASCII).
CHUNK = 500  # rows per round trip when streaming
WITNESS_LOOKBACK = 256  # newest entries searched for the last one that is not a witness event


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL: `postgresql://` runs through psycopg 3."""
    if url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://"):
        return url
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    raise ValueError(f"store URL must be sqlite:///path or postgresql://..., not {url!r}")


class StoreMissing(ValueError):
    """A store that does not exist (or holds no hub tables) where one was expected."""


class StaleRef(ValueError):
    """`append_after`: the last entry of the kind is not the one the writer read."""


class StoreFenced(RuntimeError):
    """A write refused by the store's fence: this process no longer owns the hall (hub/city/)."""


Fence = Callable[[Connection], None]  # raises StoreFenced inside a writing transaction to refuse it


class Store:
    """`create=False` refuses a missing database instead of creating an empty one. `device_keys`
    (device id -> public key hex) makes event reads return only rows that match their signed
    bytes. `clock_policy`: what a write whose clock is behind the log does (see hub/store/chain.py)."""

    def __init__(self, url: str, clock: Clock, *, create: bool = True,
                 device_keys: Mapping[str, str] | None = None, clock_policy: ClockPolicy = "refuse") -> None:
        self.clock = clock
        self.clock_policy: ClockPolicy = clock_policy
        self._sqlite = url.startswith("sqlite:")
        if self._sqlite and not create:
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise StoreMissing(f"数据库不存在 no hub database at {path}")
        self._engine: Engine = create_engine(
            sqlalchemy_url(url), connect_args={"timeout": 60} if self._sqlite else {}
        )
        if self._sqlite:
            event.listen(self._engine, "connect", _sqlite_connect)
            event.listen(self._engine, "begin", _sqlite_begin)
        self._keys = None if device_keys is None else {
            device: load_public_key(key) for device, key in device_keys.items()}
        self._verified: dict[str, bytes] = {}  # event id -> digest of the raw bytes that verified
        self._refused: set[str] = set()  # event ids already warned about
        self._first: AuditEntry | None = None
        self.provenance: Provenance | None = None  # who the manual entries appended are by
        self._writer_key = PG_WRITER_LOCK
        self.fence: Fence | None = None  # checked in every writing transaction (hub/city/ sets it)
        if not self._sqlite:
            self._writer_key = schema_writer_key(self._engine, create)
        if create:
            with self._writing() as conn:
                metadata.create_all(conn)
            return
        with self._engine.connect() as conn:
            missing = {t.name for t in metadata.sorted_tables} - set(inspect(conn).get_table_names())
            older = bool(missing) or bool(columns_missing(conn))
        if missing - OPTIONAL_TABLES:
            self._engine.dispose()
            raise StoreMissing(f"不是大厅中心数据库 {url.split('@')[-1]} is not a hub store "
                               f"(no table {', '.join(sorted(missing))})")
        if older:  # a store of an earlier release: new tables and columns are added, no row touched
            with self._writing() as conn:
                metadata.create_all(conn)

    def close(self) -> None:
        self._engine.dispose()

    def authored(self, provenance: Provenance) -> Store:
        """This store (the same engine and caches) appending as `provenance`: every entry of a
        person's kind gets its author, and with an operator key its signature (hub/provenance.py)."""
        view = copy.copy(self)
        view.provenance = provenance
        return view

    def chain(self, conn: Connection) -> Chain:
        """Appending after the last entry, inside the writing transaction `conn`."""
        stamp = None if self.provenance is None else self.provenance.stamp
        return Chain.after_last(conn, self.clock, self.clock_policy, stamp)
    # --- writing ---------------------------------------------------------------------------

    def ingest(self, items: Sequence[StoredEvent | Quarantined]) -> list[Outcome]:
        """Store a batch in one transaction; one outcome per item, in order."""
        ids = {item.id for item in items if isinstance(item, StoredEvent)}
        outcomes: list[Outcome] = []
        with self._writing() as conn:
            known = _raws_by_id(conn, ids)
            chain = self.chain(conn)
            chain.one_moment()
            event_rows: list[dict[str, Any]] = []
            quarantine_rows: list[dict[str, Any]] = []
            for item in items:
                if isinstance(item, Quarantined):
                    quarantine_rows.append(quarantine_row(item))
                    chain.add("quarantine", quarantine_data(item), None)
                    outcomes.append("quarantined")
                elif isinstance(item, StoredEvent):
                    stored_raw = known.get(item.id)
                    if stored_raw is None:
                        known[item.id] = item.raw
                        received_at = format_ts(item.received_at)
                        event_rows.append(event_row(item, received_at))
                        chain.add_canonical("event", event_data(item, received_at), item.id)
                        outcomes.append("stored")
                    elif stored_raw == item.raw:
                        outcomes.append("duplicate")
                    else:
                        alert = tamper(item)
                        quarantine_rows.append(quarantine_row(alert))
                        chain.add("quarantine", quarantine_data(alert), item.id)
                        outcomes.append("tamper")
                else:
                    raise TypeError(f"cannot ingest {type(item).__name__}")
            insert_rows(conn, events, event_rows)
            if quarantine_rows:
                conn.execute(insert(quarantine), quarantine_rows)
            chain.write(conn)
        return outcomes

    def append(self, kind: str, data: dict[str, Any], ref: str | None = None) -> AuditEntry:
        """Append a manual or derived entry (roster, seq_reset, seq_gap, findings...)."""
        with self._writing() as conn:
            chain = self.chain(conn)
            entry = chain.add(kind, data, ref)
            chain.write(conn)
        return entry

    def append_after(self, kind: str, data: dict[str, Any], ref: str, previous_ref: str | None) -> AuditEntry:
        """Append only if the last entry of `kind` has the ref `previous_ref` (None: there is none
        yet), checked under the writer lock: a position kept in the log (the feed's cursor) moves
        from where its writer read it, or not at all (`StaleRef`)."""
        with self._writing() as conn:
            last = conn.execute(select(audit.c.ref).where(audit.c.kind == kind)
                                .order_by(audit.c.seq.desc()).limit(1)).first()
            if (None if last is None else last.ref) != previous_ref:
                raise StaleRef(f"the last {kind} entry is {None if last is None else last.ref!r}, "
                               f"not {previous_ref!r}: another writer moved it")
            chain = Chain.after_last(conn, self.clock, self.clock_policy)
            entry = chain.add(kind, data, ref)
            chain.write(conn)
        return entry

    def append_with_head(self, kind: str, data: dict[str, Any], ref: str | None = None) -> AuditEntry:
        """Append with `head`: {entries, hash} of the chain as it stood just before this entry, read
        under the writer lock so that nothing comes between (a daily close carries the day's head)."""
        with self._writing() as conn:
            chain = self.chain(conn)
            entry = chain.add(kind, {**data, "head": {"entries": chain.seq, "hash": chain.hash}}, ref)
            chain.write(conn)
        return entry

    def append_numbered(self, kind: str, prefix: str, data: dict[str, Any]) -> AuditEntry:
        """Append with the ref `prefix` + the next number of that prefix (001, 002, ...), chosen under
        the writer lock so that two writers never take the same; the ref is also `data["id"]`."""
        with self._writing() as conn:
            chain = self.chain(conn)
            ref = f"{prefix}{next_number(conn, kind, prefix):03d}"
            entry = chain.add(kind, {**data, "id": ref}, ref)
            chain.write(conn)
        return entry

    def add_leave(self, leave: Leave, recorded_by: str | None = None) -> AuditEntry:
        """The leave row and its log entry (the row with its id), in one transaction. The leave's
        range is the entry's content, never its position in time. `recorded_by`: the console user who
        recorded it, in the entry only (`by`)."""
        with self._writing() as conn:
            chain = self.chain(conn)
            row = {
                "staff": leave.staff,
                "start": format_ts(leave.start),
                "end": format_ts(leave.end),
                "approver": leave.approver,
                "reason": leave.reason,
                "recorded_at": format_ts(leave.recorded_at),
            }
            leave_id = conn.execute(insert(leaves), [row]).inserted_primary_key
            row = {"id": int(leave_id[0]) if leave_id else 0, **row}
            entry = chain.add("leave", row if recorded_by is None else {**row, "by": recorded_by},
                              leave.staff)
            chain.write(conn)
        return entry

    # --- reading ---------------------------------------------------------------------------

    def leaves(self, staff: str | None = None) -> list[Leave]:
        """Approved leave as its verified log entries record it (the table is checked against them
        by `log verify`; an edited or inserted row changes nothing here)."""
        found = [leave_of(entry.data) for entry in self.entries("leave")]
        found = [item for item in found if staff is None or item.staff == staff]
        return sorted(found, key=lambda item: (item.start, item.id))

    def leave_rows(self) -> list[dict[str, Any]]:
        """The leave table as stored, for the inspector's check against the log."""
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(leaves).order_by(leaves.c.id))]

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
            query = query.where(events.c.ts_utc >= naive_utc(since))
        if until is not None:
            query = query.where(events.c.ts_utc < naive_utc(until))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [found for row in rows if (found := self._trusted(row)) is not None]

    def events_by_id(self, ids: Collection[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        with self._engine.connect() as conn:
            for part in _chunks(sorted(ids)):
                for row in conn.execute(select(events).where(events.c.id.in_(part))):
                    found[row.id] = stored_event(row)
        return found

    def _trusted(self, row: Row[Any]) -> StoredEvent | None:
        """The event as its signed bytes say, or None for a row that does not match them or whose
        signature does not hold. Without device keys, the row as stored."""
        if self._keys is None:
            return stored_event(row)
        raw = bytes(row.raw)
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        try:
            envelope = parse(raw)
            if self._verified.get(row.id) != digest:
                key = self._keys.get(envelope.device)
                if key is None:
                    raise WireError("unknown_device", f"no key for device {envelope.device!r}")
                verify(envelope, key)
                self._verified[row.id] = digest
        except WireError as exc:
            return self._refuse(row.id, str(exc))
        stored = (row.id, row.hall, row.device, row.seq, row.type, row.ts, json.loads(row.body))
        signed = (envelope.id, envelope.hall, envelope.device, envelope.seq, envelope.type,
                  envelope.ts, envelope.body)
        if stored != signed:
            return self._refuse(row.id, "the row differs from its signed bytes")
        return StoredEvent(envelope.id, envelope.hall, envelope.device, envelope.seq, envelope.type,
                           envelope.timestamp, datetime.fromisoformat(row.received_at), envelope.body,
                           raw)

    def _refuse(self, event_id: str, why: str) -> None:
        if event_id not in self._refused:
            self._refused.add(event_id)
            log.warning("event row %s left out of the rules: %s (run `hall-hub log verify`)",
                        event_id, why)
        return None

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
            yield from (audit_entry(row) for row in rows)
            if len(rows) < size:
                return
            last = rows[-1].seq
            if remaining is not None:
                remaining -= len(rows)

    def entries(self, kind: str, after_seq: int = 0) -> Iterator[AuditEntry]:
        """Entries of one kind (after position `after_seq`) that verify where they stand: the entry's
        hash holds over its content and the next entry links to it. What fails is left out (and
        `log verify` names it)."""
        iterator = self.audit(after_seq=after_seq, kind=kind)
        while batch := list(islice(iterator, CHUNK)):
            links = self._prev_hashes([entry.seq + 1 for entry in batch])
            for entry in batch:
                if holds(entry) and links.get(entry.seq + 1, entry.hash) == entry.hash:
                    yield entry
                else:
                    log.warning("log entry #%d (%s) left out: it does not verify", entry.seq, kind)

    def _prev_hashes(self, seqs: list[int]) -> dict[int, str]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(audit.c.seq, audit.c.prev_hash).where(audit.c.seq.in_(seqs))).all()
        return {row.seq: row.prev_hash for row in rows}

    def first_audit(self) -> AuditEntry | None:
        """The log's first entry (kept once read: the log only grows)."""
        if self._first is None:
            self._first = next(self.audit(limit=1), None)
        return self._first

    def last_audit(self, kind: str | None = None) -> AuditEntry | None:
        query = select(audit).order_by(audit.c.seq.desc()).limit(1)
        if kind is not None:
            query = query.where(audit.c.kind == kind)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else audit_entry(row)

    def witness_head(self) -> str | None:
        """N:HASH of the chain's last entry that is not a device's witness event: what the devices are
        asked to witness (PROTOCOL.md 2.10). A witness never asks for another, so an idle hall's head
        stands still. None for an empty log."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(audit.c.seq, audit.c.hash, audit.c.kind, audit.c.ref)
                                .order_by(audit.c.seq.desc()).limit(WITNESS_LOOKBACK)).all()
            refs = [row.ref for row in rows if row.kind == "event" and row.ref]
            witnesses = set(conn.execute(select(events.c.id).where(
                events.c.id.in_(refs), events.c.type == "witness")).scalars()) if refs else set()
        for row in rows:
            if row.ref not in witnesses or row.kind != "event":
                return f"{row.seq}:{row.hash}"
        return f"{rows[-1].seq}:{rows[-1].hash}" if rows else None

    def device_history(self) -> Iterator[tuple[str, str, int, str | None]]:
        """(hall, device, seq, epoch) of every stored event in the order it was accepted."""
        last = 0
        while True:
            query = (
                select(audit.c.seq, events.c.hall, events.c.device, events.c.seq.label("event_seq"),
                       events.c.epoch)
                .join(events, events.c.id == audit.c.ref)
                .where(audit.c.kind == "event", audit.c.seq > last)
                .order_by(audit.c.seq)
                .limit(CHUNK)
            )
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield row.hall, row.device, row.event_seq, row.epoch
            if len(rows) < CHUNK:
                return
            last = rows[-1].seq

    # --- internals -------------------------------------------------------------------------

    def reading(self) -> Connection:
        """A connection for a module that keeps its own table here (hub/store/snapshots.py)."""
        return self._engine.connect()

    def writing(self) -> AbstractContextManager[Connection]:
        """A writing transaction, under the store-wide writer lock, for such a module."""
        return self._writing()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction holding the store-wide writer lock; commits on success."""
        with self._engine.connect() as conn:
            if self._sqlite:
                conn.execution_options(hub_writer=True)  # _sqlite_begin emits BEGIN IMMEDIATE
            with conn.begin():
                if not self._sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._writer_key})
                if self.fence is not None:
                    self.fence(conn)
                yield conn


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


# built once: building a statement and its cache key cost as much as running it (once per batch)
_RAWS_BY_ID = select(events.c.id, events.c.raw).where(events.c.id.in_(bindparam("ids", expanding=True)))


def _raws_by_id(conn: Connection, ids: Collection[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for part in _chunks(sorted(ids)):
        for row in conn.execute(_RAWS_BY_ID, {"ids": part}):
            found[row.id] = bytes(row.raw)
    return found
