"""A simulated ESC/POS receipt printer on a TCP port of the loopback (like a printer's port 9100).

It parses what it receives with its own code (device_sims/escpos_paper.py), answers DLE EOT status
bytes as an Epson printer does, and writes each receipt (what lies between two cuts) into `out` as
`receipt-NNN.txt` (GB18030 decoded) and `receipt-NNN.png`. Its paper, cover and online state are set
by the control methods, by `paper_out_after` (the paper runs out after that many receipts) or by a
script of timed steps:

    # seconds since start, then what happens
    2 paper_out
    5 paper_in
    6 cover_open
    7 cover_close
    8 offline
    9 online
    10 paper_low
    11 paper_ok
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from device_sims.escpos_paper import Parser, Receipt, render_png

log = logging.getLogger(__name__)
ACTIONS = ("paper_out", "paper_in", "paper_low", "paper_ok", "cover_open", "cover_close", "offline",
           "online", "drop")


class PrinterScriptError(ValueError):
    pass


@dataclass(frozen=True)
class PrinterStep:
    at: float  # seconds since start
    action: str


def parse_printer_script(text: str) -> list[PrinterStep]:
    steps = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            at = float(parts[0])
        except ValueError:
            raise PrinterScriptError(f"line {number}: {raw!r}: begin with the seconds since start") from None
        if len(parts) != 2 or parts[1] not in ACTIONS:
            raise PrinterScriptError(f"line {number}: {raw!r}: the action is one of {', '.join(ACTIONS)}")
        steps.append(PrinterStep(at, parts[1]))
    return sorted(steps, key=lambda step: step.at)


class PrinterSim:
    """Serves one connection at a time on 127.0.0.1:`port` (0: a free port). Thread-safe controls."""

    def __init__(self, out: Path | None = None, port: int = 0, columns: int = 48,
                 paper_out_after: int | None = None, png: bool = True) -> None:
        self.out, self.columns, self.png = out, columns, png
        self.paper_out_after = paper_out_after
        self.receipts: list[Receipt] = []
        self.status_requests = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.has_paper, self.paper_low, self.cover_open, self.offline = True, False, False, False
        self._stopped = False  # printing stopped by paper end (data came while out)
        self._drop_after: int | None = None
        self._paper = Receipt()
        self._unknown = self._lost = 0
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = self._server.getsockname()[1]
        self._closing = threading.Event()
        self._client: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="printer-sim", daemon=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def __enter__(self) -> PrinterSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        self._server.close()
        self.drop()
        self._thread.join(5)

    # --- controls ------------------------------------------------------------------------

    def set(self, action: str) -> None:
        """One script action: paper_out, paper_in, paper_low, paper_ok, cover_open, cover_close,
        offline, online, drop (close the connection now)."""
        if action == "drop":
            self.drop()
            return
        with self._changed:
            if action == "paper_out":
                self.has_paper = False
            elif action == "paper_in":
                self.has_paper, self.paper_low, self._stopped = True, False, False
            elif action in ("paper_low", "paper_ok"):
                self.paper_low = action == "paper_low"
            elif action in ("cover_open", "cover_close"):
                self.cover_open = action == "cover_open"
            elif action in ("offline", "online"):
                self.offline = action == "offline"
            else:
                raise ValueError(f"unknown action {action!r}")
            self._changed.notify_all()

    def drop_after(self, nbytes: int) -> None:
        """Close the connection once `nbytes` more bytes arrived (a cable pulled in the middle)."""
        with self._lock:
            self._drop_after = nbytes

    def drop(self) -> None:
        client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def play(self, steps: list[PrinterStep], stop: threading.Event) -> None:
        start = time.monotonic()
        for step in steps:
            if stop.wait(max(0.0, step.at - (time.monotonic() - start))):
                return
            log.info("printer sim: %s", step.action)
            self.set(step.action)

    def wait_receipts(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.receipts) >= count, timeout)

    @property
    def unknown(self) -> int:
        return self._unknown

    @property
    def lost_bytes(self) -> int:
        return self._lost

    # --- the printer -----------------------------------------------------------------------

    def _printing(self) -> bool:
        with self._lock:
            ok = self.has_paper and not self.cover_open and not self.offline
            if not ok and not self.has_paper:
                self._stopped = True
            return ok

    def _status(self, n: int) -> int:
        with self._lock:
            self.status_requests += 1
            if n == 1:
                return 0x12 | (0x08 if self.offline or self.cover_open or not self.has_paper else 0)
            if n == 2:
                return 0x12 | (0x04 if self.cover_open else 0) | (0x20 if self._stopped else 0)
            if n == 4:
                return 0x12 | (0x0C if self.paper_low else 0) | (0x60 if not self.has_paper else 0)
            return 0x12

    def _cut(self, receipt: Receipt) -> None:
        if not receipt.elements:
            return
        with self._changed:
            self.receipts.append(receipt)
            number = len(self.receipts)
            if self.paper_out_after is not None and number >= self.paper_out_after:
                self.has_paper, self.paper_out_after = False, None
            self._changed.notify_all()
        if self.out is not None:
            stem = self.out / f"receipt-{number:03d}"
            stem.with_suffix(".txt").write_text(receipt.text(self.columns), encoding="utf-8")
            if self.png:
                render_png(receipt, self.columns, stem.with_suffix(".png"))

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            self._client = client
            try:
                self._session(client)
            finally:
                self._client = None
                client.close()

    def _session(self, client: socket.socket) -> None:
        def answer(n: int) -> None:
            with contextlib.suppress(OSError):
                client.sendall(bytes([self._status(n)]))

        parser = Parser(answer, self._cut, self._printing)
        parser.receipt = self._paper  # printed but not yet cut: still on the paper
        while True:
            try:
                data = client.recv(4096)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                limit = self._drop_after
                if limit is not None:
                    data = data[:limit]
                    self._drop_after = limit - len(data)
            parser.feed(data)
            with self._lock:
                self._unknown, self._lost = self._unknown + parser.unknown, self._lost + parser.lost_bytes
            parser.unknown = parser.lost_bytes = 0
            if limit is not None and self._drop_after == 0:
                with self._lock:
                    self._drop_after = None
                break
        self._paper = parser.receipt
