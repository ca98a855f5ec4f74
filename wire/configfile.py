"""Loading a TOML config file into a pydantic model, with every error naming the file and key path.

Shared by the edge agent and the hub so both report bad configs the same way.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from wire import keyfile
from wire.envelope import HEX64_RE, NAME_RE, load_private_key, public_hex_of

Model = TypeVar("Model", bound=BaseModel)

Name = Annotated[str, Field(pattern=NAME_RE.pattern, description="lowercase letters, digits, _ and -")]
HexKey = Annotated[str, Field(pattern=HEX64_RE.pattern, description="64 lowercase hex characters")]
ROSTER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def check_roster_id(value: str) -> str:
    """Staff and desk ids: they meet in sign events (a desk named by a staff id is that person's)."""
    if not ROSTER_ID_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a staff or desk id: 1 to 32 letters, digits, _ or -, "
                         "starting with a letter or digit (e.g. S001, d03-a)")
    return value


RosterId = Annotated[str, AfterValidator(check_roster_id)]
# TOML has no path type: a path is written as a string, which strict mode alone would refuse.
FilePath = Annotated[Path, Field(strict=False)]

# The public keys of the private keys written into config/*.example.toml: known to everyone.
EXAMPLE_PUBLIC_KEYS = frozenset({
    "a99f9020ac0919d430727ca99e3f61859fb22e213455e72150529bf907050632",  # example-hub.key
    "aff41766b8215acafed2b84c2e9dc4f81d1ed0aeeeaed9ec1c16a1c22ca65136",  # example-entrance.key
    "21b4a673a39f7cd48187dd3477315f36cb7e53d4f353ac01c84e1f46f9acbed2",  # example-win03.key
})


class Section(BaseModel):
    """A config section: every key known, nothing changed after loading, no "9600" taken for 9600."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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

    def report(self) -> str:
        """What a command prints: one line for one problem, else a heading and a line for each."""
        if len(self.problems) == 1:
            return f"配置错误 config error: {self.problems[0]}"
        return "配置错误 config error:\n" + "\n".join(self.problems)


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
    except IsADirectoryError as exc:
        raise ConfigError(path, [f"{path}: is a directory, not a config file"]) from exc
    except OSError as exc:
        raise ConfigError(path, [f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"]) from exc
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


def read_key_file(config_path: Path, key_file: Path, program: str) -> str:
    """The private key `private_key_file` names, or a ConfigError saying what is wrong with the file."""
    try:
        return keyfile.read_private(key_file, program)
    except keyfile.KeyFileError as exc:
        raise ConfigError(config_path, [f"{config_path}: private_key_file: {exc}"]) from exc


def example_key_warning(private_hex: str, program: str) -> str | None:
    """A warning when the private key is one shipped with the examples, else None."""
    if public_hex_of(load_private_key(private_hex)) not in EXAMPLE_PUBLIC_KEYS:
        return None
    return (f"警告 warning: 示例密钥 example key: make your own with `{program} keygen --out FILE` "
            "before deployment (this key is published with hall-hardware)")
