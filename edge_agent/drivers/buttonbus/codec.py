"""ButtonBus frame codec (PROTOCOL.md section 3). Pure: bytes in, frames out; no I/O.

Frame: ``0xAA 0x55 | addr | cmd | len | payload (len bytes, 0..200) | crc (2, low byte first)``, the
crc being CRC-16/MODBUS over addr, cmd, len and payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

SYNC = b"\xaa\x55"
HEADER_LENGTH = 5  # sync pair, addr, cmd, len
CRC_LENGTH = 2
MAX_PAYLOAD = 200
SHOW_TEXT_MAX_BYTES = 64

# device to host
HELLO = 0x01
KEY = 0x02
IDLE = 0x03
# host to device
ACK = 0x81
SHOW = 0x82
POLL = 0x83

COMMANDS = frozenset({HELLO, KEY, IDLE, ACK, SHOW, POLL})
DEVICE_COMMANDS = frozenset({HELLO, KEY, IDLE})
HOST_COMMANDS = frozenset({ACK, SHOW, POLL})

KIND_EVALUATOR = 1
KIND_DESK = 2
HELLO_POWERED_UP = 0x01  # HELLO flags (frame version 2), bit 0: the device has just powered up


class DisplayMode(IntEnum):
    IDLE = 0
    INVITE = 1
    THANKS = 2
    ON_DUTY = 3
    AWAY = 4
    PAUSED = 5


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, initial value 0xFFFF, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def encode(addr: int, cmd: int, payload: bytes = b"") -> bytes:
    """One complete frame, sync pair to crc."""
    if not 0 <= addr <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ValueError(f"addr and cmd are single bytes, got addr={addr} cmd={cmd}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload holds at most {MAX_PAYLOAD} bytes, got {len(payload)}")
    body = bytes((addr, cmd, len(payload))) + payload
    return SYNC + body + crc16_modbus(body).to_bytes(2, "little")


@dataclass(frozen=True)
class Frame:
    addr: int
    cmd: int
    payload: bytes


class FrameParser:
    """Incremental parser. `feed` returns every valid frame completed by the chunk, in order, and never
    raises.

    Counters (monotonically increasing):
    - `frames`: valid frames returned;
    - `bad_frames`: frames started by a sync pair but rejected (bad crc, unknown cmd, len over 200);
    - `skipped_bytes`: bytes discarded while hunting for the next sync pair, including the rest of a
      rejected frame after its sync pair (a sync pair inside a rejected frame starts the next frame).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.bad_frames = 0
        self.skipped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a frame not yet complete."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer.extend(chunk)
        frames: list[Frame] = []
        while self._hunt():
            if len(self._buffer) < HEADER_LENGTH:
                break
            cmd, length = self._buffer[3], self._buffer[4]
            if cmd not in COMMANDS or length > MAX_PAYLOAD:
                self._reject()
                continue
            total = HEADER_LENGTH + length + CRC_LENGTH
            if len(self._buffer) < total:
                break  # wait for the rest
            body = bytes(self._buffer[2 : total - CRC_LENGTH])
            if crc16_modbus(body) != int.from_bytes(self._buffer[total - CRC_LENGTH : total], "little"):
                self._reject()
                continue
            del self._buffer[:total]
            self.frames += 1
            frames.append(Frame(body[0], body[1], body[3:]))
        return frames

    def _hunt(self) -> bool:
        """Drop bytes before the next sync pair; True when the buffer starts with one."""
        start = self._buffer.find(SYNC)
        if start < 0:
            # keep a trailing 0xAA: it may be the first half of a sync pair split across chunks
            start = len(self._buffer) - 1 if self._buffer.endswith(SYNC[:1]) else len(self._buffer)
        self.skipped_bytes += start
        del self._buffer[:start]
        return self._buffer.startswith(SYNC)

    def _reject(self) -> None:
        """Count a bad frame and drop its sync pair; hunting then resumes inside the frame."""
        self.bad_frames += 1
        del self._buffer[: len(SYNC)]


@dataclass(frozen=True)
class Hello:
    kind: int  # 1 evaluator, 2 desk box with away sign
    keys: int
    fw_major: int
    fw_minor: int
    flags: int | None = None  # the flags byte of a version 2 HELLO; None for version 1

    @property
    def firmware(self) -> str:
        return f"{self.fw_major}.{self.fw_minor}"

    @property
    def version(self) -> int:
        return 1 if self.flags is None else 2

    @property
    def powered_up(self) -> bool:
        """Bit 0 of the flags. A version 1 HELLO cannot tell, so it counts as a power-up."""
        return self.flags is None or bool(self.flags & HELLO_POWERED_UP)


def parse_hello(payload: bytes) -> Hello:
    """Version 1: kind, keys, firmware major, minor. Version 2 adds a flags byte: bit 0 set at
    power-up, clear on the periodic HELLO; bits 1-7 are reserved and ignored."""
    if len(payload) == 4:
        return Hello(payload[0], payload[1], payload[2], payload[3])
    if len(payload) == 5:
        return Hello(payload[0], payload[1], payload[2], payload[3], payload[4])
    raise ValueError(f"a HELLO payload is 4 bytes (version 1) or 5 (version 2), got {len(payload)}")


def parse_key(payload: bytes) -> tuple[int, int]:
    """(seq, key code) of a KEY payload."""
    if len(payload) != 2:
        raise ValueError(f"a KEY payload is 2 bytes, got {len(payload)}")
    return payload[0], payload[1]


def show_payload(mode: int, text: str) -> bytes:
    """A SHOW payload: the mode byte, then `text` as UTF-8 cut to at most 64 bytes on a character
    boundary."""
    if not 0 <= mode <= 0xFF:
        raise ValueError(f"a display mode is one byte, got {mode}")
    encoded = text.encode("utf-8")[:SHOW_TEXT_MAX_BYTES]
    # drop a multi-byte character cut in half (at most 3 trailing bytes of one)
    return bytes((mode,)) + encoded.decode("utf-8", errors="ignore").encode("utf-8")
