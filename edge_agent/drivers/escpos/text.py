"""Chinese text for ESC/POS printers: substitutes, GB18030 encoding and layout. Pure functions.

In Chinese mode (FS &) a printer takes single bytes 0x20-0x7E as half-width ASCII and two-byte
GB18030 (GBK) codes as full-width characters drawn from its hanzi font (24x24 dots, two columns of a
12x24 font). So a character's width on paper is the length of its two-byte code: "中", "：", "￥",
and also "★", "─" and "·", which Unicode calls ambiguous width but the printer draws as hanzi.
Characters the font lacks (GB18030 four-byte codes, controls) are replaced by SUBSTITUTES, or "?".

python-escpos's `text()` is not used for text: it switches to GB18030 only for strings holding CJK
ideographs and sends the rest through single-byte code pages ("：" and "★" come out as "?").
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

FS_CHINESE_ON = b"\x1c\x26"  # FS &: Chinese character mode
FS_CHINESE_OFF = b"\x1c\x2e"  # FS .: cancel Chinese character mode
LF = b"\n"
FALLBACK = "?"

# What a printer's font lacks -> what is printed instead (documented in README.md). Every value is
# ASCII or a GB2312 character, which every Chinese ESC/POS font has.
SUBSTITUTES: dict[str, str] = {
    "¥": "￥",  # U+00A5 is a four-byte GB18030 code; the full-width yuan sign is GB2312 A3A4
    "•": "·",  # bullet
    "✓": "√", "✔": "√",
    "✗": "×", "✘": "×",
    "–": "-",  # en dash (GBK only, not in GB2312 fonts)
    "═": "=", "║": "|",  # double box drawing (GBK only)
    "©": "(C)", "®": "(R)", "™": "TM",
    "€": "EUR",
    "\u00a0": " ", "\t": " ", "\u2002": " ", "\u2003": "　", "\u200b": "",
    "\u2010": "-", "\u2011": "-", "\u2212": "-",
}


@dataclass(frozen=True)
class Encoded:
    data: bytes  # GB18030 text, no control bytes
    replaced: int  # characters printed as FALLBACK (no substitute)


def printable(text: str) -> tuple[str, int]:
    """The text with every character the printer cannot print substituted; how many became "?"."""
    out: list[str] = []
    missing = 0
    for ch in unicodedata.normalize("NFC", text):
        ch = SUBSTITUTES.get(ch, ch)
        for part in ch:
            if _code(part) is None:
                missing += 1
                out.append(FALLBACK)
            else:
                out.append(part)
    return "".join(out), missing


def _code(ch: str) -> bytes | None:
    """The character's code in the printer's font: one ASCII byte or two GB18030 bytes, else None."""
    if " " <= ch <= "~":
        return ch.encode("ascii")
    try:
        code = ch.encode("gb18030")
    except UnicodeEncodeError:
        return None
    return code if len(code) == 2 else None


def char_width(ch: str) -> int:
    """Columns the character takes on paper (after substitution): 1 for ASCII, 2 for a hanzi code."""
    code = _code(ch)
    return 1 if code is None else len(code)


def width(text: str) -> int:
    """Columns the text takes on paper, once made printable."""
    return sum(char_width(ch) for ch in printable(text)[0])


def encode(text: str) -> Encoded:
    """GB18030 bytes of the printable text (no FS & / FS .)."""
    shown, missing = printable(text)
    return Encoded(b"".join(_code(ch) or FALLBACK.encode() for ch in shown), missing)


def chinese_line(text: str) -> bytes:
    """One line as the printer gets it: FS & <GB18030> FS . LF."""
    return FS_CHINESE_ON + encode(text).data + FS_CHINESE_OFF + LF


def wrap(text: str, columns: int) -> list[str]:
    """The text (made printable) cut into lines of at most `columns` columns. A line breaks at the
    last space when an ASCII word would be split, else between characters; never inside a
    character. An empty text is one empty line."""
    shown = printable(text)[0]
    lines: list[str] = []
    line, used = "", 0
    for ch in shown:
        w = char_width(ch)
        if used + w > columns:
            cut = line.rfind(" ")
            if ch != " " and ch.isascii() and line[-1:].isascii() and line[-1:] != " " and cut > 0:
                lines.append(line[:cut].rstrip())
                line = line[cut + 1:]
            else:
                lines.append(line.rstrip())
                line = ""
            if ch == " " and not line:
                used = 0
                continue
            used = width(line)
        line += ch
        used += w
    lines.append(line.rstrip())
    return lines


def center(text: str, columns: int) -> str:
    """The text centred in `columns` with leading spaces (a line too long is returned as it is)."""
    shown = printable(text)[0]
    return " " * max(0, (columns - width(shown)) // 2) + shown


def rule(columns: int, char: str = "─") -> str:
    """A horizontal line filling `columns` ("─" is two columns wide: 24 of them fill 48)."""
    return char * (columns // char_width(char))


def justify(left: str, right: str, columns: int) -> str:
    """`left` and `right` on one line, `right` flush at the right edge (at least one space between);
    when they do not fit, `left` and `right` joined by one space (the caller wraps it)."""
    gap = columns - width(left) - width(right)
    return f"{left}{' ' * gap}{right}" if gap >= 1 else f"{left} {right}"
