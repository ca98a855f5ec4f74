"""The console's HTML pages on a real SQLite store: each page against each kind of user, a staff
member's own records only, CSRF on every form, the exports read back, and the manual actions done
through the forms written to the log with the user's name."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from test_hub_window import hub_cli
from web_hall import DAY, WebHall
from web_pages_hall import PICTURE, csrf_of, log_in, make_pages_hall

from hub.web.app import create_app

MONTH = DAY[:7]
READ_PAGES = [f"/attendance?date={DAY}", f"/attendance/month?month={MONTH}", f"/ratings?month={MONTH}",
              f"/away?date={DAY}", f"/findings?date={DAY}", f"/cases?from={DAY}&to={DAY}", "/complaints",
              "/leave"]
OVERSIGHT_PAGES = ["/log", f"/report?month={MONTH}", "/devices",
                   f"/attendance/month/export?month={MONTH}&format=csv",
                   f"/attendance/export?date={DAY}&format=xlsx",
                   f"/report/download?month={MONTH}&format=xlsx"]
USERS = ("insp", "mgr", "s1", "s2")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebHall, str]]:
    hall, face_event = make_pages_hall(tmp_path_factory.mktemp("pages"))
    yield hall, face_event
    hall.store.close()


@pytest.fixture(scope="module")
def hall(made: tuple[WebHall, str]) -> WebHall:
    return made[0]


@pytest.fixture(scope="module")
def face_event(made: tuple[WebHall, str]) -> str:
    return made[1]


@pytest.fixture(scope="module")
def clients(hall: WebHall) -> dict[str, TestClient]:
    return {name: log_in(hall, name) for name in USERS}


def text_of(answer: object) -> str:
    return str(getattr(answer, "text", ""))


@pytest.mark.parametrize("path", [*READ_PAGES, *OVERSIGHT_PAGES, "/events/x"])
def test_anonymous_is_sent_to_the_login_form(hall: WebHall, path: str) -> None:
    answer = TestClient(create_app(hall.config, hall.store)).get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", [*READ_PAGES, *OVERSIGHT_PAGES])
@pytest.mark.parametrize("who", ["insp", "mgr"])
def test_inspector_and_manager_open_every_page(clients: dict[str, TestClient], who: str, path: str) -> None:
    answer = clients[who].get(path)
    assert answer.status_code == 200, answer.text
    if "export" not in path and "download" not in path:
        assert '<html lang="zh-CN">' in answer.text and "无权限" not in answer.text


@pytest.mark.parametrize("path", READ_PAGES)
def test_staff_open_their_pages_with_their_own_records_only(clients: dict[str, TestClient],
                                                            path: str) -> None:
    for who, other in (("s1", "王芳"), ("s2", "张伟")):
        answer = clients[who].get(path)
        assert answer.status_code == 200, answer.text
        assert other not in answer.text.split("</header>")[1], (who, path)
    assert "张伟" in clients["s1"].get(READ_PAGES[1]).text


@pytest.mark.parametrize("path", [*OVERSIGHT_PAGES, "/events/x", "/events/x/snapshot"])
def test_staff_may_not_open_oversight_pages(clients: dict[str, TestClient], path: str) -> None:
    assert clients["s1"].get(path).status_code == 403


def test_the_menu_follows_the_rights(clients: dict[str, TestClient]) -> None:
    staff_menu = clients["s1"].get("/").text.split("</nav>")[0]
    assert "考勤" in staff_menu and "审计日志" not in staff_menu and "月报" not in staff_menu
    assert all(label in clients["insp"].get("/").text for label in ("审计日志", "月报", "设备", "差评整改"))


def test_the_monthly_sheet_has_coloured_cells_and_a_legend(clients: dict[str, TestClient]) -> None:
    page = clients["insp"].get(f"/attendance/month?month={MONTH}&window=01").text
    assert 'id="legend"' in page and "旷工" in page and "st-on_time" in page
    assert "张伟" in page and "王芳" not in page.split("</header>")[1]  # filtered by window 01


def test_a_staff_member_cannot_open_anothers_complaint(clients: dict[str, TestClient], hall: WebHall) -> None:
    assert clients["s1"].get(f"/complaints/{hall.complaint}").status_code == 403
    assert clients["s2"].get(f"/complaints/{hall.complaint}").status_code == 200
    assert clients["s1"].get("/ratings?staff=S002").status_code == 403


def test_the_empty_state(clients: dict[str, TestClient]) -> None:
    assert "无记录" in clients["insp"].get("/away?date=2026-11-20").text


# --- exports ----------------------------------------------------------------------------------


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_the_monthly_sheet_exports_as_csv_and_xlsx(clients: dict[str, TestClient]) -> None:
    answer = clients["insp"].get(f"/attendance/month/export?month={MONTH}&format=csv")
    assert answer.headers["content-disposition"] == f'attachment; filename="attendance-sheet-{MONTH}.csv"'
    rows = csv_rows(answer.content)
    assert rows[1][:3] == ["工号 staff", "姓名 name", "窗口 window"] and len(rows[1]) == 3 + 30
    by_staff = {row[0]: row for row in rows[2:]}
    assert set(by_staff) == {"S001", "S002"}
    assert by_staff["S001"][3 + 23] == "上午 正常; 下午 旷工"  # 24 November
    answer = clients["mgr"].get(f"/attendance/month/export?month={MONTH}&format=xlsx&window=02")
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    assert [c.value for c in sheet[3]][:3] == ["S002", "王芳", "02"] and sheet.max_row == 3
    assert sheet.cell(3, 3 + 24).fill.fgColor.rgb.endswith("F4B6B6")  # the absent afternoon: red


def test_the_day_exports(clients: dict[str, TestClient]) -> None:
    rows = csv_rows(clients["insp"].get(f"/attendance/export?date={DAY}&format=csv").content)
    assert [(r[0], r[2], r[3]) for r in rows[2:]][:2] == [("S001", "上午", "08:20:01"), ("S001", "下午", "")]
    book = load_workbook(io.BytesIO(clients["insp"].get(f"/attendance/export?date={DAY}").content))
    assert book.active is not None and book.active.max_row == 2 + 4


def test_the_monthly_report_downloads(clients: dict[str, TestClient]) -> None:
    answer = clients["insp"].get(f"/report/download?month={MONTH}&format=csv&table=ranking")
    assert answer.headers["content-disposition"] == f'attachment; filename="ranking-{MONTH}.csv"'
    assert any(row[:1] == ["人员 staff"] for row in csv_rows(answer.content))
    book = load_workbook(io.BytesIO(clients["insp"].get(f"/report/download?month={MONTH}").content))
    assert book.sheetnames == [f"汇总 {MONTH}", "窗口 windows", "排名 ranking"]
    assert clients["insp"].get(f"/report/download?month={MONTH}&format=pdf").status_code == 422


# --- forms: CSRF, then the actions -------------------------------------------------------------


def forms(hall: WebHall) -> list[tuple[str, dict[str, str]]]:
    return [("/ratings/x/appeal", {"reason": "误按", "month": MONTH}),
            ("/ratings/x/decide", {"accept": "true", "note": "核实", "month": MONTH}),
            ("/cases/x/close", {"result": "已回访"}),
            (f"/complaints/{hall.complaint}/close", {"result": "答复"}),
            ("/leave", {"staff": "S001", "start": "2026-11-27", "end": "2026-11-27", "approver": "主任"}),
            ("/log/verify", {}), ("/logout", {})]


def test_every_form_is_refused_without_its_csrf_token(clients: dict[str, TestClient], hall: WebHall) -> None:
    before = hall.store.last_audit()
    for path, data in forms(hall):
        for token in (None, "wrong"):
            sent = data if token is None else {**data, "csrf": token}
            answer = clients["mgr"].post(path, data=sent, follow_redirects=False)
            assert answer.status_code == 403 and "CSRF" in answer.text, (path, answer.text)
    assert hall.store.last_audit() == before


def test_closing_a_case_through_the_form(clients: dict[str, TestClient], hall: WebHall) -> None:
    ledger = clients["mgr"].get(f"/cases?from={DAY}&to={DAY}").text
    case = ledger.split('action="/cases/')[1].split("/close")[0]
    path = f"/cases/{case}/close"
    refused = clients["insp"].post(path, data={"result": "x", "csrf": csrf_of(clients["insp"])})
    assert refused.status_code == 403
    form = {"result": "已电话回访", "note": "群众满意", "csrf": csrf_of(clients["mgr"])}
    done = clients["mgr"].post(path, data=form)
    assert done.status_code == 200 and f'id="c-{case}"' in done.text
    row = done.text.split(f'id="c-{case}"')[1].split("</tr>")[0]
    assert "已办结" in row and "已电话回访" in row and "mgr" in row and "<form" not in row
    printed = hub_cli(hall.config_path, "cases", "list", "--from", DAY, "--to", DAY, "--json",
                      "--clock", "2026-11-24T18:00:00+08:00")
    listed = {c["id"]: c for c in json.loads(printed.stdout)}
    assert (listed[case]["closed_by"], listed[case]["result"]) == ("mgr", "已电话回访")
    entry = hall.store.last_audit("case_closed")
    assert entry is not None and entry.data["closed_by"] == "mgr"
    again = clients["mgr"].post(path, data={"result": "x", "csrf": csrf_of(clients["mgr"])})
    assert again.status_code == 400 and "already closed" in again.text


def test_appeal_and_decide_through_the_forms(clients: dict[str, TestClient], hall: WebHall) -> None:
    page = clients["s2"].get(f"/ratings?month={MONTH}").text
    rating = page.split('action="/ratings/')[1].split("/appeal")[0]
    assert clients["s1"].post(f"/ratings/{rating}/appeal", data={
        "reason": "x", "month": MONTH, "csrf": csrf_of(clients["s1"])}).status_code == 403
    done = clients["s2"].post(f"/ratings/{rating}/appeal", data={
        "reason": "群众误按", "month": MONTH, "csrf": csrf_of(clients["s2"])})
    assert done.status_code == 200 and "待复核" in done.text
    assert clients["s2"].post(f"/ratings/{rating}/decide", data={
        "accept": "true", "note": "x", "month": MONTH, "csrf": csrf_of(clients["s2"])}).status_code == 403
    decided = clients["mgr"].post(f"/ratings/{rating}/decide", data={
        "accept": "false", "note": "监控核实", "month": MONTH, "csrf": csrf_of(clients["mgr"])})
    assert decided.status_code == 200 and "申诉驳回" in decided.text
    entry = hall.store.last_audit("appeal_decision")
    assert entry is not None and "mgr" in json.dumps(entry.data, ensure_ascii=False)


def test_closing_a_complaint_and_the_logged_contact(clients: dict[str, TestClient], hall: WebHall) -> None:
    path = f"/complaints/{hall.complaint}"
    assert "13800000000" not in clients["insp"].get(f"{path}?contact=true").text
    assert hall.store.last_audit("personal_view") is None
    shown = clients["mgr"].get(f"{path}?contact=true").text
    assert "13800000000" in shown
    view = hall.store.last_audit("personal_view")
    assert view is not None and view.data["viewer"] == "mgr" and view.data["ids"] == [hall.complaint]
    form = {"result": "已当面答复", "csrf": csrf_of(clients["mgr"])}
    done = clients["mgr"].post(f"{path}/close", data=form)
    assert done.status_code == 200 and "已当面答复" in done.text and "mgr" in done.text


def test_recording_leave_through_the_form(clients: dict[str, TestClient], hall: WebHall) -> None:
    form = {"staff": "S001", "start": "2026-11-27", "end": "2026-11-27", "approver": "主任", "reason": "病假"}
    assert clients["insp"].post("/leave", data={**form, "csrf": csrf_of(clients["insp"])}).status_code == 403
    done = clients["mgr"].post("/leave", data={**form, "csrf": csrf_of(clients["mgr"])})
    assert done.status_code == 200 and "病假" in done.text
    entry = hall.store.last_audit("leave")
    assert entry is not None and entry.data["by"] == "mgr"
    assert "病假" not in clients["s2"].get("/leave").text and "病假" in clients["s1"].get("/leave").text
    bad = clients["mgr"].post("/leave", data={**form, "staff": "S999", "csrf": csrf_of(clients["mgr"])})
    assert bad.status_code == 400 and "not on the roster" in bad.text


def test_the_event_page_and_the_logged_snapshot(clients: dict[str, TestClient], hall: WebHall,
                                                face_event: str) -> None:
    page = clients["insp"].get(f"/events/{face_event}").text
    assert "有效 (已用设备公钥验证)" in page and "face" in page and "查看抓拍" not in page
    assert clients["insp"].get(f"/events/{face_event}/snapshot").status_code == 403
    assert f'href="/events/{face_event}/snapshot"' in clients["mgr"].get(f"/events/{face_event}").text
    picture = clients["mgr"].get(f"/events/{face_event}/snapshot")
    assert picture.status_code == 200 and picture.content == PICTURE
    assert picture.headers["content-type"] == "image/jpeg"
    view = hall.store.last_audit("personal_view")
    by_web = {"by": "mgr", "os_user": None, "host": None, "via": "web"}  # the console's logged-in user
    assert view is not None and view.data == {"viewer": "mgr", "what": "face_snapshot", "ids": [face_event],
                                              "author": by_web}
    assert clients["mgr"].get("/events/nope").status_code == 404


def test_findings_link_to_their_source_events(clients: dict[str, TestClient]) -> None:
    page = clients["insp"].get(f"/findings?date={DAY}").text
    assert "重复评价" in page and 'href="/events/' in page
    event = page.split('href="/events/')[1].split('"')[0]
    assert "签名" in clients["insp"].get(f"/events/{event}").text


def test_the_log_filters_and_verifies(clients: dict[str, TestClient], hall: WebHall) -> None:
    page = clients["insp"].get("/log?kind=user_add").text
    assert page.count("<td>用户添加</td>") == 6 and "<td>事件</td>" not in page
    events = clients["insp"].get(f"/log?kind=event&day={DAY}&staff=S001").text
    assert events.count('<span class="good">有效</span>') == 2  # the card punch and the face punch
    assert "13800000000" not in clients["insp"].get("/log?kind=complaint_add").text
    verified = clients["insp"].post("/log/verify", data={"csrf": csrf_of(clients["insp"])}).text
    head = hall.store.last_audit()
    assert head is not None and "校验通过" in verified and head.hash in verified
    assert clients["insp"].get("/log?kind=nonsense").status_code == 400


def test_the_devices_page(clients: dict[str, TestClient]) -> None:
    page = clients["insp"].get("/devices").text
    assert "entrance" in page and "未上报" in page and "clock" in page
