"""Per-device `committed` watermarks: the highest seq N such that every seq <= N is stored.

The watermark advances only over a contiguous run. A new event at or below the watermark means the
device lost its outbox (seq_reset): it restarts the watermark. A gap still open after the edges'
resend interval (times gap_after_resends) is reported and stepped over, since a device that still
had those events would have re-sent them by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Notice:
    kind: str  # seq_reset, seq_gap
    device: str
    detail: dict[str, int]


@dataclass
class _Device:
    mark: int = 0
    ahead: set[int] = field(default_factory=set)
    gap_since: float | None = None  # monotonic time the current gap was first seen


class Watermarks:
    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def mark(self, device: str) -> int:
        state = self._devices.get(device)
        return state.mark if state else 0

    def devices(self) -> list[str]:
        return sorted(self._devices)

    def accept(self, device: str, seq: int, now: float) -> Notice | None:
        """A newly stored event (never a duplicate). Returns a seq_reset notice when it is one."""
        state = self._devices.setdefault(device, _Device())
        notice = None
        if seq <= state.mark or seq in state.ahead:
            notice = Notice("seq_reset", device, {"seq": seq, "previous_mark": state.mark})
            state.mark, state.ahead = seq - 1, set()
        state.ahead.add(seq)
        self._advance(state, now)
        return notice

    def overdue_gaps(self, now: float, limit_s: float) -> list[Notice]:
        """Gaps open longer than limit_s: reported once and stepped over."""
        notices = []
        for device, state in self._devices.items():
            if state.gap_since is None or now - state.gap_since < limit_s:
                continue
            first_after = min(state.ahead)
            notices.append(Notice("seq_gap", device, {"from": state.mark + 1, "to": first_after - 1}))
            state.mark = first_after - 1
            self._advance(state, now)
        return notices

    @staticmethod
    def _advance(state: _Device, now: float) -> None:
        start = state.mark
        while state.mark + 1 in state.ahead:
            state.mark += 1
            state.ahead.discard(state.mark)
        if not state.ahead:
            state.gap_since = None
        elif state.gap_since is None or state.mark != start:
            state.gap_since = now
