"""The signed envelope of PROTOCOL.md section 1: canonical form, Ed25519 signing, parsing.

Both the edge agent and the hub import this module; it is the only code they share.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey as PrivateKey
from nacl.signing import VerifyKey as PublicKey

VERSION = 1
MAX_ID_LEN = 64
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
SIG_RE = re.compile(r"^[0-9a-f]{128}$")
# RFC 3339 with an offset and milliseconds, as the contract requires.
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$")
ENVELOPE_KEYS = frozenset({"v", "id", "hall", "device", "seq", "ts", "type", "body", "sig"})


class WireError(ValueError):
    """A message that does not meet the wire contract. `reason` is a short machine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def canonical(obj: Any) -> bytes:
    """The canonical form that signatures cover."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def format_ts(moment: datetime) -> str:
    """RFC 3339 with milliseconds and the moment's own offset (it must be timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.isoformat(timespec="milliseconds")


def parse_ts(text: str) -> datetime:
    if not isinstance(text, str) or not TS_RE.match(text):
        raise ValueError(f"not an RFC 3339 timestamp with milliseconds and offset: {text!r}")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def uuid7() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


# --- keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private_hex: str
    public_hex: str


def generate_keypair() -> KeyPair:
    key = PrivateKey.generate()
    return KeyPair(bytes(key).hex(), public_hex_of(key))


def load_private_key(hex_text: str) -> PrivateKey:
    """A raw 32-byte Ed25519 private key (the seed, as RFC 8032 writes it) in lowercase hex."""
    if not HEX64_RE.match(hex_text):
        raise ValueError("a private key is 64 lowercase hex characters")
    return PrivateKey(bytes.fromhex(hex_text))


def load_public_key(hex_text: str) -> PublicKey:
    if not HEX64_RE.match(hex_text):
        raise ValueError("a public key is 64 lowercase hex characters")
    return PublicKey(bytes.fromhex(hex_text))


def public_hex_of(key: PrivateKey) -> str:
    return bytes(key.verify_key).hex()


# --- envelopes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    id: str
    hall: str
    device: str
    seq: int
    ts: str
    type: str
    body: dict[str, Any]
    sig: str
    raw: bytes  # the exact bytes as published or received

    def unsigned(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "id": self.id,
            "hall": self.hall,
            "device": self.device,
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            "body": self.body,
        }

    @property
    def timestamp(self) -> datetime:
        return parse_ts(self.ts)


def seal(
    key: PrivateKey,
    *,
    hall: str,
    device: str,
    seq: int,
    ts: str,
    type: str,
    body: dict[str, Any],
    id: str | None = None,
) -> Envelope:
    """Build and sign an envelope. The published bytes are its canonical form with `sig`."""
    unsigned = {
        "v": VERSION,
        "id": id or uuid7(),
        "hall": hall,
        "device": device,
        "seq": seq,
        "ts": ts,
        "type": type,
        "body": body,
    }
    _reject_floats(unsigned, "envelope")
    sig = key.sign(canonical(unsigned)).signature.hex()
    raw = canonical({**unsigned, "sig": sig})
    return Envelope(
        id=unsigned["id"], hall=hall, device=device, seq=seq, ts=ts, type=type,
        body=body, sig=sig, raw=raw,
    )


def parse(raw: bytes) -> Envelope:
    """Parse the envelope's shape (not its signature, not the body's schema)."""
    try:
        obj = json.loads(raw.decode("utf-8"), parse_float=_no_float)
    except UnicodeDecodeError as exc:
        raise WireError("malformed", f"not UTF-8: {exc}") from exc
    except _FloatFound as exc:
        raise WireError("malformed", "floating-point numbers are not allowed") from exc
    except json.JSONDecodeError as exc:
        raise WireError("malformed", f"not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(obj, dict):
        raise WireError("malformed", "envelope is not a JSON object")
    keys = set(obj)
    if keys != ENVELOPE_KEYS:
        missing, extra = ENVELOPE_KEYS - keys, keys - ENVELOPE_KEYS
        raise WireError("malformed", f"envelope keys: missing {sorted(missing)}, extra {sorted(extra)}")
    if obj["v"] != VERSION or isinstance(obj["v"], bool):
        raise WireError("malformed", f"unsupported version {obj['v']!r}")
    checks = (
        (isinstance(obj["id"], str) and 0 < len(obj["id"]) <= MAX_ID_LEN, "id"),
        (isinstance(obj["hall"], str) and NAME_RE.match(obj["hall"]), "hall"),
        (isinstance(obj["device"], str) and NAME_RE.match(obj["device"]), "device"),
        (type(obj["seq"]) is int and obj["seq"] >= 1, "seq"),
        (isinstance(obj["ts"], str) and TS_RE.match(obj["ts"]), "ts"),
        (isinstance(obj["type"], str) and NAME_RE.match(obj["type"]), "type"),
        (isinstance(obj["body"], dict), "body"),
        (isinstance(obj["sig"], str) and SIG_RE.match(obj["sig"]), "sig"),
    )
    for ok, field in checks:
        if not ok:
            raise WireError("malformed", f"bad field {field!r}: {obj[field]!r}"[:200])
    return Envelope(
        id=obj["id"], hall=obj["hall"], device=obj["device"], seq=obj["seq"], ts=obj["ts"],
        type=obj["type"], body=obj["body"], sig=obj["sig"], raw=bytes(raw),
    )


def verify(envelope: Envelope, public_key: PublicKey) -> None:
    """Raise WireError('bad_signature') unless the signature holds over the canonical form."""
    try:
        public_key.verify(canonical(envelope.unsigned()), bytes.fromhex(envelope.sig))
    except BadSignatureError as exc:
        raise WireError("bad_signature", f"signature of {envelope.id} does not verify") from exc


def open_signed(raw: bytes, public_key: PublicKey) -> Envelope:
    envelope = parse(raw)
    verify(envelope, public_key)
    return envelope


class _FloatFound(Exception):
    pass


def _no_float(text: str) -> float:
    raise _FloatFound(text)


def _reject_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"{path}: floating-point numbers are not allowed on the wire")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_floats(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_floats(item, f"{path}[{index}]")
