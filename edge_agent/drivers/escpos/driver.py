"""The ESC/POS printer driver: the I/O half. python-escpos owns the connection (Network, Usb,
Serial) and the QR and cut commands; text goes raw as laid out by receipt.py. No queue, no MQTT,
no database here: the print queue (edge_agent/printing.py) calls `status` and `send`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from escpos.exceptions import Error as EscposError

from edge_agent.drivers.escpos.connection import (
    Connection,
    SerialConnection,
    TcpConnection,
    UsbConnection,
)
from edge_agent.drivers.escpos.receipt import Cut, Part, Qr, Raw
from edge_agent.drivers.escpos.status import REQUESTS, PrinterStatus, StatusError, decode, request
from edge_agent.readings import DeviceError

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0
QR_DOT_SIZE = 6
# What python-escpos and the connections under it raise: sockets, pyserial's SerialException and
# pyusb's USBError are OSErrors; python-escpos asserts that a device is open.
PRINTER_ERRORS = (OSError, EscposError, AssertionError, ValueError)


class PrinterError(DeviceError):
    """The printer cannot be reached, or stopped answering or taking data."""


OpenPrinter = Callable[[], Any]  # returns an opened python-escpos printer (Escpos subclass)


def escpos_opener(connection: Connection, profile: str | None,
                  timeout: float = TIMEOUT_SECONDS) -> OpenPrinter:
    """How to open the printer with python-escpos (imported here: only printer boxes need it)."""

    def open_printer() -> Any:
        from escpos import printer

        kwargs: dict[str, Any] = {"profile": profile} if profile else {}
        if isinstance(connection, TcpConnection):
            device: Any = printer.Network(connection.host, connection.port, timeout=timeout, **kwargs)
        elif isinstance(connection, UsbConnection):
            device = printer.Usb(connection.vendor, connection.product, timeout=int(timeout * 1000), **kwargs)
        elif isinstance(connection, SerialConnection):
            device = printer.Serial(connection.device, connection.baud, timeout=timeout, **kwargs)
        else:
            raise TypeError(f"unknown connection {connection!r}")
        device.open()
        return device

    return open_printer


class EscposDriver:
    """One printer. `status` asks DLE EOT 1, 2, 4; `send` sends a laid-out job. Both (re)open the
    connection when needed and raise PrinterError, after closing it, when the printer fails."""

    def __init__(self, unit: str, open_printer: OpenPrinter, qr_size: int = QR_DOT_SIZE,
                 answers_status: bool = True) -> None:
        self.unit = unit
        self._answers_status = answers_status
        self._open = open_printer
        self._qr_size = qr_size
        self._printer: Any = None

    def status(self) -> PrinterStatus:
        printer = self._connected()
        if not self._answers_status:
            return PrinterStatus()  # a printer that never answers DLE EOT: taken as ready once open
        answers: dict[int, int] = {}
        try:
            for n in REQUESTS:
                printer._raw(request(n))
                answer = printer._read()
                if not answer:
                    raise PrinterError(f"no answer to DLE EOT {n}")
                answers[n] = answer[-1]
            return decode(answers)
        except (StatusError, PrinterError) as exc:
            self.close()
            raise PrinterError(f"{self.unit}: {exc}") from exc
        except PRINTER_ERRORS as exc:
            self.close()
            raise PrinterError(f"{self.unit}: status: {type(exc).__name__}: {exc}") from exc

    def send(self, parts: Sequence[Part]) -> None:
        printer = self._connected()
        try:
            for part in parts:
                if isinstance(part, Raw):
                    printer._raw(part.data)
                elif isinstance(part, Qr):
                    printer.qr(part.data, native=True, size=self._qr_size)
                elif isinstance(part, Cut):
                    printer.cut()
        except PRINTER_ERRORS as exc:  # a connection lost in the middle: the job is sent again whole
            self.close()
            raise PrinterError(f"{self.unit}: sending: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        printer, self._printer = self._printer, None
        if printer is not None:
            try:
                printer.close()
            except PRINTER_ERRORS as exc:  # closing a broken connection: nothing more to do
                log.debug("printer %s: close: %s", self.unit, exc)

    def _connected(self) -> Any:
        if self._printer is None:
            try:
                self._printer = self._open()
            except (*PRINTER_ERRORS, ImportError) as exc:  # not found; pyusb missing
                raise PrinterError(f"{self.unit}: cannot open: {type(exc).__name__}: {exc}") from exc
        return self._printer
