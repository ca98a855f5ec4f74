"""What the terminal says about a punch: pure, no I/O (the roster and the clock are given).

The edge does not judge attendance (the hub does, and its `show` command adds the judgement); it
says what it knows at once: whose card or face it was, from the signed roster; 签到 for a person's
odd punches of the day on this box and 签退 for the even ones (morning in, morning out, afternoon
in...); 已打卡 for a repeat within `repeat_minutes`; what is wrong with an unknown card, a face that
is not the card's owner, or a face that did not blink.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from edge_agent.entrance import Clocked, card_owner
from edge_agent.sound.clips import ClipName

Roster = Callable[[], list[dict[str, Any]]]  # the signed roster's staff: id, name, window, cards
_local_ids = itertools.count(1)


@dataclass
class PunchLine:
    """One line of the screen."""

    id: str  # the clock event's id (the hub's `show` names it), or a local one
    at: datetime
    result: str  # 签到成功, 签退成功, 已打卡, 未登记的卡, 人脸与卡不符, ...
    ok: bool
    staff: str | None = None
    name: str | None = None
    seq: int | None = None  # the event's outbox seq: pending upload while above the watermark
    recorded_at: float = 0.0  # monotonic, when the screen got it
    verdict: str | None = None  # the hub's judgement, e.g. 正常, 迟到 12 分钟
    verdict_status: str | None = None  # on_time, late, ...


@dataclass
class Said:
    """What the screen and the speaker do about one Clocked."""

    line: PunchLine | None = None
    clips: tuple[ClipName, ...] = ()
    prompt: str | None = None  # a prompt for a few seconds (card+face: look at the camera)


@dataclass
class PunchJudge:
    roster: Roster
    tz: tzinfo
    repeat_minutes: int = 3
    require_live: bool = True
    _last: dict[str, datetime] = field(default_factory=dict)  # staff -> their last counted punch
    _today: dict[tuple[str, date], int] = field(default_factory=dict)  # punches per person and day

    def said(self, clocked: Clocked, now_mono: float) -> Said:
        staff = self.roster()
        owner = card_owner(clocked.card, staff) if clocked.card else None
        if clocked.kind == "waiting":
            name = _name(owner, staff)
            return Said(prompt=f"{name}，请正视摄像头" if name else "请正视摄像头", clips=("look",))
        line = PunchLine(clocked.event_id or f"local-{next(_local_ids)}", clocked.at, "", False,
                         seq=clocked.seq, recorded_at=now_mono)
        if clocked.event_id is None:
            line.result = "未能记录，请重试"
            return Said(line, ("fail",))
        if clocked.method != "face" and owner is None:
            line.result = "未登记的卡"
            return Said(line, ("fail", "unknown_card"))
        who = owner if clocked.method == "card" else clocked.staff
        if clocked.method == "card+face" and clocked.staff != owner:
            line.staff, line.name, line.result = owner, _name(owner, staff), "人脸与卡不符"
            return Said(line, ("fail", "mismatch"))
        if clocked.method == "face" and self.require_live and clocked.live is not True:
            line.staff, line.name, line.result = who, _name(who, staff), "未检测到眨眼，请重试"
            return Said(line, ("fail", "blink"))
        assert who is not None
        line.staff, line.name, line.ok = who, _name(who, staff), True
        last = self._last.get(who)
        if last is not None and timedelta(0) <= clocked.at - last <= timedelta(minutes=self.repeat_minutes):
            line.result = "已打卡"
            return Said(line, ("ok", "already"))
        self._last[who] = clocked.at
        key = (who, clocked.at.astimezone(self.tz).date())
        if key not in self._today:  # forget other days
            self._today = {k: v for k, v in self._today.items() if k[1] == key[1]}
        self._today[key] = count = self._today.get(key, 0) + 1
        if count % 2:
            line.result = "签到成功"
            return Said(line, ("ok", "signed_in"))
        line.result = "签退成功"
        return Said(line, ("ok", "signed_out"))


def _name(staff_id: str | None, staff: list[dict[str, Any]]) -> str | None:
    if staff_id is None:
        return None
    return next((str(m.get("name") or staff_id) for m in staff if m.get("id") == staff_id), staff_id)
