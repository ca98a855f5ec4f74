"""Schemas of the envelope bodies (PROTOCOL.md section 1, "Bodies").

Strict: unknown keys, floats and wrong types are refused, so the hub can quarantine them.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from wire.envelope import HEAD_RE, WireError, parse_ts

MAX_PHOTO_BYTES = 48 * 1024  # a face snapshot (JPEG)
MAX_PHOTO_B64 = (MAX_PHOTO_BYTES * 4 + 2) // 3 + 4  # base64-encoded, inside a version-1 clock body


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _real_moment(text: str) -> str:
    parse_ts(text)  # the pattern, then a real date and time: 2026-02-30 or 25:00 are refused
    return text


CardHex = Annotated[StrictStr, Field(pattern=r"^[0-9A-F]{10}$")]
Head = Annotated[StrictStr, Field(pattern=HEAD_RE.pattern)]  # N:HASH of the hub's audit chain
Timestamp = Annotated[StrictStr, AfterValidator(_real_moment)]


class ClockBody(_Body):
    method: Literal["card", "face", "card+face"]
    card: CardHex | None = None
    staff: StrictStr | None = None
    distance_milli: Annotated[StrictInt, Field(ge=0)] | None = None
    live: StrictBool | None = None
    photo: Annotated[StrictStr, Field(max_length=MAX_PHOTO_B64)] | None = None  # version 1
    photo_sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")] | None = None  # 2.7


class RatingBody(_Body):
    window: StrictStr
    level: Annotated[StrictInt, Field(ge=1, le=5)]
    keys: Annotated[StrictInt, Field(ge=1, le=16)]
    invited: StrictBool
    invite: StrictStr | None
    ticket: StrictStr | None


class SignBody(_Body):
    window: StrictStr
    desk: StrictStr
    state: Literal["on_duty", "away", "paused"]
    reason: Literal["meeting", "errand", "break", "field", "other"] | None
    back_at: Timestamp | None


class FaultBody(_Body):
    unit: StrictStr
    code: Annotated[StrictStr, Field(pattern=r"^[a-z0-9_]{1,40}$")]
    count: Annotated[StrictInt, Field(ge=0)]
    detail: Annotated[StrictStr, Field(max_length=500)]


class AckBody(_Body):
    cmd: StrictStr
    ok: StrictBool
    error: StrictStr | None


class WitnessBody(_Body):
    """A device's witness heartbeat (PROTOCOL.md 2.10): no body; the envelope's `head` is the point."""


class CommittedBody(_Body):
    """The hub's watermark. `epoch` is the outbox epoch the seq counts in (PROTOCOL.md 2.4); absent
    for a device whose events carry none (version 1). `head`: the audit chain's head, for a device
    that witnesses (2.10)."""

    seq: Annotated[StrictInt, Field(ge=0)]
    epoch: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{16}$")] | None = None
    head: Head | None = None


class StateBody(_Body):
    """The body of a signed `state` (PROTOCOL.md 2.5). Not an event: not in BODIES."""

    online: StrictBool
    version: StrictStr
    units: dict[StrictStr, object]
    ready: StrictBool = False  # absent: not ready
    witness: StrictBool = False  # 2.10: it signs the heads the hub sends it (absent: it does not)


class _HubBody(BaseModel):
    """What the hub sends the edges: keys a newer hub adds are ignored, the rest is strict."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class RosterMember(_HubBody):
    id: StrictStr
    name: StrictStr = ""
    window: StrictStr | None = None
    cards: list[StrictStr] = []


class GalleryEntry(_HubBody):
    staff: StrictStr
    encoding: Annotated[list[StrictInt], Field(min_length=128, max_length=128)]


class RosterBody(_HubBody):
    staff: list[RosterMember] = []
    windows: list[StrictStr] = []
    gallery: list[GalleryEntry] = []


BODIES: dict[str, type[_Body]] = {
    "clock": ClockBody,
    "rating": RatingBody,
    "sign": SignBody,
    "fault": FaultBody,
    "ack": AckBody,
    "witness": WitnessBody,
}


Model = TypeVar("Model", bound=BaseModel)


def validate_body(type: str, body: dict[str, object]) -> _Body:
    """The typed body of an event, or WireError('malformed') naming what is wrong."""
    model = BODIES.get(type)
    if model is None:
        raise WireError("malformed", f"unknown event type {type!r}"[:200])
    return checked(model, body, type)


def checked(model: type[Model], body: object, what: str) -> Model:
    """`body` as `model`, or WireError('malformed') naming the first thing wrong with it."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise WireError("malformed", f"{what} body: {where}: {first['msg']}"[:300]) from exc
