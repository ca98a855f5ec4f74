"""ButtonBus driver: the I/O half. Reads the port, feeds the pure codec, acknowledges keys, polls a
shared RS-485 bus, writes displays, and emits typed readings.

Two named threads: `run` (the caller's thread) owns every write and all state; a reader thread it
starts and joins only reads the port and hands parsed frames over a queue, so a frame is handled the
moment it arrives and a poll can give up on a silent address after 50 ms whatever the read timeout.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_agent.drivers.buttonbus.codec import (
    ACK,
    HELLO,
    HOST_COMMANDS,
    IDLE,
    KEY,
    POLL,
    SHOW,
    Frame,
    FrameParser,
    encode,
    parse_hello,
    parse_key,
    show_payload,
)
from edge_agent.drivers.faults import FaultReporter, RecordError, is_port_error
from edge_agent.readings import ButtonPress, DeviceError, DeviceHello, Reading, Transport
from wire.clock import Clock

READ_SIZE = 64
IDLE_WAKE_SECONDS = 0.05  # point-to-point: how often the run loop looks at `stop` when nothing happens
READER_JOIN_SECONDS = 1.0  # the read timeout is 0.1 s, so the reader notices its stop well within this


@dataclass(frozen=True)
class BusDevice:
    addr: int
    unit: str  # the configured unit id that owns this address


@dataclass
class ButtonBusStats:
    frames: int = 0  # valid frames from configured devices
    presses: int = 0  # ButtonPresses emitted and recorded
    repeats: int = 0  # KEYs whose seq was already recorded (acknowledged again, not emitted)
    unrecorded: int = 0  # KEYs the agent could not record: not acknowledged, so the device repeats them
    acks_sent: int = 0
    hellos: int = 0
    polls: int = 0
    unanswered_polls: int = 0  # polled mode: no answer within poll_interval
    echoes: int = 0  # host-to-device frames read back (half-duplex adapters echo what we send)
    bad_frames: int = 0  # rejected by the parser, from an unknown address, or with a malformed payload
    skipped_bytes: int = 0


@dataclass(frozen=True)
class _Show:
    addr: int
    frame: bytes


@dataclass(frozen=True)
class _ReadFailed:
    error: Exception




class ButtonBusDriver:
    """One ButtonBus port: a single device (`polled=False`, it speaks on its own) or a polled RS-485
    bus of several addresses (`polled=True`).

    A KEY is acknowledged once its ButtonPress is recorded (`emit` returned; RecordError: not
    acknowledged, the device repeats it), and every repeat of it again; each new seq per address
    becomes one ButtonPress (a seq equal to the last one recorded from that address is a repeat; a
    power-up HELLO forgets it, a periodic one keeps it). The transport is owned by the caller; `run`
    raises DeviceError when the port fails.
    `poll_interval` is how long a polled address has to answer, and the shortest time one round of
    polls takes. `monotonic` paces the bad_frame fault reports.
    """

    def __init__(
        self,
        port_unit: str,
        transport: Transport,
        clock: Clock,
        emit: Callable[[Reading], object],
        devices: Sequence[BusDevice],
        polled: bool,
        monotonic: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.05,
        fault_report_seconds: float = 5.0,
    ) -> None:
        if not devices:
            raise ValueError(f"{port_unit}: a ButtonBus port needs at least one device")
        addrs = [device.addr for device in devices]
        if len(set(addrs)) != len(addrs) or not all(0 <= addr <= 0xFF for addr in addrs):
            raise ValueError(f"{port_unit}: device addresses must be distinct bytes, got {addrs}")
        if not polled and len(devices) != 1:
            raise ValueError(f"{port_unit}: a point-to-point port has one device, got {len(devices)}")
        if poll_interval <= 0:
            raise ValueError(f"{port_unit}: poll_interval must be > 0, got {poll_interval}")
        self.port_unit = port_unit
        self.polled = polled
        self._transport = transport
        self._clock = clock
        self._emit = emit
        self._units = {device.addr: device.unit for device in devices}
        self._monotonic = monotonic
        self._poll_interval = poll_interval
        self._parser = FrameParser()
        self._inbox: queue.Queue[Frame | _Show | _ReadFailed] = queue.Queue()
        self._last_seq: dict[int, int] = {}
        self._rejected = 0  # frames the parser accepted but this driver could not use
        self._unknown_addrs: set[int] = set()
        self.stats = ButtonBusStats()
        self._faults = FaultReporter(self.port_unit, emit, monotonic, fault_report_seconds)

    def adopt_last_seqs(self, last_seqs: dict[int, int]) -> None:
        """Use and update `last_seqs` (address -> last recorded KEY seq), kept by the supervisor across
        reopenings of the port: a KEY recorded just before the port failed, whose ACK never left, is
        repeated by the device afterwards and must count once. Call before `run`."""
        self._last_seq = last_seqs

    # --- called from other threads --------------------------------------------------------

    def show(self, addr: int, mode: int, text: str) -> None:
        """Queue a SHOW for the device at `addr`; the run loop writes it (between polls on a bus).
        Thread-safe. Text is cut to 64 UTF-8 bytes on a character boundary."""
        if addr not in self._units:
            raise ValueError(f"{self.port_unit}: no device at address {addr} (known: {sorted(self._units)})")
        self._inbox.put(_Show(addr, encode(addr, SHOW, show_payload(mode, text))))

    # --- the run loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve the port until `stop` is set; raises DeviceError when the port fails. Unreported
        corrupt input is flushed as a fault whenever this returns or raises."""
        reader_stop = threading.Event()
        reader = threading.Thread(
            target=self._read_loop, args=(reader_stop,), name=f"buttonbus-read-{self.port_unit}", daemon=True
        )
        reader.start()
        try:
            if self.polled:
                self._run_polled(stop)
            else:
                self._run_point_to_point(stop)
        finally:
            reader_stop.set()
            reader.join(READER_JOIN_SECONDS)
            self._report_faults(force=True)

    def _run_point_to_point(self, stop: threading.Event) -> None:
        while not stop.is_set():
            item = self._next(IDLE_WAKE_SECONDS)
            if isinstance(item, _Show):
                self._write(item.frame)
            elif item is not None:
                self._handle(item)
            self._report_faults(force=False)

    def _run_polled(self, stop: threading.Event) -> None:
        shows: dict[int, bytes] = {}  # the latest display per address, written before the next poll
        while not stop.is_set():
            round_ends = time.monotonic() + self._poll_interval
            for addr in self._units:
                if stop.is_set():
                    return
                for frame in shows.values():
                    self._write(frame)
                shows.clear()
                self._poll(addr, shows)
                self._report_faults(force=False)
            while (rest := round_ends - time.monotonic()) > 0:  # a fast bus is not polled in a busy loop
                item = self._next(rest)
                if isinstance(item, _Show):
                    self._write(item.frame)
                elif item is not None:
                    self._handle(item)

    def _poll(self, addr: int, shows: dict[int, bytes]) -> None:
        """POLL `addr` and handle what arrives until its answer (KEY, HELLO or IDLE) or the timeout."""
        self._write(encode(addr, POLL))
        self.stats.polls += 1
        deadline = time.monotonic() + self._poll_interval
        while (left := deadline - time.monotonic()) > 0:
            item = self._next(left)
            if isinstance(item, _Show):
                shows.pop(item.addr, None)
                shows[item.addr] = item.frame
            elif item is not None and self._handle(item) and item.addr == addr:
                return
        self.stats.unanswered_polls += 1

    def _next(self, timeout: float) -> Frame | _Show | None:
        try:
            item = self._inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if isinstance(item, _ReadFailed):
            if is_port_error(item.error):
                raise DeviceError(f"{self.port_unit}: read failed: {item.error}") from item.error
            raise item.error
        return item

    def _handle(self, frame: Frame) -> bool:
        """Act on one frame; True when it is a device's answer (KEY, HELLO or IDLE) from a known address."""
        if frame.cmd in HOST_COMMANDS:
            self.stats.echoes += 1
            return False
        unit = self._units.get(frame.addr)
        if unit is None:
            self._rejected += 1
            self._unknown_addrs.add(frame.addr)
            return False
        try:
            key = parse_key(frame.payload) if frame.cmd == KEY else None
            hello = parse_hello(frame.payload) if frame.cmd == HELLO else None
            if frame.cmd == IDLE and frame.payload:
                raise ValueError("an IDLE payload is empty")
        except ValueError:
            self._rejected += 1
            return False
        self.stats.frames += 1
        if key is not None:
            self._key(unit, frame.addr, *key)
        elif hello is not None:
            if hello.powered_up:
                self._last_seq.pop(frame.addr, None)  # its seq starts afresh
            self.stats.hellos += 1
            with contextlib.suppress(RecordError):  # nothing to acknowledge
                self._emit(DeviceHello(unit, frame.addr, hello.kind, hello.keys, hello.firmware))
        return True

    def _key(self, unit: str, addr: int, seq: int, key: int) -> None:
        """Record first, then acknowledge: a press the agent could not record stays unacknowledged and
        the device sends it again; if the ACK write fails, the recorded seq makes the repeat count once."""
        if self._last_seq.get(addr) == seq:
            self.stats.repeats += 1
        else:
            try:
                self._emit(ButtonPress(unit, addr, key, self._clock.now()))
            except RecordError:
                self.stats.unrecorded += 1
                return
            self._last_seq[addr] = seq
            self.stats.presses += 1
        self._write(encode(addr, ACK, bytes((seq,))))
        self.stats.acks_sent += 1

    # --- port I/O ---------------------------------------------------------------------------

    def _read_loop(self, stop: threading.Event) -> None:
        """The reader thread: port bytes to frames on the inbox; a failure goes there too and ends it."""
        while not stop.is_set():
            try:
                chunk = self._transport.read(READ_SIZE)
            except Exception as exc:  # handed to the run loop, which translates or re-raises it
                self._inbox.put(_ReadFailed(exc))
                return
            for frame in self._parser.feed(chunk) if chunk else ():
                self._inbox.put(frame)

    def _write(self, frame: bytes) -> None:
        try:
            self._transport.write(frame)
        except Exception as exc:
            if is_port_error(exc):
                raise DeviceError(f"{self.port_unit}: write failed: {exc}") from exc
            raise

    # --- faults -----------------------------------------------------------------------------

    def _report_faults(self, force: bool) -> None:
        self.stats.bad_frames = self._parser.bad_frames + self._rejected
        self.stats.skipped_bytes = self._parser.skipped_bytes
        extra = (f", frames from unconfigured address(es) {sorted(self._unknown_addrs)}"
                 if self._unknown_addrs else "")
        if self._faults.update(self.stats.bad_frames, self.stats.skipped_bytes, force, extra):
            self._unknown_addrs.clear()
