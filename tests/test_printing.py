"""The print queue and the ESC/POS driver against the simulated printer over a real TCP socket:
jobs printed in order and acknowledged once printed, the QR codes decoded from the rendered receipt,
paper running out in the middle of a queue, a job cut off in the middle, jobs kept across a restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from device_sims.printer import PrinterSim
from edge_agent.config import PrinterUnit
from edge_agent.drivers.escpos.receipt import JobError
from edge_agent.printing import Printers, PrintQueue
from edge_agent.readings import UnitFault
from tests.hall_harness import wait_for


@dataclass
class Box:
    """What the agent would record: acks and faults, in order."""

    acks: list[tuple[str, bool, str | None]] = field(default_factory=list)
    faults: list[UnitFault] = field(default_factory=list)
    status: dict[str, tuple[str, str]] = field(default_factory=dict)

    def answer(self, job: str, ok: bool, error: str | None) -> bool:
        self.acks.append((job, ok, error))
        return True

    def codes(self) -> list[str]:
        return [f.code for f in self.faults]


@contextmanager
def printing(db: Path, unit: PrinterUnit, box: Box) -> Iterator[Printers]:
    queue = PrintQueue(db)
    printers = Printers(queue, [unit], box.answer, box.faults.append,
                        lambda u, s, d: box.status.__setitem__(u, (s, d)))
    stop = threading.Event()
    thread = threading.Thread(target=printers.run_unit, args=(unit, stop), name=f"printer-{unit.id}")
    thread.start()
    try:
        yield printers
    finally:
        stop.set()
        printers.wake_all()
        thread.join(15)
        queue.close()


def unit_for(sim: PrinterSim, columns: int = 32) -> PrinterUnit:
    return PrinterUnit(id="p1", kind="printer", connection=sim.url, columns=columns, cutter=True)


def body(n: int, qr: str | None = None) -> dict[str, object]:
    lines = [f"编号：T-{n:03d}", "评价：★★★★★", "金额：¥12.50", "─" * 16]
    return {"unit": "p1", "title": f"测试回执 {n}", "lines": lines, "qr": qr, "cut": True}


def decoded(png: Path) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(Image.open(png))]


def test_jobs_print_in_order_and_are_acknowledged_after_printing(tmp_path: Path) -> None:
    box = Box()
    with PrinterSim(tmp_path / "paper", columns=32) as sim, printing(tmp_path / "outbox.db", unit_for(sim),
                                                                     box) as printers:
        for n in (1, 2, 3):
            printers.submit(f"job-{n}", body(n, qr=f"T-{n:03d}"))
        wait_for(lambda: len(box.acks) == 3, 20, "three acks")
        assert box.acks == [(f"job-{n}", True, None) for n in (1, 2, 3)]
        assert printers.queue.count() == 0
        texts = [(tmp_path / "paper" / f"receipt-00{n}.txt").read_text(encoding="utf-8") for n in (1, 2, 3)]
        for n, text in enumerate(texts, 1):
            assert text.splitlines() == [" " * 11 + f"测试回执 {n}", "─" * 16, f"编号：T-{n:03d}",
                                         "评价：★★★★★", "金额：￥12.50", "─" * 16, f"[二维码 QR] T-{n:03d}"]
            assert decoded(tmp_path / "paper" / f"receipt-00{n}.png") == [f"T-{n:03d}"]
        assert sim.unknown == 0 and box.faults == []


def test_paper_out_in_the_middle_of_a_queue(tmp_path: Path) -> None:
    box = Box()
    with PrinterSim(tmp_path / "paper", paper_out_after=2) as sim, printing(tmp_path / "outbox.db",
                                                                            unit_for(sim), box) as printers:
        for n in range(1, 6):
            printers.submit(f"job-{n}", body(n))
        wait_for(lambda: "paper_out" in box.codes(), 20, "the paper_out fault")
        assert [a[0] for a in box.acks] == ["job-1", "job-2"] and len(sim.receipts) == 2
        threading.Event().wait(2.5)  # the queue waits: nothing printed, the fault not repeated
        assert len(sim.receipts) == 2 and box.codes() == ["paper_out"]
        sim.set("paper_in")
        wait_for(lambda: len(box.acks) == 5, 20, "all five acks")
        assert [a[0] for a in box.acks] == [f"job-{n}" for n in range(1, 6)]
        titles = [r.lines()[0].strip() for r in sim.receipts]
        assert titles == [f"测试回执 {n}" for n in range(1, 6)]  # each printed once, in order
        assert box.codes() == ["paper_out", "printer_restored"] and sim.lost_bytes == 0


def test_a_job_cut_off_in_the_middle_is_printed_again_whole(tmp_path: Path) -> None:
    box = Box()
    with PrinterSim(tmp_path / "paper") as sim, printing(tmp_path / "outbox.db", unit_for(sim, 48),
                                                         box) as printers:
        sim.drop_after(80)  # the cable pulled in the receipt's second line
        printers.submit("job-1", body(1))
        wait_for(lambda: box.acks, 30, "the ack")
        assert box.acks == [("job-1", True, None)]
        fragment, whole = sim.receipts
        assert [line.strip() for line in fragment.lines() if line] == ["测试回执 1"]  # cut off, then cut
        lines = [line.strip() for line in whole.lines() if line]
        assert lines == ["【重打 REPRINT】", "测试回执 1", "─" * 24, "编号：T-001", "评价：★★★★★",
                         "金额：￥12.50", "─" * 24]  # a rule line fills 48 columns
        assert "printer_offline" in box.codes()


def test_queued_jobs_survive_a_restart_and_print_once(tmp_path: Path) -> None:
    first = Box()
    with PrinterSim(tmp_path / "paper") as sim:
        sim.set("offline")
        with printing(tmp_path / "outbox.db", unit_for(sim), first) as printers:
            for n in (1, 2):
                printers.submit(f"job-{n}", body(n))
            wait_for(lambda: "printer_offline" in first.codes(), 20, "printer_offline")
        assert first.acks == [] and sim.receipts == []
        sim.set("online")
        second = Box()
        with printing(tmp_path / "outbox.db", unit_for(sim), second) as printers:
            printers.submit("job-2", body(2))  # the same command again: not a second job
            wait_for(lambda: len(second.acks) == 2, 20, "both acks after the restart")
            assert printers.queue.count() == 0
        assert [a[0] for a in second.acks] == ["job-1", "job-2"]
        assert [r.lines()[0].strip() for r in sim.receipts] == ["测试回执 1", "测试回执 2"]


def test_a_bad_job_is_refused_at_once(tmp_path: Path) -> None:
    box = Box()
    with PrinterSim() as sim, printing(tmp_path / "outbox.db", unit_for(sim), box) as printers:
        with pytest.raises(JobError, match="no printer unit 'p9'"):
            printers.submit("job-1", {**body(1), "unit": "p9"})
        with pytest.raises(JobError, match="lines"):
            printers.submit("job-2", {**body(1), "lines": "不是列表"})
        assert printers.queue.count() == 0


def test_a_printer_that_never_answers_status_can_be_declared(tmp_path: Path) -> None:
    box = Box()
    with PrinterSim(tmp_path / "paper") as sim:
        unit = PrinterUnit(id="p1", kind="printer", connection=sim.url, columns=32, answers_status=False)
        with printing(tmp_path / "outbox.db", unit, box) as printers:
            printers.submit("job-1", body(1))
            wait_for(lambda: box.acks, 20, "the ack")
        assert box.acks == [("job-1", True, None)] and len(sim.receipts) == 1
        assert sim.status_requests == 0
