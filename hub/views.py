"""What the inspector and manager commands print, in Chinese: ratings, away periods, findings,
cases, leave and quarantine as aligned tables (`--json` prints the data instead)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo

from hub.config import HubConfig
from hub.domain import (
    Appeal,
    AttributedRating,
    AwayPeriod,
    Case,
    Complaint,
    Finding,
    Leave,
    Quarantined,
    RatingStats,
)
from hub.text import EMPTY, table

LEVEL_ZH = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
REASON_ZH = {"meeting": "会议", "errand": "外出", "break": "休息", "field": "外勤", "other": "其他"}
STATE_ZH = {"on_duty": "在岗", "away": "暂离", "paused": "暂停服务"}
FLAG_ZH = {"nobody_on_duty": "无人在岗", "misuse_repeat": "重复评价", "not_invited": "未邀请",
           "appealed": "申诉中", "excluded_by_appeal": "申诉成立不计"}
APPEAL_ZH = {"open": "待复核", "accepted": "申诉成立", "rejected": "申诉驳回"}
KIND_ZH = {"oral": "口头", "written": "书面"}
FINDING_ZH = {
    "late_return": "未按时归岗", "unattended_window": "窗口无人 (AB岗缺岗)", "rating_misuse": "重复评价",
    "unattended_rating": "无人在岗的评价", "case_overdue": "差评整改逾期", "absence": "旷工",
    "device_offline": "设备离线", "case_opened": "差评整改立案", "buddy_punch": "疑似代打卡",
    "liveness_failed": "活体检测未通过", "face_review": "人脸比对需复核", "complaint_overdue": "投诉答复逾期",
}


class Names:
    """Staff ids shown with their names: `S008 黄强`."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    @classmethod
    def of(cls, config: HubConfig) -> Names:
        return cls({member.id: member.name for member in config.staff})

    def __call__(self, staff: str | None) -> str | None:
        if staff is None:
            return None
        name = self.names.get(staff)
        return f"{staff} {name}" if name else staff


def _hm(moment: datetime | None, tz: tzinfo) -> str | None:
    return moment.astimezone(tz).strftime("%H:%M") if moment else None


def flags_zh(flags: Sequence[str]) -> str:
    return "、".join(FLAG_ZH.get(flag, flag) for flag in flags)


def ratings_text(rated: Sequence[AttributedRating], tz: tzinfo, names: Names) -> str:
    rows = [(f"{r.rating.at.astimezone(tz):%m-%d %H:%M:%S}", r.rating.window,
             f"{r.rating.level} {LEVEL_ZH[r.rating.level]}", names(r.staff) or "(无人在岗)",
             "计入" if r.counted else "不计", "邀请" if r.rating.invited else "", flags_zh(r.flags))
            for r in rated]
    return table(("时间", "窗口", "评价", "人员", "统计", "邀请", "标记"), rows)


def stats_text(title: str, stats: Mapping[str, RatingStats], label: Names | None = None) -> str:
    rows = [((label(key) if label else key), s.total,
             " ".join(f"{level}:{s.counts.get(level, 0)}" for level in range(5, 0, -1)),
             f"{s.rate_permille / 10:.1f}%", s.flagged)
            for key, s in stats.items()]
    return f"-- {title}\n" + table(("", "计入条数", "各级 (5…1)", "满意率", "标记"), rows)


def away_text(periods: Sequence[AwayPeriod], tz: tzinfo, owner: Mapping[str, str | None],
              names: Names) -> str:
    """`owner`: the staff member each period stands for, by its start event (None: the window's)."""
    rows = [(p.window, p.desk, names(owner.get(p.start_event)) or "(窗口共用)",
             STATE_ZH.get(p.state, p.state), REASON_ZH.get(p.reason or "", p.reason or "-"),
             _hm(p.start, tz), _hm(p.declared_return, tz),
             _hm(p.actual_return, tz) or "未归")
            for p in periods]
    return table(("窗口", "告知牌", "人员", "状态", "事由", "开始", "申报返回", "实际返回"), rows)


def finding_detail(f: Finding, tz: tzinfo, names: Names) -> str:
    """The finding in a sentence, from its detail."""
    d = f.detail

    def hm(key: str) -> str:
        value = d.get(key)
        return _hm(datetime.fromisoformat(str(value)), tz) or "-" if value else "-"

    if f.kind == "late_return":
        reason = REASON_ZH.get(str(d.get("reason") or ""), str(d.get("reason") or "-"))
        still = ", 仍未返回" if d.get("ongoing") else ""
        return (f"{hm('away_start')} 离岗({reason}), 申报 {hm('declared_return')} 返回, "
                f"超时 {d.get('late_minutes')} 分钟{still}")
    if f.kind == "unattended_window":
        staff = "、".join(names(str(s)) or "" for s in d.get("staff") or [])  # type: ignore[union-attr]
        return f"{d.get('session')} 无人在岗 {d.get('minutes')} 分钟 (本窗口: {staff})"
    if f.kind in ("rating_misuse", "unattended_rating"):
        level = int(str(d.get("level")))
        return (f"评价 {level} {LEVEL_ZH.get(level, '')}, {'邀请' if d.get('invited') else '未邀请'}, "
                f"标记 {flags_zh([str(x) for x in d.get('flags') or []])}")  # type: ignore[union-attr]
    if f.kind == "case_opened":
        return f"案件 {d.get('case')} 差评{d.get('level')} 期限 {d.get('deadline')}"
    if f.kind == "case_overdue":
        late = "办结逾期" if d.get("closed_late") else "仍未办结"
        return f"案件 {d.get('case')} 期限 {d.get('deadline')}, {late}, 超过 {d.get('overdue_minutes')} 分钟"
    if f.kind == "complaint_overdue":
        late = "逾期答复" if d.get("closed_late") else "仍未答复"
        kind = KIND_ZH.get(str(d.get("complaint_kind")), "")
        return (f"{kind}投诉 {d.get('complaint')} 期限 {hm('due')} ({str(d.get('due'))[:10]}), {late}, "
                f"超过 {d.get('overdue_minutes')} 分钟")
    if f.kind == "absence":
        return f"{d.get('session')} 无打卡, 无请假"
    if f.kind == "device_offline":
        how = "遗嘱消息 (连接断开)" if d.get("last_will") else "无心跳"
        return f"设备 {d.get('device')} 离线: {how}"
    if f.kind in ("buddy_punch", "liveness_failed", "face_review"):
        distance = d.get("distance_milli")
        shown = f"{int(str(distance)) / 1000:.3f}" if isinstance(distance, int) else "-"
        return (f"卡 {d.get('card') or '-'}, 人脸 {names(d.get('face')) or '未识别'}, "  # type: ignore[arg-type]
                f"距离 {shown}, 抓拍 {'有' if d.get('photo') else '无'}")
    return ", ".join(f"{k}={v}" for k, v in d.items())


def findings_text(found: Sequence[Finding], tz: tzinfo, names: Names) -> str:
    if not found:
        return EMPTY
    lines = []
    for f in found:
        span = f"{_hm(f.start, tz)}-{_hm(f.end, tz) or '…'}"
        where = "".join(f" {x}" for x in (f"窗口{f.window}" if f.window else "", names(f.staff)) if x)
        lines.append(f"{span} {FINDING_ZH.get(f.kind, f.kind)}{where}: {finding_detail(f, tz, names)}")
        if f.sources:
            lines.append(f"    来源事件 sources: {' '.join(f.sources)}")
    return "\n".join(lines)


def cases_text(cases: Sequence[Case], overdue: set[str], tz: tzinfo, names: Names) -> str:
    rows = []
    for c in cases:
        state = ("申诉撤案" if c.by_appeal else "已办结") if c.closed_at else ("逾期" if c.id in overdue
                                                                             else "待整改")
        closed = f"{c.closed_at.astimezone(tz):%m-%d %H:%M} {c.closed_by}" if c.closed_at else None
        rows.append((c.id, c.window, names(c.staff), f"{c.level} {LEVEL_ZH[c.level]}",
                     f"{c.opened_at.astimezone(tz):%m-%d %H:%M}", c.deadline.isoformat(), state, closed,
                     c.result, c.note or None, flags_zh(c.flags)))
    return table(("案件", "窗口", "人员", "差评", "立案", "期限", "状态", "办结 (时间 办结人)", "结果",
                  "备注", "标记"), rows)


def complaint_state(c: Complaint) -> str:
    if c.closed_at is None:
        return "逾期未答复" if c.overdue else "待答复"
    return "逾期答复" if c.overdue else "已办结"


def complaints_text(items: Sequence[Complaint], tz: tzinfo, names: Names,
                    contacts: Mapping[str, str] | None = None) -> str:
    """The register; the contact column only for a manager's view (`contacts` given)."""
    def moment(value: datetime | None) -> str | None:
        return f"{value.astimezone(tz):%m-%d %H:%M}" if value else None

    rows = []
    for c in items:
        answered = f"{moment(c.closed_at)} {c.closed_by}: {c.result}" if c.closed_at else None
        row: list[object] = [c.id, KIND_ZH[c.kind], c.window, names(c.staff),
                             f"{moment(c.registered_at)} {c.received_by}", f"{c.due.astimezone(tz):%m-%d}",
                             complaint_state(c), c.text, answered]
        if contacts is not None:
            row.insert(-2, contacts.get(c.id))
        rows.append(row)
    header = ["编号", "方式", "窗口", "人员", "登记 (时间 受理人)", "期限", "状态", "内容", "答复"]
    if contacts is not None:
        header.insert(-2, "联系方式")
    return table(header, rows)


def appeal_text(appeal: Appeal, tz: tzinfo) -> str:
    line = (f"评价 {appeal.rating} 窗口{appeal.window}: {APPEAL_ZH[appeal.state]} "
            f"(申诉 {appeal.appealed_by} {appeal.appealed_at.astimezone(tz):%m-%d %H:%M}: {appeal.reason})")
    if appeal.decided_at is not None:
        line += f", 裁定 {appeal.decided_by} {appeal.decided_at.astimezone(tz):%m-%d %H:%M}: {appeal.note}"
    return line


def leave_text(items: Sequence[Leave], tz: tzinfo, names: Names) -> str:
    def moment(value: datetime) -> str:
        return f"{value.astimezone(tz):%Y-%m-%d %H:%M}"

    rows = [(item.id, names(item.staff), moment(item.start), moment(item.end), item.approver,
             item.reason or None, moment(item.recorded_at)) for item in items]
    return table(("编号", "人员", "自", "至", "批准人", "事由", "登记时间"), rows)


def quarantine_text(items: Sequence[Quarantined], tz: tzinfo) -> str:
    rows = [(f"{q.received_at.astimezone(tz):%Y-%m-%d %H:%M:%S}", q.reason, q.topic, q.detail[:120])
            for q in items]
    return table(("收到时间", "原因", "主题", "说明"), rows)
