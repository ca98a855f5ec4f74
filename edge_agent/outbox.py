"""The durable outbox: every reading is committed here, signed and numbered, before it is published.

Contract (ThingsBoard-style): `put` commits an event, `pending` peeks a batch, `commit` removes what
the hub's signed `committed` watermark covers. Nothing leaves the outbox any other way.
SQLite in WAL mode with synchronous=FULL, so a committed reading survives power loss.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wire.envelope import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload BLOB NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0), ('watermark', 0), ('trust_retained', 0);
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    id: str
    type: str
    payload: bytes


class Outbox:
    """Thread-safe: driver threads put, the publisher peeks and commits."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def put(self, make: Callable[[int], Envelope]) -> Envelope:
        """Number, build and store one event in a single transaction; returns it once durable."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta("last_seq") + 1
                envelope = make(seq)
                if envelope.seq != seq:
                    raise ValueError(f"envelope seq {envelope.seq} is not the outbox's {seq}")
                self._db.execute(
                    "INSERT INTO outbox (seq, id, type, payload) VALUES (?, ?, ?, ?)",
                    (seq, envelope.id, envelope.type, envelope.raw),
                )
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (seq,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return envelope

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Pending]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, type, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Pending(*row) for row in rows]

    def commit(self, watermark: int, *, retained: bool) -> int:
        """Drop events covered by the hub's watermark; returns how many were dropped.

        A retained watermark may be stale (left by the hub before this outbox was created, or
        before the device lost its outbox), so it is applied only after a live watermark has been
        seen once, and never beyond the last seq this outbox has issued.
        """
        with self._lock:
            if retained and not self._meta("trust_retained"):
                return 0
            last = self._meta("last_seq")
            if watermark > last:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (watermark,))
            self._db.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'watermark'", (watermark,)
            )
            if not retained:
                self._db.execute("UPDATE meta SET value = 1 WHERE key = 'trust_retained'")
            self._db.execute("COMMIT")
            return cursor.rowcount

    def size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def last_seq(self) -> int:
        with self._lock:
            return self._meta("last_seq")

    def watermark(self) -> int:
        with self._lock:
            return self._meta("watermark")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])
