"""The edge agent's config: one pydantic model per section, unknown keys rejected.

    hall = "h1"
    device = "entrance"
    private_key_file = "/etc/hall/entrance.key"   # or private_key = "<64 hex>"
    hub_public_key = "<64 hex>"

    [broker]
    url = "mqtt://127.0.0.1:1883"

    [outbox]
    path = "/var/lib/hall-edge/outbox.db"

    [[units]]
    id = "door"
    kind = "card"
    driver = "rdm6300"
    port = "/dev/hall-card"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wire import configfile
from wire.envelope import HEX64_RE, NAME_RE

Name = Annotated[str, Field(pattern=NAME_RE.pattern, description="lowercase letters, digits, _ and -")]
HexKey = Annotated[str, Field(pattern=HEX64_RE.pattern, description="64 lowercase hex characters")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port, or mqtts:// for TLS")
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = Field(None, description="CA bundle for mqtts://; the system's when absent")
    client_id: str | None = Field(None, description="defaults to hall-edge-{hall}-{device}")
    keepalive: int = Field(30, ge=5, le=600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be mqtt://host:port or mqtts://host:port")
        _ = parts.port  # raises ValueError on a bad port
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class OutboxConfig(_Section):
    path: Path = Field(description="SQLite file of the durable outbox")
    resend_seconds: float = Field(30.0, gt=0, le=3600, description="republish uncovered events after this")


class CardUnit(_Section):
    id: Name
    kind: Literal["card"]
    driver: Literal["rdm6300"] = Field(description="the reader family; see edge_agent/drivers")
    port: str = Field(description="serial device, e.g. /dev/hall-card (udev) or /dev/ttyUSB0")
    baud: int = Field(9600, gt=0)


Unit = Annotated[CardUnit, Field(discriminator="kind")]


class EdgeConfig(_Section):
    hall: Name
    device: Name
    private_key: HexKey | None = Field(None, description="this device's Ed25519 private key")
    private_key_file: Path | None = Field(None, description="a file holding the private key")
    hub_public_key: HexKey
    timezone: str = "Asia/Shanghai"
    topic_prefix: str = "hall/v1"
    heartbeat_seconds: float = Field(30.0, gt=0, description="republish the retained state this often")
    broker: BrokerConfig = BrokerConfig()
    outbox: OutboxConfig
    units: list[Unit] = Field(default_factory=list)

    @field_validator("private_key_file", "outbox", mode="after")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        base = (info.context or {}).get("config_dir")
        if base is None:
            return value
        if isinstance(value, Path) and not value.is_absolute():
            return base / value
        if isinstance(value, OutboxConfig) and not value.path.is_absolute():
            return value.model_copy(update={"path": base / value.path})
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def verify_key_source(self) -> EdgeConfig:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of private_key and private_key_file")
        return self

    @model_validator(mode="after")
    def verify_unique_units(self) -> EdgeConfig:
        seen: set[str] = set()
        for unit in self.units:
            if unit.id in seen:
                raise ValueError(f"units: id {unit.id!r} appears twice")
            seen.add(unit.id)
        return self

    def private_key_hex(self) -> str:
        if self.private_key is not None:
            return self.private_key
        assert self.private_key_file is not None
        text = self.private_key_file.read_text(encoding="utf-8").strip()
        if not HEX64_RE.match(text):
            raise configfile.ConfigError(
                self.private_key_file,
                [f"{self.private_key_file}: private key must be 64 lowercase hex characters"],
            )
        return text


def load(path: str | Path) -> EdgeConfig:
    config = configfile.load(path, EdgeConfig)
    if config.private_key_file is not None and not config.private_key_file.exists():
        raise configfile.ConfigError(
            Path(path), [f"{path}: private_key_file: {config.private_key_file} does not exist"]
        )
    return config
