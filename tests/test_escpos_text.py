"""Receipt text for Chinese ESC/POS printers: substitutes, GB18030 bytes, printed width, wrapping,
the receipt layout, DLE EOT status and the print command's body. Pure functions, no printer."""

from __future__ import annotations

import pytest

from edge_agent.drivers.escpos.connection import (
    SerialConnection,
    TcpConnection,
    UsbConnection,
    parse_connection,
)
from edge_agent.drivers.escpos.receipt import (
    REPRINT_MARK,
    Cut,
    JobError,
    PrintJob,
    Qr,
    Raw,
    job_from_body,
    layout,
)
from edge_agent.drivers.escpos.status import PrinterStatus, StatusError, decode
from edge_agent.drivers.escpos.text import center, chinese_line, encode, printable, rule, width, wrap

# text -> (printed text, GB18030 bytes, columns on paper)
TABLE = [
    ("投诉回执", "投诉回执", "cdb6cbdfbbd8d6b4", 8),
    ("★★★★★", "★★★★★", "a1ef" * 5, 10),  # Unicode ambiguous width: drawn from the hanzi font
    ("：", "：", "a3ba", 2),
    ("￥", "￥", "a3a4", 2),
    ("¥12", "￥12", "a3a4" + "3132", 4),  # U+00A5 is a four-byte code: the full-width sign instead
    ("─", "─", "a9a4", 2),
    ("窗口 03", "窗口 03", "b4b0bfda203033", 7),
    ("A·B", "A·B", "41a1a442", 4),
    ("• 要点", "· 要点", "a1a420d2aab5e3", 7),
    ("✓ 已办结", "√ 已办结", "a1cc20d2d1b0ecbde1", 9),
    ("©2026", "(C)2026", "28432932303236", 7),
    ("😀", "?", "3f", 1),  # nothing prints it, no substitute: "?"
    ("a\tb", "a b", "612062", 3),
]


@pytest.mark.parametrize(("text", "shown", "hex_bytes", "columns"), TABLE)
def test_printable_bytes_and_width(text: str, shown: str, hex_bytes: str, columns: int) -> None:
    assert printable(text)[0] == shown
    assert encode(text).data.hex() == hex_bytes
    assert width(text) == columns


def test_a_line_is_sent_in_chinese_mode() -> None:
    assert chinese_line("评价：★") == b"\x1c\x26" + "评价：★".encode("gb18030") + b"\x1c\x2e\n"
    assert encode("😀x").replaced == 1


@pytest.mark.parametrize("columns", [32, 48])
def test_rules_and_centering_fill_the_paper(columns: int) -> None:
    assert width(rule(columns)) == columns and rule(columns) == "─" * (columns // 2)
    assert width(center("投诉回执", columns)) == (columns - 8) // 2 + 8


@pytest.mark.parametrize(("text", "columns", "lines"), [
    ("一二三四五六七八九十一二三四五六七", 32, ["一二三四五六七八九十一二三四五六", "七"]),
    ("受理窗口：03号窗口 综合受理 Social security card replacement", 32,
     ["受理窗口：03号窗口 综合受理", "Social security card replacement"]),
    ("a" * 31 + "中", 32, ["a" * 31, "中"]),  # a hanzi never split over the edge
    ("评价 ★★★★★ 非常满意", 32, ["评价 ★★★★★ 非常满意"]),
    ("x" * 50, 48, ["x" * 48, "xx"]),
    ("", 48, [""]),
    ("名称：" + "办" * 30, 48, ["名称：" + "办" * 21, "办" * 9]),
])
def test_wrap(text: str, columns: int, lines: list[str]) -> None:
    assert wrap(text, columns) == lines
    assert all(width(line) <= columns for line in lines)


def test_layout_of_a_job() -> None:
    job = PrintJob("j1", "p", "投诉回执", ("编号：C1",), qr="C1", cut=True)
    parts = layout(job, 32, cutter=True)
    assert isinstance(parts[0], Raw) and parts[0].data.startswith(b"\x1b\x40")
    assert "投诉回执".encode("gb18030") in parts[0].data and ("─" * 16).encode("gb18030") in parts[0].data
    assert Qr("C1") in parts and isinstance(parts[-1], Cut)
    assert REPRINT_MARK.split()[0][1:].encode("gb18030") in layout(job, 32, True, reprint=True)[0].data
    ruled = layout(PrintJob("j2", "p", "", ("─",)), 48, cutter=True)[0]
    assert isinstance(ruled, Raw) and ruled.data.count("─".encode("gb18030")) == 24  # a rule fills the paper
    no_cutter = layout(job, 32, cutter=False)
    assert not any(isinstance(p, Cut) for p in no_cutter) and no_cutter[-1] == Raw(b"\n" * 4)


def test_job_from_body() -> None:
    job = job_from_body("cmd-1", {"unit": "p1", "title": "T", "lines": ["a", "中"], "qr": "Q", "cut": False})
    assert job == PrintJob("cmd-1", "p1", "T", ("a", "中"), "Q", False)
    assert job_from_body("c", {"unit": "p", "title": "", "job": "c"}).cut is True
    for body, what in [({"title": "T"}, "unit"), ({"unit": "p", "title": 5}, "title"),
                       ({"unit": "p", "title": "T", "lines": "abc"}, "lines"),
                       ({"unit": "p", "title": "T", "lines": [1]}, "lines"),
                       ({"unit": "p", "title": "T", "qr": "二维码"}, "qr"),
                       ({"unit": "p", "title": "T", "cut": "yes"}, "cut"),
                       ({"unit": "p", "title": "T", "job": "other"}, "job"),
                       ({"unit": "p", "title": "T", "colour": "red"}, "colour")]:
        with pytest.raises(JobError, match=what):
            job_from_body("c", body)


def test_status_bytes() -> None:
    assert decode({1: 0x12, 2: 0x12, 4: 0x12}) == PrinterStatus()
    assert decode({1: 0x12, 2: 0x12, 4: 0x1E}).problems() == {"paper_low"}
    assert decode({1: 0x12, 2: 0x12, 4: 0x1E}).ready
    out = decode({1: 0x1A, 2: 0x12, 4: 0x72})
    assert out.problems() == {"paper_out"} and not out.ready and not out.cut_short
    stopped = decode({1: 0x1A, 2: 0x32, 4: 0x72})
    assert stopped.cut_short
    assert decode({1: 0x1A, 2: 0x16, 4: 0x12}).problems() == {"cover_open"}
    assert decode({1: 0x1A, 2: 0x12, 4: 0x12}).problems() == {"printer_offline"}
    with pytest.raises(StatusError):
        decode({1: 0x00})


def test_connections() -> None:
    assert parse_connection("tcp://192.168.1.50:9100") == TcpConnection("192.168.1.50", 9100)
    assert parse_connection("tcp://printer") == TcpConnection("printer", 9100)
    assert parse_connection("usb://0416:5011") == UsbConnection(0x0416, 0x5011)
    assert parse_connection("serial:///dev/ttyUSB0?baud=19200") == SerialConnection("/dev/ttyUSB0", 19200)
    assert parse_connection("serial:///dev/ttyS1") == SerialConnection("/dev/ttyS1", 9600)
    for bad in ["lp:///dev/usb/lp0", "usb://zz:11", "tcp://", "serial://dev/tty?baud=x"]:
        with pytest.raises(ValueError):
            parse_connection(bad)
