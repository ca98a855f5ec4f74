"""What a window box prints on its own printer: the 暂离告知 away slip and the 评价凭证 rating receipt.

`WindowSlips.record` stands between the window boxes and the agent's `record`: once a `sign` event
that takes a desk away, or a `rating` event, is in the outbox, the slip it calls for is queued on the
box's printer through the durable print queue (edge_agent/printing.py), locally, not via the hub.
The event stays the record: a slip that cannot be queued is logged and the event goes on as if no
printer were configured; a printer out of paper holds the slip until it is back. The slip's job id
is derived from the event's id, so a slip is queued once per event.

The composing functions are pure: an envelope in, a PrintJob out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config import WindowSettings
from edge_agent.drivers.escpos.receipt import JobError, PrintJob
from edge_agent.printing import Printers, QueueError
from edge_agent.window import REASON_ZH
from wire.envelope import Envelope, parse_ts

log = logging.getLogger(__name__)
RULE = "─"  # a line of "─" alone: a rule as wide as the paper (PROTOCOL.md 2.8)
LEVELS_ZH = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}  # a five-key evaluator

RecordEvent = Callable[[str, dict[str, Any], str], Envelope | None]


def _local(ts: str, tz: ZoneInfo) -> datetime:
    return parse_ts(ts).astimezone(tz)


def away_slip(envelope: Envelope, unit: str, substitute: str | None, tz: ZoneInfo) -> PrintJob:
    """暂离告知, to put on the desk: the window, the reason, when the desk went away, the declared
    return and the substitute window (AB岗)."""
    body = envelope.body
    left = _local(envelope.ts, tz)
    lines = [
        f"{body['window']}号窗口 工作人员暂时离开",
        f"暂离事由：{REASON_ZH.get(body.get('reason') or 'other', '其他')}",
        f"离开时间：{left:%Y-%m-%d %H:%M}",
    ]
    if body.get("back_at"):
        back = _local(body["back_at"], tz)
        when = f"{back:%H:%M}" if back.date() == left.date() else f"{back:%m-%d %H:%M}"
        lines.append(f"预计返回：{when}")
    lines.append(RULE)
    if substitute:
        lines.append(f"替岗窗口（AB岗）：{substitute}号窗口")
        lines.append(f"请到{substitute}号窗口办理业务。")
    else:
        lines.append("请稍候，工作人员将尽快返回。")
    lines.append("给您带来不便，敬请谅解。")
    return PrintJob(f"away-{envelope.id}", unit, "暂离告知", tuple(lines), None, True)


def stars(level: int, keys: int) -> str:
    """"★★★☆☆" for level 3 of 5, with the five-key evaluator's words: "★★★☆☆ 基本满意"."""
    text = "★" * level + "☆" * max(keys - level, 0)
    return f"{text} {LEVELS_ZH[level]}" if keys == 5 and level in LEVELS_ZH else text


def rating_receipt(envelope: Envelope, unit: str, tz: ZoneInfo) -> PrintJob:
    """评价凭证 for the citizen: the level in stars, the window, the time, the ticket and the rating's
    id (the event's id), as text and as a QR code."""
    body = envelope.body
    lines = [
        f"评价窗口：{body['window']}号窗口",
        f"评价结果：{stars(int(body['level']), int(body.get('keys', 5)))}",
        f"评价时间：{_local(envelope.ts, tz):%Y-%m-%d %H:%M:%S}",
        f"取号：{body.get('ticket') or '—'}",
        RULE,
        "评价编号：",
        envelope.id,
        "感谢您的评价！扫码核对评价编号。",
    ]
    return PrintJob(f"rating-{envelope.id}", unit, "评价凭证", tuple(lines), envelope.id, True)


class WindowSlips:
    """The window boxes' `record`, printing the slips the config asks for after the event."""

    def __init__(self, settings: WindowSettings, tz: ZoneInfo, record: RecordEvent,
                 printers: Printers | None) -> None:
        self._settings, self._tz = settings, tz
        self._record, self._printers = record, printers

    def record(self, type_: str, body: dict[str, Any], ts: str) -> Envelope | None:
        """Record the event (raising as the agent's `record` does), then queue its slip, if any."""
        envelope = self._record(type_, body, ts)
        if envelope is not None and self._printers is not None:
            job = self.slip_for(envelope)
            if job is not None:
                try:
                    self._printers.submit_local(job)
                except (JobError, QueueError) as exc:
                    log.error("%s event %s recorded; its slip was not queued: %s", type_, envelope.id, exc)
        return envelope

    def slip_for(self, envelope: Envelope) -> PrintJob | None:
        """The slip an event calls for under the config, or None."""
        s, body = self._settings, envelope.body
        window = str(body.get("window"))
        if (envelope.type == "sign" and body.get("state") == "away" and s.away_slip_printer
                and (s.away_slip_windows is None or window in s.away_slip_windows)):
            return away_slip(envelope, s.away_slip_printer, s.substitute.get(window), self._tz)
        if (envelope.type == "rating" and s.rating_receipt_printer
                and (s.rating_receipt_windows is None or window in s.rating_receipt_windows)):
            return rating_receipt(envelope, s.rating_receipt_printer, self._tz)
        return None
