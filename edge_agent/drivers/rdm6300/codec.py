"""RDM6300 / EM4100 frame codec (PROTOCOL.md section 2). Pure: bytes in, card data out; no I/O.

Frame: ``0x02 | 10 ASCII hex digits (5 data bytes) | 2 ASCII hex digits (XOR checksum) | 0x03``.
"""

from __future__ import annotations

from functools import reduce

STX = 0x02
ETX = 0x03
FRAME_LENGTH = 14  # STX + 10 data digits + 2 checksum digits + ETX
PHANTOM = "0000000000"
TAP_GAP_SECONDS = 1.0

_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def checksum(data: bytes) -> int:
    """XOR of the 5 card data bytes."""
    if len(data) != 5:
        raise ValueError(f"EM4100 card data is 5 bytes, got {len(data)}")
    return reduce(lambda acc, byte: acc ^ byte, data, 0)


def card_number(hex10: str) -> str:
    """The number printed on the card: decimal of the last 4 data bytes, zero-padded to 10 digits."""
    if len(hex10) != 10 or not all(ch in "0123456789abcdefABCDEF" for ch in hex10):
        raise ValueError(f"card data must be 10 hex digits, got {hex10!r}")
    return f"{int(hex10[2:], 16):010d}"


class FrameParser:
    """Incremental parser. `feed` returns the card data (10 uppercase hex digits) of every valid,
    non-phantom frame completed by the chunk, in order, and never raises.

    Counters (monotonically increasing):
    - `frames`: valid frames returned;
    - `phantom_reads`: valid frames with all-zero data (not returned);
    - `bad_frames`: frames started by 0x02 but broken (non-hex digit, bad checksum, missing 0x03,
      or cut short by the next 0x02); the bytes of a broken frame are counted here, not as skipped;
    - `skipped_bytes`: bytes outside any frame attempt (before the next 0x02).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.phantom_reads = 0
        self.bad_frames = 0
        self.skipped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a frame not yet complete (at most 13)."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer.extend(chunk)
        cards: list[str] = []
        while self._buffer:
            start = self._buffer.find(STX)
            if start < 0:
                self.skipped_bytes += len(self._buffer)
                self._buffer.clear()
                break
            if start:
                self.skipped_bytes += start
                del self._buffer[:start]
            broken_at = self._first_invalid_position()
            if broken_at is not None:
                self.bad_frames += 1
                # Resynchronise on a 0x02 inside the broken frame; otherwise drop through the bad byte.
                keep_from = broken_at if self._buffer[broken_at] == STX else broken_at + 1
                del self._buffer[:keep_from]
                continue
            if len(self._buffer) < FRAME_LENGTH:
                break  # a good prefix: wait for the rest
            frame = bytes(self._buffer[:FRAME_LENGTH])
            del self._buffer[:FRAME_LENGTH]
            card = self._decode(frame)
            if card is None:
                self.bad_frames += 1
            elif card == PHANTOM:
                self.phantom_reads += 1
            else:
                self.frames += 1
                cards.append(card)
        return cards

    def _first_invalid_position(self) -> int | None:
        """Index of the first byte that cannot belong to the frame starting at buffer[0]."""
        for index in range(1, min(len(self._buffer), FRAME_LENGTH)):
            byte = self._buffer[index]
            if index < FRAME_LENGTH - 1:
                if byte not in _HEX_DIGITS:
                    return index
            elif byte != ETX:
                return index
        return None

    @staticmethod
    def _decode(frame: bytes) -> str | None:
        """Card data of a structurally valid frame, or None when its checksum is wrong."""
        text = frame[1:13].decode("ascii").upper()
        data = bytes.fromhex(text[:10])
        if checksum(data) != int(text[10:], 16):
            return None
        return text[:10]


class TapDetector:
    """One tap is one reading: a tap lasts while frames of the same card keep coming less than
    `gap_seconds` apart (monotonic time); a different card always begins a new tap."""

    def __init__(self, gap_seconds: float = TAP_GAP_SECONDS) -> None:
        self.gap_seconds = gap_seconds
        self._card: str | None = None
        self._last_seen = 0.0

    def observe(self, card: str, mono: float) -> bool:
        """Record a frame of `card` seen at `mono`; True when it begins a new tap."""
        new_tap = self._card != card or mono - self._last_seen >= self.gap_seconds
        self._card = card
        self._last_seen = mono
        return new_tap
