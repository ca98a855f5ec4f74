"""The camera simulator's playlist: its steps and the text script that lists them.

One step per line: `empty S`, `photo PATH S`, `video PATH`, `blink PATH S [BLINKS]`, `moved PATH S`,
`vanish S`, `wait S`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device_sims.card import ScriptError


class CameraError(ValueError):
    """A photo or video the simulator cannot use (unreadable, no face to blink, too short)."""


# --- playlist steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Empty:
    seconds: float


@dataclass(frozen=True)
class Photo:
    path: Path
    seconds: float


@dataclass(frozen=True)
class Video:
    path: Path


@dataclass(frozen=True)
class Blink:
    path: Path
    seconds: float
    blinks: int = 1


@dataclass(frozen=True)
class Moved:
    path: Path
    seconds: float


@dataclass(frozen=True)
class Vanish:
    seconds: float


@dataclass(frozen=True)
class Wait:
    """Keep streaming the current frame."""

    seconds: float


Step = Empty | Photo | Video | Blink | Moved | Vanish | Wait


def parse_script(text: str, base: Path | None = None) -> list[Step]:
    """One step per line: `empty S`, `photo PATH S`, `video PATH`, `blink PATH S [BLINKS]`,
    `moved PATH S`, `vanish S`, `wait S`. Relative paths are taken from `base`; blank lines and
    `#` comments are ignored; a missing file is an error naming its line."""
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        try:
            steps.append(_parse_step(words, base))
        except ValueError as exc:
            raise ScriptError(f"line {number}: {exc} (in {raw.strip()!r})") from exc
    return steps


_USAGE = {"empty": "empty SECONDS", "photo": "photo PATH SECONDS", "video": "video PATH",
          "blink": "blink PATH SECONDS [BLINKS]", "moved": "moved PATH SECONDS",
          "vanish": "vanish SECONDS", "wait": "wait SECONDS"}


def _parse_step(words: list[str], base: Path | None) -> Step:
    verb, args = words[0].lower(), words[1:]
    if verb not in _USAGE:
        raise ValueError(f"unknown step {verb!r} (known: {', '.join(_USAGE)})")
    arity = {"empty": (1,), "vanish": (1,), "wait": (1,), "video": (1,), "blink": (2, 3)}.get(verb, (2,))
    if len(args) not in arity:
        raise ValueError(f"expected `{_USAGE[verb]}`")
    if verb in ("empty", "vanish", "wait"):
        return {"empty": Empty, "vanish": Vanish, "wait": Wait}[verb](_seconds(args[0]))
    path = _existing(args[0], base)
    if verb == "video":
        return Video(path)
    seconds = _seconds(args[1])
    if verb == "photo":
        return Photo(path, seconds)
    if verb == "moved":
        return Moved(path, seconds)
    blinks = args[2] if len(args) == 3 else "1"
    if not blinks.isdigit() or int(blinks) < 1:
        raise ValueError(f"blinks must be a whole number >= 1, got {blinks!r}")
    return Blink(path, seconds, int(blinks))


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"seconds must be a finite number >= 0, got {text!r}")
    return value


def _existing(text: str, base: Path | None) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path
