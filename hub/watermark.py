"""Per-outbox `committed` watermarks: the highest seq N such that every seq <= N is stored.

An edge's outbox is named by its device and its epoch (PROTOCOL.md 2.4; None for a device whose
events carry no epoch, version 1). Each outbox has its own watermark, so a watermark for an earlier
outbox never covers readings of a new one. The watermark advances only over a contiguous run. A
new event at or below the watermark of the same outbox means the device lost its outbox without a
new epoch (seq_reset, version 1): it restarts the watermark; an event of a new epoch is reported as
seq_reset too, with both epochs. A device that moves from version 1 to 2 keeps its watermark (the
same outbox now names its epoch). A gap still open after the edges' resend interval (times
gap_after_resends) is reported and stepped over, since a device that still had those events would
have re-sent them by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Outbox = tuple[str, str | None]  # (device, epoch)


@dataclass(frozen=True)
class Notice:
    kind: str  # seq_reset, seq_gap
    device: str
    detail: dict[str, int | str | None]
    epoch: str | None = None  # the outbox the notice is about

    def log_data(self) -> dict[str, int | str | None]:
        """The content of its log entry; a gap names its outbox (`log verify` seq continuity)."""
        data: dict[str, int | str | None] = {"device": self.device, **self.detail}
        if self.kind == "seq_gap" and self.epoch is not None:
            data["epoch"] = self.epoch
        return data


@dataclass
class _Marks:
    mark: int = 0
    ahead: set[int] = field(default_factory=set)
    gap_since: float | None = None  # monotonic time the current gap was first seen


class Watermarks:
    def __init__(self) -> None:
        self._outboxes: dict[Outbox, _Marks] = {}
        self._current: dict[str, str | None] = {}  # device -> epoch of its newest outbox

    def mark(self, device: str, epoch: str | None = None) -> int:
        state = self._outboxes.get((device, epoch))
        return state.mark if state else 0

    def current(self) -> list[Outbox]:
        """Each device's newest outbox: the watermark it needs."""
        return sorted(self._current.items(), key=lambda item: item[0])

    def accept(self, device: str, seq: int, now: float, epoch: str | None = None) -> Notice | None:
        """A newly stored event (never a duplicate). Returns a seq_reset notice when it is one."""
        notice = None
        state = self._outboxes.get((device, epoch))
        if state is None:
            state, notice = self._new_outbox(device, seq, epoch)
        elif seq <= state.mark or seq in state.ahead:
            notice = Notice("seq_reset", device, {"seq": seq, "previous_mark": state.mark}, epoch)
            state.mark, state.ahead = seq - 1, set()
        state.ahead.add(seq)
        self._advance(state, now)
        return notice

    def overdue_gaps(self, now: float, limit_s: float) -> list[Notice]:
        """Gaps open longer than limit_s: reported once and stepped over."""
        notices = []
        for (device, epoch), state in self._outboxes.items():
            if state.gap_since is None or now - state.gap_since < limit_s:
                continue
            first_after = min(state.ahead)
            notices.append(Notice("seq_gap", device, {"from": state.mark + 1, "to": first_after - 1},
                                  epoch))
            state.mark = first_after - 1
            self._advance(state, now)
        return notices

    def _new_outbox(self, device: str, seq: int, epoch: str | None) -> tuple[_Marks, Notice | None]:
        known = device in self._current
        previous = self._current.get(device)
        self._current[device] = epoch
        if not known:
            return self._outboxes.setdefault((device, epoch), _Marks()), None
        if previous is None and (device, None) in self._outboxes:
            # Version 1 to 2: the outbox the device already had now names its epoch.
            state = self._outboxes.pop((device, None))
            if seq > state.mark and seq not in state.ahead:
                self._outboxes[(device, epoch)] = state
                return state, None
            self._outboxes[(device, None)] = state  # a lower seq: a new outbox after all
        before = self._outboxes[(device, previous)]
        notice = Notice("seq_reset", device, {"seq": seq, "previous_mark": before.mark,
                                              "epoch": epoch, "previous_epoch": previous}, epoch)
        return self._outboxes.setdefault((device, epoch), _Marks()), notice

    @staticmethod
    def _advance(state: _Marks, now: float) -> None:
        start = state.mark
        while state.mark + 1 in state.ahead:
            state.mark += 1
            state.ahead.discard(state.mark)
        if not state.ahead:
            state.gap_since = None
        elif state.gap_since is None or state.mark != start:
            state.gap_since = now
