"""End to end for a window box: a polled RS-485 ButtonBus (pty) -> edge agent -> Mosquitto -> hub.

Invitations from the desk key and from the hub, invited and uninvited ratings, retransmitted keys
counted once, the away sign with its display text, and the hub's command acknowledged."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from device_sims.buttonbus import ButtonBox, PolledBusSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto

pytestmark = pytest.mark.e2e

STAFF = [StaffSpec("S001", "张伟", "01", "0A004A7B2C"), StaffSpec("S002", "王芳", "02", "67003B51C6")]
UNITS = """
[window]
invite_seconds = 5
away_minutes = {meeting = 45, errand = 30, break = 15, field = 120, other = 30}
[[units]]
id = "bus1"
kind = "bus"
driver = "buttonbus"
port = "PORT"
devices = [
  {addr = 1, kind = "evaluator", window = "01"},
  {addr = 2, kind = "desk", window = "01", desk = "S001"},
  {addr = 3, kind = "evaluator", window = "02"},
]
"""


def shown(box: ButtonBox, mode: int) -> list[str]:
    return [text for m, text in list(box.shown) if m == mode]


def test_window_box_through_a_polled_bus(tmp_path: Path, broker: Mosquitto) -> None:
    evaluator1, desk1, evaluator2 = ButtonBox(1, 1), ButtonBox(2, 2), ButtonBox(3, 1)
    bus = PolledBusSim([evaluator1, desk1, evaluator2])
    hall = Hall(tmp_path / "hall", broker.url, STAFF, edge_device="win01")
    hall.write_edge_config(bus.path, UNITS.replace("PORT", bus.path))
    hall.start_hub()
    hall.start_edge()
    try:
        wait_for(lambda: bool(shown(desk1, 3)), 10, "the desk display set on start", hall)
        assert shown(desk1, 3)[-1] == "在岗 · 01号窗口"
        bus.press(2, 0x18)  # the staff member invites the citizen to rate
        wait_for(lambda: bool(shown(evaluator1, 1)), 10, "the evaluator asks for a rating", hall)
        assert bus.wait_acked(5)
        time.sleep(0.5)  # ACKs of repeats of the desk key still on the line land first
        bus.drop_acks(3)  # the next KEY is retransmitted three times before its ACK counts
        bus.press(1, 5)
        wait_for(lambda: len(hall.stored("rating")) == 1, 20, "the invited rating", hall)
        assert bus.wait_acked(10)  # the fourth ACK of the KEY was let through
        assert evaluator1.repeats_sent >= 3 and len(hall.stored("rating")) == 1  # repeats: one press
        wait_for(lambda: bool(shown(evaluator1, 2)), 10, "thanks on the evaluator", hall)
        bus.press(1, 4)  # a second press: not invited
        bus.press(2, 0x11)  # away to a meeting
        wait_for(lambda: len(hall.stored("rating")) == 2 and hall.stored("sign"), 20, "press, sign", hall)
        first, second = hall.stored("rating")
        assert (first["level"], first["invited"], first["window"]) == (5, True, "01")
        assert first["invite"] is not None and first["keys"] == 5
        assert (second["level"], second["invited"], second["invite"]) == (4, False, None)
        sign = hall.stored("sign")[0]
        assert (sign["window"], sign["desk"], sign["state"], sign["reason"]) == ("01", "S001", "away",
                                                                               "meeting")
        wait_for(lambda: bool(shown(desk1, 4)), 10, "the away sign", hall)
        assert re.fullmatch(r"暂离 · 会议 · \d\d:\d\d 返回", shown(desk1, 4)[-1]), shown(desk1, 4)
        assert str(sign["back_at"])[11:16] == shown(desk1, 4)[-1][-8:-3]

        result = hall.cli("send", "invite", "--device", "win01", "--window", "02", "--ticket", "A023")
        assert result.returncode == 0 and "ack ok=True" in result.stdout, result.stdout + result.stderr
        assert shown(evaluator2, 1)[-1] == "请评价 · A023"
        bus.press(3, 1)
        wait_for(lambda: len(hall.stored("rating")) == 3, 20, "the rating on window 02", hall)
        third = hall.stored("rating")[2]
        assert (third["window"], third["level"], third["invited"], third["ticket"]) == ("02", 1, True,
                                                                                       "A023")
        bad = hall.cli("send", "invite", "--device", "win01", "--window", "09")
        assert bad.returncode == 1 and "ok=False" in bad.stdout

        cases = json.loads(hall.cli("cases", "list", "--json").stdout or "[]")
        assert [(c["window"], c["level"]) for c in cases] == [("02", 1)]
        assert len(hall.stored("rating")) == 3  # every press once, repeats included in ACKs only
    finally:
        hall.stop()
        bus.close()
