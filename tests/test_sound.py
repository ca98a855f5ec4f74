"""The box's voice: the shipped clips, the volume, a hall's own recordings, a queue that never blocks
a reader, and one clip played for real through ALSA's null device (`aplay -D null`)."""

from __future__ import annotations

import array
import io
import shutil
import threading
import wave
from pathlib import Path

import pytest

from edge_agent.sound import CLIP_TEXTS, TONES, ClipPlayer
from edge_agent.sound.clips import SHIPPED, clip_path


def samples(wav: bytes) -> tuple[int, array.array[int]]:
    with wave.open(io.BytesIO(wav)) as clip:
        return clip.getframerate(), array.array("h", clip.readframes(clip.getnframes()))


class FakeSink:
    def __init__(self, hold: threading.Event | None = None) -> None:
        self.played: list[tuple[str, bytes]] = []
        self.hold = hold
        self.started = threading.Event()

    def __call__(self, device: str, wav: bytes) -> None:
        self.started.set()
        if self.hold is not None:
            self.hold.wait(5)
        self.played.append((device, wav))


@pytest.mark.parametrize("name", [*TONES, *CLIP_TEXTS])
def test_every_clip_is_shipped_small_16khz_mono(name: str) -> None:
    path = SHIPPED / f"{name}.wav"
    with wave.open(str(path)) as clip:
        assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (16_000, 1, 2)
        assert 0.1 < clip.getnframes() / 16_000 < 4.5  # a prompt, not a speech
    assert path.stat().st_size < 160 * 1024


def test_volume_scales_the_samples_and_clips_play_in_order() -> None:
    sink = FakeSink()
    player = ClipPlayer("plughw:1,0", 50, None, play=sink)
    assert player.play("ok", "signed_in")
    player.close()
    assert [device for device, _ in sink.played] == ["plughw:1,0", "plughw:1,0"]
    assert player.played == ["ok", "signed_in"]
    rate, played = samples(sink.played[0][1])
    _, original = samples((SHIPPED / "ok.wav").read_bytes())
    assert rate == 16_000 and len(played) == len(original)
    assert max(played) == max(original) * 50 // 100 and max(played) > 1000


def test_a_halls_own_recording_replaces_the_shipped_clip(tmp_path: Path) -> None:
    own = tmp_path / "signed_in.wav"
    with wave.open(str(own), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(8000)
        clip.writeframes(array.array("h", [1000, -1000] * 400).tobytes())
    assert clip_path("signed_in", tmp_path) == own
    assert clip_path("thanks", tmp_path) == SHIPPED / "thanks.wav"  # not recorded by the hall
    sink = FakeSink()
    player = ClipPlayer("default", 100, tmp_path, play=sink)
    player.play("signed_in")
    player.close()
    assert sink.played[0][1] == own.read_bytes()


def test_a_full_queue_drops_clips_instead_of_blocking_the_reader() -> None:
    hold = threading.Event()
    sink = FakeSink(hold)
    player = ClipPlayer("default", 80, None, play=sink, queue_size=2)
    assert player.play("signed_in")
    assert sink.started.wait(5)  # the sound thread is playing it (held)
    assert player.play("already") and player.play("already")
    assert player.play("unknown_card") is False  # the queue is full: dropped at once
    hold.set()
    player.close()
    assert player.played == ["signed_in", "already", "already"] and player.dropped == 1


def no_sound_card(device: str, wav: bytes) -> None:
    raise OSError("no card")


def test_a_clip_that_cannot_be_played_is_logged_and_the_player_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    player = ClipPlayer("hw:99,0", 80, None, play=no_sound_card)
    player.play("ok", "fail")
    player.close()
    assert player.failures == 2 and player.played == []
    assert "clip ok not played on hw:99,0: no card" in caplog.text


def test_a_clip_plays_through_alsa_null_device() -> None:
    if shutil.which("aplay") is None:
        pytest.skip("aplay is missing: `make system-packages` installs alsa-utils")
    player = ClipPlayer("null", 80, None)  # the real path: aplay -q -D null - with the scaled WAV
    player.play("signed_in")
    player.close(timeout=15)
    assert (player.played, player.failures) == (["signed_in"], 0)
