"""Make the edge agent's sound clips (edge_agent/sound/clips/*.wav): run once at build time, commit
the result. Spoken prompts by espeak-ng's Mandarin voice (`-v cmn`, Debian's espeak-ng), tones by
the wave module; all 16 kHz mono 16-bit, so a box needs no speech synthesiser.

    python tools/make_clips.py            # write every clip
    python tools/make_clips.py --check    # exit 1 if a clip is missing or not 16 kHz mono 16-bit
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.sound.clips import CLIP_TEXTS, SHIPPED, TONES  # noqa: E402

RATE = 16_000
PEAK = 0.6  # of full scale: the volume setting scales down from here
FADE_MS = 8  # each note starts and ends softly (no click)


def tone(notes: tuple[tuple[int, int], ...]) -> list[float]:
    samples: list[float] = []
    for hz, ms in notes:
        count = RATE * ms // 1000
        fade = RATE * FADE_MS // 1000
        for i in range(count):
            envelope = min(1.0, i / fade, (count - i) / fade)
            samples.append(0.0 if hz == 0 else envelope * math.sin(2 * math.pi * hz * i / RATE))
    return samples


def speech(text: str) -> list[float]:
    """espeak-ng's WAV of `text`, resampled to RATE by linear interpolation, silence trimmed."""
    raw = subprocess.run(["espeak-ng", "-v", "cmn", "-s", "170", "--stdout", text], check=True,
                         capture_output=True).stdout
    with wave.open(io.BytesIO(raw)) as source:
        rate, width = source.getframerate(), source.getsampwidth()
        frames = source.readframes(source.getnframes())
    if width != 2:
        raise SystemExit(f"espeak-ng gave {8 * width}-bit samples; 16-bit expected")
    values = [v / 32768 for v in struct.unpack(f"<{len(frames) // 2}h", frames)]
    loud = [i for i, v in enumerate(values) if abs(v) > 0.01]
    if loud:
        values = values[max(0, loud[0] - rate // 50):loud[-1] + rate // 20]
    out = []
    step = rate / RATE
    for i in range(int(len(values) / step)):
        x = i * step
        j = int(x)
        nxt = values[j + 1] if j + 1 < len(values) else values[j]
        out.append(values[j] + (nxt - values[j]) * (x - j))
    top = max((abs(v) for v in out), default=1.0) or 1.0
    return [v / top for v in out]


def write(path: Path, samples: list[float]) -> None:
    with wave.open(str(path), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(RATE)
        target.writeframes(b"".join(struct.pack("<h", round(v * PEAK * 32767)) for v in samples))


def check() -> int:
    bad = []
    for name in [*TONES, *CLIP_TEXTS]:
        path = SHIPPED / f"{name}.wav"
        try:
            with wave.open(str(path)) as clip:
                if (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) != (RATE, 1, 2):
                    bad.append(f"{path.name}: not 16 kHz mono 16-bit")
        except (OSError, wave.Error) as exc:
            bad.append(f"{path.name}: {exc}")
    print("\n".join(bad) or f"{len(TONES) + len(CLIP_TEXTS)} clips ok")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    if parser.parse_args().check:
        return check()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is missing: apt-get install espeak-ng (build time only)", file=sys.stderr)
        return 2
    SHIPPED.mkdir(parents=True, exist_ok=True)
    for name, notes in TONES.items():
        write(SHIPPED / f"{name}.wav", tone(notes))
    for name, text in CLIP_TEXTS.items():
        write(SHIPPED / f"{name}.wav", speech(text))
        print(f"{name}.wav  {text}")
    return check()


if __name__ == "__main__":
    sys.exit(main())
