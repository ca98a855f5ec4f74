"""ButtonBus codec: PROTOCOL.md section 3 crc, frames, resynchronisation, property tests, SHOW text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.drivers.buttonbus.codec import (
    ACK,
    HELLO,
    IDLE,
    KEY,
    POLL,
    SHOW,
    DisplayMode,
    Frame,
    FrameParser,
    Hello,
    crc16_modbus,
    encode,
    parse_hello,
    parse_key,
    show_payload,
)


def crc_of(data: bytes) -> int:
    """The test's own CRC-16/MODBUS, written from the protocol text."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(8):
            mixed = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if mixed:
                crc ^= 0xA001
    return crc


def frame_of(
    addr: int, cmd: int, payload: bytes = b"", crc: int | None = None, length: int | None = None
) -> bytes:
    """The test's own frame builder, independent of the codec; `crc`/`length` override for bad frames."""
    body = bytes([addr, cmd, len(payload) if length is None else length]) + payload
    value = crc_of(body) if crc is None else crc
    return bytes([0xAA, 0x55]) + body + bytes([value & 0xFF, value >> 8])


def test_crc_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37 == crc_of(b"123456789")
    assert crc16_modbus(b"") == 0xFFFF


def test_encode_matches_the_protocol_layout() -> None:
    assert encode(1, KEY, b"\x07\x05") == frame_of(1, KEY, b"\x07\x05")
    poll_crc = crc_of(bytes([3, 0x83, 0]))
    assert encode(3, POLL) == bytes([0xAA, 0x55, 3, 0x83, 0, poll_crc & 0xFF, poll_crc >> 8])
    assert len(encode(1, SHOW, bytes(200))) == 207
    with pytest.raises(ValueError):
        encode(1, SHOW, bytes(201))
    with pytest.raises(ValueError):
        encode(256, ACK, b"\x00")


@pytest.mark.parametrize(
    "frame",
    [
        Frame(1, HELLO, bytes([1, 5, 2, 3])),
        Frame(2, KEY, bytes([255, 0x10])),
        Frame(7, IDLE, b""),
        Frame(1, ACK, b"\x00"),
        Frame(0, SHOW, b"\x04" + "暂离".encode()),
        Frame(255, POLL, b""),
        Frame(9, SHOW, bytes(200)),
    ],
)
def test_round_trips(frame: Frame) -> None:
    assert FrameParser().feed(frame_of(frame.addr, frame.cmd, frame.payload)) == [frame]
    assert FrameParser().feed(encode(frame.addr, frame.cmd, frame.payload)) == [frame]


def test_payload_helpers() -> None:
    hello = parse_hello(bytes([2, 7, 1, 4]))
    assert hello == Hello(kind=2, keys=7, fw_major=1, fw_minor=4) and hello.firmware == "1.4"
    assert parse_key(bytes([0, 0x18])) == (0, 0x18)
    for bad in (b"", b"\x01", b"\x01\x02\x03"):
        with pytest.raises(ValueError):
            parse_key(bad)
    with pytest.raises(ValueError):
        parse_hello(b"\x01\x05\x01")
    assert [int(mode) for mode in DisplayMode] == [0, 1, 2, 3, 4, 5]
    assert DisplayMode.AWAY == 4 and DisplayMode.PAUSED == 5


def test_show_payload_keeps_short_chinese_text() -> None:
    text = "暂离 · 会议 · 10:30 返回"
    payload = show_payload(DisplayMode.AWAY, text)
    assert payload[0] == 4 and payload[1:].decode("utf-8") == text


def test_show_payload_cuts_long_text_on_a_character_boundary() -> None:
    text = "请对本次服务进行评价，谢谢您的配合与支持，祝您生活愉快" * 2  # 3 bytes a character
    payload = show_payload(DisplayMode.INVITE, text)
    body = payload[1:]
    assert len(body) == 63  # 21 characters; a 22nd would need bytes 64..66
    assert text.startswith(body.decode("utf-8"))
    mixed = "A" + "评" * 30  # 1 + 90 bytes: the cut falls one byte into a character
    assert show_payload(0, mixed)[1:].decode("utf-8") == "A" + "评" * 21
    assert show_payload(0, "x" * 100)[1:] == b"x" * 64
    assert show_payload(0, "") == b"\x00"


GOOD_1 = frame_of(1, KEY, b"\x05\x03")
GOOD_2 = frame_of(2, HELLO, b"\x02\x07\x01\x00")


@pytest.mark.parametrize(
    ("name", "stream", "addrs", "bad", "skipped"),
    [
        ("garbage before", b"hello" + GOOD_1, [1], 0, 5),
        ("garbage after", GOOD_1 + b"\xff\x00", [1], 0, 2),
        ("lone 0xAA before", b"\xaa" + GOOD_1, [1], 0, 1),
        ("bad crc then good", frame_of(1, KEY, b"\x05\x03", crc=0x1234) + GOOD_2, [2], 1, 7),
        ("unknown cmd", frame_of(1, 0x7F, b"\x01") + GOOD_1, [1], 1, 6),
        ("length over 200", frame_of(1, SHOW, b"\x00", length=201) + GOOD_1, [1], 1, 6),
        # a truncated frame whose claimed payload swallows the next frame's sync: resync inside it
        ("truncated then good", GOOD_2[:6] + GOOD_1, [1], 1, 4),
        ("sync inside a long claimed frame", frame_of(1, SHOW, length=20) + GOOD_1 + GOOD_2, [1, 2], 1, 5),
        ("two frames", GOOD_1 + GOOD_2, [1, 2], 0, 0),
    ],
)
def test_bad_frames_are_counted_and_skipped(
    name: str, stream: bytes, addrs: list[int], bad: int, skipped: int
) -> None:
    parser = FrameParser()
    assert [frame.addr for frame in parser.feed(stream)] == addrs, name
    assert (parser.bad_frames, parser.skipped_bytes, parser.pending) == (bad, skipped, 0), name


def test_frames_split_at_every_position() -> None:
    stream = GOOD_1 + b"\x00junk" + GOOD_2 + frame_of(3, SHOW, b"\x01" + "请评价".encode())
    for cut in range(len(stream) + 1):
        parser = FrameParser()
        frames = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [frame.addr for frame in frames] == [1, 2, 3], cut
        assert (parser.bad_frames, parser.skipped_bytes, parser.pending) == (0, 5, 0), cut
    parser = FrameParser()
    assert [f.addr for byte in stream for f in parser.feed(bytes([byte]))] == [1, 2, 3]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    parser = FrameParser()
    fed = 0
    for chunk in chunks:
        frames = parser.feed(chunk)
        fed += len(chunk)
        assert all(len(frame.payload) <= 200 for frame in frames)
        assert parser.skipped_bytes + 2 * parser.bad_frames + parser.pending <= fed
        assert 0 <= parser.pending <= 206


frames_strategy = st.builds(
    Frame,
    st.integers(0, 255),
    st.sampled_from([HELLO, KEY, IDLE, ACK, SHOW, POLL]),
    st.binary(max_size=40),
)
noise_without_sync = st.binary(max_size=30).map(lambda raw: raw.replace(b"\xaa", b""))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(noise_without_sync, frames_strategy), max_size=8), noise_without_sync,
       st.integers(min_value=1, max_value=25))
def test_frames_inside_noise_are_all_found_in_order(
    pieces: list[tuple[bytes, Frame]], tail: bytes, chunk_size: int
) -> None:
    stream = b"".join(junk + frame_of(f.addr, f.cmd, f.payload) for junk, f in pieces) + tail
    parser = FrameParser()
    found: list[Frame] = []
    for start in range(0, len(stream), chunk_size):
        found.extend(parser.feed(stream[start : start + chunk_size]))
    assert found == [frame for _, frame in pieces]
    assert parser.bad_frames == 0
    assert parser.skipped_bytes == sum(len(junk) for junk, _ in pieces) + len(tail)


def _bad_crc(body: bytes) -> int:
    """A wrong crc for `body` with no 0xAA byte, so it cannot start a sync pair of its own."""
    return next(
        value for step in range(1, 8)
        if (value := crc_of(body) ^ (step * 0x0101)) & 0xFF != 0xAA and value >> 8 != 0xAA
    )


frames_without_aa = st.builds(
    Frame,
    st.integers(0, 255),
    st.sampled_from([HELLO, KEY, IDLE, ACK, SHOW, POLL]),
    noise_without_sync,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames_without_aa, min_size=1, max_size=5), st.integers(0, 4), noise_without_sync)
def test_a_bad_crc_frame_is_counted_and_hides_nothing(frames: list[Frame], index: int, tail: bytes) -> None:
    index %= len(frames)
    encoded = [frame_of(f.addr, f.cmd, f.payload) for f in frames]
    broken = frames[index]
    body = bytes([broken.addr, broken.cmd, len(broken.payload)]) + broken.payload
    encoded[index] = frame_of(broken.addr, broken.cmd, broken.payload, crc=_bad_crc(body))
    parser = FrameParser()
    assert parser.feed(b"".join(encoded) + tail) == frames[:index] + frames[index + 1 :]
    assert parser.bad_frames == 1
    assert parser.skipped_bytes == len(encoded[index]) - 2 + len(tail)
