"""The console's JSON API on a real SQLite store: every route against every kind of caller, what each
answer holds, and the manual actions written to the log with the caller's name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_hub_window import hub_cli
from web_hall import DAY, WebHall, make_web_hall

from hub.web.app import create_app


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHall]:
    made = make_web_hall(tmp_path_factory.mktemp("web"))
    yield made
    made.store.close()


@pytest.fixture(scope="module")
def client(hall: WebHall) -> TestClient:
    return TestClient(create_app(hall.config, hall.store))


def call(client: TestClient, hall: WebHall, who: str | None, method: str, path: str,
         body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {hall.tokens[who]}"} if who else {}
    return client.request(method, path, headers=headers, json=body)


READS = [f"/api/v1/attendance?date={DAY}", f"/api/v1/ratings?date={DAY}", f"/api/v1/findings?date={DAY}",
         f"/api/v1/cases?from={DAY}&to={DAY}", "/api/v1/complaints"]
OVERSIGHT = ["/api/v1/log?after=0", "/api/v1/report?month=2026-11"]
ALL_GET = ["/api/v1/board", "/api/v1/me", *READS, *OVERSIGHT]


@pytest.mark.parametrize("path", [*ALL_GET, "POST /api/v1/log/verify"])
@pytest.mark.parametrize("who", [None, "bad", "gone", "old"])
def test_no_valid_token_is_401(client: TestClient, hall: WebHall, path: str, who: str | None) -> None:
    method, _, route = path.rpartition(" ")
    answer = call(client, hall, who, method or "GET", route)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_malformed_authorization_header_is_401_not_a_cookie_fallback(client: TestClient) -> None:
    answer = client.get("/api/v1/board", headers={"Authorization": "Basic aW5zcDp4"})
    assert answer.status_code == 401 and "Bearer" in answer.json()["detail"]


@pytest.mark.parametrize("path", ALL_GET)
@pytest.mark.parametrize("who", ["insp", "mgr"])
def test_inspector_and_manager_read_everything(client: TestClient, hall: WebHall, path: str,
                                               who: str) -> None:
    answer = call(client, hall, who, "GET", path)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("who", ["s1", "s2"])
def test_staff_reads_board_and_own_records_only(client: TestClient, hall: WebHall, who: str) -> None:
    own = {"s1": "S001", "s2": "S002"}[who]
    other = {"s1": "S002", "s2": "S001"}[who]
    assert call(client, hall, who, "GET", "/api/v1/board").status_code == 200
    for path in READS:
        answer = call(client, hall, who, "GET", path)
        assert answer.status_code == 200, (path, answer.text)
        assert call(client, hall, who, "GET", f"{path}{'&' if '?' in path else '?'}staff={own}"
                    ).status_code == 200
        refused = call(client, hall, who, "GET", f"{path}{'&' if '?' in path else '?'}staff={other}")
        assert refused.status_code == 403, (path, refused.text)
    for path in OVERSIGHT:
        assert call(client, hall, who, "GET", path).status_code == 403, path
    assert call(client, hall, who, "POST", "/api/v1/log/verify").status_code == 403


def staff_of(data: Any) -> set[Any]:
    rows = data["ratings"] if isinstance(data, dict) else data
    return {row["staff"] for row in rows}


def test_a_staff_account_gets_its_own_rows_where_others_get_all(client: TestClient, hall: WebHall) -> None:
    for path in (READS[0], READS[1]):
        assert staff_of(call(client, hall, "insp", "GET", path).json()) >= {"S001", "S002"}
        assert staff_of(call(client, hall, "s1", "GET", path).json()) == {"S001"}
    ratings = call(client, hall, "s1", "GET", READS[1]).json()
    assert set(ratings["by_staff"]) == {"S001"} and ratings["by_staff"]["S001"]["total"] == 1
    assert set(ratings["by_window"]) == {"01"}
    assert call(client, hall, "s1", "GET", "/api/v1/complaints").json() == []
    mine = call(client, hall, "s2", "GET", "/api/v1/complaints").json()
    assert [c["id"] for c in mine] == [hall.complaint] and "contact" not in mine[0]


@pytest.mark.parametrize("args,path", [
    (("attendance", "--date", DAY, "--json"), f"/api/v1/attendance?date={DAY}"),
    (("ratings", "--date", DAY, "--json"), f"/api/v1/ratings?date={DAY}"),
    (("findings", "--date", DAY, "--json"), f"/api/v1/findings?date={DAY}"),
    (("cases", "list", "--from", DAY, "--to", DAY, "--json"), f"/api/v1/cases?from={DAY}&to={DAY}"),
    (("complaints", "list", "--json"), "/api/v1/complaints"),
    (("log", "show", "--json"), "/api/v1/log?after=0"),
])
def test_the_api_answers_what_the_cli_prints(client: TestClient, hall: WebHall, args: tuple[str, ...],
                                             path: str) -> None:
    printed = hub_cli(hall.config_path, *args, "--clock", "2026-11-24T18:00:00+08:00")
    assert printed.returncode == 0, printed.stderr
    answer = call(client, hall, "insp", "GET", path).json()
    if args[0] == "log":  # the API's answer was read before this command's own entries, if any
        assert answer == json.loads(printed.stdout)[:len(answer)]
    else:
        assert answer == json.loads(printed.stdout)


def test_log_hides_personal_data_and_names_no_secret(client: TestClient, hall: WebHall) -> None:
    text = call(client, hall, "insp", "GET", "/api/v1/log?after=0&limit=5000").text
    assert "13800000000" not in text and "个人信息 已隐藏" in text
    assert "scrypt" not in text and all(token not in text for token in hall.tokens.values())
    kinds = [e["kind"] for e in call(client, hall, "insp", "GET", "/api/v1/log?kind=user_add").json()]
    assert kinds == ["user_add"] * 6
    after = call(client, hall, "insp", "GET", "/api/v1/log?after=3&limit=2").json()
    assert [e["seq"] for e in after] == [4, 5]
    assert call(client, hall, "insp", "GET", "/api/v1/log?kind=nonsense").status_code == 400


def test_verify_returns_the_result_and_the_chain_head(client: TestClient, hall: WebHall) -> None:
    answer = call(client, hall, "insp", "POST", "/api/v1/log/verify").json()
    head = hall.store.last_audit()
    assert head is not None
    assert answer["ok"] is True and answer["problem"] is None and answer["entries"] == head.seq
    at = head.at.isoformat(timespec="milliseconds")
    assert answer["head"] == {"seq": head.seq, "hash": head.hash, "at": at}
    assert "manual entries" in answer["provenance"] and "0 签名无效 invalid" in answer["provenance"]


def test_report_is_the_month_summary(client: TestClient, hall: WebHall) -> None:
    report = call(client, hall, "mgr", "GET", "/api/v1/report?month=2026-11").json()
    assert report["month"] == "2026-11" and [r["id"] for r in report["staff"]] == ["S001", "S002"]
    ratings = {r["id"]: r["ratings"] for r in report["staff"]}
    assert ratings["S001"]["total"] == 1
    assert ratings["S002"]["levels"]["1"] + ratings["S002"]["levels"]["2"] == 1  # one bad rating
    assert {"ranking", "chain_head", "rules", "windows"} <= set(report)
    assert call(client, hall, "mgr", "GET", "/api/v1/report?month=2026-13").status_code == 422


def test_board_at_ten_twenty(hall: WebHall) -> None:
    store = hall.reopen("10:20")
    try:
        board = TestClient(create_app(hall.config, store)).get(
            "/api/v1/board", headers={"Authorization": f"Bearer {hall.tokens['s1']}"}).json()
    finally:
        store.close()
    windows = {w["window"]: w for w in board["windows"]}
    assert board["in_session"] is True and board["at"].startswith(f"{DAY}T10:20:00")
    assert windows["01"]["state"] == "on_duty" and windows["01"]["state_zh"] == "在岗"
    assert [(s["id"], s["name"], s["state"]) for s in windows["01"]["staff"]] == [("S001", "张伟", "on_duty")]
    assert (windows["01"]["ratings_today"], windows["01"]["rate_permille"]) == (1, 1000)
    away = windows["02"]["staff"]
    assert [(s["id"], s["state"], s["state_zh"], s["reason_zh"]) for s in away] == [
        ("S002", "away", "暂离", "会议")]
    assert away[0]["declared_return"].startswith(f"{DAY}T10:30:00") and windows["02"]["state"] == "away"
    assert (windows["02"]["ratings_today"], windows["02"]["rate_permille"]) == (1, 0)
    device = board["devices"][0]
    assert device["id"] == "entrance" and device["online"] is None
    assert device["last_event"].startswith(f"{DAY}T10:10:06")


# --- manual actions --------------------------------------------------------------------------


def bad_rating(client: TestClient, hall: WebHall, window: str, level: int) -> str:
    ratings = call(client, hall, "insp", "GET", f"/api/v1/ratings?date={DAY}").json()["ratings"]
    return next(r["id"] for r in ratings if (r["window"], r["level"]) == (window, level))


def test_only_a_manager_records_leave_and_the_log_names_them(client: TestClient, hall: WebHall) -> None:
    body = {"staff": "S001", "from": "2026-11-26", "to": "2026-11-26", "approver": "主任", "reason": "病假"}
    for who in ("insp", "s1"):
        assert call(client, hall, who, "POST", "/api/v1/leave", body).status_code == 403
    done = call(client, hall, "mgr", "POST", "/api/v1/leave", body)
    assert done.status_code == 200, done.text
    entry = hall.store.last_audit("leave")
    assert entry is not None and entry.seq == done.json()["log_seq"]
    assert (entry.data["by"], entry.data["staff"], entry.data["approver"]) == ("mgr", "S001", "主任")
    assert entry.data["author"] == {"by": "mgr", "os_user": None, "host": None, "via": "web"}
    refused = call(client, hall, "mgr", "POST", "/api/v1/leave", {**body, "staff": "S999"})
    assert refused.status_code == 400 and "not on the roster" in refused.json()["detail"]
    assert call(client, hall, "mgr", "POST", "/api/v1/leave", {**body, "extra": 1}).status_code == 422


def test_closing_a_case(client: TestClient, hall: WebHall) -> None:
    cases = call(client, hall, "insp", "GET", f"/api/v1/cases?from={DAY}&to={DAY}").json()
    case = next(c["id"] for c in cases if c["level"] == 1)
    path = f"/api/v1/cases/{case}/close"
    for who in ("insp", "s2"):
        assert call(client, hall, who, "POST", path, {"result": "已电话回访"}).status_code == 403
    done = call(client, hall, "mgr", "POST", path, {"result": "已电话回访", "note": "群众满意"})
    assert done.status_code == 200, done.text
    listed = call(client, hall, "insp", "GET", f"/api/v1/cases?from={DAY}&to={DAY}").json()
    after = {c["id"]: c for c in listed}
    assert (after[case]["closed_by"], after[case]["result"]) == ("mgr", "已电话回访")
    again = call(client, hall, "mgr", "POST", path, {"result": "x"})
    assert again.status_code == 400 and "already closed" in again.json()["detail"]


def test_closing_a_complaint(client: TestClient, hall: WebHall) -> None:
    path = f"/api/v1/complaints/{hall.complaint}/close"
    for who in ("insp", "s2"):
        assert call(client, hall, who, "POST", path, {"result": "已当面答复"}).status_code == 403
    done = call(client, hall, "mgr", "POST", path, {"result": "已当面答复"})
    assert done.status_code == 200, done.text
    assert (done.json()["closed_by"], done.json()["status"]) == ("mgr", "closed")


def test_appeals_staff_own_only_and_manager_decides(client: TestClient, hall: WebHall) -> None:
    rating = bad_rating(client, hall, "02", 2)  # S002's 不满意 at 11:00
    path = f"/api/v1/ratings/{rating}"
    for who in ("s1", "insp"):
        assert call(client, hall, who, "POST", f"{path}/appeal", {"reason": "误按"}).status_code == 403
    appealed = call(client, hall, "s2", "POST", f"{path}/appeal", {"reason": "群众误按"})
    assert appealed.status_code == 200, appealed.text
    assert (appealed.json()["state"], appealed.json()["appealed_by"]) == ("open", "s2")
    for who in ("insp", "s2"):
        assert call(client, hall, who, "POST", f"{path}/decide",
                    {"accept": True, "note": "核实"}).status_code == 403
    decided = call(client, hall, "mgr", "POST", f"{path}/decide", {"accept": True, "note": "监控核实误按"})
    assert decided.status_code == 200, decided.text
    assert (decided.json()["state"], decided.json()["decided_by"]) == ("accepted", "mgr")
    nope = "/api/v1/ratings/nope/appeal"
    assert call(client, hall, "mgr", "POST", nope, {"reason": "x"}).status_code == 404
    assert call(client, hall, "mgr", "POST", "/api/v1/ratings/nope/decide",
                {"accept": False, "note": "x"}).status_code == 404
    assert call(client, hall, "s2", "POST", nope, {"reason": "x"}).status_code == 404


def test_the_log_still_verifies_after_the_actions(client: TestClient, hall: WebHall) -> None:
    assert call(client, hall, "mgr", "POST", "/api/v1/log/verify").json()["ok"] is True
    acted = [e for e in hall.store.audit()
             if e.kind in ("leave", "case_closed", "complaint_close", "rating_appeal", "appeal_decision")]
    assert {e.kind for e in acted} == {"leave", "case_closed", "complaint_close", "rating_appeal",
                                       "appeal_decision"}
    authors = {(e.data["author"]["via"], e.data["author"]["by"]) for e in acted}
    assert authors == {("web", "mgr"), ("web", "s2")}


def test_cli_json_objects_unchanged_for_away(hall: WebHall, tmp_path: Path) -> None:
    printed = hub_cli(hall.config_path, "away", "--date", DAY, "--json")
    assert [(p["staff"], p["reason"]) for p in json.loads(printed.stdout)] == [("S002", "meeting")]
