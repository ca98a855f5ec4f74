"""The devices' witnesses of the audit chain (PROTOCOL.md 2.10), checked against the log: shared by the
hub's `log verify` and the standalone `hall-verify`.

A device signs, in an event's envelope, the chain head `N:HASH` the hub last sent it. The hub does not
hold the device's key, so whoever rewrites the log (and recomputes every later hash) cannot make that
signature say anything else: the entry at position N must still have that hash. A head past the
log's end means its newest entries were cut.

Coverage: every entry that is not itself a witness event should be witnessed (some device signs a
head at or past it) within `window` of its append while a device is online. Coverage is reported,
not failed: a late witness is a weakness of that stretch of the log, not evidence of a rewrite.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

WITNESS_MINUTES = 10  # default of the hub's `[audit] witness_minutes`


@dataclass(frozen=True)
class _Head:
    entries: int
    hash: str
    device: str
    seq: int  # the device's seq of the event that signs it
    ts: str  # the device's time of that event
    at_entry: int  # where that event is in the log


@dataclass
class WitnessCheck:
    """Feed the log in chain order: `entry` for every entry whose hash holds, `signed` for every event
    whose signature verified and that carries a head (after its `entry`). Then `finish`."""

    window: timedelta = timedelta(minutes=WITNESS_MINUTES)
    first: int | None = None  # the first position fed (a range export starts mid-chain)
    last: int = 0
    heads: int = 0  # signed heads checked
    devices: set[str] = field(default_factory=set)
    newest: int = 0  # the highest position a device witnessed
    before_range: int = 0  # heads of positions before the first fed (not checkable here)
    late: int = 0  # entries first witnessed later than `window` after their append, a device online
    unwatched: int = 0  # entries appended while no device was online, witnessed late or not yet
    pending: int = 0  # newest entries not witnessed yet (after `finish`)
    worst_late: timedelta = timedelta(0)
    problem: tuple[int, str] | None = None
    _hashes: list[bytes] = field(default_factory=list)
    _ahead: list[_Head] = field(default_factory=list)  # heads at or past their own position
    _uncovered: deque[tuple[int, datetime, bool]] = field(default_factory=deque)
    _online: set[str] = field(default_factory=set)

    def entry(self, seq: int, hash: str, at: datetime, kind: str, data: Mapping[str, Any],
              witness_event: bool = False) -> None:
        if self.first is None:
            self.first = seq
        self._hashes.append(bytes.fromhex(hash))
        self.last = seq
        if kind == "device_state" and isinstance(data.get("online"), bool):
            (self._online.add if data["online"] else self._online.discard)(str(data.get("device")))
        if not witness_event:
            self._uncovered.append((seq, at, bool(self._online)))

    def signed(self, at_entry: int, device: str, seq: int, ts: datetime, ts_text: str, head: str) -> None:
        count, _, digest = head.partition(":")
        witnessed = _Head(int(count), digest, device, seq, ts_text, at_entry)
        self.heads += 1
        self.devices.add(device)
        if self.first is None or witnessed.entries < self.first:
            self.before_range += 1
            return
        if witnessed.entries >= at_entry:  # only a rewritten log has a head signed before it existed
            self._ahead.append(witnessed)
        else:
            self._compare(witnessed)
        self.newest = max(self.newest, witnessed.entries)
        while self._uncovered and self._uncovered[0][0] <= witnessed.entries:
            _, appended, online = self._uncovered.popleft()
            if ts - appended > self.window:
                if online:
                    self.late += 1
                    self.worst_late = max(self.worst_late, ts - appended)
                else:
                    self.unwatched += 1

    def finish(self, log_end: datetime | None) -> tuple[int, str] | None:
        """The first problem, once the whole log was fed: a head its position contradicts, or one past
        the log's end."""
        for witnessed in self._ahead:
            if self.problem is not None:
                break
            if witnessed.entries > self.last:
                self._fail(witnessed.at_entry, (
                    f"设备 {witnessed.device} 序号 {witnessed.seq} ({witnessed.ts}) 见证的链头有 "
                    f"{witnessed.entries} 条, 日志只有 {self.last} 条 device {witnessed.device} witnessed "
                    f"{witnessed.entries} entries at its seq {witnessed.seq} ({witnessed.ts}), but the log "
                    f"holds {self.last}: its newest entries were cut"))
            else:
                self._compare(witnessed)
        if log_end is not None:
            self.pending = sum(1 for _, appended, _ in self._uncovered if log_end - appended > self.window)
        return self.problem

    def summary(self) -> str:
        """What the witnesses proved, in one line."""
        if not self.heads:
            return ("见证: 无 no device witnessed this log's head (devices older than PROTOCOL.md 2.10, "
                    "or all offline): a rewrite recomputing every later hash is caught only by an "
                    "outside head")
        parts = [f"见证: {self.heads} 个设备签署的链头 signed heads from {len(self.devices)} device(s) "
                 f"({', '.join(sorted(self.devices))}); 最新见证至第 {self.newest} 条 newest witnessed "
                 f"entry {self.newest} of {self.last}"]
        if self.before_range:
            parts.append(f"{self.before_range} 个见证在本范围之前 witness(es) of entries before this range "
                         "(not checkable here)")
        if self.late:
            window, worst = _minutes(self.window), _minutes(self.worst_late)
            parts.append(f"{self.late} 条见证迟于 {window} 分钟 entries witnessed later than {window} min "
                         f"with a device online (worst {worst} min)")
        if self.unwatched:
            parts.append(f"{self.unwatched} 条产生时无设备在线 entries appended while every device was "
                         "offline (witnessed late)")
        if self.pending:
            parts.append(f"{self.pending} 条尚未见证 newest entries not witnessed yet")
        return "; ".join(parts)

    def _compare(self, witnessed: _Head) -> None:
        assert self.first is not None
        actual = self._hashes[witnessed.entries - self.first].hex()
        if actual != witnessed.hash:
            n, device, seq, ts, signed = (witnessed.entries, witnessed.device, witnessed.seq, witnessed.ts,
                                          witnessed.hash[:16])
            self._fail(n, (
                f"设备 {device} 序号 {seq} ({ts}) 签署的第 {n} 条哈希 {signed}… 与日志 {actual[:16]}… 不符 "
                f"device {device} signed at its seq {seq} ({ts}) that entry {n} had hash {signed}…; the "
                f"log's entry {n} has {actual[:16]}…: entries at or before {n} were removed, inserted, "
                "reordered or rewritten"))

    def _fail(self, entry: int, text: str) -> None:
        if self.problem is None:
            self.problem = (entry, text)


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
