"""Ingest: wire bytes to domain objects. Every message becomes a StoredEvent or a Quarantined with
its reason; nothing here raises on input and nothing is dropped.

Order of checks: size, JSON shape and canonical form, known device, signature (before trusting any
field), then the topic/envelope agreement, a device time no more than FUTURE_LIMIT ahead of receipt,
and the body's schema.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from hub.domain import Quarantined, StoredEvent
from hub.sigcheck import Check, holds
from wire import topics
from wire.bodies import validate_body
from wire.envelope import Envelope, PublicKey, WireError, bad_signature, format_ts, parse, signed_bytes

log = logging.getLogger(__name__)
FUTURE_LIMIT = timedelta(days=1)  # a reading this far ahead of its receipt is `future_ts`


class Unverified(NamedTuple):
    """An event whose signature is still to be checked (`check`), as `Decoder.open` left it."""

    topic: str
    payload: bytes
    received_at: datetime
    parts: topics.TopicParts | None
    envelope: Envelope
    check: Check


class Decoder:
    def __init__(
        self,
        hall: str,
        prefix: str,
        device_keys: Mapping[str, PublicKey],
        max_bytes: int,
    ) -> None:
        self.hall = hall
        self.prefix = prefix
        self.device_keys = device_keys
        self.max_bytes = max_bytes

    def decode(self, topic: str, payload: bytes, received_at: datetime,
               parts: topics.TopicParts | None = None) -> StoredEvent | Quarantined:
        """`parts`: the topic as the caller split it (`topics.split`), or None to split it here."""
        opened = self.open(topic, payload, received_at, parts or topics.split(self.prefix, topic))
        if isinstance(opened, Quarantined):
            return opened
        return self.close(opened, holds(opened.check))

    def open(self, topic: str, payload: bytes, received_at: datetime,
             parts: topics.TopicParts | None) -> Unverified | Quarantined:
        """The checks before the signature's; `close` takes the event on once its signature is
        checked (hub/sigcheck.py checks a batch's in a process of its own)."""
        try:
            return self._open(topic, payload, received_at, parts)
        except WireError as exc:
            return Quarantined(received_at, topic, exc.reason, exc.detail[:500], payload)
        except Exception as exc:  # the last line of defence (the tests make sure it is never reached)
            return _internal_error(topic, payload, received_at, exc)

    def close(self, opened: Unverified, signature_holds: bool) -> StoredEvent | Quarantined:
        """The checks after the signature's, which `signature_holds` answers."""
        try:
            if not signature_holds:
                raise bad_signature(opened.envelope)
            return self._close(opened)
        except WireError as exc:
            return Quarantined(opened.received_at, opened.topic, exc.reason, exc.detail[:500],
                               opened.payload)
        except Exception as exc:  # the last line of defence
            return _internal_error(opened.topic, opened.payload, opened.received_at, exc)

    def _open(self, topic: str, payload: bytes, received_at: datetime,
              parts: topics.TopicParts | None) -> Unverified:
        if len(payload) > self.max_bytes:
            raise WireError("oversize", f"{len(payload)} bytes, limit {self.max_bytes}")
        envelope = parse(payload)
        key = self.device_keys.get(envelope.device)
        if key is None:
            raise WireError("unknown_device", f"device {envelope.device!r} is not registered")
        check = Check(bytes(key), bytes.fromhex(envelope.sig), signed_bytes(envelope))
        return Unverified(topic, payload, received_at, parts, envelope, check)

    def _close(self, opened: Unverified) -> StoredEvent:
        envelope, parts, topic, received_at = opened.envelope, opened.parts, opened.topic, opened.received_at
        expected = (self.hall, envelope.device, "evt", envelope.type)
        if parts is None or (parts.hall, parts.device, parts.kind, parts.name) != expected:
            raise WireError(
                "topic_mismatch",
                f"topic {topic!r} does not match envelope {envelope.hall}/{envelope.device}/"
                f"{envelope.type}",
            )
        if envelope.hall != self.hall:
            raise WireError("topic_mismatch", f"envelope hall {envelope.hall!r} is not {self.hall!r}")
        if envelope.timestamp - received_at > FUTURE_LIMIT:
            raise WireError("future_ts", f"ts {envelope.ts} is more than {FUTURE_LIMIT} after its "
                                         f"receipt at {format_ts(received_at)}")
        validate_body(envelope.type, envelope.body)
        if envelope.type == "witness" and envelope.head is None:
            raise WireError("malformed", "a witness event without the head it witnesses")
        return StoredEvent(
            id=envelope.id,
            hall=envelope.hall,
            device=envelope.device,
            seq=envelope.seq,
            type=envelope.type,
            ts=envelope.timestamp,
            received_at=received_at,
            body=envelope.body,
            raw=envelope.raw,
            epoch=envelope.epoch,
            ts_text=envelope.ts,
        )


def _internal_error(topic: str, payload: bytes, received_at: datetime, exc: Exception) -> Quarantined:
    log.exception("decoding a message on %s failed", topic)
    return Quarantined(received_at, topic, "internal_error", f"{type(exc).__name__}: {exc}"[:500], payload)
