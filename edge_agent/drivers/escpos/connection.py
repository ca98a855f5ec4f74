"""A printer unit's `connection` string, parsed (pure): tcp://HOST:PORT, usb://VID:PID,
serial:///dev/ttyUSB0?baud=9600."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class TcpConnection:
    host: str
    port: int = 9100

    def __str__(self) -> str:
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class UsbConnection:
    vendor: int
    product: int

    def __str__(self) -> str:
        return f"usb://{self.vendor:04x}:{self.product:04x}"


@dataclass(frozen=True)
class SerialConnection:
    device: str
    baud: int = 9600

    def __str__(self) -> str:
        return f"serial://{self.device}?baud={self.baud}"


Connection = TcpConnection | UsbConnection | SerialConnection


def parse_connection(text: str) -> Connection:
    """The connection a string names; ValueError says what a good one looks like."""
    parts = urlsplit(text)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError(f"{text!r}: give tcp://HOST:PORT, e.g. tcp://192.168.1.50:9100")
        return TcpConnection(parts.hostname, parts.port or 9100)
    if parts.scheme == "usb":
        vid, _, pid = parts.netloc.partition(":")
        try:
            vendor, product = int(vid, 16), int(pid, 16)
        except ValueError:
            raise ValueError(f"{text!r}: give usb://VID:PID in hex, e.g. usb://0416:5011") from None
        if not (0 <= vendor <= 0xFFFF and 0 <= product <= 0xFFFF):
            raise ValueError(f"{text!r}: VID and PID are 4 hex digits each")
        return UsbConnection(vendor, product)
    if parts.scheme == "serial":
        query = parse_qs(parts.query)
        if not parts.path or parts.netloc:
            raise ValueError(f"{text!r}: give serial:///dev/ttyUSB0?baud=9600 (three slashes)")
        try:
            baud = int(query.get("baud", ["9600"])[0])
        except ValueError:
            raise ValueError(f"{text!r}: baud must be a number") from None
        if baud <= 0 or set(query) - {"baud"}:
            raise ValueError(f"{text!r}: the only option is baud=N (N > 0)")
        return SerialConnection(parts.path, baud)
    raise ValueError(f"{text!r}: the connection must be tcp://HOST:PORT, usb://VID:PID or "
                     "serial:///dev/DEVICE?baud=N")
