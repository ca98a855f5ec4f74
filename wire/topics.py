"""MQTT topics of PROTOCOL.md section 1."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from wire.envelope import NAME_RE

DEFAULT_PREFIX = "hall/v1"


def event(prefix: str, hall: str, device: str, type: str) -> str:
    return f"{prefix}/{hall}/{device}/evt/{type}"


def state(prefix: str, hall: str, device: str) -> str:
    return f"{prefix}/{hall}/{device}/state"


def snapshot(prefix: str, hall: str, device: str) -> str:
    """A face snapshot's JPEG bytes, named by the SHA-256 its clock event signs (PROTOCOL.md 2.7)."""
    return f"{prefix}/{hall}/{device}/snapshot"


def command(prefix: str, hall: str, device: str, name: str) -> str:
    return f"{prefix}/{hall}/{device}/cmd/{name}"


def committed(prefix: str, hall: str, device: str) -> str:
    return f"{prefix}/{hall}/{device}/committed"


def roster(prefix: str, hall: str) -> str:
    return f"{prefix}/{hall}/roster"


def hub_subscriptions(prefix: str, hall: str) -> list[str]:
    return [f"{prefix}/{hall}/+/evt/#", f"{prefix}/{hall}/+/state", f"{prefix}/{hall}/+/snapshot"]


@dataclass(frozen=True)
class TopicParts:
    hall: str
    device: str
    kind: str  # "evt", "state", "snapshot", "cmd", "committed"
    name: str | None  # the event type or command name


@lru_cache(maxsize=4096)  # a hall's topics repeat with every message; TopicParts is immutable
def split(prefix: str, topic: str) -> TopicParts | None:
    """Split a device topic under `prefix`; None when it is not one of the contract's."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) < 3 or not NAME_RE.match(parts[0]) or not NAME_RE.match(parts[1]):
        return None
    hall, device, kind, *rest = parts
    if kind in ("state", "snapshot", "committed") and not rest:
        return TopicParts(hall, device, kind, None)
    if kind in ("evt", "cmd") and len(rest) == 1 and NAME_RE.match(rest[0]):
        return TopicParts(hall, device, kind, rest[0])
    return None
