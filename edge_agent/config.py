"""The edge agent's config: one pydantic model per section, unknown keys rejected.

    hall = "h1"
    device = "entrance"
    private_key_file = "/etc/hall/entrance.key"   # `hall-edge keygen --out FILE`; or private_key = "<64 hex>"
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

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge_agent.window import WindowDevice
from wire import configfile, keyfile
from wire.configfile import FilePath, HexKey, Name, RosterId, check_timezone

_Section = configfile.Section
PROGRAM = "hall-edge"  # named in the hint of a bad key file


class BrokerConfig(_Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port, or mqtts:// for TLS")
    username: str | None = None
    password: str | None = None
    ca_file: FilePath | None = Field(None, description="CA bundle for mqtts://; the system's when absent")
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
    path: FilePath = Field(description="SQLite file of the durable outbox")
    resend_seconds: float = Field(30.0, gt=0, le=3600, description="republish uncovered events after this")
    warn_mb: float = Field(256.0, gt=0, description="an `outbox_large` fault when the outbox's data passes "
                                                    "this many MiB (readings are never dropped)")


class CardUnit(_Section):
    id: Name
    kind: Literal["card"]
    driver: Literal["rdm6300"] = Field(description="the reader family; see edge_agent/drivers")
    port: str = Field(description="serial device, e.g. /dev/hall-card (udev) or /dev/ttyUSB0")
    baud: int = Field(9600, gt=0)


class _ButtonUnit(_Section):
    id: Name
    driver: Literal["buttonbus"] = "buttonbus"
    port: str = Field(description="serial device of the ButtonBus box or RS-485 adapter")
    baud: int = Field(9600, gt=0)


WindowId = Annotated[str, Field(min_length=1, max_length=16, description='service window id, e.g. "03"')]


class EvaluatorUnit(_ButtonUnit):
    """A citizens' satisfaction evaluator alone on its port (point-to-point)."""

    kind: Literal["evaluator"]
    window: WindowId
    addr: int = Field(1, ge=0, le=255)
    keys: int = Field(5, ge=2, le=5, description="number of rating keys")


class DeskUnit(_ButtonUnit):
    """A staff desk box with the away sign alone on its port (point-to-point)."""

    kind: Literal["desk"]
    window: WindowId
    desk: RosterId | None = Field(None, description="desk id in sign events (the hub's [[staff]] desk); "
                                                  "defaults to the unit id")
    addr: int = Field(1, ge=0, le=255)


class BusMember(_Section):
    addr: int = Field(ge=0, le=255)
    kind: Literal["evaluator", "desk"]
    window: WindowId
    id: Name | None = Field(None, description="defaults to {bus id}-{addr}")
    desk: RosterId | None = None
    keys: int = Field(5, ge=2, le=5)


class BusUnit(_ButtonUnit):
    """Several ButtonBus devices on one RS-485 port, polled by the agent."""

    kind: Literal["bus"]
    devices: list[BusMember] = Field(min_length=1)

    @model_validator(mode="after")
    def verify_addresses(self) -> BusUnit:
        addrs = [member.addr for member in self.devices]
        if len(set(addrs)) != len(addrs):
            raise ValueError(f"devices: an address appears twice in {addrs}")
        return self


class FaceUnit(_Section):
    """The entrance camera of the face sign-in terminal."""

    id: Name
    kind: Literal["face"]
    driver: Literal["opencv"] = "opencv"
    source: str = Field(description='camera index ("0"), a video file, or an rtsp:// or http:// stream URL')
    require_live: bool = Field(True, description="a face must blink before it clocks in")
    confirm_frames: int = Field(3, ge=1, le=30, description="frames that must agree on the person")
    cooldown_seconds: float = Field(30.0, ge=0, description="no second punch of one person within this")
    card_face_seconds: float | None = Field(
        None, gt=0, le=120, description="card+face mode: a tap waits this long for the owner's live face")


class PrinterUnit(_Section):
    """A receipt printer (ESC/POS): 58 mm (columns = 32) or 80 mm (columns = 48)."""

    id: Name
    kind: Literal["printer"]
    driver: Literal["escpos"] = "escpos"
    connection: str = Field(description='tcp://HOST:9100, usb://VID:PID (hex) or serial:///dev/ttyUSB0?baud=9600')
    columns: Literal[32, 42, 48] = Field(48, description="characters per line of the font A: 32 on 58 mm "
                                                          "paper, 48 on 80 mm (42 on some 80 mm models)")
    profile: str | None = Field(None, description="a python-escpos printer profile, e.g. TM-T88V")
    cutter: bool = Field(True, description="the printer has an auto-cutter (else paper is fed)")
    answers_status: bool = Field(True, description="the printer answers DLE EOT status requests; false "
                                 "(some network interfaces never answer): it is taken as ready, paper "
                                 "faults are not seen, and a job is acked once sent whole")

    @field_validator("connection")
    @classmethod
    def _connection(cls, value: str) -> str:
        # imported here: edge_agent.drivers imports this module
        from edge_agent.drivers.escpos.connection import parse_connection

        parse_connection(value)  # raises ValueError naming the forms
        return value

    @property
    def port(self) -> str:
        return self.connection


Unit = Annotated[CardUnit | EvaluatorUnit | DeskUnit | BusUnit | FaceUnit | PrinterUnit,
                 Field(discriminator="kind")]


class WindowSettings(_Section):
    """Hall settings for the window boxes."""

    invite_seconds: float = Field(10.0, gt=0, le=600, description="how long an invitation to rate lasts")
    away_minutes: dict[Literal["meeting", "errand", "break", "field", "other"], int] = Field(
        default_factory=lambda: {"meeting": 60, "errand": 30, "break": 15, "field": 120, "other": 30},
        description="default time away per reason, for the declared return time",
    )
    away_slip_printer: Name | None = Field(
        None, description="the printer unit of this box that prints the 暂离告知 away slip when a desk "
                          "goes away; absent: no slip")
    away_slip_windows: list[WindowId] | None = Field(
        None, description="the windows whose desks get a slip; absent: every window with a desk here")
    substitute: dict[WindowId, WindowId] = Field(
        default_factory=dict, description="AB岗: window -> the window that serves its citizens while it is "
                                          "away, printed on the away slip")
    rating_receipt_printer: Name | None = Field(
        None, description="the printer unit of this box that prints the 评价凭证 rating receipt after "
                          "each rating; absent: no receipt")
    rating_receipt_windows: list[WindowId] | None = Field(
        None, description="the windows whose ratings get a receipt; absent: every window with an "
                          "evaluator here")


class TerminalSettings(_Section):
    """The entrance terminal's own screen: one full-screen page served to the box's browser."""

    listen: str = Field("127.0.0.1:8090", description="host:port of the page; 127.0.0.1 keeps it on the box "
                                                      "(no login: anyone who reaches it sees the punches)")
    preview_fps: float = Field(5.0, gt=0, le=15, description="camera preview frames per second (MJPEG)")
    repeat_minutes: int = Field(3, ge=0, le=120, description="a second punch of one person within this "
                                "shows 已打卡 (the hub's [schedule] duplicate_punch_minutes decides)")
    lines: int = Field(6, ge=1, le=20, description="punches shown, newest first")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be "host:port", e.g. "127.0.0.1:8090"')
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class SoundSettings(_Section):
    """Tones and spoken zh-CN prompts through ALSA (`aplay`)."""

    enabled: bool = Field(True, description="false: silent (the section may stay)")
    volume: int = Field(80, ge=0, le=100, description="percent of the clips' recorded level")
    device: str = Field("default", description='ALSA PCM for `aplay -D`: "default", "plughw:1,0", "null"')
    clips_dir: FilePath | None = Field(None, description="a folder of the hall's own recordings; a clip "
                                       "missing there is taken from the clips shipped with the agent")


class EdgeConfig(_Section):
    hall: Name
    device: Name
    private_key: HexKey | None = Field(None, description="this device's Ed25519 private key")
    private_key_file: FilePath | None = Field(None, description="a file holding the private key alone")
    hub_public_key: HexKey
    timezone: str = "Asia/Shanghai"
    topic_prefix: str = "hall/v1"
    heartbeat_seconds: float = Field(30.0, gt=0, description="republish the retained state this often")
    witness_seconds: float = Field(60.0, gt=0, le=300, description="a chain head from the hub that no "
                                   "event signed this long is signed by a `witness` event (PROTOCOL.md 2.10)")
    broker: BrokerConfig = BrokerConfig()
    outbox: OutboxConfig
    units: list[Unit] = Field(default_factory=list)
    window: WindowSettings = WindowSettings()
    terminal: TerminalSettings | None = Field(None, description="absent: no terminal page")
    sound: SoundSettings | None = Field(None, description="absent: silent")

    @field_validator("private_key_file", "outbox", "broker", "sound", mode="after")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        base = (info.context or {}).get("config_dir")
        if base is None:
            return value
        if isinstance(value, Path) and not value.is_absolute():
            return base / value
        if isinstance(value, OutboxConfig) and not value.path.is_absolute():
            return value.model_copy(update={"path": base / value.path})
        if isinstance(value, BrokerConfig) and value.ca_file is not None and not value.ca_file.is_absolute():
            return value.model_copy(update={"ca_file": base / value.ca_file})
        clips = value.clips_dir if isinstance(value, SoundSettings) else None
        if isinstance(value, SoundSettings) and clips is not None and not clips.is_absolute():
            return value.model_copy(update={"clips_dir": base / clips})
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def verify_key_source(self) -> EdgeConfig:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of private_key and private_key_file")
        return self

    @model_validator(mode="after")
    def verify_one_camera(self) -> EdgeConfig:
        if sum(isinstance(unit, FaceUnit) for unit in self.units) > 1:
            raise ValueError("units: one face unit per edge agent")
        return self

    @model_validator(mode="after")
    def verify_terminal(self) -> EdgeConfig:
        if self.terminal is not None and not self.is_entrance():
            raise ValueError("terminal: the terminal page is the entrance's: give a card or face unit too")
        return self

    def is_entrance(self) -> bool:
        return any(isinstance(unit, CardUnit | FaceUnit) for unit in self.units)

    @model_validator(mode="after")
    def verify_window_printing(self) -> EdgeConfig:
        """The slip and receipt printers are printer units of this box; the windows named have the
        device that makes the event (a desk for slips, an evaluator for receipts)."""
        printers = {unit.id for unit in self.printer_units()}
        w = self.window
        for key, printer, windows, kind in (
                ("away_slip", w.away_slip_printer, w.away_slip_windows, "desk"),
                ("rating_receipt", w.rating_receipt_printer, w.rating_receipt_windows, "evaluator")):
            if printer is not None and printer not in printers:
                known = ", ".join(sorted(printers)) or "none"
                raise ValueError(f"window.{key}_printer: {printer!r} is not a printer unit of this box "
                                 f"(printer units: {known})")
            if windows is not None and printer is None:
                raise ValueError(f"window.{key}_windows: give window.{key}_printer too")
            have = {d.window for d in self.window_devices() if d.kind == kind}
            missing = sorted(set(windows or ()) - have)
            if missing:
                raise ValueError(f"window.{key}_windows: no {kind} for window(s) {', '.join(missing)} "
                                 "on this box")
        desks = {d.window for d in self.window_devices() if d.kind == "desk"}
        for window, other in w.substitute.items():
            if window not in desks or window == other:
                raise ValueError(f"window.substitute: {window} -> {other}: the key must be a window with "
                                 "a desk on this box, the value another window")
        return self

    def printer_units(self) -> list[PrinterUnit]:
        return [unit for unit in self.units if isinstance(unit, PrinterUnit)]

    def face_unit(self) -> FaceUnit | None:
        return next((unit for unit in self.units if isinstance(unit, FaceUnit)), None)

    @model_validator(mode="after")
    def verify_unique_units(self) -> EdgeConfig:
        seen: set[str] = set()
        for unit in self.units:
            ids = [unit.id] + [m.id or f"{unit.id}-{m.addr}" for m in getattr(unit, "devices", [])]
            for unit_id in ids:
                if unit_id in seen:
                    raise ValueError(f"units: id {unit_id!r} appears twice")
                seen.add(unit_id)
        windows: dict[tuple[str, str], str] = {}
        for device in self.window_devices():
            key = (device.window, device.kind)
            if key in windows:
                raise ValueError(f"units: window {device.window} has two {device.kind}s "
                                 f"({windows[key]} and {device.unit})")
            windows[key] = device.unit
        return self

    def window_devices(self) -> list[WindowDevice]:
        devices = []
        for unit in self.units:
            if isinstance(unit, EvaluatorUnit):
                devices.append(WindowDevice(unit.id, "evaluator", unit.window, unit.id, unit.keys))
            elif isinstance(unit, DeskUnit):
                devices.append(WindowDevice(unit.id, "desk", unit.window, unit.desk or unit.id))
            elif isinstance(unit, BusUnit):
                for m in unit.devices:
                    member_id = m.id or f"{unit.id}-{m.addr}"
                    devices.append(WindowDevice(member_id, m.kind, m.window, m.desk or member_id, m.keys))
        return devices

    def private_key_hex(self) -> str:
        if self.private_key is not None:
            return self.private_key
        assert self.private_key_file is not None
        return keyfile.read_private(self.private_key_file, PROGRAM)


def load(path: str | Path) -> EdgeConfig:
    """The validated config, its key file read once so that `check` sees what `run` would."""
    config = configfile.load(path, EdgeConfig)
    if config.private_key_file is not None:
        configfile.read_key_file(Path(path), config.private_key_file, PROGRAM)
    return config
