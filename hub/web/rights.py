"""Who may do what in the console: the one table of rights, read by the HTML pages and the API alike
(as hub/broker_access.py's TopicAcl is the one statement of the broker's rules).

A route names the right it needs (`require(Right.X)` in hub/web/auth.py); a role holds rights. A
right ending in `_OWN` is limited to the records of the staff member the account speaks for.
The public display needs no login and no right.
"""

from __future__ import annotations

from enum import StrEnum

from hub.store.users import Role


class Right(StrEnum):
    BOARD = "board"                      # 大厅看板: every window's state, staff present, ratings
    READ_ALL = "read_all"                # everyone's attendance, ratings, findings, cases, complaints
    READ_OWN = "read_own"                # the same, one's own only
    READ_LOG = "read_log"                # 审计日志, personal data hidden
    VERIFY_LOG = "verify_log"            # run the full verification of the log
    EXPORT = "export"                    # 月报 and exports
    RECORD_LEAVE = "record_leave"        # 请假
    CLOSE_CASE = "close_case"            # 差评整改 办结
    CLOSE_COMPLAINT = "close_complaint"  # 投诉 答复办结
    APPEAL_ANY = "appeal_any"            # 申诉 any rating
    APPEAL_OWN = "appeal_own"            # 申诉 a rating attributed to oneself
    DECIDE_APPEAL = "decide_appeal"      # 复核 accept or reject an appeal
    MANAGE_STAFF = "manage_staff"        # face enrolment and revocation
    VIEW_CONTACTS = "view_contacts"      # complainants' contacts (each view logged)
    VIEW_SNAPSHOTS = "view_snapshots"    # face punch snapshots (each view logged)
    PRINT = "print"                      # 打印 a complaint receipt or the month's notice (logged)


_INSPECTOR = frozenset({Right.BOARD, Right.READ_ALL, Right.READ_LOG, Right.VERIFY_LOG, Right.EXPORT})
RIGHTS: dict[Role, frozenset[Right]] = {
    "inspector": _INSPECTOR,
    "manager": _INSPECTOR | {Right.RECORD_LEAVE, Right.CLOSE_CASE, Right.CLOSE_COMPLAINT, Right.APPEAL_ANY,
                             Right.DECIDE_APPEAL, Right.MANAGE_STAFF, Right.VIEW_CONTACTS,
                             Right.VIEW_SNAPSHOTS, Right.PRINT},
    "staff": frozenset({Right.BOARD, Right.READ_OWN, Right.APPEAL_OWN}),
}


def may(role: Role, right: Right) -> bool:
    return right in RIGHTS.get(role, frozenset())


def may_any(role: Role, *rights: Right) -> bool:
    return any(may(role, right) for right in rights)
