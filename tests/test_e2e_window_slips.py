"""End to end for the window slips: a polled RS-485 ButtonBus (pty) and a simulated ESC/POS printer
(TCP) on one window box -> edge agent -> Mosquitto -> hub, as processes.

The away key prints the 暂离告知 slip (reason, declared return, AB岗 substitute window) and a rating
prints the 评价凭证 whose QR code is the rating's event id, both read back from the printer. With the
printer out of paper the sign and the rating are still recorded, reach the hub and are acknowledged
to the devices; the slips print once each after the paper is back."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from device_sims.buttonbus import ButtonBox, PolledBusSim
from device_sims.printer import PrinterSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto

pytestmark = pytest.mark.e2e

STAFF = [StaffSpec("S001", "张伟", "01", "0A004A7B2C"), StaffSpec("S002", "王芳", "02", "67003B51C6")]
UNITS = """
[window]
away_minutes = {meeting = 45, errand = 30, break = 15, field = 120, other = 30}
away_slip_printer = "printer"
substitute = {"01" = "02"}
rating_receipt_printer = "printer"
[[units]]
id = "printer"
kind = "printer"
connection = "PRINTER"
columns = 32
[[units]]
id = "bus1"
kind = "bus"
port = "PORT"
devices = [
  {addr = 1, kind = "evaluator", window = "01"},
  {addr = 2, kind = "desk", window = "01", desk = "S001"},
]
"""


def event_ids(hall: Hall, type_: str) -> list[str]:
    with sqlite3.connect(hall.hub_db) as db:
        return [id_ for (id_,) in db.execute("SELECT id FROM events WHERE type = ? ORDER BY ts_utc, seq",
                                             (type_,))]


def qr_codes(png: Path) -> list[str]:
    """The QR codes zxing-cpp reads in the simulator's rendering (written just after the receipt is
    counted: nothing until the file is whole)."""
    try:
        return [r.text for r in zxingcpp.read_barcodes(Image.open(png))]
    except (OSError, ValueError):
        return []


def start(tmp_path: Path, broker: Mosquitto, sim: PrinterSim) -> tuple[Hall, PolledBusSim]:
    bus = PolledBusSim([ButtonBox(1, 1), ButtonBox(2, 2)])
    hall = Hall(tmp_path / "hall", broker.url, STAFF, edge_device="win01")
    hall.write_edge_config(bus.path, UNITS.replace("PORT", bus.path).replace("PRINTER", sim.url))
    hall.start_hub()
    hall.start_edge()
    return hall, bus


def test_away_key_and_rating_print_their_slips(tmp_path: Path, broker: Mosquitto) -> None:
    paper = tmp_path / "paper"
    with PrinterSim(paper, columns=32) as sim:
        hall, bus = start(tmp_path, broker, sim)
        try:
            bus.press(2, 0x11)  # away to a meeting
            wait_for(lambda: hall.stored("sign"), 20, "the sign", hall)
            assert bus.wait_acked(10) and sim.wait_receipts(1, 20), hall.logs()
            sign = hall.stored("sign")[0]
            slip = sim.receipts[0].text(32)
            assert "暂离告知" in slip and "01号窗口 工作人员暂时离开" in slip and "暂离事由：会议" in slip
            # a return on another day (an away pressed after 23:15) names its date: 预计返回：11-26 00:13
            back = re.search(r"预计返回：(?:(\d\d-\d\d) )?(\d\d:\d\d)", slip)
            assert back is not None and str(sign["back_at"])[11:16] == back.group(2), slip
            assert back.group(1) in (None, str(sign["back_at"])[5:10]), slip
            assert "替岗窗口（AB岗）：02号窗口" in slip and "请到02号窗口办理业务。" in slip

            bus.press(2, 0x10)  # back on duty: no slip
            bus.press(1, 5)
            wait_for(lambda: len(hall.stored("rating")) == 1 and len(hall.stored("sign")) == 2, 20,
                     "the rating and the return", hall)
            assert bus.wait_acked(10) and sim.wait_receipts(2, 20), hall.logs()
            (rating_id,) = event_ids(hall, "rating")
            receipt = sim.receipts[1].text(32)
            assert "评价凭证" in receipt and "评价结果：★★★★★ 非常满意" in receipt
            assert "评价窗口：01号窗口" in receipt and "取号：—" in receipt
            wait_for(lambda: qr_codes(paper / "receipt-002.png") == [rating_id], 10, "the QR code", hall)
            time.sleep(1.0)
            assert len(sim.receipts) == 2 and sim.unknown == 0
            assert hall.stored("ack") == []  # the box's own jobs answer no command
        finally:
            hall.stop()
            bus.close()


def test_out_of_paper_the_events_stand_and_the_slips_print_once_after(tmp_path: Path,
                                                                      broker: Mosquitto) -> None:
    paper = tmp_path / "paper"
    with PrinterSim(paper, columns=32) as sim:
        sim.set("paper_out")
        hall, bus = start(tmp_path, broker, sim)
        try:
            bus.press(2, 0x13)  # away on a break
            bus.press(1, 3)
            wait_for(lambda: hall.stored("sign") and hall.stored("rating"), 20, "sign and rating", hall)
            assert bus.wait_acked(10), "the keys were not acknowledged to the devices"
            wait_for(lambda: "paper_out" in [f["code"] for f in hall.stored("fault")], 20, "paper_out", hall)
            time.sleep(2.0)
            assert sim.receipts == []
            sim.set("paper_in")
            assert sim.wait_receipts(2, 30), hall.logs()
            (rating_id,) = event_ids(hall, "rating")
            texts = [receipt.text(32) for receipt in sim.receipts]  # in the order the bus was polled
            (slip,) = [text for text in texts if "暂离告知" in text]
            (n,) = [n for n, text in enumerate(texts, 1) if "评价凭证" in text]
            assert "暂离事由：休息" in slip and "替岗窗口（AB岗）：02号窗口" in slip
            assert "评价结果：★★★☆☆ 基本满意" in texts[n - 1]
            wait_for(lambda: qr_codes(paper / f"receipt-00{n}.png") == [rating_id], 10, "the QR code", hall)
            wait_for(lambda: "printer_restored" in [f["code"] for f in hall.stored("fault")], 20,
                     "printer_restored", hall)
            time.sleep(2.0)
            assert len(sim.receipts) == 2  # each once
            assert not any("重打" in text for text in texts)
            assert len(hall.stored("sign")) == 1 and len(hall.stored("rating")) == 1
            assert json.dumps(hall.stored("ack")) == "[]"
        finally:
            hall.stop()
            bus.close()
