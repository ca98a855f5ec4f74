"""Ingest: wire bytes to domain objects. Every message becomes a StoredEvent or a Quarantined with
its reason; nothing here raises on input and nothing is dropped.

Order of checks: size, JSON shape and canonical form, known device, signature (before trusting any
field), then the topic/envelope agreement, a device time no more than FUTURE_LIMIT ahead of receipt,
and the body's schema.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from hub.domain import Quarantined, StoredEvent
from wire import topics
from wire.bodies import validate_body
from wire.envelope import PublicKey, WireError, format_ts, parse, parse_ts, verify

log = logging.getLogger(__name__)
FUTURE_LIMIT = timedelta(days=1)  # a reading this far ahead of its receipt is `future_ts`


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

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> StoredEvent | Quarantined:
        try:
            return self._decode(topic, payload, received_at, topics.split(self.prefix, topic))
        except WireError as exc:
            return Quarantined(received_at, topic, exc.reason, exc.detail[:500], payload)
        except Exception as exc:  # the last line of defence (the tests make sure it is never reached)
            log.exception("decoding a message on %s failed", topic)
            detail = f"{type(exc).__name__}: {exc}"[:500]
            return Quarantined(received_at, topic, "internal_error", detail, payload)

    def _decode(self, topic: str, payload: bytes, received_at: datetime,
                parts: topics.TopicParts | None) -> StoredEvent:
        if len(payload) > self.max_bytes:
            raise WireError("oversize", f"{len(payload)} bytes, limit {self.max_bytes}")
        envelope = parse(payload)
        key = self.device_keys.get(envelope.device)
        if key is None:
            raise WireError("unknown_device", f"device {envelope.device!r} is not registered")
        verify(envelope, key)
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


def decoded_again(topic: str, payload: bytes, received_at: datetime) -> StoredEvent:
    """The StoredEvent that `Decoder.decode` made of these bytes in the decoder process
    (hub/decoder_process.py), made again here without its checks: they held for exactly these bytes.
    A plain JSON read gives the same values the strict one did, as nothing it refuses is in them."""
    obj = json.loads(payload)
    return StoredEvent(
        id=obj["id"],
        hall=obj["hall"],
        device=obj["device"],
        seq=obj["seq"],
        type=obj["type"],
        ts=parse_ts(obj["ts"]),
        received_at=received_at,
        body=obj["body"],
        raw=bytes(payload),
        epoch=obj.get("epoch"),
        ts_text=obj["ts"],
    )
