"""The audit record's formats, shared by the hub and the standalone verifier (`hall-verify`): how a log
entry is hashed, the hub's signed head, and the check that every device's seqs run without holes.

Nothing here touches a database or the hub's config: `verifier/` imports it with `wire.envelope` and
PyNaCl only, so an inspector checks an exported bundle with the same definitions the hub wrote it with.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nacl.exceptions import BadSignatureError

from wire.envelope import PrivateKey, canonical, load_public_key, public_hex_of

ZERO_HASH = "0" * 64
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')  # a string canonical JSON writes as it is, between quotes
BUNDLE_FORMAT = "hall-audit-bundle/1"  # an export's manifest `format` (hub/export.py, verifier/)
HEAD_KIND = "audit_head"
# Log entry kinds whose content may hold personal data: an export withholds their content (the
# entry's hash is then linked, not recomputed). Kept equal to hub.audit.PERSONAL_FIELDS' kinds.
PERSONAL_KINDS = frozenset({"complaint_add"})
# A hole in a device's seqs whose next event was logged within this time of the log's last entry is
# "still open": the hub reports a gap only after the edges' resends (by default 60 s) had their chance.
OPEN_GAP_SECONDS = 600


def entry_hash(seq: int, at: str, kind: str, ref: str | None, data: dict[str, Any], prev: str) -> str:
    """sha256 hex over the canonical form of an entry's content and the previous entry's hash."""
    content = {"seq": seq, "at": at, "kind": kind, "ref": ref, "data": data, "prev": prev}
    return hashlib.sha256(canonical(content)).hexdigest()


def entry_hash_of_text(seq: int, at: str, kind: str, ref: str | None, data_text: bytes, prev: str) -> str:
    """`entry_hash` from the data's canonical bytes, already made: the same bytes hashed, built around
    them in canonical key order (at, data, kind, prev, ref, seq) instead of serialising them again."""
    content = b"".join((b'{"at":', _value(at), b',"data":', data_text, b',"kind":', _value(kind),
                        b',"prev":', _value(prev), b',"ref":', _value(ref), b',"seq":',
                        str(seq).encode("ascii") if type(seq) is int else canonical(seq), b"}"))
    return hashlib.sha256(content).hexdigest()


def _value(item: str | None) -> bytes:
    """A string's canonical JSON, without a call to the encoder when it needs no escape."""
    if isinstance(item, str) and _PLAIN.fullmatch(item):
        return b'"%s"' % item.encode("utf-8")
    return canonical(item)


# --- the signed head ------------------------------------------------------------------------


def head_content(hall: str, entries: int, hash: str, at: str, hub_public_key: str) -> dict[str, Any]:
    """What the hub signs: `kind` keeps a head from ever reading as an envelope (whose keys differ)."""
    return {"kind": HEAD_KIND, "hall": hall, "entries": entries, "hash": hash, "at": at,
            "hub_public_key": hub_public_key}


def sign_head(key: PrivateKey, hall: str, entries: int, hash: str, at: str) -> dict[str, Any]:
    """The head `entries:hash` signed with the hub's key: the content above plus `sig` (hex)."""
    content = head_content(hall, entries, hash, at, public_hex_of(key))
    return {**content, "sig": key.sign(canonical(content)).signature.hex()}


def head_problem(head: Mapping[str, Any], hub_public_key: str | None = None) -> str | None:
    """Why a signed head does not hold (its shape, its signature, or a key other than `hub_public_key`
    when given), or None."""
    try:
        content = head_content(str(head["hall"]), int(head["entries"]), str(head["hash"]), str(head["at"]),
                               str(head["hub_public_key"]))
        signature = bytes.fromhex(str(head["sig"]))
        key = load_public_key(content["hub_public_key"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"链头格式错误 the signed head is malformed ({exc})"
    if head.get("kind") != HEAD_KIND or set(head) != {*content, "sig"}:
        return "链头格式错误 the signed head has other fields than a head's"
    if hub_public_key is not None and content["hub_public_key"] != hub_public_key:
        return (f"链头签名密钥不符 the head is signed by key {content['hub_public_key'][:16]}…, "
                f"not the hub's key {hub_public_key[:16]}…")
    try:
        key.verify(canonical(content), signature)
    except (BadSignatureError, ValueError):
        return "链头签名无效 the hub's signature on the head does not verify"
    return None


def carried_head_problem(seq: int, prev_hash: str, data: Mapping[str, Any]) -> str | None:
    """An entry carrying `head` (a daily close: the chain as it stood just before it) against the chain
    it stands in; None when it holds or the entry carries none."""
    head = data.get("head")
    if head is None:
        return None
    if not isinstance(head, dict) or head.get("entries") != seq - 1 or head.get("hash") != prev_hash:
        shown = f"{head.get('entries')}:{str(head.get('hash'))[:16]}…" if isinstance(head, dict) else head
        return (f"日结所载链头 {shown} 与其前的链不符 the head it carries does not match the chain before it "
                f"({seq - 1}:{prev_hash[:16]}…): entries removed, inserted or rewritten before it")
    return None


# --- seq continuity -------------------------------------------------------------------------


@dataclass
class _Segment:
    """One run of an outbox's seqs: from a new outbox (start 1), or from a version-1 reset at a seq."""

    device: str
    epoch: str | None
    start: int
    mark: int  # the highest seq N with every seq <= N stored or explained (as the hub's watermark)
    ahead: set[int] = field(default_factory=set)
    stored: dict[int, tuple[int, datetime]] = field(default_factory=dict)  # seq -> (entry, at)
    gaps: list[tuple[int, int, int]] = field(default_factory=list)  # (from, to, entry) logged
    floating: bool = False  # a range export's first run of a device: it may reach below `start`

    def advance(self) -> None:
        while self.mark + 1 in self.ahead:
            self.mark += 1
            self.ahead.discard(self.mark)

    def gap_of(self, seq: int) -> tuple[int, int, int] | None:
        return next((gap for gap in self.gaps if gap[0] <= seq <= gap[1]), None)


@dataclass(frozen=True)
class _Reset:
    device: str
    seq: int
    epoch: str | None
    new_epoch: bool
    entry: int


class SeqContinuity:
    """Feed a log in chain order (`event`, `notice`), then ask `problem`. Per device and outbox epoch
    the stored seqs must run without holes, except where a logged `seq_gap` (device, from, to[, epoch])
    or `seq_reset` explains them; a `seq_gap` over seqs that are stored (before it, or resent after) is
    a removal covered by a forged gap. `partial`: the log starts mid-chain (an export of a date
    range), so each device's first outbox starts at the first seq seen, not at 1."""

    def __init__(self, partial: bool = False) -> None:
        self.partial = partial
        self._segments: list[_Segment] = []
        self._current: dict[tuple[str, str | None], _Segment] = {}
        self._epoch: dict[str, str | None] = {}  # device -> epoch of its newest outbox
        self._resets: list[_Reset] = []  # resets the events show
        self._logged_resets: list[tuple[str, int, str | None]] = []  # (device, seq, epoch) logged
        self.first: tuple[int, str] | None = None
        self.events = 0
        self.open_gaps: list[str] = []

    def event(self, entry: int, at: datetime, device: str, epoch: str | None, seq: int) -> None:
        if self.first is not None:
            return
        self.events += 1
        segment = self._current.get((device, epoch))
        if segment is None:
            segment = self._new_outbox(entry, device, epoch, seq)
        elif segment.floating and seq < segment.start and seq not in segment.stored:
            segment.start = seq  # an earlier seq arriving late, its outbox begun before the range
        elif seq in segment.stored or seq <= segment.mark or seq in segment.ahead:
            gap = segment.gap_of(seq)
            if gap is not None and seq not in segment.stored:
                self._fail(gap[2], f"seq_gap 称设备 {device} 序号 {gap[0]}–{gap[1]} 未收到, 但序号 {seq} "
                                   f"其后补发并已存 (日志第 {entry} 条) a logged seq_gap said device "
                                   f"{device} seqs {gap[0]}..{gap[1]} never arrived, but seq {seq} was "
                                   f"resent and stored at entry {entry}: the gap was forged over a removal")
                return
            self._resets.append(_Reset(device, seq, epoch, False, entry))
            segment = self._open(device, epoch, seq)
        segment.stored[seq] = (entry, at)
        segment.ahead.add(seq)
        segment.advance()

    def notice(self, entry: int, kind: str, data: Mapping[str, Any]) -> None:
        """A `seq_gap` or `seq_reset` log entry (other kinds are ignored)."""
        if self.first is not None or kind not in ("seq_gap", "seq_reset"):
            return
        device = str(data.get("device"))
        if kind == "seq_reset":
            self._logged_resets.append((device, _int(data.get("seq")), data.get("epoch")))
            return
        start, end = _int(data.get("from")), _int(data.get("to"))
        epoch = data["epoch"] if "epoch" in data else self._epoch.get(device)
        segment = self._current.get((device, epoch))
        if segment is None:
            if not self.partial:
                self._fail(entry, f"seq_gap 所指设备 {device} 无此前事件 a seq_gap for device {device}, "
                                  "which has no event before it")
            return
        stored = sorted(seq for seq in segment.stored if start <= seq <= end)
        if stored:
            where = segment.stored[stored[0]][0]
            self._fail(entry, f"seq_gap 称设备 {device} 序号 {start}–{end} 未收到, 但序号 {stored[0]} 已存 "
                              f"(日志第 {where} 条) a logged seq_gap says device {device} seqs "
                              f"{start}..{end} never arrived, yet seq {stored[0]} is stored at entry "
                              f"{where}: a forged gap (a removal covered)")
            return
        segment.gaps.append((start, end, entry))
        segment.mark = max(segment.mark, end)
        segment.advance()

    def problem(self, log_end: datetime | None) -> tuple[int | None, str] | None:
        """(entry, what) of the first problem once the whole log was fed, or None. Holes whose next
        event was logged within OPEN_GAP_SECONDS of `log_end` are listed in `open_gaps` instead."""
        if self.first is not None:
            return self.first
        for reset in self._resets:
            if not any(device == reset.device and seq == reset.seq
                       and (not reset.new_epoch or epoch == reset.epoch)
                       for device, seq, epoch in self._logged_resets):
                what = "新的发件箱 a new outbox epoch" if reset.new_epoch else "序号回退 its seq went back"
                return reset.entry, (f"设备 {reset.device} 序号 {reset.seq} 处重置未记录 device "
                                     f"{reset.device} at seq {reset.seq}: {what} with no logged seq_reset")
        holes = sorted((hole for segment in self._segments for hole in _holes(segment)), key=lambda h: h[2])
        for start, end, entry, at, segment in holes:
            text = (f"设备 {segment.device} 序号 {start}–{end} 缺失且无 seq_gap 记录 device {segment.device}"
                    f"{'' if segment.epoch is None else f' (outbox {segment.epoch})'} seqs {start}..{end} "
                    f"are missing before seq {end + 1} (entry {entry}) and no seq_gap explains them: "
                    "events removed")
            if log_end is not None and (log_end - at).total_seconds() < OPEN_GAP_SECONDS:
                self.open_gaps.append(text)
                continue
            return entry, text
        return None

    def devices(self) -> dict[str, int]:
        """Events seen per device."""
        counts: dict[str, int] = {}
        for segment in self._segments:
            counts[segment.device] = counts.get(segment.device, 0) + len(segment.stored)
        return dict(sorted(counts.items()))

    def _new_outbox(self, entry: int, device: str, epoch: str | None, seq: int) -> _Segment:
        known = device in self._epoch
        previous = self._epoch.get(device)
        if not known:
            segment = self._open(device, epoch, seq if self.partial else 1)
            segment.floating = self.partial
            return segment
        before = self._current.get((device, previous))
        if previous is None and before is not None and seq > before.mark and seq not in before.ahead:
            # version 1 to 2: the outbox the device already had now names its epoch (PROTOCOL.md 2.4)
            self._current.pop((device, None))
            before.epoch = epoch
            self._current[(device, epoch)] = before
            self._epoch[device] = epoch
            return before
        self._epoch[device] = epoch
        self._resets.append(_Reset(device, seq, epoch, True, entry))
        return self._open(device, epoch, 1)

    def _open(self, device: str, epoch: str | None, start: int) -> _Segment:
        segment = _Segment(device, epoch, start, start - 1)
        self._segments.append(segment)
        self._current[(device, epoch)] = segment
        self._epoch[device] = epoch
        return segment

    def _fail(self, entry: int, text: str) -> None:
        if self.first is None:
            self.first = (entry, text)


def _holes(segment: _Segment) -> list[tuple[int, int, int, datetime, _Segment]]:
    """(from, to, entry and time of the next stored seq, segment) of each unexplained hole."""
    found: list[tuple[int, int, int, datetime, _Segment]] = []
    expected = segment.start
    for seq in sorted(segment.stored):
        missing = [s for s in range(expected, seq) if segment.gap_of(s) is None] if seq > expected else []
        if missing:
            entry, at = segment.stored[seq]
            found.append((missing[0], missing[-1], entry, at, segment))
        expected = max(expected, seq + 1)
    return found


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
