"""What a simulated ESC/POS printer puts on paper: its own parser of the bytes it receives (not
python-escpos, so one encoder bug cannot make both sides agree) and the receipts it writes out.

Understood: ESC @, ESC a, ESC E, ESC d, ESC J, ESC !, GS !, GS V (cut), GS ( k (QR code: model,
size, error correction, store, print), FS & / FS . (Chinese mode: two-byte GB18030), LF, CR, and
DLE EOT n (status, answered by the printer). Other ESC/GS/FS commands of known length are skipped;
anything else is counted in `unknown` and skipped two bytes at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
# command byte -> number of parameter bytes, for commands skipped or handled with fixed length
ESC_ARGS = {0x40: 0, 0x61: 1, 0x45: 1, 0x64: 1, 0x4A: 1, 0x21: 1, 0x74: 1, 0x2D: 1, 0x4D: 1, 0x32: 0,
            0x33: 1, 0x47: 1, 0x52: 1, 0x70: 3, 0x7B: 1, 0x20: 1, 0x56: 1}
GS_ARGS = {0x21: 1, 0x42: 1, 0x4C: 2, 0x57: 2, 0x68: 1, 0x77: 1, 0x48: 1, 0x66: 1, 0x61: 1}
FS_ARGS = {0x26: 0, 0x2E: 0, 0x21: 1, 0x2D: 1, 0x57: 1}
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
DOT_COLUMN = 12  # font A: 12 x 24 dots per half-width column


@dataclass(frozen=True)
class Line:
    text: str
    columns: int  # columns taken: 1 per single byte, 2 per two-byte code
    align: int = 0  # 0 left, 1 centre, 2 right
    bold: bool = False
    tall: bool = False  # double height


@dataclass(frozen=True)
class QrCode:
    data: str


Element = Line | QrCode


@dataclass
class Receipt:
    elements: list[Element] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [e.text if isinstance(e, Line) else f"[二维码 QR] {e.data}" for e in self.elements]

    def text(self, columns: int) -> str:
        """The receipt as text: aligned lines, a QR code as `[二维码 QR] data`."""
        out = []
        for e in self.elements:
            if isinstance(e, Line):
                pad = {1: (columns - e.columns) // 2, 2: columns - e.columns}.get(e.align, 0)
                out.append((" " * max(0, pad) + e.text).rstrip())
            else:
                out.append(f"[二维码 QR] {e.data}")
        while out and not out[-1]:
            out.pop()  # paper fed before the cut
        return "\n".join(out) + "\n"

    def qr_data(self) -> list[str]:
        return [e.data for e in self.elements if isinstance(e, QrCode)]


class Parser:
    """Feed bytes as they come (a command may be split between reads). `answer(n)` is called for
    each DLE EOT n; `printing()` says whether paper takes print now (else text is lost and
    `lost_bytes` counted); `cut(receipt)` is called at each GS V with the receipt it ends."""

    def __init__(self, answer: Callable[[int], None], cut: Callable[[Receipt], None],
                 printing: Callable[[], bool] = lambda: True) -> None:
        self._answer, self._cut, self._printing = answer, cut, printing
        self._buf = bytearray()
        self.receipt = Receipt()
        self.unknown = 0
        self.lost_bytes = 0
        self.lines_printed = 0
        self._reset()

    def _reset(self) -> None:
        self.chinese, self.align, self.bold, self.tall = False, 0, False, False
        self._line: list[str] = []
        self._columns = 0
        self._qr: str | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._buf:
            used = self._step(self._buf)
            if used == 0:
                return  # an incomplete command: wait for more bytes
            del self._buf[:used]

    def _step(self, b: bytearray) -> int:
        c = b[0]
        if c == DLE:
            if len(b) < 3:
                return 0
            if b[1] == 0x04:
                self._answer(b[2])
                return 3
            self.unknown += 1
            return 2
        if c in (ESC, GS, FS):
            return self._command(b)
        if c == 0x0A:
            self._end_line()
            return 1
        if c < 0x20:
            return 1  # CR and other controls: nothing on paper
        if c >= 0x81 and self.chinese:
            if len(b) < 2:
                return 0
            size = 4 if len(b) > 1 and 0x30 <= b[1] <= 0x39 else 2
            if len(b) < size:
                return 0
            self._char(bytes(b[:size]).decode("gb18030", errors="replace"), 2)
            return size
        self._char(bytes([c]).decode("cp437") if c >= 0x80 else chr(c), 1)
        return 1

    def _command(self, b: bytearray) -> int:
        if len(b) < 2:
            return 0
        prefix, cmd = b[0], b[1]
        if prefix == GS and cmd == 0x28 and len(b) < 3:
            return 0
        if prefix == GS and cmd == 0x28 and len(b) >= 3 and b[2] == 0x6B:  # GS ( k
            if len(b) < 5:
                return 0
            size = 5 + b[3] + 256 * b[4]
            if len(b) < size:
                return 0
            self._qr_function(bytes(b[5:size]))
            return size
        if prefix == GS and cmd == 0x56:  # GS V m [n]
            if len(b) < 3:
                return 0
            size = 4 if b[2] in (65, 66, 97, 98, 103, 104) else 3
            if len(b) < size:
                return 0
            self._do_cut()
            return size
        table = {ESC: ESC_ARGS, GS: GS_ARGS, FS: FS_ARGS}[prefix]
        if cmd not in table:
            self.unknown += 1
            return 2
        size = 2 + table[cmd]
        if len(b) < size:
            return 0
        arg = b[2] if size > 2 else 0
        if prefix == ESC and cmd == 0x40:
            if self._line:
                self._end_line()
            self._reset()
        elif prefix == ESC and cmd == 0x61:
            self.align = arg % 48 if arg >= 48 else arg
        elif prefix == ESC and cmd == 0x45:
            self.bold = bool(arg & 1)
        elif prefix == ESC and cmd == 0x64:
            self._end_line()
            for _ in range(max(0, arg - 1)):
                self._end_line()
        elif prefix == GS and cmd == 0x21:
            self.tall = bool(arg & 0x0F)
        elif prefix == FS and cmd == 0x26:
            self.chinese = True
        elif prefix == FS and cmd == 0x2E:
            self.chinese = False
        return size

    def _qr_function(self, params: bytes) -> None:
        if len(params) < 2 or params[0] != 0x31:
            self.unknown += 1
            return
        fn = params[1]
        if fn == 0x50:  # store: m = '0', then the data
            self._qr = params[3:].decode("utf-8", errors="replace")
        elif fn == 0x51 and self._qr is not None:  # print what was stored
            if self._printing():
                self.receipt.elements.append(QrCode(self._qr))
            else:
                self.lost_bytes += len(self._qr)
        elif fn not in (0x41, 0x43, 0x45):  # model, dot size, error correction: nothing to keep
            self.unknown += 1

    def _char(self, ch: str, columns: int) -> None:
        self._line.append(ch)
        self._columns += columns

    def _end_line(self) -> None:
        text = "".join(self._line)
        if self._printing():
            self.receipt.elements.append(Line(text, self._columns, self.align, self.bold, self.tall))
            self.lines_printed += 1
        else:
            self.lost_bytes += len(text.encode("gb18030", errors="replace")) + 1
        self._line, self._columns = [], 0

    def _do_cut(self) -> None:
        if self._line:
            self._end_line()
        receipt, self.receipt = self.receipt, Receipt()
        self._cut(receipt)


def render_png(receipt: Receipt, columns: int, path: Path) -> None:
    """The receipt drawn as on paper: text in a CJK font, the QR code from its data, a cut line."""
    import qrcode
    from PIL import Image, ImageDraw, ImageFont

    width = columns * DOT_COLUMN + 24
    font = ImageFont.truetype(str(FONT), 22) if FONT.exists() else ImageFont.load_default()
    blocks: list[tuple[Element, Image.Image | None, int]] = []
    elements = list(receipt.elements)
    while elements and isinstance(elements[-1], Line) and not elements[-1].text.strip():
        elements.pop()  # paper fed before the cut
    for e in elements:
        if isinstance(e, QrCode):
            image = qrcode.make(e.data, box_size=6, border=2).get_image().convert("L")
            blocks.append((e, image, image.height + 8))
        else:
            blocks.append((e, None, 48 if e.tall else 26))
    height = sum(h for _, _, h in blocks) + 60
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y = 12
    for e, image, h in blocks:
        if image is not None:
            page.paste(image, ((width - image.width) // 2, y))
        elif isinstance(e, Line):
            used = e.columns * DOT_COLUMN
            x = {1: (width - used) // 2, 2: width - 12 - used}.get(e.align, 12)
            row = Image.new("L", (width, 26), 255)
            _draw_line(ImageDraw.Draw(row), e, x, font)
            page.paste(row.resize((width, h)) if e.tall else row, (0, y))
        y += h
    for x in range(0, width, 16):  # the cut line
        draw.line([(x, height - 20), (x + 8, height - 20)], fill=0, width=2)
    page.save(path)


def _draw_line(draw: Any, line: Line, x: int, font: Any) -> None:
    """One line on the printer's grid: 12 dots a half-width column, 24 a two-byte character."""
    for ch in line.text:
        cell = DOT_COLUMN * (1 if ch.isascii() else 2)
        if ch == "─":
            draw.line([(x, 13), (x + cell, 13)], fill=0, width=2)
        else:
            draw.text((x, 1), ch, fill=0, font=font, stroke_width=1 if line.bold else 0, stroke_fill=0)
        x += cell
