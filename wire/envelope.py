"""The signed envelope of PROTOCOL.md section 1: canonical form, Ed25519 signing, parsing.

Both the edge agent and the hub import this module; it is the only code they share.

Parsing treats every byte as hostile: JSON nested deeper than MAX_DEPTH, integers outside
+-(2^53 - 1) (not portable between JSON readers), floats, NaN and Infinity, duplicate keys and lone
surrogates are `malformed`; an envelope whose bytes are not its canonical form is `non_canonical`
(the bytes the hub stores are exactly the bytes that were signed, one form per envelope).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from itertools import accumulate
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey as PrivateKey
from nacl.signing import VerifyKey as PublicKey

VERSION = 1  # an envelope without an outbox epoch
VERSION_EPOCH = 2  # an event envelope that carries its outbox's epoch (PROTOCOL.md 2.4)
MAX_ID_LEN = 64
MAX_DEPTH = 32  # nesting of JSON objects and arrays
MAX_SAFE_INT = 2**53 - 1  # the largest integer every JSON reader holds exactly
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
SIG_RE = re.compile(r"^[0-9a-f]{128}$")
EPOCH_RE = re.compile(r"^[0-9a-f]{16}$")
HEAD_RE = re.compile(r"^[1-9][0-9]{0,15}:[0-9a-f]{64}$")  # N:HASH, a chain head a device witnesses
# RFC 3339 with an offset and milliseconds, as the contract requires (ASCII digits only).
TS_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}(Z|[+-][0-9]{2}:[0-9]{2})$"
)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
ENVELOPE_KEYS = frozenset({"v", "id", "hall", "device", "seq", "ts", "type", "body", "sig"})
KEYS_OF_VERSION = {VERSION: ENVELOPE_KEYS, VERSION_EPOCH: ENVELOPE_KEYS | {"epoch"}}
OPTIONAL_KEYS = {VERSION: frozenset(), VERSION_EPOCH: frozenset({"head"})}  # PROTOCOL.md 2.10


class WireError(ValueError):
    """A message that does not meet the wire contract. `reason` is a short machine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def canonical(obj: Any) -> bytes:
    """The canonical form that signatures cover."""
    return _CANONICAL.encode(obj).encode()


# what json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds at each call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_ts(moment: datetime) -> str:
    """RFC 3339 with milliseconds and the moment's own offset (it must be timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.isoformat(timespec="milliseconds")


def parse_ts(text: str) -> datetime:
    """A real moment (2026-02-30 or hour 25 match the pattern but are not), representable in UTC."""
    if not isinstance(text, str) or not TS_RE.fullmatch(text):
        raise ValueError(f"not an RFC 3339 timestamp with milliseconds and offset: {text!r}"[:200])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a real moment: {text!r}: {exc}") from exc
    return moment


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
    epoch: str | None = None  # the outbox epoch of a version 2 event; None in version 1
    head: str | None = None  # N:HASH, the hub's chain head the device witnesses (2.10), version 2 only

    def unsigned(self) -> dict[str, Any]:
        return _unsigned(self.id, self.hall, self.device, self.seq, self.ts, self.type, self.body,
                         self.epoch, self.head)

    @cached_property
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
    epoch: str | None = None,
    head: str | None = None,
) -> Envelope:
    """Build and sign an envelope. The published bytes are its canonical form with `sig`. With an
    `epoch` (16 lowercase hex: the outbox's) it is a version 2 envelope, without one version 1; a
    version 2 envelope may carry `head` (N:HASH), the chain head its device witnesses."""
    if epoch is not None and not EPOCH_RE.fullmatch(epoch):
        raise ValueError("an outbox epoch is 16 lowercase hex characters")
    if head is not None and (epoch is None or not HEAD_RE.fullmatch(head)):
        raise ValueError("a witnessed head is N:HASH (64 lowercase hex), in a version 2 envelope only")
    unsigned = _unsigned(id or uuid7(), hall, device, seq, ts, type, body, epoch, head)
    _reject_floats(unsigned, "envelope")
    sig = key.sign(canonical(unsigned)).signature.hex()
    raw = canonical({**unsigned, "sig": sig})
    return Envelope(
        id=unsigned["id"], hall=hall, device=device, seq=seq, ts=ts, type=type,
        body=body, sig=sig, raw=raw, epoch=epoch, head=head,
    )


def _unsigned(id: str, hall: str, device: str, seq: int, ts: str, type: str, body: dict[str, Any],
              epoch: str | None, head: str | None = None) -> dict[str, Any]:
    unsigned: dict[str, Any] = {
        "v": VERSION if epoch is None else VERSION_EPOCH,
        "id": id,
        "hall": hall,
        "device": device,
        "seq": seq,
        "ts": ts,
        "type": type,
        "body": body,
    }
    if epoch is not None:
        unsigned["epoch"] = epoch
    if head is not None:
        unsigned["head"] = head
    return unsigned


def parse(raw: bytes) -> Envelope:
    """Parse the envelope's shape (not its signature, not the body's schema). Raises WireError
    `malformed` for anything outside the contract, `non_canonical` for bytes that are not the
    canonical form of what they hold; never anything else."""
    obj = strict_json(raw)
    if not isinstance(obj, dict):
        raise WireError("malformed", "envelope is not a JSON object")
    version = obj.get("v")
    if type(version) is not int or version not in KEYS_OF_VERSION:
        raise WireError("malformed", f"unsupported version {version!r}"[:200])
    keys, expected = set(obj), KEYS_OF_VERSION[version]
    if keys - OPTIONAL_KEYS[version] != expected:
        missing, extra = expected - keys, keys - expected
        raise WireError("malformed", f"envelope keys: missing {sorted(missing)}, extra {sorted(extra)}"[:300])
    if version == VERSION_EPOCH and not (isinstance(obj["epoch"], str) and EPOCH_RE.fullmatch(obj["epoch"])):
        raise WireError("malformed", f"bad field 'epoch': {obj['epoch']!r}"[:200])
    if "head" in obj and not (isinstance(obj["head"], str) and HEAD_RE.fullmatch(obj["head"])):
        raise WireError("malformed", f"bad field 'head': {obj['head']!r}"[:200])
    moment = _real_ts(obj["ts"]) if isinstance(obj["ts"], str) else None
    checks = (
        (isinstance(obj["id"], str) and 0 < len(obj["id"]) <= MAX_ID_LEN
         and not CONTROL_RE.search(obj["id"]), "id"),
        (isinstance(obj["hall"], str) and NAME_RE.fullmatch(obj["hall"]), "hall"),
        (isinstance(obj["device"], str) and NAME_RE.fullmatch(obj["device"]), "device"),
        (type(obj["seq"]) is int and 1 <= obj["seq"] <= MAX_SAFE_INT, "seq"),
        (moment is not None, "ts"),
        (isinstance(obj["type"], str) and NAME_RE.fullmatch(obj["type"]), "type"),
        (isinstance(obj["body"], dict), "body"),
        (isinstance(obj["sig"], str) and SIG_RE.fullmatch(obj["sig"]), "sig"),
    )
    for ok, field in checks:
        if not ok:
            raise WireError("malformed", f"bad field {field!r}: {obj[field]!r}"[:200])
    if canonical(obj) != raw:
        raise WireError("non_canonical", "the bytes are not the envelope's canonical form")
    envelope = Envelope(
        id=obj["id"], hall=obj["hall"], device=obj["device"], seq=obj["seq"], ts=obj["ts"],
        type=obj["type"], body=obj["body"], sig=obj["sig"], raw=bytes(raw), epoch=obj.get("epoch"),
        head=obj.get("head"),
    )
    envelope.__dict__["timestamp"] = moment  # read once here: the cached_property's value
    return envelope


def strict_json(raw: bytes, *, floats: bool = False) -> Any:
    """JSON from untrusted bytes, or WireError('malformed'): UTF-8 only, nesting up to MAX_DEPTH,
    integers within +-MAX_SAFE_INT, no duplicate keys, no NaN or Infinity, no lone surrogates, and
    no floats unless `floats`."""
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("malformed", f"not UTF-8: {exc}") from exc
    if _depth(text) > MAX_DEPTH:
        raise WireError("malformed", f"nested deeper than {MAX_DEPTH}")
    try:
        value = (_FLOAT_DECODER if floats else _DECODER).decode(text)
        if _SURROGATE_ESCAPE_RE.search(text):  # "\ud800" alone decodes, then cannot be encoded
            canonical(value)
    except _Refused as exc:
        raise WireError("malformed", str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise WireError("malformed", f"not JSON: {exc.msg} at {exc.pos}") from exc
    except UnicodeEncodeError as exc:
        raise WireError("malformed", "a string holds a lone surrogate") from exc
    except RecursionError as exc:  # the depth scan makes this unreachable for valid JSON
        raise WireError("malformed", f"nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise WireError("malformed", f"not JSON: {exc}"[:200]) from exc
    return value


def verify(envelope: Envelope, public_key: PublicKey) -> None:
    """Raise WireError('bad_signature') unless the signature holds over the canonical form."""
    try:
        public_key.verify(_signed_bytes(envelope), bytes.fromhex(envelope.sig))
    except BadSignatureError as exc:
        raise WireError("bad_signature", f"signature of {envelope.id} does not verify") from exc


def _signed_bytes(envelope: Envelope) -> bytes:
    """The canonical form without `sig`: the raw bytes less their `sig` pair, when they are canonical
    (parsed or sealed here: the top-level `sig` is the last `,"sig":"` in them, as only `ts`, `type`
    and `v` sort after it), else serialised again."""
    pair = b',"sig":"' + envelope.sig.encode("ascii") + b'"'
    at = envelope.raw.rfind(pair)
    if at > 0 and envelope.raw[at + len(pair):at + len(pair) + 6] == b',"ts":':
        return envelope.raw[:at] + envelope.raw[at + len(pair):]
    return canonical(envelope.unsigned())


def open_signed(raw: bytes, public_key: PublicKey) -> Envelope:
    envelope = parse(raw)
    verify(envelope, public_key)
    return envelope


class _Refused(Exception):
    """Raised by the JSON hooks: what the contract does not allow."""


def _no_float(text: str) -> float:
    raise _Refused("floating-point numbers are not allowed")


def _no_constant(text: str) -> float:
    raise _Refused(f"{text} is not allowed")


def _safe_int(text: str) -> int:
    if len(text) > 17:  # more digits than MAX_SAFE_INT: refused before converting
        raise _Refused(f"integer of {len(text)} digits is outside +-(2^53 - 1)")
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise _Refused(f"integer {value} is outside +-(2^53 - 1)")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key!r}"[:200])
            seen.add(key)
    return obj


_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET_RE = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")


def _decoder(parse_float: Callable[[str], float]) -> json.JSONDecoder:
    return json.JSONDecoder(parse_float=parse_float, parse_int=_safe_int, parse_constant=_no_constant,
                            object_pairs_hook=_no_duplicates)


_DECODER, _FLOAT_DECODER = _decoder(_no_float), _decoder(float)  # built once: both are stateless


def _depth(text: str) -> int:
    """How deep arrays and objects nest, without recursion (exact for valid JSON: strings are
    taken out first, so brackets inside them do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    brackets = _BRACKET_RE.findall(_STRING_RE.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _real_ts(text: str) -> datetime | None:
    try:
        return parse_ts(text)
    except ValueError:
        return None


def _reject_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"{path}: floating-point numbers are not allowed on the wire")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_floats(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_floats(item, f"{path}[{index}]")
