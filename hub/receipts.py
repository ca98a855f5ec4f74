"""What the hall prints (PROTOCOL.md 2.8 `print` bodies) and printing them on an edge box's printer.

The hub composes the lines; the box wraps them at its printer's width. Only public data is printed:
never a complainant's contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.commands import send, wait_ack
from hub.config import HubConfig
from hub.domain import Complaint
from hub.month_summary import MonthSummary
from hub.store.store import Store

MAX_LINE = 200  # characters per line of a print body (PROTOCOL.md 2.8)
KINDS = {"oral": "口头", "written": "书面"}
RULE = "─"  # a line of "─" alone: the box draws a rule as wide as its paper


@dataclass(frozen=True)
class Target:
    device: str
    unit: str

    @classmethod
    def parse(cls, text: str) -> Target:
        device, _, unit = text.partition(":")
        if not device or not unit:
            raise ValueError(f"--print {text!r}: give DEVICE:UNIT, e.g. entrance:printer")
        return cls(device, unit)


def body(unit: str, title: str, lines: list[str], qr: str | None = None, cut: bool = True) -> dict[str, Any]:
    """A `print` command's body; a line over MAX_LINE characters is split (the box wraps further)."""
    split = [line[i:i + MAX_LINE] for line in lines for i in range(0, max(len(line), 1), MAX_LINE)]
    return {"unit": unit, "title": title, "lines": split, "qr": qr, "cut": cut}


def complaint_receipt(config: HubConfig, complaint: Complaint, unit: str) -> dict[str, Any]:
    """投诉回执: for the complainant. The id, window, what was received, the due date, the phone."""
    tz = config.tz
    lines = [
        f"编号 No.：{complaint.id}",
        f"受理时间：{complaint.registered_at.astimezone(tz):%Y-%m-%d %H:%M}",
        f"投诉窗口：{complaint.window}号窗口",
        f"投诉方式：{KINDS.get(complaint.kind, complaint.kind)}",
        f"受理人：{complaint.received_by}",
        "投诉内容：",
        complaint.text,
        RULE,
        f"答复期限：{complaint.due.astimezone(tz):%Y-%m-%d} 前",
    ]
    if config.complaints.phone:
        lines.append(f"咨询电话：{config.complaints.phone}")
    lines += ["凭此回执查询办理结果。", "扫码核对编号："]
    return body(unit, "投诉受理回执", lines, qr=complaint.id)


def month_receipt(summary: MonthSummary, unit: str) -> dict[str, Any]:
    """月度公示: the month's ranking for the notice board, ending with the audit log's head (the
    entry count and the hash of the last entry up to the month's end) and a QR code of `N:HASH`,
    which `hall-hub log verify --head N:HASH` checks later."""
    lines = [f"{summary.hall} {summary.month}", f"生成于 {summary.now:%Y-%m-%d %H:%M}"]
    rankings = (("窗口满意度排名", summary.ranking_windows), ("人员满意度排名", summary.ranking_staff))
    for title, places in rankings:
        lines += [RULE, title]
        if not places:
            lines.append("无记录")
        for p in places:
            rate = "—" if p.satisfaction_permille is None else f"{p.satisfaction_permille / 10:.1f}%"
            rank = "—" if p.rank is None else str(p.rank)
            mark = " 末位" if p.bottom else ""
            lines.append(f"{rank:>2} {p.id} {p.name} 满意率{rate} 评价{p.ratings}{mark}")
    staff = summary.staff
    late = sum(t.flags["late"] for t in staff)
    absent = sum(t.flags["absent"] for t in staff)
    complaints = sum(t.complaints["registered"] for t in summary.windows)
    lines += [RULE, f"迟到 {late} 次  旷工 {absent} 次  投诉 {complaints} 件",
              RULE, "审计日志 audit log",
              f"条目数 entries：{summary.chain_head.entries}",
              f"链头 head：{summary.chain_head.hash}",
              "核验 verify：hall-hub log verify --head N:HASH"]
    return body(unit, "月度公示", lines, qr=f"{summary.chain_head.entries}:{summary.chain_head.hash}")


def print_on(config: HubConfig, store: Store, target: Target, job: dict[str, Any],
             wait: float) -> tuple[str, dict[str, Any] | None]:
    """Send the job to the box and wait up to `wait` s for its ack (sent once printed): (id, ack)."""
    command_id = send(config, store.clock, target.device, "print", {**job, "unit": target.unit})
    return command_id, (wait_ack(store, store.clock, command_id, wait) if wait > 0 else None)


def ack_text(command_id: str, ack: dict[str, Any] | None) -> tuple[str, int]:
    """What `--print` and `send print` say, and the exit status: 0 printed, 1 refused, 3 no ack yet."""
    if ack is None:
        return (f"打印任务 print job {command_id} sent; no ack yet (queued at the box, or the box is "
                "offline: the persistent session delivers it later)", 3)
    if ack["ok"]:
        return f"已打印 printed: job {command_id} ack ok=True", 0
    return f"打印失败 print refused: job {command_id} ack ok=False {ack.get('error') or ''}", 1
