"""The entrance terminal's screen and voice, one layer at a time: what a punch says and which clips
it plays (a fake voice), the board the page reads, the hub's `show`, and the window box's spoken
invitation and thanks. The page itself is tested live in tests/test_terminal_browser.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge_agent import config as edge_config
from edge_agent.agent import EdgeAgent
from edge_agent.entrance import Clocked, Entrance, FaceSeen
from edge_agent.readings import ButtonPress, FaceView
from edge_agent.terminal import EntranceScreen
from edge_agent.terminal.punches import PunchJudge
from tests.mqtt_broker import free_port
from wire.clock import FixedClock
from wire.envelope import Envelope, generate_keypair, load_private_key, seal

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 24, 8, 29, 31, tzinfo=TZ)
ROSTER = [{"id": "S001", "name": "张伟", "window": "01", "cards": ["0A004A7B2C"]},
          {"id": "S002", "name": "王芳", "window": "02", "cards": ["0003887558"]}]  # printed number


class FakeVoice:
    def __init__(self) -> None:
        self.said: list[tuple[str, ...]] = []

    def play(self, *clips: str) -> bool:
        self.said.append(clips)
        return True


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def recorded(method: str, card: str | None = None, staff: str | None = None, live: bool | None = None,
             at: datetime = AT, seq: int = 1) -> Clocked:
    return Clocked("recorded", method, card, staff, live, at, f"evt-{seq}", seq)


def screen(camera: bool = False) -> tuple[EntranceScreen, FakeVoice, Mono, dict[str, Any]]:
    voice, mono = FakeVoice(), Mono()
    link = {"up": True, "watermark": 0}
    made = EntranceScreen(None, FixedClock(AT), TZ, lambda: ROSTER, voice, camera=camera, require_live=True,
                          watermark=lambda: link["watermark"], link_up=lambda: link["up"], monotonic=mono)
    return made, voice, mono, link


# --- what a punch says ---------------------------------------------------------------------------


def test_punches_of_a_day_sign_in_sign_out_and_a_repeat_says_already() -> None:
    judge = PunchJudge(lambda: ROSTER, TZ, repeat_minutes=3)
    said = [judge.said(recorded("card", "0A004A7B2C", at=AT + timedelta(minutes=m), seq=i), 0.0)
            for i, m in enumerate((0, 2, 200, 480))]
    assert [(s.line.name, s.line.staff, s.line.result, s.line.ok) for s in said if s.line] == [
        ("张伟", "S001", "签到成功", True), ("张伟", "S001", "已打卡", True),
        ("张伟", "S001", "签退成功", True), ("张伟", "S001", "签到成功", True)]
    assert [s.clips for s in said] == [("ok", "signed_in"), ("ok", "already"), ("ok", "signed_out"),
                                       ("ok", "signed_in")]
    tomorrow = judge.said(recorded("card", "0A004A7B2C", at=AT + timedelta(days=1)), 0.0)
    assert tomorrow.line is not None and tomorrow.line.result == "签到成功"  # a new day starts again


def test_a_printed_card_number_finds_its_owner() -> None:
    said = PunchJudge(lambda: ROSTER, TZ).said(recorded("card", "67003B51C6"), 0.0)
    assert said.line is not None and (said.line.name, said.line.result) == ("王芳", "签到成功")


@pytest.mark.parametrize("clocked, result, clips", [
    (recorded("card", "1F00644BB6"), "未登记的卡", ("fail", "unknown_card")),
    (recorded("card+face", "1F00644BB6", "S001", True), "未登记的卡", ("fail", "unknown_card")),
    (recorded("card+face", "0A004A7B2C", "S002", True), "人脸与卡不符", ("fail", "mismatch")),
    (recorded("face", None, "S002", False), "未检测到眨眼，请重试", ("fail", "blink")),
    (Clocked("recorded", "card", "0A004A7B2C", None, None, AT), "未能记录，请重试", ("fail",)),
])
def test_what_is_wrong_is_said_with_the_failure_tone(clocked: Clocked, result: str,
                                                     clips: tuple[str, ...]) -> None:
    said = PunchJudge(lambda: ROSTER, TZ).said(clocked, 0.0)
    assert said.line is not None and (said.line.result, said.line.ok, said.clips) == (result, False, clips)


def test_card_and_face_agreeing_is_a_punch_of_the_owner() -> None:
    said = PunchJudge(lambda: ROSTER, TZ).said(recorded("card+face", "0A004A7B2C", "S001", True), 0.0)
    assert said.line is not None and (said.line.name, said.line.result) == ("张伟", "签到成功")


def test_a_tap_waiting_for_the_face_asks_to_look_at_the_camera() -> None:
    said = PunchJudge(lambda: ROSTER, TZ).said(Clocked("waiting", "card+face", "0A004A7B2C", None, None, AT),
                                              0.0)
    assert (said.line, said.prompt, said.clips) == (None, "张伟，请正视摄像头", ("look",))


# --- the board, through the screen ---------------------------------------------------------------


def test_a_punch_is_on_the_board_and_pending_only_when_the_hub_has_not_committed_it() -> None:
    made, voice, mono, link = screen()
    made.clocked(recorded("card", "0A004A7B2C", seq=7))
    state = made.snapshot()
    assert state["lines"][0] | {"id": "x"} == {
        "id": "x", "time": "08:29:31", "name": "张伟", "staff": "S001", "result": "签到成功", "ok": True,
        "pending": False, "verdict": None, "verdict_status": None}
    assert voice.said == [("ok", "signed_in")]
    assert (state["prompt"], state["camera"], state["date"]) == ("请刷卡", False, "2026年11月24日 星期二")
    assert state["offset_min"] == 480 and state["now_ms"] == int(AT.timestamp() * 1000)
    mono.t += 2.0  # the hub has not committed it after 1.5 s: 已记录，待上传
    assert made.snapshot()["lines"][0]["pending"] is True
    link["watermark"] = 7
    assert made.snapshot()["lines"][0]["pending"] is False
    link["up"] = False  # no broker: the next punch is pending at once
    made.clocked(recorded("card", "0003887558", seq=8))
    assert [line["pending"] for line in made.snapshot()["lines"]] == [True, False]
    assert made.snapshot()["link"] == "offline"


def test_the_hub_show_adds_its_judgement_to_that_punch() -> None:
    made, _, _, _ = screen()
    made.clocked(recorded("card", "0A004A7B2C", seq=1))
    made.clocked(recorded("card", "0003887558", seq=2))
    made.hub_show({"display": "terminal", "event": "evt-1", "status": "late", "minutes": 12,
                   "text": "迟到 12 分钟"})
    made.hub_show({"display": "terminal", "event": "evt-gone", "status": "on_time", "minutes": None,
                   "text": "正常"})  # no longer on the screen: fine, nothing shown
    lines = {line["id"]: line for line in made.snapshot()["lines"]}
    assert (lines["evt-1"]["verdict"], lines["evt-1"]["verdict_status"]) == ("迟到 12 分钟", "late")
    assert lines["evt-2"]["verdict"] is None


@pytest.mark.parametrize("body", [
    {"display": "terminal", "event": "e", "status": "great", "text": "好"},
    {"display": "terminal", "event": "", "status": "on_time", "text": "正常"},
    {"display": "terminal", "event": "e", "status": "on_time", "text": "x" * 33},
    {"display": "terminal", "event": "e", "status": "late", "minutes": -1, "text": "迟到"},
    {"display": "terminal", "event": "e", "status": "on_time", "text": "正常", "window": "01"},
])
def test_a_malformed_show_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="show:"):
        screen()[0].hub_show(body)


def test_the_face_box_and_the_blink_prompt_follow_the_camera() -> None:
    made, voice, _, _ = screen(camera=True)
    frame = np.zeros((480, 640, 3), np.uint8)
    made.frame(frame, None)
    assert (made.snapshot()["face"], made.snapshot()["prompt"]) == (None, "请正视摄像头")
    made.frame(frame, FaceView((120, 400, 360, 240), "look"))
    state = made.snapshot()
    assert state["face"] == {"box": [0.375, 0.25, 0.625, 0.75], "stage": "look"}
    made.frame(frame, FaceView((120, 400, 360, 240), "blink"))
    made.frame(frame, FaceView((121, 401, 361, 241), "blink"))  # still blinking: said once
    assert (made.snapshot()["prompt"], voice.said) == ("请眨眼", [("blink",)])
    made.clocked(recorded("face", None, "S001", True))
    assert made.snapshot()["lines"][0]["result"] == "签到成功"


def test_the_entrance_tells_the_screen_what_it_recorded() -> None:
    key = load_private_key(generate_keypair().private_hex)
    seqs = iter(range(1, 10))
    seen: list[Clocked] = []

    def record(type_: str, body: dict[str, Any], ts: str, attachment: bytes | None = None) -> Envelope:
        return seal(key, hall="h1", device="entrance", seq=next(seqs), ts=ts, type=type_, body=body)

    entrance = Entrance(None, record, lambda: 0.0, on_clock=seen.append)
    entrance.card("0A004A7B2C", AT)
    entrance.face(FaceSeen("S001", 400, "match", True, b"\xff\xd8", AT))
    assert [(c.kind, c.method, c.card, c.staff, c.seq) for c in seen] == [
        ("recorded", "card", "0A004A7B2C", None, 1), ("recorded", "face", None, "S001", 2)]
    assert all(c.event_id and len(c.event_id) == 36 for c in seen)


# --- the window box says the invitation and the thanks ----------------------------------------------


def test_the_window_box_speaks_when_an_invitation_opens_and_after_a_press(tmp_path: Path) -> None:
    keys = generate_keypair()
    (tmp_path / "edge.toml").write_text(
        f'hall = "h1"\ndevice = "win03"\nprivate_key = "{keys.private_hex}"\n'
        f'hub_public_key = "{keys.public_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
        '[outbox]\npath = "outbox.db"\n[sound]\ndevice = "null"\n'
        '[[units]]\nid = "eval"\nkind = "evaluator"\nport = "/dev/null"\nwindow = "03"\n', encoding="utf-8")
    agent = EdgeAgent(edge_config.load(tmp_path / "edge.toml"), FixedClock(AT))
    assert agent.screen is None  # a window box has no terminal page
    agent.voice.close()
    agent.voice = voice = FakeVoice()
    agent.windows.invite("03", 10, "A012", "inv-1")
    agent.record(ButtonPress("eval", 1, 5, AT))
    assert voice.said == [("invite",), ("thanks",)]
    assert [item.type for item in agent.outbox.pending()] == ["rating"]
    agent.outbox.close()
