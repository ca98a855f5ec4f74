"""Typed readings that drivers hand to the agent (a driver knows bytes and this, nothing more)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol


class Transport(Protocol):
    """What a driver reads from: pyserial in production, a pseudo-terminal or a fake in tests."""

    def read(self, size: int = 1) -> bytes: ...  # returns b"" on timeout

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CardRead:
    unit: str
    card: str  # 10 uppercase hex digits (EM4100 data)
    at: datetime  # hall time when the tap began


@dataclass(frozen=True)
class FaceView:
    """The face tracked on a camera frame, for a screen: its box (top, right, bottom, left in frame
    pixels) and what it waits for (`look`: being recognised, `blink`: recognised, waiting for a
    blink, `done`: its punch emitted)."""

    box: tuple[int, int, int, int]
    stage: Literal["look", "blink", "done"]


@dataclass(frozen=True)
class UnitFault:
    unit: str
    code: str  # bad_frame, port_lost, port_restored, ...
    count: int
    detail: str


class DeviceError(Exception):
    """The device or its port failed (unplugged, I/O error); the supervisor reopens it."""


@dataclass(frozen=True)
class ButtonPress:
    """One new key press on a ButtonBus device (never a retransmitted repeat)."""

    unit: str  # the configured unit that owns the address
    addr: int
    key: int  # key code, PROTOCOL.md section 3
    at: datetime  # hall time when the host first received it


@dataclass(frozen=True)
class DeviceHello:
    """A ButtonBus device announced itself (at power-up, and every 10 s on a point-to-point port)."""

    unit: str
    addr: int
    kind: int  # 1 evaluator, 2 desk box with away sign
    keys: int
    firmware: str  # "major.minor"


Reading = CardRead | UnitFault | ButtonPress | DeviceHello
