"""DLE EOT real-time status (Epson ESC/POS): the request bytes and the meaning of the answers.

Each answer is one byte with bit 1 and bit 4 set and bits 0 and 7 clear (0x12 when all is well):
- DLE EOT 1 (printer status): bit 3 offline.
- DLE EOT 2 (offline cause): bit 2 cover open, bit 5 printing stopped by paper end, bit 6 error.
- DLE EOT 4 (roll paper sensor): bits 2-3 paper near end, bits 5-6 paper end.
"""

from __future__ import annotations

from dataclasses import dataclass

DLE_EOT = b"\x10\x04"
REQUESTS = (1, 2, 4)
FIXED_MASK, FIXED_BITS = 0x93, 0x12


class StatusError(ValueError):
    """An answer that is not a DLE EOT status byte."""


@dataclass(frozen=True)
class PrinterStatus:
    offline: bool = False
    cover_open: bool = False
    paper_out: bool = False
    paper_low: bool = False
    error: bool = False
    stopped: bool = False  # printing stopped by paper end: data sent was not all printed

    @property
    def cut_short(self) -> bool:
        """After a job was sent: it may not be on paper whole (printing stopped by paper end, cover
        open, error, or offline for another reason). Paper that ran out after the job is not that."""
        return self.stopped or self.cover_open or self.error or (self.offline and not self.paper_out)

    @property
    def ready(self) -> bool:
        """Online with paper: a job may be sent (paper near end still prints)."""
        return not (self.offline or self.cover_open or self.paper_out or self.error)

    def problems(self) -> frozenset[str]:
        """The fault codes this status is (PROTOCOL.md 2.8): paper_out, paper_low, cover_open,
        printer_offline (an offline printer with no other cause, or one in error)."""
        found = {code for code, on in (("paper_out", self.paper_out), ("paper_low", self.paper_low),
                                       ("cover_open", self.cover_open)) if on}
        if (self.offline or self.error) and not found - {"paper_low"}:
            found.add("printer_offline")
        return frozenset(found)


def request(n: int) -> bytes:
    return DLE_EOT + bytes([n])


def decode(answers: dict[int, int]) -> PrinterStatus:
    """The status from the answers to DLE EOT 1, 2 and 4 (n -> byte)."""
    for n, byte in answers.items():
        if byte & FIXED_MASK != FIXED_BITS:
            raise StatusError(f"DLE EOT {n}: 0x{byte:02x} is not a status byte")
    printer, cause, paper = answers.get(1, 0x12), answers.get(2, 0x12), answers.get(4, 0x12)
    return PrinterStatus(
        offline=bool(printer & 0x08),
        cover_open=bool(cause & 0x04),
        paper_out=bool(paper & 0x60) or bool(cause & 0x20),
        paper_low=bool(paper & 0x0C),
        error=bool(cause & 0x40),
        stopped=bool(cause & 0x20),
    )
