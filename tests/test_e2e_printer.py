"""End to end for a receipt printer: real Mosquitto, the hub and the edge agent as processes, the
simulated printer on a TCP port. `hall-hub send print`, the complaint receipt and the monthly notice
are printed and read back (text and QR code); the notice's head passes `log verify --head`; the edge
killed -9 with jobs queued for an offline printer prints each once after its restart."""

from __future__ import annotations

import signal
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from PIL import Image

from device_sims.printer import PrinterSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto

pytestmark = pytest.mark.e2e

STAFF = [StaffSpec("S001", "张伟", "01", "0A004A7B2C")]
SCREENSHOT = Path(__file__).resolve().parents[1] / "var" / "screenshots" / "receipt.png"


def printer_units(url: str) -> str:
    return (f'[[units]]\nid = "printer"\nkind = "printer"\ndriver = "escpos"\nconnection = "{url}"\n'
            "columns = 32\ncutter = true\n")


def qr_codes(png: Path) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(png))]


def queued(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        try:
            return int(db.execute("SELECT count(*) FROM print_job").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_receipts_printed_through_the_hall(tmp_path: Path, broker: Mosquitto) -> None:
    paper = tmp_path / "paper"
    with PrinterSim(paper, columns=32) as sim:
        hall = Hall(tmp_path / "hall", broker.url, STAFF)
        with hall.hub_config.open("a", encoding="utf-8") as config:
            config.write('[complaints]\nphone = "0571-12345678"\n')
        hall.write_edge_config("", printer_units(sim.url))
        hall.start_hub()
        hall.start_edge()
        try:
            sent = hall.cli("send", "print", "--device", "entrance", "--unit", "printer", "--title", "测试",
                            "--line", "评价：★★★★★ ￥5", "--line", "─", "--qr", "TEST-1", "--cut",
                            "--wait", "20")
            assert sent.returncode == 0 and "ack ok=True" in sent.stdout, sent.stdout + hall.logs()
            assert (paper / "receipt-001.txt").read_text(encoding="utf-8").splitlines() == [
                " " * 14 + "测试", "─" * 16, "评价：★★★★★ ￥5", "─" * 16, "[二维码 QR] TEST-1"]
            assert qr_codes(paper / "receipt-001.png") == ["TEST-1"]

            bad = hall.cli("send", "print", "--device", "entrance", "--unit", "nope", "--title", "x",
                           "--wait", "20")
            assert bad.returncode == 1 and "no printer unit 'nope'" in bad.stdout, bad.stdout + bad.stderr

            added = hall.cli("complaints", "add", "--kind", "written", "--window", "01", "--by", "李主任",
                             "--text", "窗口人员态度生硬，办理社保卡补办等候时间过长。",
                             "--contact", "13800000000",
                             "--print", "entrance:printer", "--json")
            assert added.returncode == 0, added.stdout + added.stderr + hall.logs()
            complaint_id = added.stdout.split('"id": "')[1].split('"')[0]
            receipt = (paper / "receipt-002.txt").read_text(encoding="utf-8")
            assert f"编号 No.：{complaint_id}" in receipt and "投诉窗口：01号窗口" in receipt
            assert "窗口人员态度生硬" in receipt and "咨询电话：0571-12345678" in receipt
            assert "答复期限：" in receipt and "13800000000" not in receipt  # never the contact
            assert qr_codes(paper / "receipt-002.png") == [complaint_id]
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.write_bytes((paper / "receipt-002.png").read_bytes())

            month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
            notice = hall.cli("report", "month", "--month", month, "--print", "entrance:printer")
            assert notice.returncode == 0, notice.stdout + notice.stderr + hall.logs()
            text = (paper / "receipt-003.txt").read_text(encoding="utf-8")
            (head,) = qr_codes(paper / "receipt-003.png")
            count, hash_ = head.split(":")
            assert "月度公示" in text and f"条目数 entries：{count}" in text and int(count) > 0
            assert hash_[:16] in text.replace("\n", "")
            verified = hall.cli("log", "verify", "--head", head)
            assert verified.returncode == 0 and "链头相符" in verified.stdout, verified.stderr
            wrong = hall.cli("log", "verify", "--head", f"{count}:{'0' * 64}")
            assert wrong.returncode == 1 and "not the printed" in wrong.stderr
            assert len(sim.receipts) == 3 and sim.unknown == 0
        finally:
            hall.stop()


def test_jobs_queued_for_an_offline_printer_survive_kill_9(tmp_path: Path, broker: Mosquitto) -> None:
    with PrinterSim(tmp_path / "paper", columns=32) as sim:
        sim.set("offline")
        hall = Hall(tmp_path / "hall", broker.url, STAFF)
        hall.write_edge_config("", printer_units(sim.url))
        hall.start_hub()
        hall.start_edge(wait=False)
        try:
            wait_for(lambda: "printer_offline" in hall.logs(), 30, "the printer_offline fault", hall)
            for n in (1, 2, 3):
                sent = hall.cli("send", "print", "--device", "entrance", "--unit", "printer", "--title",
                                f"任务 {n}", "--line", f"第{n}张", "--cut", "--wait", "0")
                assert sent.returncode == 0, sent.stdout + sent.stderr
            wait_for(lambda: queued(hall.outbox_db) == 3, 20, "three jobs in the print queue", hall)
            hall.kill_edge(signal.SIGKILL)
            assert sim.receipts == [] and hall.stored("ack") == []
            sim.set("online")
            hall.start_edge()
            wait_for(lambda: len(hall.stored("ack")) == 3, 30, "three acks after the restart", hall)
            assert all(ack["ok"] for ack in hall.stored("ack"))
            assert [r.lines()[0].strip() for r in sim.receipts] == ["任务 1", "任务 2", "任务 3"]
            assert queued(hall.outbox_db) == 0
            assert "printer_offline" in [f["code"] for f in hall.stored("fault")]
        finally:
            hall.stop()
