"""Typed objects that pass between the hub's layers (ingest, store, rules, reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

AttendanceStatus = Literal[
    "on_time", "late", "early_leave", "missing_leave_punch", "absent", "leave", "holiday", "pending",
    "not_live",
]
# Every violation of a session, whatever its status (hub/rules/attendance.py, in this order).
AttendanceFlag = Literal["late", "absent", "early_leave", "missing_leave_punch"]
ATTENDANCE_FLAGS: tuple[AttendanceFlag, ...] = ("late", "absent", "early_leave", "missing_leave_punch")

# Every kind of audit log entry, with its name for people. Store.append refuses any other kind.
LOG_KINDS: dict[str, str] = {
    "event": "事件",
    "quarantine": "隔离",
    "leave": "请假",
    "roster": "名册",
    "face_enroll": "人脸录入",
    "face_revoke": "人脸撤销",
    "snapshot_purge": "抓拍清除",
    "print_job": "打印任务",
    "case_closed": "整改办结",
    "seq_reset": "序号重置",
    "seq_gap": "序号缺口",
    "device_state": "设备状态",
    "clock_drift": "时钟偏差",
    "finding": "督查发现",
    "daily_close": "日结",
    "monthly_report": "月度汇总",
    "complaint_add": "投诉登记",
    "complaint_close": "投诉办结",
    "rating_appeal": "评价申诉",
    "appeal_decision": "申诉裁定",
    "personal_view": "个人信息查看",
    "user_add": "用户添加",
    "user_disable": "用户停用",
    "token_issue": "令牌签发",
    "token_revoke": "令牌撤销",
    "feed_sent": "数据归集",
    "feed_refused": "归集被拒",
}


@dataclass(frozen=True)
class StoredEvent:
    """An accepted, signature-checked event as the store keeps it."""

    id: str
    hall: str
    device: str
    seq: int
    type: str
    ts: datetime  # device time of the reading (aware)
    received_at: datetime  # hub time of receipt (aware)
    body: dict[str, Any]
    raw: bytes  # the exact signed bytes received
    epoch: str | None = None  # the edge outbox's epoch (PROTOCOL.md 2.4); None in version 1
    ts_text: str | None = field(default=None, compare=False)  # `ts` exactly as signed, from the decoder


@dataclass(frozen=True)
class Quarantined:
    received_at: datetime
    topic: str
    reason: str  # bad_signature, unknown_device, malformed, topic_mismatch, oversize, tamper
    detail: str
    payload: bytes


@dataclass(frozen=True)
class Leave:
    """An approved leave. `id` is its row in the leave table (0 before it is stored)."""

    staff: str
    start: datetime
    end: datetime
    approver: str
    reason: str
    recorded_at: datetime
    id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AuditEntry:
    seq: int  # position in the chain, from 1
    at: datetime  # hub time the entry was appended
    kind: str  # event, quarantine, leave, roster, seq_reset, seq_gap, ...
    ref: str | None  # the event id for kind "event", else None or a short reference
    data: dict[str, Any]  # JSON-able content; for "event" it includes the raw bytes (as text)
    prev_hash: str  # hex sha256 of the previous entry, 64 zeros for the first
    hash: str  # hex sha256 over prev_hash and the canonical content of this entry


@dataclass(frozen=True)
class Session:
    name: str
    start: time
    end: time


@dataclass(frozen=True)
class Schedule:
    sessions: tuple[Session, ...]
    grace_minutes: int = 5
    absent_after_minutes: int = 120
    duplicate_punch_minutes: int = 3
    require_leave_punch: bool = True
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday = 1
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()  # 调休: weekend days worked
    since: date | None = None  # go-live: days before it are not judged
    extended_minutes: int = 60  # 延时服务: serving this long after a session's end is extended service


@dataclass(frozen=True)
class StaffMember:
    id: str
    name: str
    window: str
    cards: tuple[str, ...] = ()  # normalised to 10 uppercase hex digits
    desk: str = ""  # the desk box they sit at; "" is their own desk, named by their id

    @property
    def desk_id(self) -> str:
        """The desk whose sign covers them: `desk`, or their own id when none is given."""
        return self.desk or self.id


@dataclass(frozen=True)
class Punch:
    staff: str
    at: datetime  # aware, device time of the reading
    method: str
    event_id: str


@dataclass(frozen=True)
class SessionAttendance:
    staff: str
    name: str
    date: date
    session: str
    first: datetime | None
    last: datetime | None
    status: AttendanceStatus
    punches: tuple[datetime, ...] = field(default=())
    flags: tuple[AttendanceFlag, ...] = ()  # every violation, in ATTENDANCE_FLAGS order
    left: datetime | None = None  # the leaving punch (None: none, or the hall takes no leaving punch)


@dataclass(frozen=True)
class ExtendedService:
    """延时服务: a staff member still serving at their window after a session's end (seed 001, 004).

    Not a violation: it is counted in the monthly summary. ``until`` is the last rating or sign
    event of theirs within ``[schedule] extended_minutes`` after ``end``; ``sources`` are those events.
    """

    staff: str
    date: date
    session: str
    window: str
    end: datetime  # the session's end
    until: datetime
    minutes: int  # whole minutes from end to until, rounded up
    sources: tuple[str, ...]


# --- hall rules: away signs, ratings, follow-up cases (hub/rules/away.py, ratings.py, cases.py) ---

SignState = Literal["on_duty", "away", "paused"]
FindingKind = Literal[
    "late_return", "unattended_window", "rating_misuse", "unattended_rating", "case_overdue",
    "complaint_overdue",
]


@dataclass(frozen=True)
class SignEvent:
    """A `sign` event body (PROTOCOL.md section 1) with its device time and event id."""

    window: str
    desk: str
    state: str  # SignState
    reason: str | None  # meeting, errand, break, field, other
    back_at: datetime | None
    at: datetime  # aware
    event_id: str


@dataclass(frozen=True)
class AwayPeriod:
    """One desk's consecutive `away` (or `paused`) signs, until the sign went back to `on_duty`."""

    window: str
    desk: str
    state: str  # "away" | "paused"
    reason: str | None  # the latest sign's reason
    start: datetime
    declared_return: datetime | None  # the latest sign's back_at
    actual_return: datetime | None  # None: still away
    start_event: str
    end_event: str | None  # None: still away
    update_events: tuple[str, ...] = ()  # signs of the same state in between (reason/back_at changes)

    @property
    def events(self) -> tuple[str, ...]:
        tail = (self.end_event,) if self.end_event is not None else ()
        return (self.start_event, *self.update_events, *tail)


@dataclass(frozen=True)
class Finding:
    """A rule violation or an item for review, with the event ids it was derived from."""

    kind: str  # FindingKind
    window: str | None
    staff: str | None
    start: datetime
    end: datetime | None  # None: still going on at `now`
    detail: dict[str, object]  # JSON-able: str, int, bool, None, lists of those
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Rating:
    """A `rating` event body (PROTOCOL.md section 1) with its device time and event id."""

    event_id: str
    window: str
    level: int  # 1..5: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意
    invited: bool
    invite: str | None
    ticket: str | None
    at: datetime  # aware


@dataclass(frozen=True)
class AttributedRating:
    rating: Rating
    staff: str | None  # None: nobody on duty at the window
    counted: bool
    flags: tuple[str, ...]  # among "nobody_on_duty", "misuse_repeat", "not_invited"


@dataclass(frozen=True)
class RatingPolicy:
    count: Literal["invited", "all"] = "all"
    repeat_seconds: int = 30

    def __post_init__(self) -> None:
        if self.count not in ("invited", "all"):
            raise ValueError(f"rating policy count must be 'invited' or 'all', got {self.count!r}")
        if self.repeat_seconds < 0:
            raise ValueError(f"rating policy repeat_seconds must not be negative, got {self.repeat_seconds}")


@dataclass(frozen=True)
class RatingStats:
    counts: dict[int, int]  # level 1..5 -> counted ratings
    total: int  # counted ratings
    satisfied: int  # counted ratings of levels 3..5
    rate_permille: int  # round(1000 * satisfied / total), 0 when total is 0
    flagged: int  # ratings with any flag, counted or not


@dataclass(frozen=True)
class Case:
    """A 差评整改 follow-up of a bad rating (level 1 or 2)."""

    id: str
    rating_event: str
    window: str
    staff: str | None
    level: int
    opened_at: datetime
    deadline: date  # closed by the end of this day (hall time)
    closed_at: datetime | None = None
    closed_by: str | None = None
    result: str | None = None
    note: str | None = None
    flags: tuple[str, ...] = ()  # the rating's flags, e.g. a misuse repeat
    by_appeal: bool = False  # closed by an accepted appeal of its rating (申诉成立), not followed up


@dataclass(frozen=True)
class CaseClosure:
    case_id: str
    closed_at: datetime
    closed_by: str
    result: str
    note: str | None = None
    by_appeal: bool = False


# --- complaints register and rating appeals (hub/rules/complaints.py, appeals.py) ---

ComplaintKind = Literal["oral", "written"]  # 口头投诉, 书面投诉
ComplaintStatus = Literal["open", "closed"]  # 待答复, 已办结 (答复记录, 归档)
AppealState = Literal["open", "accepted", "rejected"]  # 待复核, 申诉成立, 申诉驳回


@dataclass(frozen=True)
class Complaint:
    """A 投诉受理 register entry as of a moment: registered, maybe answered and filed.

    The complainant's contact is personal data and is not here: `hub.complaints.complaint_contact`
    returns it to a named viewer. `overdue`: answered after `due`, or still open past it;
    `closed_in_time`: None while open.
    """

    id: str  # T-YYYYMMDD-NNN, the registration day in hall time
    kind: ComplaintKind
    window: str
    staff: str | None
    rating: str | None  # the rating event the complaint is about, if any
    received_by: str
    text: str
    registered_at: datetime
    due: datetime  # the end of the due working day, 23:59:59.999 hall time
    status: ComplaintStatus
    overdue: bool
    closed_in_time: bool | None
    closed_at: datetime | None = None
    closed_by: str | None = None
    result: str | None = None
    has_contact: bool = False


@dataclass(frozen=True)
class Appeal:
    """The latest 申诉复核 of a rating: who contested it and why, and the decision once made."""

    rating: str  # the rating's event id
    window: str
    state: AppealState
    appealed_by: str
    appealed_at: datetime
    reason: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    appeals: int = 1  # appeals of this rating so far (a rejected one may be followed by another)
