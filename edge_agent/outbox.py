"""The durable outbox: every reading is committed here, signed and numbered, before it is published.

Contract (ThingsBoard-style): `put` commits an event, `pending` peeks a batch, `commit` removes what
the hub's signed `committed` watermark covers. Nothing leaves the outbox any other way.
SQLite in WAL mode with synchronous=FULL, so a committed reading survives power loss.

A write the disk refuses (full, I/O error) raises OutboxError and leaves the outbox as it was. A file
found corrupt at start (not SQLite, or `PRAGMA integrity_check` fails) is moved aside to
`<name>.corrupt-<UTC time>` for inspection and a new outbox is created in its place (`kept_corrupt`
names the kept file). Each outbox chooses a random `epoch` (16 hex characters) when it is created:
a new outbox numbers its events from 1 again, and the epoch tells its events from an earlier one's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wire.envelope import Envelope

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS attachment (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0), ('watermark', 0), ('trust_retained', 0);
"""
CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
SQLITE_HEADER = b"SQLite format 3\x00"
EPOCH_MASK = (1 << 64) - 1  # meta values are SQLite's signed 64-bit integers
MIB = 1024 * 1024


class OutboxError(Exception):
    """The outbox could not do what was asked: the disk refused a write or a read (full, I/O error)."""


class _Corrupt(Exception):
    """The file is not a SQLite database, or it fails its integrity check."""


@dataclass(frozen=True)
class Pending:
    seq: int
    id: str
    type: str
    payload: bytes
    attachment: bytes | None = None  # a face snapshot the event signs the SHA-256 of (2.7)


@dataclass
class Refused:
    """Writes the outbox refused, for one `outbox_write_failed` fault."""

    count: int
    types: Counter[str]  # event type -> refused writes
    first_at: str  # hall time of the first refusal
    last_at: str
    error: str  # the last error

    def detail(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.types.items()))
        return (f"outbox 拒绝写入 {self.count} 次 refused {self.count} write(s) ({kinds}) from "
                f"{self.first_at} to {self.last_at}: {self.error}. Key presses were not acknowledged "
                "and were recorded when the device sent them again; other readings were not recorded")[:500]


class RefusedWrites:
    """The tally of refused writes not yet reported (thread-safe): `note` each, `take` to report,
    `restore` what could not be reported after all."""

    def __init__(self) -> None:
        self._tally: Refused | None = None
        self._lock = threading.Lock()

    def note(self, type_: str, at: str, error: str) -> int:
        """Count one refusal; returns the refusals not yet reported."""
        with self._lock:
            if self._tally is None:
                self._tally = Refused(0, Counter(), at, at, error)
            tally = self._tally
            tally.count, tally.last_at, tally.error = tally.count + 1, at, error
            tally.types[type_] += 1
            return tally.count

    def take(self) -> Refused | None:
        with self._lock:
            tally, self._tally = self._tally, None
            return tally

    def restore(self, taken: Refused) -> None:
        with self._lock:
            later, self._tally = self._tally, taken
            if later is not None:
                taken.count += later.count
                taken.types.update(later.types)
                taken.last_at, taken.error = later.last_at, later.error


@dataclass(frozen=True)
class Usage:
    used_bytes: int  # pages holding data (a file does not shrink when events leave; freed pages are reused)
    file_bytes: int  # the database file and its write-ahead log on disk
    events: int  # events not yet covered by the hub's watermark

    def detail(self, warn_mb: float) -> str:
        return (f"outbox 积压 holds {self.used_bytes / MIB:.1f} MiB, over warn_mb = {warn_mb:g}: "
                f"{self.events} event(s) not yet committed by the hub (file {self.file_bytes / MIB:.1f} "
                "MiB); nothing is dropped")


class Sweep:
    """Where the publisher stands in the outbox: `sent` maps the last seq of each batch handed to the
    broker, in ascending order, to the monotonic time it went. Publishing goes on after the last one;
    once the oldest batch the hub's watermark does not cover has waited the resend interval, it
    starts over from the watermark. `sent.clear()` (after a reconnect, or `sync`) starts over at once.
    """

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}

    def after(self, covered: int, now: float, resend_seconds: float) -> int:
        """The seq to publish after; forgets the batches the watermark `covered`."""
        marks = list(self.sent.items())  # a snapshot: the MQTT thread may clear `sent` meanwhile
        for seq, _ in marks:
            if seq <= covered:
                self.sent.pop(seq, None)
        marks = [(seq, at) for seq, at in marks if seq > covered]
        if marks and now - marks[0][1] >= resend_seconds:
            self.sent.clear()  # the oldest uncovered batch waited long enough: publish again, same bytes
            return covered
        return marks[-1][0] if marks else covered

    def handed(self, last_seq: int, now: float) -> None:
        self.sent[last_seq] = now


class Outbox:
    """Thread-safe: driver threads put, the publisher peeks and commits.

    `wall` (epoch seconds) names the file a corrupt outbox is moved to."""

    def __init__(self, path: Path, wall: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.kept_corrupt: Path | None = None  # where a corrupt outbox found at start was moved
        self.corrupt_reason = ""
        self._lock = threading.Lock()
        try:
            try:
                self._db = _open(path)
            except _Corrupt as exc:
                self.kept_corrupt, self.corrupt_reason = _move_aside(path, wall()), str(exc)
                log.error("outbox %s is corrupt (%s): kept as %s, a new outbox starts", path, exc,
                          self.kept_corrupt)
                self._db = _open(path)
        except (sqlite3.Error, OSError, _Corrupt) as exc:
            raise OutboxError(f"outbox {path} cannot be opened: {exc}") from exc
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)",
                         (int.from_bytes(os.urandom(8), "big", signed=True),))
        self.epoch = f"{self._meta('epoch') & EPOCH_MASK:016x}"

    def corrupt_detail(self) -> str:
        """The `outbox_corrupt` fault's detail, when a corrupt outbox was set aside at start."""
        return (f"outbox 文件损坏 corrupt ({self.corrupt_reason}); kept as {self.kept_corrupt}, a new "
                f"outbox started (epoch {self.epoch})")[:500]

    def put(self, make: Callable[[int], Envelope], attachment: bytes | None = None) -> Envelope:
        """Number, build and store one event (with its attachment, if any) in a single transaction;
        returns it once durable. Raises OutboxError when the disk refuses the write; nothing is
        stored then."""
        with self._lock:
            try:
                self._rollback()  # a transaction left open by a failed COMMIT
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
                    if attachment is not None:
                        self._db.execute("INSERT INTO attachment (seq, data) VALUES (?, ?)",
                                         (seq, attachment))
                    self._db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (seq,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise OutboxError(f"outbox {self.path}: write refused: {exc}") from exc
            return envelope

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Pending]:
        """Up to `limit` events above `after_seq`, in seq order. Raises OutboxError on a failed read."""
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT outbox.seq, id, type, payload, data FROM outbox LEFT JOIN attachment "
                    "USING (seq) WHERE outbox.seq > ? ORDER BY outbox.seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"outbox {self.path}: read failed: {exc}") from exc
        return [Pending(*row) for row in rows]

    def commit(self, watermark: int, *, retained: bool) -> int:
        """Drop events covered by the hub's watermark; returns how many were dropped.

        A retained watermark may be stale (left by the hub before this outbox was created, or
        before the device lost its outbox), so it is applied only after a live watermark has been
        seen once, and never beyond the last seq this outbox has issued.
        A delete the disk refuses is logged and left for the next watermark (it covers this one's
        events too): this runs on the MQTT thread, which must not raise.
        """
        with self._lock:
            try:
                if retained and not self._meta("trust_retained"):
                    return 0
                last = self._meta("last_seq")
                if watermark > last:
                    return 0
                self._rollback()
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (watermark,))
                dropped = cursor.rowcount
                self._db.execute("DELETE FROM attachment WHERE seq <= ?", (watermark,))
                self._db.execute(
                    "UPDATE meta SET value = max(value, ?) WHERE key = 'watermark'", (watermark,)
                )
                if not retained:
                    self._db.execute("UPDATE meta SET value = 1 WHERE key = 'trust_retained'")
                self._db.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                self._rollback()
                log.warning("outbox %s: watermark %d not applied (%s); the next one will be", self.path,
                            watermark, exc)
                return 0
            return dropped

    def usage(self) -> Usage:
        """What the outbox takes on disk. Raises OutboxError on a failed read."""
        try:
            with self._lock:
                page = self._pragma("page_size")
                used = (self._pragma("page_count") - self._pragma("freelist_count")) * page
                events = self._meta("last_seq") - self._meta("watermark")  # contiguous: no count(*) scan
            on_disk = sum(_size(self.path.with_name(self.path.name + end)) for end in ("", "-wal"))
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"outbox {self.path}: read failed: {exc}") from exc
        return Usage(used, on_disk, events)

    def size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def last_seq(self) -> int:
        with self._lock:
            return self._meta("last_seq")

    def watermark(self) -> int:
        with self._lock:
            return self._meta("watermark")

    def read_meta(self, key: str, default: int = 0) -> int:
        """A value kept beside the events (e.g. the hub sequences, see hub_seq.py), or `default`.
        Raises OutboxError on a failed read."""
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"outbox {self.path}: read failed: {exc}") from exc
        return default if row is None else int(row[0])

    def write_meta(self, key: str, value: int) -> None:
        """Keep `value` under `key`, durably. Raises OutboxError when the disk refuses the write."""
        with self._lock:
            try:
                self._rollback()
                self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                                 "DO UPDATE SET value = excluded.value", (key, value))
            except (sqlite3.Error, OSError) as exc:
                raise OutboxError(f"outbox {self.path}: write refused: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def _pragma(self, name: str) -> int:
        return int(self._db.execute(f"PRAGMA {name}").fetchone()[0])

    def _rollback(self) -> None:
        """End a transaction a failed statement left open (SQLite may have rolled it back already)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _open(path: Path) -> sqlite3.Connection:
    """Open (or create) the outbox file and check it; raises _Corrupt when it is not a sound outbox."""
    if path.is_file():
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:  # checked first: SQLite would delete a -wal beside it
            raise _Corrupt(f"not a SQLite file (it begins {header[:8]!r})")
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        problems = [str(row[0]) for row in db.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise _Corrupt("integrity check: " + "; ".join(problems)[:300])
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        db.close()
        if exc.sqlite_errorcode in CORRUPT_CODES:
            raise _Corrupt(str(exc)) from exc
        raise  # locked, unreadable, a full disk: not a reason to set the file aside
    except _Corrupt:
        db.close()
        raise
    return db


def _move_aside(path: Path, now: float) -> Path:
    """Rename a corrupt outbox (and its write-ahead log and index) to `<name>.corrupt-<UTC time>`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while kept.exists():
        number += 1
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for end in ("-wal", "-shm", ""):  # the main file last: it is what names the set
        part = path.with_name(path.name + end)
        if part.exists():
            part.replace(kept.with_name(kept.name + end))
    return kept


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
