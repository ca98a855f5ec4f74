"""The printer simulator's own ESC/POS parser on known byte strings (written out here by hand, not
by the driver), and its status answers over TCP."""

from __future__ import annotations

import socket
from pathlib import Path

from device_sims.escpos_paper import Line, Parser, QrCode, Receipt
from device_sims.printer import PrinterSim, parse_printer_script


def parse(data: bytes, chunk: int = 0) -> tuple[list[Receipt], list[int], Parser]:
    receipts: list[Receipt] = []
    asked: list[int] = []
    parser = Parser(asked.append, receipts.append)
    if chunk:
        for i in range(0, len(data), chunk):
            parser.feed(data[i:i + chunk])
    else:
        parser.feed(data)
    return receipts, asked, parser


HANZI = "评价：★★★★★ ￥".encode("gb18030")
JOB = (b"\x1b@" + b"\x1ba\x01\x1bE\x01\x1d!\x01" + b"\x1c&" + "回执".encode("gb18030") + b"\x1c.\n"
       + b"\x1d!\x00\x1bE\x00\x1ba\x00" + b"\x1c&" + HANZI + b"\x1c.\n" + b"plain ASCII\n"
       + b"\x1d(k\x04\x001A2\x00" + b"\x1d(k\x03\x001C\x06" + b"\x1d(k\x03\x001E0"
       + b"\x1d(k\x07\x001P0C-01" + b"\x1d(k\x03\x001Q0" + b"\x1bd\x02" + b"\x1dV\x00")


def test_a_receipt_with_chinese_text_and_a_qr_code() -> None:
    for chunk in (0, 1, 3):  # commands split between reads
        receipts, asked, parser = parse(JOB + b"\x10\x04\x01", chunk)
        assert asked == [1] and parser.unknown == 0
        (receipt,) = receipts
        assert receipt.elements[0] == Line("回执", 4, align=1, bold=True, tall=True)
        assert receipt.elements[1] == Line("评价：★★★★★ ￥", 19)
        assert receipt.elements[2] == Line("plain ASCII", 11)
        assert QrCode("C-01") in receipt.elements
        assert receipt.text(32).splitlines() == ["              回执", "评价：★★★★★ ￥", "plain ASCII",
                                                 "[二维码 QR] C-01"]


def test_hanzi_outside_chinese_mode_print_as_code_page_characters() -> None:
    receipts, _, _ = parse("中".encode("gb18030") + b"\n\x1dVA\x03")
    assert receipts[0].elements[0].text == "╓╨"  # what a printer left in its code page would print


def test_unknown_commands_are_counted_and_skipped() -> None:
    receipts, _, parser = parse(b"\x1b\xffAB\x1d\xfe\n\x1dV\x01")
    assert parser.unknown == 2 and receipts[0].lines() == ["AB"]


def test_script() -> None:
    steps = parse_printer_script("# comment\n2 paper_in\n1 paper_out\n")
    assert [(s.at, s.action) for s in steps] == [(1.0, "paper_out"), (2.0, "paper_in")]


def status(sim: PrinterSim) -> list[int]:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        answers = []
        for n in (1, 2, 4):
            conn.sendall(b"\x10\x04" + bytes([n]))
            answers.append(conn.recv(1)[0])
        return answers


def test_status_answers_over_tcp(tmp_path: Path) -> None:
    with PrinterSim(tmp_path, columns=32, paper_out_after=1) as sim:
        assert status(sim) == [0x12, 0x12, 0x12]
        sim.set("paper_low")
        assert status(sim) == [0x12, 0x12, 0x1E]
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
            conn.sendall(JOB)
            assert sim.wait_receipts(1, 5)
        assert status(sim) == [0x1A, 0x12, 0x7E]  # out after one receipt; nothing stopped
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
            conn.sendall(b"\x1b@lost\n")
            conn.sendall(b"\x10\x04\x02")
            assert conn.recv(1)[0] == 0x32  # printing stopped by paper end
        sim.set("paper_in")
        sim.set("cover_open")
        assert status(sim) == [0x1A, 0x16, 0x12]
        sim.set("cover_close")
        sim.set("offline")
        assert status(sim)[0] == 0x1A
    assert (tmp_path / "receipt-001.txt").read_text(encoding="utf-8").startswith(" " * 14 + "回执\n")
    assert (tmp_path / "receipt-001.png").stat().st_size > 1000
