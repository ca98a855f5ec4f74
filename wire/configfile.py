"""Loading a TOML config file into a pydantic model, with every error naming the file and key path.

Shared by the edge agent and the hub so both report bad configs the same way.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wire.envelope import HEX64_RE, NAME_RE

Model = TypeVar("Model", bound=BaseModel)

Name = Annotated[str, Field(pattern=NAME_RE.pattern, description="lowercase letters, digits, _ and -")]
HexKey = Annotated[str, Field(pattern=HEX64_RE.pattern, description="64 lowercase hex characters")]


class Section(BaseModel):
    """A config section: every key known, nothing changed after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class ConfigError(Exception):
    """A config file that cannot be used; `problems` lists each one as 'file: key.path: message'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


def key_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load(path: str | Path, model: type[Model]) -> Model:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, [f"{path}: file not found"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"{path}: not valid TOML: {exc}"]) from exc
    try:
        return model.model_validate(raw, context={"config_dir": path.resolve().parent})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = key_path(_input_path(raw, error["loc"]))
            problems.append(f"{path}: {where}: {error['msg']}")
        raise ConfigError(path, problems) from exc


def _input_path(raw: object, location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The error's location as keys of the file, without the union tags pydantic inserts."""
    kept: list[int | str] = []
    node = raw
    for part in location:
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif isinstance(node, dict) and part in node.values():
            continue  # a discriminated union's tag, e.g. the "card" of kind = "card"
        elif isinstance(node, dict) and isinstance(part, str) and ("[" in part or "-" in part):
            continue  # pydantic's name of a union member, e.g. "function-after[...]"
        else:
            node = None
        kept.append(part)
    return tuple(kept)
