"""Simulated ButtonBus devices (PROTOCOL.md section 3) on a pseudo-terminal: an evaluator or a desk box
alone on a port (`PointToPointSim`), or several on a polled RS-485 bus (`PolledBusSim`).

Frames are built and parsed here by this module's own code, straight from the protocol text, never
from the edge agent's codec, so one codec bug cannot make both sides agree.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from device_sims.card import At, HallClock, Noise, ScriptError, SimClosed, Wait

HELLO, KEY, IDLE, ACK, SHOW, POLL = 0x01, 0x02, 0x03, 0x81, 0x82, 0x83
KINDS = {"evaluator": 1, "desk": 2}
DEFAULT_KEYS = {1: 5, 2: 7}  # evaluator: ratings 1..5; desk: 0x10-0x14, 0x18, 0x1F
MAX_REPEATS = 10
REPEAT_SECONDS = 0.3  # point-to-point: an unacknowledged KEY is sent again this often
HELLO_SECONDS = 10.0  # point-to-point: HELLO at start and this often
POWERED_UP = 0x01  # HELLO flags byte (frame version 2), bit 0: the first HELLO after power-up


def _crc_entry(value: int) -> int:
    for _ in range(8):
        value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return value


_CRC_TABLE = [_crc_entry(value) for value in range(256)]


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (table-driven, unlike the agent's bitwise loop)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def build_frame(addr: int, cmd: int, payload: bytes = b"", corrupt: bool = False) -> bytes:
    """0xAA 0x55, addr, cmd, len, payload, CRC-16/MODBUS low byte first; `corrupt` spoils the crc."""
    body = bytes([addr, cmd, len(payload)]) + payload
    crc = crc16(body) ^ (0x5A5A if corrupt else 0)
    return b"\xaa\x55" + body + bytes([crc & 0xFF, crc >> 8])


class HostFrameReader:
    """Collects the host's frames from the line; anything broken is dropped a byte at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """(addr, cmd, payload) of every good frame completed by `data`."""
        self._buffer += data
        found: list[tuple[int, int, bytes]] = []
        while len(self._buffer) >= 5:
            if self._buffer[:2] != b"\xaa\x55" or self._buffer[4] > 200:
                del self._buffer[:1]
                continue
            size = 5 + self._buffer[4] + 2
            if len(self._buffer) < size:
                break
            body = bytes(self._buffer[2 : size - 2])
            good = int.from_bytes(self._buffer[size - 2 : size], "little") == crc16(body)
            del self._buffer[: size if good else 1]
            if good:
                found.append((body[0], body[1], body[3:]))
        return found


@dataclass
class _PendingKey:
    seq: int
    key: int
    sends: int = 0
    last_sent: float = 0.0


class ButtonBox:
    """One device's state: its unacknowledged KEYs (oldest first), what it was shown, its counters.
    `acks_received` counts every ACK that reached it, ignored ones included. `hello_version` 2 (the
    default) sends the HELLO flags byte, bit 0 set at power-up; 1 sends the 4-byte HELLO of old."""

    def __init__(
        self, addr: int, kind: int, keys: int | None = None, firmware: tuple[int, int] = (1, 0),
        hello_version: int = 2,
    ) -> None:
        if not 0 <= addr <= 255 or kind not in DEFAULT_KEYS:
            raise ValueError(f"a box needs an address 0..255 and kind 1 or 2, got {addr}, {kind}")
        if hello_version not in (1, 2):
            raise ValueError(f"a HELLO is version 1 or 2, got {hello_version}")
        self.addr, self.kind, self.firmware, self.hello_version = addr, kind, firmware, hello_version
        self.keys = DEFAULT_KEYS[kind] if keys is None else keys
        self.shown: list[tuple[int, str]] = []
        self.repeats_sent = self.acks_received = self.keys_lost = 0  # lost: given up after 10 repeats
        self.needs_hello = True
        self._seq = 0
        self._pending: deque[_PendingKey] = deque()

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    def press(self, key: int) -> int:
        if not 0 <= key <= 255:
            raise ValueError(f"a key code is a byte, got {key}")
        seq, self._seq = self._seq, (self._seq + 1) % 256
        self._pending.append(_PendingKey(seq, key))
        return seq

    def restart(self) -> None:
        """Power cycle: pending keys are lost, the seq restarts at 0, a HELLO is due."""
        self._pending.clear()
        self._seq = 0
        self.needs_hello = True

    def hello_frame(self) -> bytes:
        """kind, keys, firmware major, minor; version 2 adds the flags byte: POWERED_UP in the first
        HELLO after power-up, clear in the periodic ones."""
        powered_up, self.needs_hello = self.needs_hello, False
        payload = bytes([self.kind, self.keys, *self.firmware])
        if self.hello_version == 2:
            payload += bytes([POWERED_UP if powered_up else 0])
        return build_frame(self.addr, HELLO, payload)

    @property
    def repeat_due(self) -> bool:
        """The next KEY to go is a repeat."""
        return bool(self._pending) and self._pending[0].sends > 0

    def key_due(self, now: float) -> float | None:
        """Monotonic time the oldest KEY is due (point-to-point), None when nothing is pending."""
        if not self._pending:
            return None
        oldest = self._pending[0]
        return now if oldest.sends == 0 else oldest.last_sent + REPEAT_SECONDS

    def key_frame(self, now: float) -> bytes | None:
        """The oldest unacknowledged KEY (a repeat if sent before); gives up after MAX_REPEATS."""
        while self._pending and self._pending[0].sends > MAX_REPEATS:
            self._pending.popleft()
            self.keys_lost += 1
        if not self._pending:
            return None
        oldest = self._pending[0]
        if oldest.sends:
            self.repeats_sent += 1
        oldest.sends += 1
        oldest.last_sent = now
        return build_frame(self.addr, KEY, bytes([oldest.seq, oldest.key]))

    def answer(self, now: float) -> bytes:
        """Polled mode: HELLO after power-up, else the oldest KEY, else IDLE."""
        if self.needs_hello:
            return self.hello_frame()
        return self.key_frame(now) or build_frame(self.addr, IDLE)

    def receive(self, cmd: int, payload: bytes, ignore_ack: bool = False) -> None:
        if cmd == ACK and len(payload) == 1:
            self.acks_received += 1
            if not ignore_ack:
                self._pending = deque(p for p in self._pending if p.seq != payload[0])
        elif cmd == SHOW and payload:
            self.shown.append((payload[0], payload[1:].decode("utf-8", errors="replace")))


@dataclass(frozen=True)
class Press:
    addr: int | None  # None: the only device of a point-to-point port
    key: int


@dataclass(frozen=True)
class Corrupt:
    """A frame with a bad crc on the line."""


Step = Press | Noise | Corrupt | Wait | At


class _ButtonBusSim:
    """A pseudo-terminal and one named thread serving it; the agent opens `.path` like a serial port.
    Writes wait at most `write_timeout` seconds for room; bytes nobody takes are counted as dropped."""

    def __init__(self, boxes: Sequence[ButtonBox], polled: bool, write_timeout: float = 1.0) -> None:
        self.boxes = {box.addr: box for box in boxes}
        if len(self.boxes) != len(boxes) or not boxes:
            raise ValueError("the boxes need distinct addresses, at least one")
        self.polled = polled
        self.write_timeout = write_timeout
        self.dropped_bytes = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._state = threading.Condition()  # guards the boxes and the counters below
        self._write_lock = threading.Lock()
        self._closing = threading.Event()
        self._acks_to_drop = 0
        self._next_hello = time.monotonic()
        self._hello_before_repeat = False
        self._reader = HostFrameReader()
        self._thread = threading.Thread(target=self._serve, name=f"buttonbus-sim-{self.path}", daemon=True)
        self._thread.start()

    def __enter__(self) -> _ButtonBusSim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the test's or the script's hand --------------------------------------------------

    def press(self, addr: int | None, key: int) -> int:
        """Queue a key press with a new seq on the box at `addr`; returns the seq."""
        if addr is None:
            if self.polled:
                raise ValueError("a press on a bus needs the device address")
            addr = next(iter(self.boxes))
        if addr not in self.boxes:
            raise ValueError(f"no device at address {addr} (hosted: {sorted(self.boxes)})")
        if self._closing.is_set():
            raise SimClosed("the ButtonBus simulator is closed")
        with self._state:
            seq = self.boxes[addr].press(key)
        self._wake()
        return seq

    def restart(self, addr: int | None = None) -> None:
        """Power cycle one box (all boxes when `addr` is None)."""
        with self._state:
            for box in self.boxes.values():
                if addr is None or box.addr == addr:
                    box.restart()
            self._next_hello = time.monotonic()
        self._wake()

    def hello_before_next_repeat(self) -> None:
        """Point-to-point: send the periodic HELLO (bit 0 clear) right before the next repeated KEY, as
        when an ACK is lost just as the HELLO's 10 s are up."""
        if self.polled:
            raise ValueError("on a polled bus a device answers POLLs; it sends no periodic HELLO")
        with self._state:
            self._hello_before_repeat = True

    def noise(self, data: bytes) -> None:
        self.write(data)

    def corrupt(self) -> None:
        self.write(build_frame(next(iter(self.boxes)), KEY, b"\xee\x01", corrupt=True))

    def drop_acks(self, count: int) -> None:
        """Ignore the next `count` ACKs (any address), so the keys they acknowledge are repeated."""
        with self._state:
            self._acks_to_drop += count

    def wait_acked(self, timeout: float) -> bool:
        """True once every pressed key is acknowledged; False on timeout or when a key was given up."""
        with self._state:
            boxes = self.boxes.values()
            self._state.wait_for(
                lambda: all(b.unacknowledged == 0 for b in boxes) or any(b.keys_lost for b in boxes), timeout
            )
            return all(b.unacknowledged == 0 and not b.keys_lost for b in boxes)

    def play(self, script: Sequence[Step], clock: HallClock | None = None) -> None:
        for step in script:
            if self._closing.is_set():
                raise SimClosed("the ButtonBus simulator is closed")
            match step:
                case Press(addr, key):
                    self.press(addr, key)
                case Noise(data):
                    self.noise(data)
                case Corrupt():
                    self.corrupt()
                case Wait(seconds):
                    self._closing.wait(seconds)
                case At(hour, minute):
                    if clock is None:
                        raise ValueError(f"step 'at {hour:02d}:{minute:02d}' needs a clock")
                    target = clock.now().replace(hour=hour, minute=minute, second=0, microsecond=0)
                    self._closing.wait(clock.wall_seconds_until(target))

    def close(self) -> None:
        """Stop serving and close the pty (the agent's reads then fail as on an unplugged device)."""
        self._closing.set()
        self._wake()
        self._thread.join(2.0)
        with self._write_lock:
            for fd in (self._master, self._slave, self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = self._wake_r = self._wake_w = -1

    # --- the line ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        deadline = time.monotonic() + self.write_timeout
        view = memoryview(data)
        with self._write_lock:
            if self._closing.is_set():
                raise SimClosed("the ButtonBus simulator is closed")
            while view:
                try:
                    view = view[os.write(self._master, view) :]
                    continue
                except BlockingIOError:
                    pass  # the slave's input queue is full: wait for room below
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.dropped_bytes += len(view)
                    return
                select.select([], [self._master], [], remaining)

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"!")
            except OSError:
                return  # closed meanwhile: nobody to wake

    def _serve(self) -> None:
        while not self._closing.is_set():
            timeout = self._speak(time.monotonic()) if not self.polled else None
            readable, _, _ = select.select([self._master, self._wake_r], [], [], timeout)
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
            if self._master in readable and not self._closing.is_set():
                try:
                    data = os.read(self._master, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    return  # the line is gone
                for addr, cmd, payload in self._reader.feed(data):
                    self._on_host_frame(addr, cmd, payload)

    def _speak(self, now: float) -> float:
        """Point-to-point: send what is due on the device's own initiative; seconds until the next."""
        box = next(iter(self.boxes.values()))
        with self._state:
            frames = []
            if now >= self._next_hello:
                frames.append(box.hello_frame())
                self._next_hello = now + HELLO_SECONDS
            due = box.key_due(now)
            if due is not None and due <= now:
                if self._hello_before_repeat and box.repeat_due:
                    self._hello_before_repeat = False
                    frames.append(box.hello_frame())
                    self._next_hello = now + HELLO_SECONDS
                if (frame := box.key_frame(now)) is not None:
                    frames.append(frame)
            self._state.notify_all()  # a key may have been given up
            due = box.key_due(now)
            next_at = min(self._next_hello, due if due is not None else self._next_hello)
        for frame in frames:
            self.write(frame)
        return max(next_at - now, 0.0)

    def _on_host_frame(self, addr: int, cmd: int, payload: bytes) -> None:
        box = self.boxes.get(addr)
        if box is None:
            return  # another device's frame on the bus
        with self._state:
            ignore = cmd == ACK and self._acks_to_drop > 0
            if ignore:
                self._acks_to_drop -= 1
            box.receive(cmd, payload, ignore_ack=ignore)
            answer = box.answer(time.monotonic()) if cmd == POLL and self.polled else None
            self._state.notify_all()
        if answer is not None:
            self.write(answer)


class PointToPointSim(_ButtonBusSim):
    """One evaluator or desk box alone on a port: HELLO at start (power-up flag set) and every 10 s
    (flag clear), each KEY on its own, an unacknowledged KEY again every 300 ms, up to 10 times."""

    def __init__(self, box: ButtonBox, write_timeout: float = 1.0) -> None:
        super().__init__([box], polled=False, write_timeout=write_timeout)
        self.box = box


class PolledBusSim(_ButtonBusSim):
    """Several boxes on one RS-485 port: silent unless polled; each POLL to a hosted address is
    answered at once with a HELLO after power-up, the oldest unacknowledged KEY (a repeat if sent
    before, up to 10 times), or IDLE."""

    def __init__(self, boxes: Sequence[ButtonBox], write_timeout: float = 1.0) -> None:
        super().__init__(boxes, polled=True, write_timeout=write_timeout)


def parse_script(text: str, addresses: Collection[int], need_addr: bool) -> list[Step]:
    """One step per line: `press [ADDR] KEY` (ADDR required on a bus), `noise HEX...`, `corrupt`,
    `wait SECONDS`, `at HH:MM`. Numbers may be written 0x..; blank lines and `#` comments are ignored."""
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        try:
            steps.append(_parse_step(words, addresses, need_addr))
        except ValueError as exc:
            raise ScriptError(f"line {number}: {exc} (in {raw.strip()!r})") from exc
    return steps


def _parse_step(words: list[str], addresses: Collection[int], need_addr: bool) -> Step:
    verb, args = words[0].lower(), words[1:]
    if verb == "press":
        if len(args) not in ((2,) if need_addr else (1, 2)):
            raise ValueError("press takes ADDR KEY" if need_addr else "press takes [ADDR] KEY")
        addr = _byte(args[0], "address") if len(args) == 2 else None
        if addr is not None and addr not in addresses:
            raise ValueError(f"no device at address {addr} (known: {sorted(addresses)})")
        return Press(addr, _byte(args[-1], "key code"))
    if verb == "noise" and args:
        return Noise(bytes.fromhex("".join(args)))
    if verb == "corrupt" and not args:
        return Corrupt()
    if verb == "wait" and len(args) == 1:
        if not 0 <= float(args[0]) < float("inf"):
            raise ValueError(f"seconds must be a finite number >= 0, got {args[0]!r}")
        return Wait(float(args[0]))
    if verb == "at" and len(args) == 1 and (match := _AT.fullmatch(args[0])):
        return At(int(match.group(1)), int(match.group(2)))
    if verb in _USAGE:
        raise ValueError(_USAGE[verb])
    raise ValueError(f"unknown step {verb!r} (known: press, {', '.join(_USAGE)})")


_AT = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_USAGE = {
    "noise": "noise takes hex bytes",
    "corrupt": "corrupt takes nothing",
    "wait": "wait takes seconds",
    "at": "at takes a time of day HH:MM",
}


def _byte(text: str, what: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= 255:
        raise ValueError(f"{what} must be 0..255, got {text!r}")
    return value
