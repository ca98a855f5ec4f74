"""The hub's config: one pydantic model per section, unknown keys rejected, errors name file and key."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hub.domain import Schedule, Session, StaffMember
from hub.rules.attendance import CardIndex, parse_card
from wire import configfile, keyfile
from wire.configfile import FilePath, HexKey, Name, check_timezone

_Section = configfile.Section
PROGRAM = "hall-hub"  # named in the hint of a bad key file


class BrokerConfig(_Section):
    url: str = Field("embedded", description='"embedded" (amqtt inside the hub) or mqtt(s)://host:port')
    listen: str = Field("127.0.0.1:1883", description="host:port of the embedded broker")
    username: str | None = None
    password: str | None = None
    ca_file: FilePath | None = None
    client_id: str | None = Field(None, description="defaults to hall-hub-{hall}")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError('must be "embedded", mqtt://host:port or mqtts://host:port')
        return value


class StoreConfig(_Section):
    url: str = Field("sqlite:///hub.db", description="sqlite:///path or postgresql://user@host/db")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith("sqlite:///"):
            path = Path(value.removeprefix("sqlite:///"))
            base = (info.context or {}).get("config_dir")
            if base is not None and not path.is_absolute():
                return f"sqlite:///{base / path}"
            return value
        if value.startswith(("postgresql://", "postgresql+psycopg://")):
            return value
        raise ValueError("must be sqlite:///path or postgresql://...")


class IngestConfig(_Section):
    max_message_bytes: int = Field(131072, ge=1024, description="larger messages are quarantined")
    resend_seconds: float = Field(30.0, gt=0, description="the edges' resend interval")
    gap_after_resends: int = Field(2, ge=1, description="a seq gap open this many intervals is reported")


class DeviceConfig(_Section):
    id: Name
    public_key: HexKey
    name: str = ""


class StaffConfig(_Section):
    id: str = Field(min_length=1, max_length=32)
    name: str
    window: str = ""
    cards: list[str] = Field(default_factory=list, description="10 hex digits or the printed number")

    @field_validator("cards")
    @classmethod
    def _cards(cls, value: list[str]) -> list[str]:
        for card in value:
            parse_card(card)  # raises with a clear message; the original form is kept
        return value


class SessionConfig(_Section):
    name: str
    start: time
    end: time

    @model_validator(mode="after")
    def verify_order(self) -> SessionConfig:
        if self.end <= self.start:
            raise ValueError(f"session {self.name!r}: end must be after start")
        return self


class ScheduleConfig(_Section):
    sessions: list[SessionConfig] = Field(
        default_factory=lambda: [
            SessionConfig(name="上午", start=time(8, 30), end=time(12, 0)),
            SessionConfig(name="下午", start=time(14, 30), end=time(17, 30)),
        ]
    )
    grace_minutes: int = Field(5, ge=0, le=240)
    absent_after_minutes: int = Field(120, ge=1, le=720)
    duplicate_punch_minutes: int = Field(3, ge=0, le=120)
    require_leave_punch: bool = Field(True, description="a punch at the end of each session")
    workdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    holidays: list[date] = Field(default_factory=list)
    makeup_workdays: list[date] = Field(default_factory=list, description="调休: weekend days worked")
    since: date | None = Field(None, description="go-live: days before are not judged "
                                                 "(default: the day of the log's first entry)")

    def to_domain(self) -> Schedule:
        return Schedule(
            sessions=tuple(Session(s.name, s.start, s.end) for s in self.sessions),
            grace_minutes=self.grace_minutes,
            absent_after_minutes=self.absent_after_minutes,
            duplicate_punch_minutes=self.duplicate_punch_minutes,
            require_leave_punch=self.require_leave_punch,
            workdays=frozenset(self.workdays),
            holidays=frozenset(self.holidays),
            makeup_workdays=frozenset(self.makeup_workdays),
            since=self.since,
        )


class RatingsConfig(_Section):
    count: Literal["all", "invited"] = Field("all", description="which presses count in statistics")
    repeat_seconds: int = Field(30, ge=0, le=3600, description="presses closer than this are misuse")


class CasesConfig(_Section):
    deadline_days: int = Field(5, ge=1, le=60, description="working days to follow up a bad rating")


class AlertsConfig(_Section):
    late_return_grace_minutes: int = Field(0, ge=0, le=120)
    unattended_min_minutes: int = Field(1, ge=0, le=240, description="shorter gaps are not reported")
    offline_after_seconds: int = Field(60, ge=10, le=3600, description="no state or heartbeat for this")
    check_seconds: int = Field(30, ge=1, le=3600, description="how often the scheduler runs the checks")
    daily_close: time = Field(time(23, 30), description="when the day's findings are closed")


class FaceConfig(_Section):
    require_live: bool = Field(True, description="a face punch counts only if it passed liveness")


class ReportsConfig(_Section):
    dir: FilePath = Field(Path("reports"), description="where the monthly summaries are written")


class HubConfig(_Section):
    hall: Name
    timezone: str = "Asia/Shanghai"
    private_key: HexKey | None = Field(None, description="the hub's Ed25519 private key")
    private_key_file: FilePath | None = Field(None, description="a file holding the private key alone")
    topic_prefix: str = "hall/v1"
    broker: BrokerConfig = BrokerConfig()
    store: StoreConfig = StoreConfig()
    ingest: IngestConfig = IngestConfig()
    devices: list[DeviceConfig] = Field(default_factory=list)
    staff: list[StaffConfig] = Field(default_factory=list)
    schedule: ScheduleConfig = ScheduleConfig()
    ratings: RatingsConfig = RatingsConfig()
    cases: CasesConfig = CasesConfig()
    alerts: AlertsConfig = AlertsConfig()
    reports: ReportsConfig = ReportsConfig()
    face: FaceConfig = FaceConfig()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("reports")
    @classmethod
    def _reports_dir(cls, value: ReportsConfig, info: ValidationInfo) -> ReportsConfig:
        base = (info.context or {}).get("config_dir")
        if base is not None and not value.dir.is_absolute():
            return value.model_copy(update={"dir": base / value.dir})
        return value

    @field_validator("private_key_file")
    @classmethod
    def _key_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("config_dir")
        return base / value if value is not None and base and not value.is_absolute() else value

    @model_validator(mode="after")
    def verify_key_source(self) -> HubConfig:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of private_key and private_key_file")
        return self

    @model_validator(mode="after")
    def verify_unique_ids(self) -> HubConfig:
        for section, ids in (("devices", [d.id for d in self.devices]),
                             ("staff", [s.id for s in self.staff])):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"{section}: id(s) {duplicates} appear more than once")
        CardIndex(self.roster())  # raises when two staff claim the same card
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def private_key_hex(self) -> str:
        if self.private_key is not None:
            return self.private_key
        assert self.private_key_file is not None
        return keyfile.read_private(self.private_key_file, PROGRAM)

    def device_keys(self) -> dict[str, str]:
        return {device.id: device.public_key for device in self.devices}

    def roster(self) -> list[StaffMember]:
        return [StaffMember(s.id, s.name, s.window, tuple(s.cards)) for s in self.staff]

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)


def load(path: str | Path) -> HubConfig:
    """The validated config, its key file read once so that `check` sees what `run` would."""
    config = configfile.load(path, HubConfig)
    if config.private_key_file is not None:
        configfile.read_key_file(Path(path), config.private_key_file, PROGRAM)
    return config
