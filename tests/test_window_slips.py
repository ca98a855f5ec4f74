"""The window slips on their own: the away slip and the rating receipt composed from their events, the
config keys that ask for them, and `WindowSlips` queueing them on the simulated printer (TCP) as the
box's own jobs: printed, never acknowledged as commands, and an event recorded even when its slip
cannot be queued."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from PIL import Image

from device_sims.printer import PrinterSim
from edge_agent import config as edge_config
from edge_agent.config import PrinterUnit, WindowSettings
from edge_agent.printing import Printers, PrintQueue
from edge_agent.readings import UnitFault
from edge_agent.slips import WindowSlips, away_slip, rating_receipt, stars
from tests.hall_harness import wait_for
from tests.test_edge_units import GOOD, write
from wire.configfile import ConfigError
from wire.envelope import Envelope, uuid7

TZ = ZoneInfo("Asia/Shanghai")
SIGN = {"window": "05", "desk": "d05", "state": "away", "reason": "meeting",
        "back_at": "2026-11-24T11:15:00.000+08:00"}
RATING = {"window": "05", "level": 4, "keys": 5, "invited": True, "invite": "x", "ticket": "A023"}


def envelope(type_: str, body: dict[str, Any], ts: str = "2026-11-24T10:15:42.120+08:00") -> Envelope:
    return Envelope(uuid7(), "h1", "win05", 1, ts, type_, body, "", b"")


def test_the_away_slip_says_reason_return_and_substitute() -> None:
    event = envelope("sign", SIGN)
    job = away_slip(event, "printer", "04", TZ)
    assert (job.id, job.unit, job.title, job.qr, job.cut) == (f"away-{event.id}", "printer", "暂离告知", None,
                                                              True)
    assert job.lines[:4] == ("05号窗口 工作人员暂时离开", "暂离事由：会议", "离开时间：2026-11-24 10:15",
                             "预计返回：11:15")
    assert "替岗窗口（AB岗）：04号窗口" in job.lines and "请到04号窗口办理业务。" in job.lines
    tomorrow = {**SIGN, "reason": "other", "back_at": "2026-11-25T09:00:00.000+08:00"}
    alone = away_slip(envelope("sign", tomorrow), "printer", None, TZ)
    assert "暂离事由：其他" in alone.lines and "预计返回：11-25 09:00" in alone.lines
    assert "请稍候，工作人员将尽快返回。" in alone.lines and not any("AB岗" in line for line in alone.lines)


def test_the_rating_receipt_has_stars_ticket_and_the_event_id() -> None:
    event = envelope("rating", RATING, ts="2026-11-24T02:15:42.120Z")  # shown in the hall's time zone
    job = rating_receipt(event, "printer", TZ)
    assert (job.title, job.qr) == ("评价凭证", event.id)
    assert job.lines[:4] == ("评价窗口：05号窗口", "评价结果：★★★★☆ 满意", "评价时间：2026-11-24 10:15:42",
                             "取号：A023")
    assert event.id in job.lines
    assert stars(1, 5) == "★☆☆☆☆ 非常不满意" and stars(2, 3) == "★★☆"
    untaken = rating_receipt(envelope("rating", {**RATING, "ticket": None}), "printer", TZ)
    assert "取号：—" in untaken.lines


WINDOW = """
[[units]]
id = "printer"
kind = "printer"
connection = "tcp://127.0.0.1:9100"
[[units]]
id = "bus1"
kind = "bus"
port = "/dev/hall-rs485"
devices = [{addr = 1, kind = "evaluator", window = "05"}, {addr = 2, kind = "desk", window = "05"}]
[window]
"""


def test_slip_config_keys(tmp_path: Path) -> None:
    text = GOOD + WINDOW + ('away_slip_printer = "printer"\nsubstitute = {"05" = "04"}\n'
                            'rating_receipt_printer = "printer"\nrating_receipt_windows = ["05"]\n')
    window = edge_config.load(write(tmp_path, text)).window
    assert (window.away_slip_printer, window.away_slip_windows, window.substitute) == ("printer", None,
                                                                                       {"05": "04"})
    assert (window.rating_receipt_printer, window.rating_receipt_windows) == ("printer", ["05"])


@pytest.mark.parametrize("keys, message", [
    ('away_slip_printer = "door"\n', "window.away_slip_printer: 'door' is not a printer unit"),
    ('rating_receipt_printer = "nope"\n', "(printer units: printer)"),
    ('away_slip_windows = ["05"]\n', "window.away_slip_windows: give window.away_slip_printer too"),
    ('rating_receipt_printer = "printer"\nrating_receipt_windows = ["07"]\n',
     "no evaluator for window(s) 07"),
    ('substitute = {"04" = "05"}\n', "window.substitute: 04 -> 05"),
    ('substitute = {"05" = "05"}\n', "window.substitute: 05 -> 05"),
    ('away_slip = "printer"\n', "window.away_slip"),
])
def test_bad_slip_config(tmp_path: Path, keys: str, message: str) -> None:
    path = write(tmp_path, GOOD + WINDOW + keys)
    with pytest.raises(ConfigError) as caught:
        edge_config.load(path)
    assert message in str(caught.value) and str(path) in str(caught.value), str(caught.value)


class Recorded:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    def __call__(self, type_: str, body: dict[str, Any], ts: str) -> Envelope:
        self.events.append(envelope(type_, body, ts))
        return self.events[-1]


@contextmanager
def printer_thread(queue: PrintQueue, unit: PrinterUnit, acks: list[str]) -> Iterator[Printers]:
    faults: list[UnitFault] = []
    printers = Printers(queue, [unit], lambda job, ok, error: acks.append(job) is None, faults.append,
                        lambda u, s, d: None)
    stop = threading.Event()
    thread = threading.Thread(target=printers.run_unit, args=(unit, stop), name="printer-printer")
    thread.start()
    try:
        yield printers
    finally:
        stop.set()
        printers.wake_all()
        thread.join(15)


def test_window_slips_print_on_the_box_printer_without_acks(tmp_path: Path) -> None:
    settings = WindowSettings(away_slip_printer="printer", substitute={"05": "04"},
                              rating_receipt_printer="printer")
    recorded, acks = Recorded(), []
    with PrinterSim(tmp_path / "paper", columns=32) as sim:
        unit = PrinterUnit(id="printer", kind="printer", connection=sim.url, columns=32)
        queue = PrintQueue(tmp_path / "outbox.db")
        with printer_thread(queue, unit, acks) as printers:
            slips = WindowSlips(settings, TZ, recorded, printers)
            slips.record("sign", SIGN, "2026-11-24T10:15:42.120+08:00")
            slips.record("sign", {**SIGN, "state": "on_duty", "reason": None, "back_at": None},
                         "2026-11-24T10:20:00.000+08:00")  # back: no slip
            slips.record("rating", RATING, "2026-11-24T10:21:00.000+08:00")
            assert sim.wait_receipts(2, 20), sim.receipts
            wait_for(lambda: queue.count() == 0, 10, "the local jobs done")
        queue.close()
        assert len(recorded.events) == 3 and acks == []  # the box's own jobs answer no command
        slip, receipt = (tmp_path / "paper" / "receipt-001.txt"), tmp_path / "paper" / "receipt-002.png"
        text = slip.read_text(encoding="utf-8")
        assert "暂离告知" in text and "暂离事由：会议" in text and "预计返回：11:15" in text
        assert "替岗窗口（AB岗）：04号窗口" in text
        assert [r.text for r in zxingcpp.read_barcodes(Image.open(receipt))] == [recorded.events[2].id]
        assert len(sim.receipts) == 2


def test_an_event_is_recorded_when_its_slip_cannot_be_queued(tmp_path: Path) -> None:
    settings = WindowSettings(away_slip_printer="printer")
    unit = PrinterUnit(id="printer", kind="printer", connection="tcp://127.0.0.1:9", columns=32)
    queue = PrintQueue(tmp_path / "outbox.db")
    printers = Printers(queue, [unit], lambda job, ok, error: True, lambda fault: None, lambda u, s, d: None)
    queue.close()  # the queue refuses every write from now on
    recorded = Recorded()
    slips = WindowSlips(settings, TZ, recorded, printers)
    event = slips.record("sign", SIGN, "2026-11-24T10:15:42.120+08:00")
    assert event is recorded.events[0]
