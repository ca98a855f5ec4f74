"""What every serial driver shares: recognising a failed port, rate-limited bad_frame faults, and
the error that says a reading was not recorded."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.readings import Reading, UnitFault


class RecordError(Exception):
    """Raised by `emit` when the agent could not commit a reading (its outbox refused the write). The
    driver does not acknowledge that reading to its device and carries on; the agent has logged it
    and reports it as a fault."""


def is_port_error(exc: BaseException) -> bool:
    """OSError and pyserial's SerialException (matched by name, so codecs need not import pyserial)."""
    return isinstance(exc, OSError) or type(exc).__name__.endswith("SerialException")


class FaultReporter:
    """Reports growth of the corrupt-input counters as one `bad_frame` fault: the first at once, then
    at most one per `interval` seconds; `force` flushes whatever is unreported."""

    def __init__(self, unit: str, emit: Callable[[Reading], object], monotonic: Callable[[], float],
                 interval: float) -> None:
        self._unit, self._emit, self._monotonic, self._interval = unit, emit, monotonic, interval
        self._bad_frames = self._skipped_bytes = 0
        self._last: float | None = None

    def update(self, bad_frames: int, skipped_bytes: int, force: bool, extra: str = "") -> bool:
        new_bad, new_skipped = bad_frames - self._bad_frames, skipped_bytes - self._skipped_bytes
        if not new_bad and not new_skipped:
            return False
        now = self._monotonic()
        if not force and self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        detail = f"{new_bad} bad frame(s), {new_skipped} byte(s) skipped{extra}"
        try:
            self._emit(UnitFault(self._unit, "bad_frame", count=new_bad, detail=detail))
        except RecordError:
            return False  # not recorded: these counts go with the next report
        self._bad_frames, self._skipped_bytes = bad_frames, skipped_bytes
        return True
