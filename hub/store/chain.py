"""The audit log's hash chain: how an entry is hashed, and appending after the current last entry.

An entry's time never goes back: a writer whose clock is behind the last entry is refused
(`ClockBehind`: a manual command with a wrong or backdated `--clock`), or, for the hub daemon,
stamped with the last entry's time (its clock stepped back; the log stays ordered). What a manual
entry is about in time (a leave's range, when a case was closed) is its content, never its position.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select

from hub.domain import LOG_KINDS, AuditEntry
from hub.store.bulk import insert_rows
from hub.store.schema import audit
from wire.clock import Clock
from wire.envelope import canonical, format_ts
from wire.record import ZERO_HASH, entry_hash, entry_hash_of_text

__all__ = ["ZERO_HASH", "Chain", "ClockBehind", "entry_hash", "holds", "next_number"]
MAX_REF_LEN = 64
ClockPolicy = Literal["refuse", "clamp"]
# kind, data -> data with its author (and operator signature) when the kind is a person's
# (hub/provenance.py `Provenance.stamp`); applied last, so that it covers the entry's whole content
Stamp = Callable[[str, dict[str, Any]], dict[str, Any]]


class ClockBehind(ValueError):
    """A manual write whose clock is behind the log's last entry."""


def holds(entry: AuditEntry) -> bool:
    """Whether an entry's own hash matches its content (it was not edited in place)."""
    at = format_ts(entry.at)
    return entry_hash(entry.seq, at, entry.kind, entry.ref, entry.data, entry.prev_hash) == entry.hash


@dataclass
class Chain:
    """Audit entries appended after the current last one, within one writing transaction."""

    clock: Clock
    policy: ClockPolicy
    seq: int
    hash: str
    last_at: datetime | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    stamp: Stamp | None = None
    _moment: tuple[datetime, str] | None = None  # set by `one_moment`

    @classmethod
    def after_last(cls, conn: Connection, clock: Clock, policy: ClockPolicy = "refuse",
                   stamp: Stamp | None = None) -> Chain:
        last = conn.execute(_LAST).first()
        if last is None:
            return cls(clock, policy, 0, ZERO_HASH, None, stamp=stamp)
        return cls(clock, policy, last.seq, last.hash, datetime.fromisoformat(last.at), stamp=stamp)

    def add(self, kind: str, data: dict[str, Any], ref: str | None) -> AuditEntry:
        _check(kind, ref)
        # Normalise through JSON so the returned entry equals what a reader gets back; the canonical
        # bytes are made once and hashed as they are stored.
        text = canonical(data)
        data = json.loads(text)
        if self.stamp is not None:
            text = canonical(self.stamp(kind, data))
            data = json.loads(text)
        prev = self.hash
        self._append(kind, text, ref)
        assert self.last_at is not None
        return AuditEntry(self.seq, self.last_at, kind, ref, data, prev, self.hash)

    def add_canonical(self, kind: str, text: bytes, ref: str | None) -> None:
        """`add` for content already in its canonical bytes, of JSON strings and integers only (what
        `add` would normalise to the same bytes): the ingest of a batch of events, without the
        round trip through a dict. With a stamp (a person's entries), as `add`."""
        if self.stamp is not None:
            self.add(kind, json.loads(text), ref)
            return
        _check(kind, ref)
        self._append(kind, text, ref)

    def one_moment(self) -> None:
        """Every entry appended from now on takes this moment (a batch stored in one transaction:
        one clock reading and one formatting for all its entries)."""
        now = self._now()
        self._moment = (now, format_ts(now))
        self.last_at = _as_read_back(now)

    def _append(self, kind: str, text: bytes, ref: str | None) -> None:
        if self._moment is not None:
            at_text = self._moment[1]
        else:
            now = self._now()
            at_text = format_ts(now)
            self.last_at = _as_read_back(now)
        seq, prev = self.seq + 1, self.hash
        digest = entry_hash_of_text(seq, at_text, kind, ref, text, prev)
        self.rows.append(
            {"seq": seq, "at": at_text, "kind": kind, "ref": ref,
             "data": text.decode("utf-8"), "prev_hash": prev, "hash": digest}
        )
        self.seq, self.hash = seq, digest

    def _now(self) -> datetime:
        now = self.clock.now()
        if self.last_at is None or now >= self.last_at:
            return now
        if self.policy == "clamp":
            return self.last_at.astimezone(now.tzinfo)
        raise ClockBehind(
            f"时钟早于日志 the clock ({format_ts(now)}) is behind the log's last entry #{self.seq} "
            f"({format_ts(self.last_at)}): a log entry never precedes the one before it. Give the "
            "effective time as the command's content (e.g. leave --from/--to), not as --clock"
        )

    def write(self, conn: Connection) -> None:
        if self.rows:
            insert_rows(conn, audit, self.rows)
            self.rows = []


def _as_read_back(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # `at` keeps milliseconds


_LAST = select(audit.c.seq, audit.c.hash, audit.c.at).order_by(audit.c.seq.desc()).limit(1)  # built once


def _check(kind: str, ref: str | None) -> None:
    if kind not in LOG_KINDS:
        raise ValueError(f"unknown audit entry kind {kind!r}")
    if ref is not None and len(ref) > MAX_REF_LEN:
        raise ValueError(f"audit ref longer than {MAX_REF_LEN} characters: {ref[:80]!r}")


def next_number(conn: Connection, kind: str, prefix: str) -> int:
    """One more than the highest number ending a ref `prefix` + digits among entries of `kind`
    (1 for the first): read inside the writer's transaction, so two writers never take the same."""
    refs = conn.scalars(select(audit.c.ref).where(audit.c.kind == kind, audit.c.ref.startswith(prefix)))
    numbers = [int(tail) for ref in refs if (tail := ref[len(prefix):]).isdigit()]
    return max(numbers, default=0) + 1
