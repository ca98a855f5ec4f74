"""What `hall-verify` checks of a bundle: the chain (hashes, links, time never backwards), every
event's device signature against the key in force (the roster history), the heads daily closes
carry, the hub's signature on the bundle's head, every device's seq continuity, and every manual
entry's operator signature against the operator keys in force (wire/provenance.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from verifier.bundle import Bundle
from wire.envelope import Envelope, PublicKey, WireError, load_public_key, parse, parse_ts, verify
from wire.provenance import ProvenanceCheck, ProvenanceSummary
from wire.record import (
    PERSONAL_KINDS,
    ZERO_HASH,
    SeqContinuity,
    carried_head_problem,
    entry_hash,
    head_problem,
)
from wire.witness import WITNESS_MINUTES, WitnessCheck


@dataclass
class Proof:
    """What a bundle proved, or its first problem."""

    problem: str | None = None
    first: int = 0
    last: int = 0
    anchored: str = ZERO_HASH  # prev_hash of the first entry (the zero hash: the log's beginning)
    range: dict[str, Any] | None = None
    head: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)  # events per device
    events: int = 0
    withheld: int = 0
    gaps: int = 0
    resets: int = 0
    closes: int = 0
    open_gaps: list[str] = field(default_factory=list)
    keys_configured: bool = False  # some event was checked with a key of keys.json, not of a roster
    key_source: str = "roster"  # where the keys in force come from: "roster" or "configured"
    roster_devices: Any = None  # the devices' keys of the last logged roster in the bundle
    witnesses: str = ""  # what the devices' signed heads proved (wire/witness.py)
    provenance: ProvenanceSummary = field(default_factory=ProvenanceSummary)  # manual entries' signers


class _Failed(Exception):
    pass


def check_bundle(bundle: Bundle, hub_key: str | None = None) -> Proof:
    """Check everything; `hub_key` (hex) pins the hub's public key the inspector knows."""
    proof = Proof(range=bundle.manifest.get("range"), head=bundle.head)
    try:
        _check(bundle, hub_key, proof)
    except _Failed as exc:
        proof.problem = str(exc)
    return proof


def _check(bundle: Bundle, hub_key: str | None, proof: Proof) -> None:
    if not bundle.entries:
        raise _Failed("导出包无条目 the bundle holds no entries")
    hub_public = str(bundle.keys.get("hub_public_key"))
    if hub_key is not None and hub_public != hub_key:
        raise _Failed(f"中心公钥不符 keys.json names hub key {hub_public[:16]}…, not the key you gave "
                      f"({hub_key[:16]}…)")
    first = bundle.entries[0]
    proof.first, proof.anchored = _int(first.get("seq")), str(first.get("prev_hash"))
    partial = proof.first != 1
    if proof.first == 1 and proof.anchored != ZERO_HASH:
        raise _Failed("条目 1: the first entry does not start from the zero hash (entries removed)")
    keys = _initial_keys(bundle, proof)
    authors = ProvenanceCheck(bundle.roster_before[-1]["data"] if bundle.roster_before else None)
    proof.provenance = authors.summary
    seqs = SeqContinuity(partial=partial)
    minutes = bundle.manifest.get("witness_minutes", WITNESS_MINUTES)
    witness = WitnessCheck(timedelta(minutes=minutes if isinstance(minutes, int) else WITNESS_MINUTES))
    expected, prev_hash, prev_at = proof.first, proof.anchored, None
    for entry in bundle.entries:
        seq, at = _int(entry.get("seq")), _at(entry)
        where = f"条目 entry {seq}"
        if seq != expected:
            cause = "removed" if seq > expected else "duplicated or reordered"
            raise _Failed(f"条目 entry {expected}: chain position {expected} expected, found {seq} "
                          f"(entry {cause})")
        if entry.get("prev_hash") != prev_hash:
            raise _Failed(f"{where}: previous hash does not match entry {seq - 1} (removed or reordered)")
        kind, data = str(entry.get("kind")), entry.get("data")
        if entry.get("withheld") is not None:
            if kind not in PERSONAL_KINDS or data is not None:
                raise _Failed(f"{where}: content withheld, but a {kind!r} entry holds no personal data")
            proof.withheld += 1
        elif not isinstance(data, dict) or entry_hash(seq, str(entry.get("at")), kind, entry.get("ref"),
                                                      data, prev_hash) != entry.get("hash"):
            raise _Failed(f"{where}: hash does not match its content (altered)")
        if prev_at is not None and at < prev_at:
            raise _Failed(f"{where}: time goes backwards ({entry.get('at')} is before entry {seq - 1})")
        envelope = _content(seq, at, kind, entry, data, prev_hash, keys, seqs, proof) \
            if isinstance(data, dict) else None
        witness.entry(seq, str(entry.get("hash")), at, kind, data if isinstance(data, dict) else {},
                      envelope is not None and envelope.type == "witness")
        if envelope is not None and envelope.head is not None:
            witness.signed(seq, envelope.device, envelope.seq, envelope.timestamp, envelope.ts, envelope.head)
        if (authored := authors.notice(kind, data if isinstance(data, dict) else None)) is not None:
            raise _Failed(f"{where}: {authored}")
        expected, prev_hash, prev_at = seq + 1, str(entry.get("hash")), at
    proof.last = expected - 1
    found = seqs.problem(prev_at) or witness.finish(prev_at)
    proof.open_gaps, proof.devices, proof.events = seqs.open_gaps, seqs.devices(), seqs.events
    proof.witnesses = witness.summary()
    if found is not None:
        raise _Failed(f"条目 entry {found[0]}: {found[1]}")
    configured = bundle.keys.get("devices")
    if bundle.manifest.get("range") is None and proof.roster_devices not in (None, configured):
        raise _Failed("keys.json: 导出时配置的设备公钥与日志最后登记的名册不符 the devices' keys "
                      "configured when the bundle was exported differ from the last roster logged: the "
                      "roster in hub.toml was edited without `hall-hub roster apply`")
    problem = head_problem(bundle.head, hub_public)
    if problem is not None:
        raise _Failed(f"head.json: {problem}")
    if bundle.head.get("entries") != proof.last or bundle.head.get("hash") != prev_hash:
        signed = f"{bundle.head.get('entries')}:{bundle.head.get('hash')}"
        raise _Failed(f"head.json: 签名链头 {signed} is not the bundle's last entry "
                      f"{proof.last}:{prev_hash} (entries cut or rewritten)")
    if bundle.head.get("hall") != bundle.manifest.get("hall"):
        raise _Failed("head.json: the head is of another hall than the manifest's")


def _content(seq: int, at: datetime, kind: str, entry: dict[str, Any], data: dict[str, Any],
             prev_hash: str, keys: dict[str, PublicKey], seqs: SeqContinuity,
             proof: Proof) -> Envelope | None:
    """Check one entry's content; an event's envelope, once its signature holds."""
    where = f"条目 entry {seq}"
    carried = carried_head_problem(seq, prev_hash, data)
    if carried is not None:
        raise _Failed(f"{where}: {carried}")
    proof.closes += "head" in data
    if kind == "roster":
        proof.roster_devices = data.get("devices")
        keys.clear()
        keys.update(_load(data.get("devices"), f"{where} (roster)"))
        proof.key_source = "roster"
    elif kind == "event":
        envelope = _event(where, entry, data, keys)
        proof.keys_configured = proof.keys_configured or proof.key_source == "configured"
        seqs.event(seq, at, envelope.device, envelope.epoch, envelope.seq)
        return envelope
    elif kind in ("seq_gap", "seq_reset"):
        proof.gaps += kind == "seq_gap"
        proof.resets += kind == "seq_reset"
        seqs.notice(seq, kind, data)
    return None


def _event(where: str, entry: dict[str, Any], data: dict[str, Any], keys: dict[str, PublicKey]) -> Envelope:
    raw = data.get("raw")
    if not isinstance(raw, str):
        raise _Failed(f"{where}: event entry without raw bytes")
    try:
        envelope = parse(raw.encode("utf-8"))
    except WireError as exc:
        raise _Failed(f"{where}: event raw bytes do not parse ({exc})") from exc
    if envelope.id != entry.get("ref"):
        raise _Failed(f"{where}: the log reference does not match the envelope id {envelope.id}")
    key = keys.get(envelope.device)
    if key is None:
        raise _Failed(f"{where}: event from device {envelope.device!r}, which has no key in force")
    try:
        verify(envelope, key)
    except WireError as exc:
        raise _Failed(f"{where}: 设备签名无效 event {envelope.id} of device {envelope.device}: the "
                      "signature does not verify with the key in force") from exc
    return envelope


def _initial_keys(bundle: Bundle, proof: Proof) -> dict[str, PublicKey]:
    """The devices' keys in force at the first entry: the last roster before it, checked by its own
    hash (not linked to the range), or the keys configured now when no roster was logged before."""
    rosters = bundle.roster_before
    for entry in rosters:
        data, seq = entry.get("data"), _int(entry.get("seq"))
        if (entry.get("kind") != "roster" or not isinstance(data, dict) or seq >= proof.first
                or entry_hash(seq, str(entry.get("at")), "roster", entry.get("ref"), data,
                              str(entry.get("prev_hash"))) != entry.get("hash")):
            raise _Failed(f"roster_before.jsonl: entry {seq} is not a roster entry as hashed (altered)")
    if rosters:
        return _load(rosters[-1]["data"].get("devices"), "roster_before.jsonl")
    proof.key_source = "configured"
    return _load(bundle.keys.get("devices"), "keys.json")


def _load(devices: Any, where: str) -> dict[str, PublicKey]:
    if not isinstance(devices, dict):
        raise _Failed(f"{where}: no devices' keys")
    try:
        return {str(device): load_public_key(str(key)) for device, key in devices.items()}
    except ValueError as exc:
        raise _Failed(f"{where}: a device key is not a public key ({exc})") from exc


def _at(entry: dict[str, Any]) -> datetime:
    try:
        return parse_ts(str(entry.get("at")))
    except ValueError as exc:
        raise _Failed(f"条目 entry {entry.get('seq')}: its time is not a timestamp ({exc})") from exc


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
