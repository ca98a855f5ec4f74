"""The hub's tables. Insert-only: nothing here is ever updated or deleted in place.

Types are kept portable between SQLite and PostgreSQL: timestamps are stored as the RFC 3339 text
that was signed or hashed (so nothing is lost to a driver's idea of time zones), plus a naive UTC
`DateTime` copy of the event time for range queries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    inspect,
)

metadata = MetaData()

# RFC 3339 with milliseconds and offset is 29 characters; room for longer forms.
_TS = String(40)
_NAME = String(64)

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hall", _NAME, nullable=False),
    Column("device", _NAME, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", _NAME, nullable=False),
    Column("ts", _TS, nullable=False),  # exactly as on the wire
    Column("ts_utc", DateTime(timezone=False), nullable=False),  # naive UTC, for range queries
    Column("received_at", _TS, nullable=False),
    Column("body", Text, nullable=False),  # canonical JSON
    Column("raw", LargeBinary, nullable=False),  # the exact signed bytes
    Index("ix_events_device_seq", "device", "seq"),
    Index("ix_events_type_ts", "type", "ts_utc"),
)

# A quarantined message keeps at most its first QUARANTINE_KEEP bytes in `payload`, with the size and
# SHA-256 of the whole message (NULL in rows written before those columns existed).
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", _TS, nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", _NAME, nullable=False),
    Column("detail", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
)


@event.listens_for(metadata, "after_create")
def _add_quarantine_digest(target: MetaData, connection: Connection, **kw: Any) -> None:
    """A store created before `size` and `sha256` existed gets them (the only change ever made to a
    table in place: two nullable columns added, no row touched)."""
    present = {column["name"] for column in inspect(connection).get_columns("quarantine")}
    for column in ("size", "sha256"):
        if column not in present:
            kind = quarantine.c[column].type.compile(dialect=connection.dialect)
            connection.exec_driver_sql(f"ALTER TABLE quarantine ADD COLUMN {column} {kind}")

leaves = Table(
    "leaves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("staff", _NAME, nullable=False),
    Column("start", _TS, nullable=False),
    Column("end", _TS, nullable=False),
    Column("approver", _NAME, nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", _TS, nullable=False),
    Index("ix_leaves_staff_start", "staff", "start"),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", _TS, nullable=False),
    Column("kind", _NAME, nullable=False),
    Column("ref", String(64), nullable=True),
    Column("data", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_kind_seq", "kind", "seq"),  # last_audit(kind) without a full scan
)
