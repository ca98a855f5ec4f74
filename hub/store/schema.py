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
    Column("epoch", String(16), nullable=True),  # the edge outbox's (PROTOCOL.md 2.4); NULL in v1
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


# Columns added after stores existed: a store created before gets them, nullable, no row touched
# (the only changes ever made to a table in place).
_ADDED_COLUMNS = {"quarantine": ("size", "sha256"), "events": ("epoch",), "users": ("halls",)}


def columns_missing(connection: Connection) -> list[tuple[str, str]]:
    """(table, column) of the added columns an older store does not have yet."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())  # an optional table not there yet is made whole
    return [(name, column) for name, columns in _ADDED_COLUMNS.items() if name in present
            for column in sorted(set(columns) - {c["name"] for c in inspector.get_columns(name)})]


@event.listens_for(metadata, "after_create")
def add_columns(target: MetaData, connection: Connection, **kw: Any) -> None:
    for name, column in columns_missing(connection):
        kind = target.tables[name].c[column].type.compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {column} {kind}")

# Face snapshots (PROTOCOL.md 2.7): the JPEG whose SHA-256 a clock event signs. Outside the log, so
# that it can be purged after `[face] keep_snapshot_days`; the signed hash stays in the log.
snapshots = Table(
    "snapshots",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("device", _NAME, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("jpeg", LargeBinary, nullable=False),
    Column("taken_utc", DateTime(timezone=False), nullable=False),  # the clock event's time
    Column("received_at", _TS, nullable=False),
    Index("ix_snapshots_taken", "taken_utc"),
)

# Console users and their API tokens (hub/store/users.py). Insert-only like the rest: a user is
# disabled and a token revoked by a log entry (user_disable, token_revoke), never by changing a row;
# a row counts only with its verified log entry (user_add, token_issue), which holds no secret.
users = Table(
    "users",
    metadata,
    Column("name", _NAME, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("staff", _NAME, nullable=True),
    Column("password", String(200), nullable=False),  # scrypt$n$r$p$salt$hash (base64)
    Column("created_at", _TS, nullable=False),
    Column("halls", Text, nullable=True),  # a city's user: the halls it may see, "h01,h02" (NULL: all)
)
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),  # shown by `user list`, names it for revoking
    Column("user", _NAME, nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),  # of the token; the token itself is never kept
    Column("issued_at", _TS, nullable=False),
)
OPTIONAL_TABLES = frozenset({"snapshots", "users", "tokens"})  # added later: an older store gets them

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
