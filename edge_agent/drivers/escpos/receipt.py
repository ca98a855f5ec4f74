"""A print job laid out as ESC/POS: pure functions from a job to the parts the driver sends.

Text parts are raw bytes (ESC @, ESC a, ESC E, GS !, and each line as FS & GB18030 FS . LF);
the QR code and the cut are left to python-escpos (`qr(native=True)`, `cut()`), which owns the
printer's command set for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.drivers.escpos.text import center, chinese_line, rule, wrap

ESC_INIT = b"\x1b\x40"
ALIGN_LEFT, ALIGN_CENTER = b"\x1b\x61\x00", b"\x1b\x61\x01"
BOLD_ON, BOLD_OFF = b"\x1b\x45\x01", b"\x1b\x45\x00"
SIZE_NORMAL, SIZE_DOUBLE_HEIGHT = b"\x1d\x21\x00", b"\x1d\x21\x01"
REPRINT_MARK = "【重打 REPRINT】"
MAX_LINES = 200  # lines of one job (the command's body, PROTOCOL.md 2.8)
MAX_LINE_CHARS = 200
MAX_TITLE_CHARS = 64
MAX_QR_CHARS = 300


@dataclass(frozen=True)
class PrintJob:
    """One receipt (PROTOCOL.md 2.8): `id` is the id of the `print` command that asked for it."""

    id: str
    unit: str
    title: str
    lines: tuple[str, ...] = ()
    qr: str | None = None
    cut: bool = True


@dataclass(frozen=True)
class Raw:
    data: bytes


@dataclass(frozen=True)
class Qr:
    data: str


@dataclass(frozen=True)
class Cut:
    pass


Part = Raw | Qr | Cut


class JobError(ValueError):
    """A `print` command's body that cannot be printed (answered ok=false with the reason)."""


def job_from_body(job_id: str, body: dict[str, object]) -> PrintJob:
    """The job a `print` command's body asks for; JobError names what is wrong."""
    unit, title, lines = body.get("unit"), body.get("title"), body.get("lines", [])
    qr, cut = body.get("qr"), body.get("cut", True)
    unknown = sorted(set(body) - {"unit", "title", "lines", "qr", "cut", "job"})
    if unknown:
        raise JobError(f"print: unknown key(s) {', '.join(unknown)}")
    if not isinstance(unit, str) or not unit:
        raise JobError("print: unit must name a printer unit")
    if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS:
        raise JobError(f"print: title must be a string of at most {MAX_TITLE_CHARS} characters")
    if not isinstance(lines, list) or len(lines) > MAX_LINES or not all(
            isinstance(line, str) and len(line) <= MAX_LINE_CHARS for line in lines):
        raise JobError(f"print: lines must be a list of at most {MAX_LINES} strings of at most "
                       f"{MAX_LINE_CHARS} characters")
    if qr is not None and (not isinstance(qr, str) or not qr or len(qr) > MAX_QR_CHARS or not qr.isascii()):
        raise JobError(f"print: qr must be null or 1 to {MAX_QR_CHARS} ASCII characters")
    if not isinstance(cut, bool):
        raise JobError("print: cut must be true or false")
    job = body.get("job", job_id)
    if job != job_id:
        raise JobError("print: job must be the command's id")
    return PrintJob(job_id, unit, title, tuple(lines), qr, cut)


def layout(job: PrintJob, columns: int, cutter: bool, reprint: bool = False) -> list[Part]:
    """The parts of one job: title (bold, double height, centred), a rule, the lines wrapped at
    `columns` (a line of "─" alone becomes a rule as wide as the paper), the QR code centred, then
    a cut (or paper fed when there is no cutter or the job says cut=false). A reprint starts with
    the 重打 mark."""
    out = bytearray(ESC_INIT)
    if reprint:
        out += ALIGN_LEFT + BOLD_ON + chinese_line(center(REPRINT_MARK, columns)) + BOLD_OFF
    if job.title:
        out += ALIGN_LEFT + BOLD_ON + SIZE_DOUBLE_HEIGHT
        out += b"".join(chinese_line(center(line, columns)) for line in wrap(job.title, columns))
        out += SIZE_NORMAL + BOLD_OFF
        out += chinese_line(rule(columns))
    out += ALIGN_LEFT
    for line in job.lines:
        if line and set(line) == {"─"}:  # a rule: as wide as the paper (PROTOCOL.md 2.8)
            out += chinese_line(rule(columns))
            continue
        out += b"".join(chinese_line(part) for part in wrap(line, columns))
    parts: list[Part] = [Raw(bytes(out))]
    if job.qr:
        parts += [Raw(ALIGN_CENTER), Qr(job.qr), Raw(b"\n" + ALIGN_LEFT)]
    if job.cut and cutter:
        parts.append(Cut())
    else:
        parts.append(Raw(b"\n" * 4))
    return parts
