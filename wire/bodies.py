"""Schemas of the envelope bodies (PROTOCOL.md section 1, "Bodies").

Strict: unknown keys, floats and wrong types are refused, so the hub can quarantine them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from wire.envelope import TS_RE, WireError

MAX_PHOTO_B64 = (48 * 1024 * 4 + 2) // 3 + 4  # 48 KiB of JPEG, base64-encoded


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


CardHex = Annotated[StrictStr, Field(pattern=r"^[0-9A-F]{10}$")]
Timestamp = Annotated[StrictStr, Field(pattern=TS_RE.pattern)]


class ClockBody(_Body):
    method: Literal["card", "face", "card+face"]
    card: CardHex | None = None
    staff: StrictStr | None = None
    distance_milli: Annotated[StrictInt, Field(ge=0)] | None = None
    live: StrictBool | None = None
    photo: Annotated[StrictStr, Field(max_length=MAX_PHOTO_B64)] | None = None


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


class CommittedBody(_Body):
    seq: Annotated[StrictInt, Field(ge=0)]


BODIES: dict[str, type[_Body]] = {
    "clock": ClockBody,
    "rating": RatingBody,
    "sign": SignBody,
    "fault": FaultBody,
    "ack": AckBody,
}


def validate_body(type: str, body: dict[str, object]) -> _Body:
    """The typed body of an event, or WireError('malformed') naming what is wrong."""
    model = BODIES.get(type)
    if model is None:
        raise WireError("malformed", f"unknown event type {type!r}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise WireError("malformed", f"{type} body: {where}: {first['msg']}") from exc
