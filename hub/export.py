"""`hall-hub log head` and `hall-hub log export`: the chain's head signed by the hub, and a bundle an
inspector checks with `hall-verify` alone (verifier/, no database, no hub config).

A bundle is a directory, or a .zip when the path ends in `.zip`, holding:
- `entries.jsonl`: the log entries, one canonical JSON object a line, exactly as hashed (`seq`, `at`,
  `kind`, `ref`, `data`, `prev_hash`, `hash`); an entry holding personal data (a complaint's contact)
  has `data: null` and `withheld: "personal"`: its hash is linked, not recomputed.
- `roster_before.jsonl`: for a date range, the `roster` entries logged before it (the devices' keys in
  force when the range begins), each as hashed.
- `keys.json`: the hub's public key, and the devices' keys configured now (used for events logged
  before any `roster` entry).
- `head.json`: the bundle's last entry `entries:hash`, signed by the hub (wire/record.py `sign_head`).
- `manifest.json`: format, hall, range, first and last entry, and the SHA-256 of every other file.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from hub.config import HubConfig
from hub.domain import AuditEntry
from hub.store.store import Store
from wire.envelope import canonical, format_ts, load_private_key, public_hex_of
from wire.record import BUNDLE_FORMAT, PERSONAL_KINDS, sign_head

ROSTER_KIND = "roster"


def signed_head(config: HubConfig, store: Store, upto: AuditEntry | None = None) -> dict[str, Any]:
    """The head `entries:hash` of the log (or of entry `upto`), signed with the hub's key now."""
    entry = upto or store.last_audit()
    if entry is None:
        raise ValueError("日志为空 the log is empty: there is no head to sign")
    key = load_private_key(config.private_key_hex())
    return sign_head(key, config.hall, entry.seq, entry.hash, format_ts(store.clock.now()))


def entry_line(entry: AuditEntry) -> bytes:
    """One line of `entries.jsonl`: the entry exactly as hashed, or its content withheld."""
    withheld = entry.kind in PERSONAL_KINDS
    obj: dict[str, Any] = {"seq": entry.seq, "at": format_ts(entry.at), "kind": entry.kind, "ref": entry.ref,
                           "data": None if withheld else entry.data, "prev_hash": entry.prev_hash,
                           "hash": entry.hash}
    if withheld:
        obj["withheld"] = "personal"
    return canonical(obj) + b"\n"


@dataclass(frozen=True)
class Exported:
    path: Path
    first: int
    last: int
    head: dict[str, Any]


def export_bundle(config: HubConfig, store: Store, out: Path, start: date | None = None,
                  end: date | None = None) -> Exported:
    """Write the bundle of the whole log, or of the entries appended from `start` to `end` (local days,
    inclusive). Refuses an existing non-empty directory or file, and a range with no entry."""
    since = None if start is None else datetime.combine(start, time(0), config.tz)
    until = None if end is None else datetime.combine(end + timedelta(days=1), time(0), config.tz)
    entries, roster_before = io.BytesIO(), io.BytesIO()
    first: AuditEntry | None = None
    last: AuditEntry | None = None
    for entry in store.audit():
        if since is not None and entry.at < since:
            if entry.kind == ROSTER_KIND:
                roster_before.write(entry_line(entry))
            continue
        if until is not None and entry.at >= until:
            break
        first = first or entry
        last = entry
        entries.write(entry_line(entry))
    if first is None or last is None:
        raise ValueError("所选范围内无日志条目 no log entry in that range: nothing to export")
    key = load_private_key(config.private_key_hex())
    head = signed_head(config, store, last)
    files = {
        "entries.jsonl": entries.getvalue(),
        "roster_before.jsonl": roster_before.getvalue(),
        "keys.json": canonical({"hub_public_key": public_hex_of(key), "devices": config.device_keys()}),
        "head.json": canonical(head),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "hall": config.hall,
        "range": None if start is None and end is None else {
            "from": None if start is None else start.isoformat(),
            "to": None if end is None else end.isoformat()},
        "first": first.seq,
        "last": last.seq,
        "exported_at": head["at"],
        "witness_minutes": config.audit.witness_minutes,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    files["manifest.json"] = canonical(manifest)
    _write(out, files)
    return Exported(out, first.seq, last.seq, head)


def _write(out: Path, files: dict[str, bytes]) -> None:
    if out.suffix == ".zip":
        if out.exists():
            raise ValueError(f"{out} 已存在 already exists: not overwritten")
        with zipfile.ZipFile(out, "x", compression=zipfile.ZIP_DEFLATED) as bundle:
            for name, data in files.items():
                bundle.writestr(name, data)
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} 已存在且非空 exists and is not an empty directory: not overwritten")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
