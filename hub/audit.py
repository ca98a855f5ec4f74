"""Inspector's check of the audit log: the hash chain, every event's device signature, and the
agreement between the log and the events table. Streams the log; needs only the devices' public
keys, never the hub's secrets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from hub.domain import LOG_KINDS, AuditEntry, StoredEvent
from hub.store.snapshots import snapshot_problem
from hub.store.store import ZERO_HASH, Store, entry_hash
from wire.envelope import Envelope, PublicKey, WireError, format_ts, load_public_key, parse, verify
from wire.record import SeqContinuity, carried_head_problem
from wire.witness import WITNESS_MINUTES, WitnessCheck

BATCH = 200  # entries checked against the events table per round trip
RENDER_WIDTH = 240
# Personal data kept in log entries (the store is access-controlled) and hidden in what is printed
# or exported: kind -> fields. A manager sees a complainant's contact through
# `hub.complaints.complaint_contacts`, which logs the view.
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {"complaint_add": ("contact",)}
HIDDEN = "<个人信息 已隐藏 personal data hidden>"


def public_data(entry: AuditEntry) -> dict[str, Any]:
    """The entry's content with its personal data replaced by a mark (hash checks need the store)."""
    hidden = [f for f in PERSONAL_FIELDS.get(entry.kind, ()) if f in entry.data]
    return {**entry.data, **dict.fromkeys(hidden, HIDDEN)} if hidden else entry.data


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int  # entries read from the log
    first_bad: int | None  # audit seq (chain position) of the first problem, if it has one
    problem: str | None  # the first problem in plain words
    notes: tuple[str, ...] = ()  # what holds but is worth saying (a seq gap still open)
    witnesses: str = ""  # what the devices' signed heads proved (wire/witness.py)


def verify_log(store: Store, device_keys: Mapping[str, str],
               witness_minutes: int = WITNESS_MINUTES) -> VerifyReport:
    """Check the whole log; report the first problem. device_keys: device id -> public key hex.
    `witness_minutes`: the coverage the devices' witnesses are held to (reported, not failed)."""
    checker = _Checker(_load_keys(device_keys), WitnessCheck(timedelta(minutes=witness_minutes)))
    entries = 0
    if store.first_audit() is None:
        return VerifyReport(ok=False, entries=0, first_bad=None,
                            problem="日志为空 the log is empty: nothing to verify (is this the hub's store?)")
    for batch in _batches(store.audit(), BATCH):
        entries += len(batch)
        if checker.problem is not None:
            continue  # keep counting; the first problem is the one reported
        refs = {entry.ref for entry in batch if entry.kind == "event" and entry.ref is not None}
        rows = store.events_by_id(refs)
        for entry in batch:
            checker.check(entry, rows)
            if checker.problem is not None:
                break
    if checker.problem is None:
        for event_id in store.event_ids():
            if event_id not in checker.logged:
                checker.problem = (None, f"event row {event_id} has no log entry (inserted outside the log)")
                break
    if checker.problem is None:
        checker.problem = checker.seqs.problem(checker.prev_at)
    if checker.problem is None:
        checker.problem = checker.witness.finish(checker.prev_at)
    if checker.problem is None:
        checker.problem = _leave_problem(store.leave_rows(), checker.leaves)
    if checker.problem is None and (snapshot := snapshot_problem(store)) is not None:
        checker.problem = (None, snapshot)
    notes, witnesses = tuple(checker.seqs.open_gaps), checker.witness.summary()
    if checker.problem is None:
        return VerifyReport(ok=True, entries=entries, first_bad=None, problem=None, notes=notes,
                            witnesses=witnesses)
    first_bad, problem = checker.problem
    if first_bad is not None and not problem.startswith("entry "):
        problem = f"entry {first_bad}: {problem}"
    return VerifyReport(ok=False, entries=entries, first_bad=first_bad, problem=problem, notes=notes,
                        witnesses=witnesses)


def head_problem(store: Store, head: str) -> str | None:
    """`N:HASH` (a head printed on a monthly notice) against the log: None when entry N has that
    hash (with `verify_log`, the N entries up to it are as they were then), else what is wrong."""
    count, _, expected = head.partition(":")
    if not count.isdigit() or int(count) < 1 or len(expected) != 64:
        raise ValueError(f"--head {head!r}: give N:HASH, the entry count and 64 hex characters")
    entry = next(store.audit(after_seq=int(count) - 1, limit=1), None)
    if entry is None or entry.seq != int(count):
        return f"the log has no entry {count}: it holds fewer entries than the printed head says"
    if entry.hash != expected.lower():
        return f"entry {count} has hash {entry.hash}, not the printed {expected}"
    return None


def signature_problem(raw: bytes, keys: Mapping[str, PublicKey]) -> str | None:
    """Why an event's signed bytes do not hold against its device's key, or None when they do."""
    try:
        envelope = parse(raw)
    except WireError as exc:
        return f"原始报文无法解析 the raw bytes do not parse ({exc.reason})"
    key = keys.get(envelope.device)
    if key is None:
        return f"设备 {envelope.device!r} 无公钥 no known public key"
    try:
        verify(envelope, key)
    except WireError:
        return "签名无效 the signature does not verify"
    return None


def device_keys_of(device_keys: Mapping[str, str]) -> dict[str, PublicKey]:
    """The devices' public keys, loaded (device id -> key hex in)."""
    return _load_keys(device_keys)


class _Checker:
    def __init__(self, keys: Mapping[str, PublicKey], witness: WitnessCheck) -> None:
        self.keys = keys
        self.witness = witness  # the devices' signed heads (wire/witness.py)
        self.expected = 1
        self.prev_hash = ZERO_HASH
        self.prev_at: datetime | None = None
        self.logged: set[str] = set()  # ids of event entries seen so far (ids only, not entries)
        self.leaves: list[AuditEntry] = []  # leave entries, checked against the leave table after
        self.problem: tuple[int | None, str] | None = None
        self.seqs = SeqContinuity()  # every device's seqs without holes (wire/record.py)

    def check(self, entry: AuditEntry, rows: Mapping[str, StoredEvent]) -> None:
        seq = entry.seq
        if seq != self.expected:
            cause = "entry removed" if seq > self.expected else "entry duplicated or reordered"
            self._bad(self.expected, f"chain position {self.expected} expected, found {seq} ({cause})")
            return
        if entry.prev_hash != self.prev_hash:
            if seq == 1:
                self._bad(seq, "the first entry does not start from the zero hash (entries removed)")
            else:
                self._bad(seq, f"previous hash does not match entry {seq - 1} (removed or reordered)")
            return
        at = format_ts(entry.at)
        if entry_hash(seq, at, entry.kind, entry.ref, entry.data, entry.prev_hash) != entry.hash:
            self._bad(seq, "hash does not match its content (altered)")
            return
        if self.prev_at is not None and entry.at < self.prev_at:
            self._bad(seq, f"time goes backwards: {at} is before entry {seq - 1} "
                           f"({format_ts(self.prev_at)}); entries are never backdated")
            return
        if entry.kind == "leave":
            self.leaves.append(entry)
        if (carried := carried_head_problem(seq, entry.prev_hash, entry.data)) is not None:
            self._bad(seq, carried)
            return
        self.seqs.notice(seq, entry.kind, entry.data)
        envelope = None
        if entry.kind == "event":
            problem, envelope = self._event_problem(entry, rows)
            if problem is not None:
                self._bad(seq, problem)
                return
        self.witness.entry(seq, entry.hash, entry.at, entry.kind, entry.data,
                           envelope is not None and envelope.type == "witness")
        if envelope is not None and envelope.head is not None:
            self.witness.signed(seq, envelope.device, envelope.seq, envelope.timestamp, envelope.ts,
                                envelope.head)
        self.expected, self.prev_hash, self.prev_at = seq + 1, entry.hash, entry.at

    def _event_problem(self, entry: AuditEntry,
                       rows: Mapping[str, StoredEvent]) -> tuple[str | None, Envelope | None]:
        """What is wrong with an event entry, or (None, its envelope)."""
        ref, raw = entry.ref, entry.data.get("raw")
        if ref is None or not isinstance(raw, str):
            return "event entry without a reference or raw bytes", None
        try:
            envelope = parse(raw.encode("utf-8"))
        except WireError as exc:
            return f"event {ref} raw bytes do not parse ({exc})", None
        if envelope.id != ref:
            return f"event {ref}: the log reference does not match the envelope id {envelope.id}", None
        if ref in self.logged:
            return f"event {ref} is logged twice", None
        key = self.keys.get(envelope.device)
        if key is None:
            return f"event {ref} from device {envelope.device!r}, which has no known public key", None
        try:
            verify(envelope, key)
        except WireError:
            return f"event {ref} signature does not verify", None
        self.seqs.event(entry.seq, entry.at, envelope.device, envelope.epoch, envelope.seq)
        row = rows.get(ref)
        if row is None:
            return f"event row {ref} missing from events table (removed)", None
        if _row_fields(row) != _envelope_fields(envelope, entry.data.get("received_at")):
            return f"event row {ref} differs from its log entry (altered)", None
        self.logged.add(ref)
        return None, envelope

    def _bad(self, seq: int, text: str) -> None:
        self.problem = (seq, f"entry {seq}: {text}")


LEAVE_FIELDS = ("staff", "start", "end", "approver", "reason", "recorded_at")


def _leave_problem(rows: list[dict[str, Any]], logged: list[AuditEntry]) -> tuple[int | None, str] | None:
    """The leave table against its log entries, both ways: every logged leave is a row equal to
    its entry, and every row was logged."""
    by_id = {int(row["id"]): row for row in rows}
    for entry in logged:
        leave_id = int(entry.data.get("id") or 0)
        row = by_id.pop(leave_id, None)
        if row is None:
            return entry.seq, f"entry {entry.seq}: leave row {leave_id} missing from its table (removed)"
        if any(row[f] != entry.data.get(f) for f in LEAVE_FIELDS):
            return entry.seq, f"entry {entry.seq}: leave row {leave_id} differs from its log entry (altered)"
    for leave_id in sorted(by_id):
        return None, f"leave row {leave_id} has no log entry (inserted outside the log)"
    return None


def _row_fields(row: StoredEvent) -> tuple[Any, ...]:
    return (row.raw, row.hall, row.device, row.seq, row.type, row.ts, row.ts.utcoffset(), row.body,
            format_ts(row.received_at))


def _envelope_fields(envelope: Envelope, received_at: Any) -> tuple[Any, ...]:
    ts = envelope.timestamp
    return (envelope.raw, envelope.hall, envelope.device, envelope.seq, envelope.type, ts,
            ts.utcoffset(), envelope.body, received_at)


def _load_keys(device_keys: Mapping[str, str]) -> dict[str, PublicKey]:
    keys: dict[str, PublicKey] = {}
    for device, hex_text in device_keys.items():
        try:
            keys[device] = load_public_key(hex_text)
        except ValueError as exc:
            raise ValueError(f"public key of device {device!r}: {exc}") from exc
    return keys


def _batches(entries: Iterable[AuditEntry], size: int) -> Iterator[list[AuditEntry]]:
    iterator = iter(entries)
    while batch := list(islice(iterator, size)):
        yield batch


# --- human form -------------------------------------------------------------------------


def render_entry(entry: AuditEntry) -> str:
    """One line, e.g. `#12 2026-11-24T08:29:31.120+08:00 event(事件) entrance/42 clock card=...`."""
    label = LOG_KINDS.get(entry.kind)
    head = f"#{entry.seq} {format_ts(entry.at)} {entry.kind}" + (f"({label})" if label else "")
    data = public_data(entry)
    if entry.kind == "event":
        detail = _render_event(entry)
    elif entry.kind == "quarantine":
        detail = f"{data.get('reason')} {data.get('topic')} {data.get('detail')}"
    elif entry.kind == "leave":
        detail = (f"{data.get('staff')} {data.get('start')} ~ {data.get('end')} "
                  f"批准人 {data.get('approver')} 事由 {data.get('reason')}")
    else:
        ref = f"{entry.ref} " if entry.ref else ""
        detail = ref + json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    line = " ".join(f"{head} {detail}".split())
    return line if len(line) <= RENDER_WIDTH else line[: RENDER_WIDTH - 1] + "…"


def _render_event(entry: AuditEntry) -> str:
    raw = entry.data.get("raw")
    if not isinstance(raw, str):
        return f"{entry.ref} <无原始报文 no raw bytes>"
    try:
        envelope = parse(raw.encode("utf-8"))
    except WireError as exc:
        return f"{entry.ref} <原始报文无法解析 unreadable: {exc.reason}>"
    parts = []
    for key, value in sorted(envelope.body.items()):
        if key == "photo" and isinstance(value, str):
            parts.append(f"photo=<{len(value)} 字符>")
        else:
            parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    if envelope.head is not None:  # the chain head the device signed (PROTOCOL.md 2.10)
        parts.append(f"见证 witness={envelope.head[:24]}…")
    return f"{envelope.device}/{envelope.seq} {envelope.type} id={entry.ref} {' '.join(parts)}"
