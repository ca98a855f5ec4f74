"""The clips: their names, what each says, where each is read from, and the volume applied to it.

The shipped clips (edge_agent/sound/clips/*.wav, 16 kHz mono 16-bit) are made once by
`tools/make_clips.py` (espeak-ng's Mandarin voice, tones by Python's wave module), so a box needs
no speech synthesiser. A hall's own recordings under `[sound] clips_dir` with the same file names
are used instead.
"""

from __future__ import annotations

import array
import io
import sys
import wave
from pathlib import Path
from typing import Literal

ClipName = Literal["ok", "fail", "signed_in", "signed_out", "already", "unknown_card", "mismatch", "blink",
                   "look", "invite", "thanks"]
SHIPPED = Path(__file__).resolve().parent / "clips"
TONES: dict[ClipName, tuple[tuple[int, int], ...]] = {  # (Hz, ms) notes; 0 Hz is a rest
    "ok": ((880, 90), (0, 30), (1320, 140)),  # rising: done
    "fail": ((440, 160), (0, 40), (330, 260)),  # falling and longer: look at the screen
}
CLIP_TEXTS: dict[ClipName, str] = {  # the spoken ones
    "signed_in": "签到成功",
    "signed_out": "签退成功",
    "already": "已打卡",
    "unknown_card": "未登记的卡",
    "mismatch": "人脸与卡不符",
    "blink": "请眨眼",
    "look": "请正视摄像头",
    "invite": "请您对我的服务做出评价",
    "thanks": "谢谢您的评价",
}


class ClipError(Exception):
    """A clip that cannot be read or scaled."""


def clip_path(name: str, clips_dir: Path | None) -> Path:
    """The hall's recording of `name` if it has one, else the shipped clip."""
    if clips_dir is not None:
        own = clips_dir / f"{name}.wav"
        if own.is_file():
            return own
    return SHIPPED / f"{name}.wav"


def scaled_wav(path: Path, volume: int) -> bytes:
    """The WAV file's bytes with its 16-bit samples scaled to `volume` percent (other sample widths
    are returned as they are: a hall's 8- or 24-bit recording plays at its own level)."""
    try:
        data = path.read_bytes()
        with wave.open(io.BytesIO(data)) as source:
            params = source.getparams()
            frames = source.readframes(params.nframes)
    except (OSError, EOFError, wave.Error) as exc:
        raise ClipError(f"{path}: {exc}") from exc
    if volume >= 100 or params.sampwidth != 2:
        return data
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    samples = array.array("h", (sample * volume // 100 for sample in samples))
    if sys.byteorder == "big":
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setparams(params)
        target.writeframes(samples.tobytes())
    return out.getvalue()
