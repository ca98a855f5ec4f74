"""The hub's config: one pydantic model per section, unknown keys rejected, errors name file and key."""

from __future__ import annotations

import ssl
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from hub.broker_access import HUB_USER, AccessError, hub_secret_path, read_hub_secret
from hub.domain import Schedule, Session, StaffMember
from hub.rules.attendance import CardIndex, parse_card
from wire import configfile, keyfile
from wire.configfile import FilePath, HexKey, Name, RosterId, check_timezone

_Section = configfile.Section
PROGRAM = "hall-hub"  # named in the hint of a bad key file


class BrokerConfig(_Section):
    """Where the hub's MQTT client connects, and who may use the hall's broker (hub/broker_access.py).

    With `passwd_file` the hub logs in as "hub" with the secret `hall-hub broker add-device` keeps in
    `<passwd_file>.hub`: `username` and `password` are then filled in from that file, not written here.
    """

    url: str = Field("embedded", description='"embedded" (amqtt inside the hub) or mqtt(s)://host:port')
    listen: str = Field("127.0.0.1:1883", description="host:port of the embedded broker "
                                                      "(and of the listener `broker export` writes)")
    username: str | None = None
    password: str | None = None
    ca_file: FilePath | None = Field(None, description="CA bundle that verifies an mqtts:// broker")
    client_id: str | None = Field(None, description="defaults to hall-hub-{hall}")
    passwd_file: FilePath | None = Field(None, description="logins as hashes (Mosquitto 2.0 format): "
                                         "the embedded broker then refuses anonymous clients and "
                                         "enforces the topic ACL; unset, it is open to anyone")
    tls_cert: FilePath | None = Field(None, description="PEM certificate (chain) of the broker: the "
                                      "embedded broker then speaks TLS only (clients use mqtts://)")
    tls_key: FilePath | None = Field(None, description="the PEM private key of tls_cert")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError('must be "embedded", mqtt://host:port or mqtts://host:port')
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, colon, port = value.rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 0.0.0.0:1883")
        return value

    @field_validator("ca_file", "passwd_file", "tls_cert", "tls_key")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _beside_config(value, info)

    @model_validator(mode="before")
    @classmethod
    def _hub_login(cls, data: Any, info: ValidationInfo) -> Any:
        """With a passwd file, the hub's login is its user and the secret kept next to the file."""
        if not isinstance(data, dict) or not isinstance(data.get("passwd_file"), str | Path):
            return data
        if "username" in data or "password" in data:
            raise ValueError(f'with passwd_file the hub logs in as "{HUB_USER}" with the password in '
                             "<passwd_file>.hub: remove username and password")
        passwd = _beside_config(Path(data["passwd_file"]), info)
        try:
            secret = read_hub_secret(passwd)  # None until `hall-hub broker add-device` makes it
        except AccessError as exc:
            raise ValueError(str(exc)) from exc
        return {**data, "username": HUB_USER, "password": secret}

    @model_validator(mode="after")
    def verify_tls_pair(self) -> BrokerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        return self

    @property
    def hub_secret_file(self) -> Path | None:
        return None if self.passwd_file is None else hub_secret_path(self.passwd_file)

    def client_tls(self) -> ssl.SSLContext | None:
        """TLS of the hub's own clients. An mqtts:// broker is verified against ca_file (else the
        system's CAs) and its name; the embedded broker, reached over loopback at its listen address
        (maybe 0.0.0.0, no name in any certificate), is pinned to its own certificate instead."""
        if self.url.startswith("mqtts://"):
            return ssl.create_default_context(cafile=None if self.ca_file is None else str(self.ca_file))
        if self.url == "embedded" and self.tls_cert is not None:
            context = ssl.create_default_context(cafile=str(self.tls_cert))
            context.check_hostname = False
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the server certificate is the anchor
            return context
        return None


def _beside_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("config_dir")
    return base / path if base is not None and not path.is_absolute() else path


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
    decode_process: bool = Field(
        True, description="decode and check the events in a child process (hub/decoder_process.py), a "
                          "batch while the batch before it is stored; false: in the hub's run thread")


class DeviceConfig(_Section):
    id: Name
    public_key: HexKey
    name: str = ""
    protocol: Literal[1, 2] = Field(
        2, description="2: its `state` must be an envelope signed with its key (PROTOCOL.md 2.5), "
                       "anything else on its state topic is quarantined; 1: plain JSON state, unsigned")


class OperatorConfig(_Section):
    """A person whose key signs the manual entries they make (`--sign-with`); logged with the roster."""

    name: str = Field(min_length=1, max_length=64, description="as given to --by")
    public_key: HexKey = Field(description="printed by `hall-hub operator keygen`")


class StaffConfig(_Section):
    id: RosterId
    name: str
    window: str = ""
    desk: RosterId | None = Field(None, description="the desk box they sit at (the `desk` of sign "
                                  "events); default: their own desk, named by their id")
    cards: list[str] = Field(default_factory=list, description="10 hex digits or the printed number")

    @field_validator("cards")
    @classmethod
    def _cards(cls, value: list[str]) -> list[str]:
        for card in value:
            parse_card(card)  # raises with a clear message; the original form is kept
        return value


class WindowConfig(_Section):
    """A service window and its desks (desk boxes): a window with several desks, each staff member
    seated at one of them; a listed desk nobody sits at is the window's shared sign."""

    id: str = Field(min_length=1, max_length=16, description='service window id, e.g. "03"')
    name: str = ""
    desks: list[RosterId] = Field(min_length=1, description="the desk ids of its desk boxes")

    @field_validator("desks")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({d for d in value if value.count(d) > 1})
        if repeated:
            raise ValueError(f"desk(s) {repeated} listed more than once")
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
    extended_minutes: int = Field(60, ge=0, le=240, description="延时服务: a rating or sign of a staff "
                                  "member this long after a session's end is extended service, and "
                                  "a missing leaving punch is judged only after it (0: off)")

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
            extended_minutes=self.extended_minutes,
        )


class RatingsConfig(_Section):
    count: Literal["all", "invited"] = Field("all", description="which presses count in statistics")
    repeat_seconds: int = Field(30, ge=0, le=3600, description="presses closer than this are misuse")


class CasesConfig(_Section):
    deadline_days: int = Field(5, ge=1, le=60, description="working days to follow up a bad rating")


class ComplaintsConfig(_Section):
    """投诉受理: when a complaint is due (seeds 000 and 004), in working days of `[schedule]`."""

    written_days: int = Field(3, ge=1, le=30, description="working days to answer a written complaint "
                                                          "(due at the end of the last one)")
    oral_days: int = Field(0, ge=0, le=5, description="working days to answer an oral complaint: 0 the "
                                                      "same working day, 1 the next (当日或次日)")
    phone: str = Field("", max_length=40, description="the hall's phone printed on complaint receipts")


class AlertsConfig(_Section):
    late_return_grace_minutes: int = Field(0, ge=0, le=120)
    unattended_min_minutes: int = Field(1, ge=0, le=240, description="shorter gaps are not reported")
    offline_after_seconds: int = Field(60, ge=10, le=3600, description="no state or heartbeat for this")
    check_seconds: int = Field(30, ge=1, le=3600, description="how often the scheduler runs the checks")
    daily_close: time = Field(time(23, 30), description="when the day's findings are closed")


class FaceConfig(_Section):
    require_live: bool = Field(True, description="a face punch counts only if it passed liveness")
    keep_snapshot_days: int = Field(90, ge=1, le=3650, description="face snapshots older than this are "
                                    "purged at the daily close (their SHA-256 stays in the log)")


class AuditConfig(_Section):
    witness_minutes: int = Field(10, ge=1, le=1440, description="every entry should be witnessed by a "
                                 "device's signature within this many minutes while a device is online "
                                 "(PROTOCOL.md 2.10; `log verify` reports what was not)")


class ReportsConfig(_Section):
    dir: FilePath = Field(Path("reports"), description="where the monthly summaries are written")
    bottom_marked: int = Field(10, ge=0, le=100, description="排名通报: the bottom this percent of the "
                               "ranked windows and of the ranked staff are marked, rounded up, at least "
                               "the last one (with those tied with it); 0 marks none")


class WebConfig(_Section):
    """The web console (hub/web/): off unless `listen` is set."""

    listen: str = Field("", description='host:port the console serves on, e.g. "127.0.0.1:8080"; '
                                        'empty: `hall-hub run` serves no console')
    session_hours: float = Field(8, gt=0, le=24 * 7, description="a login lasts this long")
    login_failures: int = Field(5, ge=1, le=100, description="failed logins per name and address "
                                                             "within login_window_minutes before 429")
    login_window_minutes: int = Field(5, ge=1, le=24 * 60)
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (behind an https "
                                                   "reverse proxy)")
    printers: list[str] = Field(default_factory=list, description='receipt printers the console offers, '
                                '"DEVICE:UNIT" (a printer unit of an edge box), e.g. ["entrance:printer"]')

    @field_validator("printers")
    @classmethod
    def _printers(cls, value: list[str]) -> list[str]:
        for target in value:
            device, colon, unit = target.partition(":")
            if not colon or not device or not unit:
                raise ValueError(f'{target!r}: give "DEVICE:UNIT", e.g. "entrance:printer"')
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value == "":
            return value
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be host:port, e.g. "127.0.0.1:8080", or empty for no console')
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class FeedConfig(_Section):
    """数据归集: ratings pushed upward to the province's endpoint (hub/feed/). Off while `url` is empty."""

    url: str = Field("", description="the receiving endpoint, http:// or https://; empty: no feed")
    token: str | None = Field(None, min_length=1, description="sent as Authorization: Bearer TOKEN")
    token_file: FilePath | None = Field(None, description="a file holding the token alone (relative to "
                                        "the config); read at each push, so a renewed token needs no restart")
    batch: int = Field(100, ge=1, le=10000, description="records per POST")
    interval_seconds: float = Field(60.0, gt=0, le=86400, description="the daemon looks for new records "
                                    "this often")
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="one POST's time limit")
    backoff_seconds: float = Field(5.0, gt=0, le=3600, description="first wait after a failed POST, "
                                   "doubled after each further failure")
    backoff_max_seconds: float = Field(600.0, gt=0, le=86400, description="the longest wait")
    province: Literal["generic"] = Field("generic", description="the record mapping "
                                         "(hub/feed/records.py PROVINCES)")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, or empty for no feed")
        return value

    @field_validator("token_file")
    @classmethod
    def _token_beside_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _beside_config(value, info)

    @model_validator(mode="after")
    def verify_token_source(self) -> FeedConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give one of token and token_file, not both")
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_seconds")
        return self

    def bearer(self) -> str | None:
        """The token: `token`, or the contents of `token_file` read now (ValueError when unreadable)."""
        if self.token_file is None:
            return self.token
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"[feed] token_file {self.token_file}: {exc.strerror or exc}") from None
        if not token:
            raise ValueError(f"[feed] token_file {self.token_file} is empty")
        return token


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
    windows: list[WindowConfig] = Field(default_factory=list, description="windows with their desks")
    operators: list[OperatorConfig] = Field(default_factory=list, description="operator keys in force")
    schedule: ScheduleConfig = ScheduleConfig()
    ratings: RatingsConfig = RatingsConfig()
    cases: CasesConfig = CasesConfig()
    complaints: ComplaintsConfig = ComplaintsConfig()
    alerts: AlertsConfig = AlertsConfig()
    reports: ReportsConfig = Field(default_factory=ReportsConfig, validate_default=True)
    face: FaceConfig = FaceConfig()
    web: WebConfig = WebConfig()
    audit: AuditConfig = AuditConfig()
    feed: FeedConfig = Field(default_factory=FeedConfig)

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
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("give one of private_key and private_key_file, not both")
        return self

    @model_validator(mode="after")
    def verify_unique_ids(self) -> HubConfig:
        if any(device.id == "hub" for device in self.devices):
            raise ValueError("devices: 'hub' is the hub's own broker user, not a device id")
        for section, ids in (("devices", [d.id for d in self.devices]),
                             ("staff", [s.id for s in self.staff]),
                             ("windows", [w.id for w in self.windows]),
                             ("operators", [o.name for o in self.operators]),
                             ("operators' public_key", [o.public_key for o in self.operators])):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"{section}: id(s) {duplicates} appear more than once")
        CardIndex(self.roster())  # raises when two staff claim the same card
        return self

    @model_validator(mode="after")
    def verify_desks(self) -> HubConfig:
        """Every staff member of a window listed in `[[windows]]` sits at one of its desks."""
        desks = {w.id: w.desks for w in self.windows}
        problems: list[InitErrorDetails] = []
        for i, member in enumerate(self.staff):
            listed = desks.get(member.window)
            desk = member.desk or member.id
            if listed is not None and desk not in listed:
                given = f"desk {desk!r}" if member.desk else f"no desk (so its own, {desk!r})"
                problems.append(_error(("staff", i, "desk" if member.desk else "id"), desk,
                                       f"{member.id} of window {member.window!r} has {given}, which is "
                                       f"not one of the window's desks {listed} in [[windows]]"))
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def has_private_key(self) -> bool:
        return self.private_key is not None or self.private_key_file is not None

    def private_key_hex(self) -> str:
        """The hub's private key; only the daemon and the commands that sign need it (an inspector's
        copy of the config may have none)."""
        if self.private_key is not None:
            return self.private_key
        if self.private_key_file is None:
            raise ValueError("this command signs as the hub: give private_key or private_key_file")
        return keyfile.read_private(self.private_key_file, PROGRAM)

    def device_keys(self) -> dict[str, str]:
        return {device.id: device.public_key for device in self.devices}

    def roster(self) -> list[StaffMember]:
        """The staff with their desks resolved (no `desk` is their own desk, named by their id)."""
        return [StaffMember(s.id, s.name, s.window, tuple(s.cards), s.desk or s.id) for s in self.staff]

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)


def _error(location: tuple[str | int, ...], value: str, message: str) -> InitErrorDetails:
    """A validation error at a key path of the file (a rule spanning sections, found at the top)."""
    return InitErrorDetails(type=PydanticCustomError("roster", "{message}", {"message": message}),
                            loc=location, input=value)


def load(path: str | Path, *, read_key: bool = True) -> HubConfig:
    """The validated config, its key file read once so that `check` sees what `run` would.
    `read_key=False` (the read-only inspector commands) leaves the key file alone: they need none."""
    config = configfile.load(path, HubConfig)
    if read_key and config.private_key_file is not None:
        configfile.read_key_file(Path(path), config.private_key_file, PROGRAM)
    return config
