"""A city's config (`city.toml`): the `[city]` section and the `[[halls]]` it serves.

Each `[[halls]]` entry is a whole hall config (hub/config.py `HubConfig`: its keys, devices, roster,
schedule, broker and store), written inline or as `include = "halls/h01.toml"` (relative to the
city file; the included file is a hub.toml as a single hall has it). Every error names the file it
is in and its key path: `city.toml: halls[1].store.url: ...` for an inline hall,
`halls/h01.toml: schedule.grace_minutes: ...` for an included one; all of them are reported, not
only the first.
"""

from __future__ import annotations

import os
import socket
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from hub.config import PROGRAM, HubConfig, WebConfig
from wire import configfile
from wire.configfile import ConfigError, Name, key_path

_Section = configfile.Section


class CitySection(_Section):
    """How the workers of one city find each other: PostgreSQL advisory locks in `store`."""

    name: Name = Field(description="the city's id: its workers' lock keys are derived from it")
    store: str = Field(description="postgresql:// URL of the database the workers' locks live in; "
                       "the halls' stores must be on the same PostgreSQL server")
    balance_seconds: float = Field(2.0, ge=0.2, le=60, description="how often a worker checks its "
                                   "lock session, counts the live workers and takes or frees halls")
    stop_seconds: float = Field(30.0, ge=1, le=600, description="how long a hall being freed may take "
                                "to finish its batch and disconnect before its lock is freed anyway")
    worker: str = Field("", max_length=60, description="this worker's name in logs and in PostgreSQL's "
                        "application_name (default host-pid)")
    web: WebConfig = Field(default_factory=WebConfig, description="the city console (`hall-hub web "
                           "--config city.toml`): listen, session_hours, login limits, secure_cookie "
                           "as a hall's [web]; its users are kept in `store`")

    @field_validator("store")
    @classmethod
    def _postgresql(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be postgresql://...: the halls' locks are PostgreSQL advisory locks")
        return value

    @property
    def worker_name(self) -> str:
        return self.worker or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class CityConfig:
    path: Path
    city: CitySection
    halls: list[HubConfig]
    files: dict[str, Path] = field(default_factory=dict)  # each hall's file: the city's, or its include

    def hall(self, hall: str) -> HubConfig:
        for config in self.halls:
            if config.hall == hall:
                return config
        raise KeyError(f"hall {hall!r} is not in {self.path}")


def is_city_config(path: str | Path) -> bool:
    """Whether the file is a city config (it has `[[halls]]`); a file that cannot be read is left
    to the hub's own loader, which says why."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return "halls" in raw


def hall_ids(path: str | Path) -> list[str]:
    """The halls a city config serves, in its order (the seam for a city page of the console)."""
    return [hall.hall for hall in load_city(path).halls]


def hall_key(city: str, hall: str) -> tuple[int, int]:
    """The advisory lock (two int4 keys) whose holder owns `hall` of `city`."""
    return _key("halls", city), _key(hall, city)


def worker_class(city: str) -> int:
    """The first key of the workers' liveness locks (the second is the holder's backend pid)."""
    return _key("workers", city)


def _key(name: str, city: str) -> int:
    return zlib.crc32(f"{city}\0{name}".encode()) & 0x7FFFFFFF


def load_city(path: str | Path, *, read_keys: bool = True) -> CityConfig:
    """The validated city config with every hall; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, [f"{path}: file not found"]) from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, [f"{path}: cannot be read as TOML: {exc}"]) from exc
    problems: list[str] = []
    unknown = sorted(set(raw) - {"city", "halls"})
    if unknown:
        problems.append(f"{path}: {', '.join(unknown)}: not a city key (a city file has [city] and "
                        "[[halls]]; a hall's own keys go inside its [[halls]] entry)")
    city: CitySection | None = None
    try:
        city = CitySection.model_validate(raw.get("city", {}))
    except ValidationError as exc:
        problems += [f"{path}: {key_path(('city', *e['loc']))}: {e['msg']}" for e in exc.errors()]
    halls: list[tuple[int, HubConfig]] = []  # with their index in the file
    files: dict[str, Path] = {}
    entries = raw.get("halls")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{path}: halls: give at least one [[halls]] entry")
        entries = []
    for index, entry in enumerate(entries):
        try:
            config, source = _hall(path, index, entry)
            if read_keys:
                read_hall_key(config, source)
            halls.append((index, config))
            files.setdefault(config.hall, source)
        except ConfigError as exc:
            problems += exc.problems
    problems += verify_halls(path, city, halls)  # with a bad [city], the rules that need none of it
    if problems:
        raise ConfigError(path, problems)
    assert city is not None
    return CityConfig(path, city, [hall for _index, hall in halls], files)


def load_hall(path: str | Path, hall: str, *, read_key: bool = True) -> HubConfig:
    """One hall of a city config, as its own file gives it (`hall-hub COMMAND --config city.toml
    --hall h01`): the whole city is read and checked, then only this hall's key file read (when
    `read_key`, as hub/config.py `load` does). Raises ConfigError, or ValueError for a hall the
    city does not list (naming those it does)."""
    city = load_city(path, read_keys=False)
    if hall not in city.files:
        known = ", ".join(config.hall for config in city.halls)
        raise ValueError(f"--hall {hall}: not a hall of {city.path} (its halls: {known})")
    config = city.hall(hall)
    if read_key:
        read_hall_key(config, city.files[hall])
    return config


def read_hall_key(config: HubConfig, source: Path) -> None:
    """Check that a hall's `private_key_file` holds a key; a ConfigError names `source`, the file
    that sets it."""
    if config.private_key_file is not None:
        configfile.read_key_file(source, config.private_key_file, PROGRAM)


def _hall(path: Path, index: int, entry: Any) -> tuple[HubConfig, Path]:
    """A `[[halls]]` entry's config and the file it is written in (`path`, or the included file)."""
    where = f"{path}: halls[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(path, [f"{where}: must be a table"])
    if "include" in entry:
        if set(entry) != {"include"} or not isinstance(entry["include"], str):
            raise ConfigError(path, [f"{where}.include: give the file alone, e.g. "
                                     'include = "halls/h01.toml" (its keys go in that file)'])
        included = path.resolve().parent / entry["include"]
        return configfile.load(included, HubConfig), included
    try:
        config = HubConfig.model_validate(entry, context={"config_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(path, [f"{where}.{key_path(e['loc'])}: {e['msg']}"
                                 for e in exc.errors()]) from exc
    return config, path


def verify_halls(path: Path, city: CitySection | None, halls: list[tuple[int, HubConfig]]) -> list[str]:
    """Rules across halls: distinct ids and lock keys, PostgreSQL stores on the city's server (each
    its own database or schema), an external broker (the halls move between machines)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    keys: dict[tuple[int, int], str] = {}
    stores: dict[str, str] = {}
    server = None if city is None else _server(city.store)
    for index, hall in halls:
        where = f"{path}: halls[{index}]"
        if hall.hall in seen:
            problems.append(f"{where}.hall: {hall.hall!r} is also halls[{seen[hall.hall]}]")
        seen.setdefault(hall.hall, index)
        key = hall_key("" if city is None else city.name, hall.hall)
        if key in keys and keys[key] != hall.hall:
            problems.append(f"{where}.hall: {hall.hall!r} has the same lock key as {keys[key]!r}: "
                            "rename one of them")
        keys.setdefault(key, hall.hall)
        url = hall.store.url
        if not url.startswith(("postgresql://", "postgresql+psycopg://")):
            problems.append(f"{where}.store.url: a city's halls are stored in PostgreSQL "
                            "(a database or a schema per hall), not SQLite")
            continue
        if server is not None and _server(url) != server:
            problems.append(f"{where}.store.url: must be on the server of [city] store ({server}): "
                            "a worker's writes are fenced by its locks there")
        if url in stores:
            problems.append(f"{where}.store.url: the store of hall {stores[url]!r} too: give each hall "
                            "its own database, or its own schema (?options=-csearch_path%3Dh01)")
        stores.setdefault(url, hall.hall)
        if hall.broker.url == "embedded":
            problems.append(f'{where}.broker.url: "embedded" cannot move between workers: give the '
                            "city's (or the hall's) Mosquitto, mqtt://host:port")
    return problems


def _server(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
