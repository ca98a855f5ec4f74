"""Simulated RDM6300 / EM4100 card reader on a pseudo-terminal (PROTOCOL.md section 2).

Frames are built here by this module's own code, straight from the protocol text, never from the
edge agent's codec, so one codec bug cannot make both sides agree.

Cards are given either as the 10 hex digits of the EM4100 data (`0A004A7B2C`) or as the 10-digit
decimal number printed on the card (`0004881196`). A string of 10 decimal digits is read as the
printed number: its value becomes the last 4 data bytes and the first (version) byte is 0x00. To
give hex data made only of decimal digits, or a first byte other than 0x00, write it with a `0x`
prefix (`0x6700395100`); `dec:` forces the decimal reading.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

_HEX10 = re.compile(r"[0-9A-Fa-f]{10}")
_DEC10 = re.compile(r"[0-9]{10}")
_AT = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def card_data(card: str) -> str:
    """The 10 uppercase hex digits of the EM4100 data for a card in either form (see above)."""
    text = card.strip()
    lowered = text.lower()
    if lowered.startswith("0x"):
        if not _HEX10.fullmatch(text[2:]):
            raise ValueError(f"card {card!r}: 0x needs 10 hex digits")
        return text[2:].upper()
    if lowered.startswith("dec:"):
        return _printed_to_data(card, text[4:])
    if _DEC10.fullmatch(text):
        return _printed_to_data(card, text)
    if _HEX10.fullmatch(text):
        return text.upper()
    raise ValueError(f"card {card!r}: expected 10 hex digits or the 10-digit printed number")


def _printed_to_data(card: str, digits: str) -> str:
    if not re.fullmatch(r"[0-9]{1,10}", digits) or int(digits) > 0xFFFFFFFF:
        raise ValueError(f"card {card!r}: the printed number is a decimal from 0 to 4294967295")
    return f"00{int(digits):08X}"


def build_frame(hex10: str, corrupt: bool = False) -> bytes:
    """0x02, 10 ASCII hex data digits, 2 ASCII hex digits of the XOR of the 5 data bytes, 0x03.
    With `corrupt`, the checksum is deliberately wrong."""
    if not _HEX10.fullmatch(hex10):
        raise ValueError(f"card data must be 10 hex digits, got {hex10!r}")
    digits = hex10.upper()
    xor = 0
    for offset in range(0, 10, 2):
        xor ^= int(digits[offset : offset + 2], 16)
    if corrupt:
        xor ^= 0x5A
    return b"\x02" + digits.encode("ascii") + f"{xor:02X}".encode("ascii") + b"\x03"


class HallClock(Protocol):
    """Any clock with hall time and a way to turn a hall moment into wall seconds to wait."""

    def now(self) -> datetime: ...

    def wall_seconds_until(self, moment: datetime) -> float: ...


@dataclass(frozen=True)
class Tap:
    card: str
    hold: float = 0.3
    interval: float = 0.1


@dataclass(frozen=True)
class Noise:
    data: bytes


@dataclass(frozen=True)
class Corrupt:
    card: str


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class At:
    """Wait until the hall clock's time of day reaches hour:minute (no wait if already past)."""

    hour: int
    minute: int


Step = Tap | Noise | Corrupt | Wait | At


class ScriptError(ValueError):
    """A script line that cannot be parsed; the message names the line number."""


def parse_script(text: str, default_hold: float = 0.3) -> list[Step]:
    """One step per line: `tap CARD [HOLD]`, `noise HEX...`, `corrupt CARD`, `wait SECONDS`,
    `at HH:MM`. Blank lines and `#` comments are ignored."""
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        try:
            steps.append(_parse_step(words, default_hold))
        except ValueError as exc:
            raise ScriptError(f"line {number}: {exc} (in {raw.strip()!r})") from exc
    return steps


def _parse_step(words: list[str], default_hold: float) -> Step:
    verb, args = words[0].lower(), words[1:]
    if verb == "tap":
        if len(args) not in (1, 2):
            raise ValueError("tap takes a card and an optional hold in seconds")
        hold = _seconds(args[1]) if len(args) == 2 else default_hold
        return Tap(card_data(args[0]), hold)
    if verb == "noise":
        if not args:
            raise ValueError("noise takes hex bytes")
        return Noise(bytes.fromhex("".join(args)))
    if verb == "corrupt":
        if len(args) != 1:
            raise ValueError("corrupt takes one card")
        return Corrupt(card_data(args[0]))
    if verb == "wait":
        if len(args) != 1:
            raise ValueError("wait takes seconds")
        return Wait(_seconds(args[0]))
    if verb == "at":
        match = _AT.fullmatch(args[0]) if len(args) == 1 else None
        if match is None:
            raise ValueError("at takes a time of day HH:MM")
        return At(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"unknown step {verb!r} (known: tap, noise, corrupt, wait, at)")


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"seconds must be a finite number >= 0, got {text!r}")
    return value


class SimClosed(OSError):
    """The simulator was closed while something still wrote to it."""


class CardReaderSim:
    """A card reader behind a pseudo-terminal: the agent opens `.path` like a USB-serial port.

    Writes wait at most `write_timeout` seconds for room; bytes nobody takes after that are lost,
    as on a real UART line, and counted in `dropped_bytes`.
    """

    def __init__(self, write_timeout: float = 1.0) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.write_timeout = write_timeout
        self.dropped_bytes = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def __enter__(self) -> CardReaderSim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        deadline = time.monotonic() + self.write_timeout
        view = memoryview(data)
        with self._lock:
            if self._closing.is_set():
                raise SimClosed("the card reader simulator is closed")
            while view:
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    written = 0  # the slave's input queue is full: wait for room below
                if written:
                    view = view[written:]
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.dropped_bytes += len(view)
                    return
                select.select([], [self._master], [], remaining)

    def tap(self, card: str, hold_seconds: float = 0.3, interval: float = 0.1) -> None:
        """Hold `card` on the reader: its frame every `interval` seconds for `hold_seconds`, at least
        once."""
        if interval <= 0:
            raise ValueError(f"tap interval must be > 0, got {interval}")
        frame = build_frame(card_data(card))
        started = time.monotonic()
        sent = 0
        while True:
            self.write(frame)
            sent += 1
            if sent * interval >= hold_seconds:
                return
            self._sleep(started + sent * interval - time.monotonic())

    def noise(self, data: bytes) -> None:
        self.write(data)

    def corrupt(self, card: str) -> None:
        self.write(build_frame(card_data(card), corrupt=True))

    def play(self, script: Sequence[Step], clock: HallClock | None = None) -> None:
        for step in script:
            if self._closing.is_set():
                raise SimClosed("the card reader simulator is closed")
            match step:
                case Tap(card, hold, interval):
                    self.tap(card, hold, interval)
                case Noise(data):
                    self.noise(data)
                case Corrupt(card):
                    self.corrupt(card)
                case Wait(seconds):
                    self._sleep(seconds)
                case At(hour, minute):
                    if clock is None:
                        raise ValueError(f"step 'at {hour:02d}:{minute:02d}' needs a clock")
                    now = clock.now()
                    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
                    self._sleep(clock.wall_seconds_until(target))

    def close(self) -> None:
        """Close the pty (the agent's reads then fail as on an unplugged reader)."""
        self._closing.set()
        with self._lock:
            if self._master >= 0:
                os.close(self._master)
                os.close(self._slave)
                self._master = self._slave = -1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._closing.wait(seconds)
