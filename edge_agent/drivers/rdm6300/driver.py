"""RDM6300 driver: the I/O half. Reads the port, feeds the pure codec, emits typed readings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from edge_agent.drivers.faults import FaultReporter, RecordError, is_port_error
from edge_agent.drivers.rdm6300.codec import FrameParser, TapDetector
from edge_agent.readings import CardRead, DeviceError, Transport, UnitFault
from wire.clock import Clock

READ_SIZE = 64
READ_TIMEOUT_SECONDS = 0.1


@dataclass
class Rdm6300Stats:
    frames: int = 0  # valid, non-phantom frames
    taps: int = 0  # CardReads emitted and recorded
    unrecorded: int = 0  # CardReads the agent could not record (it logs and reports them)
    bad_frames: int = 0
    skipped_bytes: int = 0
    phantom_reads: int = 0




class SerialPort:
    """pyserial behind the Transport protocol. `read` returns as soon as bytes have arrived
    (pyserial's own read(n) waits for n bytes or the whole timeout, adding up to 100 ms a frame)."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port

    def read(self, size: int = 1) -> bytes:
        first = self._port.read(1)
        if not first or size <= 1:
            return bytes(first)
        waiting = self._port.in_waiting
        return bytes(first) + (bytes(self._port.read(min(waiting, size - 1))) if waiting else b"")

    def write(self, data: bytes) -> int | None:
        return self._port.write(data)

    def close(self) -> None:
        self._port.close()


def open_serial(port: str, baud: int) -> Transport:
    """Open `port` at `baud` 8N1 with a short read timeout; failures become DeviceError."""
    try:
        return SerialPort(serial.Serial(
            port=port,
            baudrate=baud,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=READ_TIMEOUT_SECONDS,
        ))
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(f"cannot open {port} at {baud} baud: {exc}") from exc


class Rdm6300Driver:
    """Turns an RDM6300 byte stream into one CardRead per tap and rate-limited bad_frame faults.

    The transport is injected and owned by the caller (who opens and closes it); `run` raises
    DeviceError when the port fails, so the supervisor can reopen it. A tap the agent could not
    record (`emit` raised RecordError) is counted in `stats.unrecorded` and reading goes on.
    """

    def __init__(
        self,
        unit: str,
        transport: Transport,
        clock: Clock,
        emit: Callable[[CardRead | UnitFault], object],
        monotonic: Callable[[], float] = time.monotonic,
        fault_report_seconds: float = 5.0,
    ) -> None:
        self.unit = unit
        self._transport = transport
        self._clock = clock
        self._emit = emit
        self._monotonic = monotonic
        self._parser = FrameParser()
        self._taps = TapDetector()
        self.stats = Rdm6300Stats()
        self._faults = FaultReporter(self.unit, emit, monotonic, fault_report_seconds)

    def run(self, stop: threading.Event) -> None:
        """Read until `stop` is set; raises DeviceError when the port fails. Unreported corrupt
        input is flushed as a fault whenever this returns or raises."""
        try:
            while not stop.is_set():
                chunk = self._read()
                if chunk:
                    self._handle(chunk)
                self._report_faults(force=False)
        finally:
            self._report_faults(force=True)

    def _read(self) -> bytes:
        try:
            return self._transport.read(READ_SIZE)
        except Exception as exc:
            if is_port_error(exc):
                raise DeviceError(f"{self.unit}: read failed: {exc}") from exc
            raise

    def _handle(self, chunk: bytes) -> None:
        cards = self._parser.feed(chunk)
        mono = self._monotonic()
        for card in cards:
            if self._taps.observe(card, mono):
                try:
                    self._emit(CardRead(self.unit, card, self._clock.now()))
                except RecordError:
                    self.stats.unrecorded += 1
                    continue
                self.stats.taps += 1
        self.stats.frames = self._parser.frames
        self.stats.bad_frames = self._parser.bad_frames
        self.stats.skipped_bytes = self._parser.skipped_bytes
        self.stats.phantom_reads = self._parser.phantom_reads

    def _report_faults(self, force: bool) -> None:
        self._faults.update(self.stats.bad_frames, self.stats.skipped_bytes, force)
