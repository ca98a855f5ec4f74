"""The durable print queue and its worker threads (PROTOCOL.md 2.8).

A `print` command is written to the `print_job` table of the edge's outbox file (same SQLite file,
its own table and connection) before anything else; it is acknowledged later, by the worker, once
printed. One `printer-<unit>` thread per printer unit owns its driver and prints the unit's jobs in
order. A job's row goes through these states:

    queued  --(status ready; sending begins)-->  sending  --(sent whole, printer ready)-->  printed
    printed --(ack recorded in the outbox)--> row deleted

A row found `sending` (the send failed, the printer stopped in the middle, or the agent was killed
while sending) is printed again whole, marked 重打 reprint, after a cut that separates the fragment.
A row found `printed` at start has its ack recorded. So every job is printed once and acknowledged;
only a kill between the last byte sent and the `printed` mark reprints a whole receipt (marked).

The box's own jobs (the window slips, edge_agent/slips.py) go through the same queue, marked `local`
in their body: they answer no command, so their row is deleted once printed, without an ack.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import PrinterUnit
from edge_agent.drivers.escpos.connection import parse_connection
from edge_agent.drivers.escpos.driver import EscposDriver, PrinterError, escpos_opener
from edge_agent.drivers.escpos.receipt import Cut, JobError, PrintJob, Raw, job_from_body, layout
from edge_agent.drivers.escpos.status import PrinterStatus
from edge_agent.readings import UnitFault

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0  # a printer not ready (paper, cover) is asked again this often
MAX_BACKOFF_SECONDS = 10.0  # a printer that does not answer: 1, 2, 4... up to this
IDLE_CHECK_SECONDS = 30.0  # with nothing to print, the status is still asked this often

SCHEMA = """
CREATE TABLE IF NOT EXISTS print_job (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL UNIQUE,
    unit TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'printed')),
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


class QueueError(Exception):
    """The print queue could not do what was asked (the disk refused)."""


@dataclass(frozen=True)
class QueuedJob:
    job: PrintJob
    state: str
    attempts: int
    local: bool = False  # the box's own job (a window slip): no command to acknowledge


class PrintQueue:
    """The `print_job` table. Thread-safe: the MQTT thread adds, printer threads take and mark."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise QueueError(f"print queue in {path}: {exc}") from exc

    def add(self, job: PrintJob, local: bool = False) -> bool:
        """Store the job durably; False when a job of that id is already queued."""
        fields = {"title": job.title, "lines": list(job.lines), "qr": job.qr, "cut": job.cut}
        body = json.dumps({**fields, "local": True} if local else fields, ensure_ascii=False)
        cursor = self._run("INSERT OR IGNORE INTO print_job (job, unit, body) VALUES (?, ?, ?)",
                           (job.id, job.unit, body))
        return cursor.rowcount == 1

    def next(self, unit: str, state: str | None = None) -> QueuedJob | None:
        """The unit's oldest job not yet printed (or the oldest in `state`)."""
        where = "state = ?" if state else "state != ?"
        row = self._run(f"SELECT job, unit, body, state, attempts FROM print_job WHERE unit = ? AND {where} "
                        "ORDER BY pos LIMIT 1", (unit, state or "printed")).fetchone()
        if row is None:
            return None
        job_id, unit_id, body, job_state, attempts = row
        data = json.loads(body)
        return QueuedJob(PrintJob(job_id, unit_id, data["title"], tuple(data["lines"]), data["qr"],
                                  data["cut"]), job_state, attempts, data.get("local", False))

    def mark(self, job_id: str, state: str) -> None:
        bump = ", attempts = attempts + 1" if state == "sending" else ""
        self._run(f"UPDATE print_job SET state = ?{bump} WHERE job = ?", (state, job_id))

    def remove(self, job_id: str) -> None:
        self._run("DELETE FROM print_job WHERE job = ?", (job_id,))

    def count(self, unit: str | None = None) -> int:
        if unit is None:
            return int(self._run("SELECT count(*) FROM print_job", ()).fetchone()[0])
        return int(self._run("SELECT count(*) FROM print_job WHERE unit = ?", (unit,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise QueueError(f"print queue: {exc}") from exc


Answer = Callable[[str, bool, str | None], bool]  # job id, ok, error -> the ack was recorded
Report = Callable[[UnitFault], None]
SetStatus = Callable[[str, str, str], None]  # unit, status (ok, lost), detail
MakeDriver = Callable[[PrinterUnit], EscposDriver]


def escpos_driver(unit: PrinterUnit) -> EscposDriver:
    return EscposDriver(unit.id, escpos_opener(parse_connection(unit.connection), unit.profile),
                        answers_status=unit.answers_status)


class Printers:
    """The printer units of a box: `submit` queues a job (MQTT thread), `run_unit` is one unit's
    thread. Faults are reported once per episode: a code when it appears, `printer_restored` when the
    printer is ready again after a problem that stopped printing."""

    def __init__(self, queue: PrintQueue, units: list[PrinterUnit], answer: Answer, report: Report,
                 set_status: SetStatus, make_driver: MakeDriver = escpos_driver) -> None:
        self.queue = queue
        self.units = {unit.id: unit for unit in units}
        self._answer, self._report, self._set_status = answer, report, set_status
        self._make_driver = make_driver
        self._wake = {unit.id: threading.Event() for unit in units}

    def submit(self, job_id: str, body: dict[str, object]) -> None:
        """Queue a `print` command's job durably. Raises JobError (bad body, unknown unit) or
        QueueError (the disk refused): the command is then answered ok=false at once."""
        job = job_from_body(job_id, body)
        if job.unit not in self.units:
            known = ", ".join(sorted(self.units)) or "none"
            raise JobError(f"print: no printer unit {job.unit!r} on this box (printer units: {known})")
        if self.queue.add(job):
            log.info("print job %s queued for %s (%d line(s))", job.id, job.unit, len(job.lines))
        self._wake[job.unit].set()

    def submit_local(self, job: PrintJob) -> None:
        """Queue one of the box's own jobs (a window slip): printed like a command's job, no ack.
        Raises JobError (unknown unit) or QueueError (the disk refused)."""
        if job.unit not in self.units:
            raise JobError(f"no printer unit {job.unit!r} on this box")
        if self.queue.add(job, local=True):
            log.info("print job %s queued for %s by the box", job.id, job.unit)
        self._wake[job.unit].set()

    def wake_all(self) -> None:
        """Wake every printer thread (to see that `stop` is set)."""
        for event in self._wake.values():
            event.set()

    def run_unit(self, unit: PrinterUnit, stop: threading.Event) -> None:
        _UnitWorker(self, unit, self._make_driver(unit), stop).run()


class _UnitWorker:
    def __init__(self, printers: Printers, unit: PrinterUnit, driver: EscposDriver, stop: threading.Event):
        self.p, self.unit, self.driver, self.stop = printers, unit, driver, stop
        self.wake = printers._wake[unit.id]
        self.problems: frozenset[str] = frozenset()
        self.blocked = False  # a problem stopped printing: `printer_restored` when it clears
        self.backoff = 1.0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self._acknowledge_printed()
                queued = self.p.queue.next(self.unit.id)
                if queued is None:
                    self._check(idle=True)
                    self.wake.wait(IDLE_CHECK_SECONDS)
                    self.wake.clear()
                    continue
                if self._check(idle=False) and self._print(queued):
                    self.backoff = 1.0
        finally:
            self.driver.close()

    def _acknowledge_printed(self) -> None:
        """Jobs printed whose ack is not yet recorded (after a restart, or a refused write)."""
        while (done := self.p.queue.next(self.unit.id, "printed")) is not None:
            if not done.local and not self.p._answer(done.job.id, True, None):
                self.stop.wait(RETRY_SECONDS)
                return
            self.p.queue.remove(done.job.id)
            log.info("print job %s %s", done.job.id, "done" if done.local else "acknowledged")

    def _check(self, idle: bool) -> bool:
        """Ask the status; report what changed. True when a job may be sent."""
        try:
            status = self.driver.status()
        except PrinterError as exc:
            self._episode(frozenset({"printer_offline"}), str(exc))
            self.p._set_status(self.unit.id, "lost", str(exc))
            if not idle:
                self.stop.wait(self.backoff)
                self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)
            return False
        self.p._set_status(self.unit.id, "ok", ", ".join(sorted(status.problems())))
        self._episode(status.problems(), _describe(status))
        if not status.ready and not idle:
            self.stop.wait(RETRY_SECONDS)
        return status.ready

    def _print(self, queued: QueuedJob) -> bool:
        job, reprint = queued.job, queued.state == "sending"
        self.p.queue.mark(job.id, "sending")
        try:
            if reprint and self.unit.cutter:
                self.driver.send([Raw(b"\n" * 3), Cut()])  # cut off the fragment of the interrupted try
            self.driver.send(layout(job, self.unit.columns, self.unit.cutter, reprint=reprint))
            after = self.driver.status()
        except PrinterError as exc:
            log.warning("print job %s not printed whole (%s): it will be printed again", job.id, exc)
            self._episode(frozenset({"printer_offline"}), str(exc))
            return False
        self._episode(after.problems(), _describe(after))
        if after.cut_short:
            log.warning("print job %s stopped by the printer (%s): it will be printed again", job.id,
                        _describe(after))
            return False
        self.p.queue.mark(job.id, "printed")
        log.info("print job %s printed on %s%s", job.id, self.unit.id, " (重打 reprint)" if reprint else "")
        self._acknowledge_printed()
        return True

    def _episode(self, problems: frozenset[str], detail: str) -> None:
        for code in sorted(problems - self.problems):
            log.warning("printer %s: %s (%s)", self.unit.id, code, detail)
            self.p._report(UnitFault(self.unit.id, code, 1, f"{self.unit.connection}: {detail}"[:500]))
        stopping = problems - {"paper_low"}
        if stopping:
            self.blocked = True
        elif self.blocked:
            self.blocked = False
            self.p._report(UnitFault(self.unit.id, "printer_restored", 1,
                                     f"{self.unit.connection}: 打印机已恢复 printer ready again"))
        self.problems = problems


DESCRIPTIONS = {"paper_out": "缺纸 paper out", "paper_low": "纸将尽 paper near end",
                "cover_open": "纸仓盖打开 cover open", "printer_offline": "脱机 offline"}


def _describe(status: PrinterStatus) -> str:
    found = status.problems()
    return ", ".join(DESCRIPTIONS[code] for code in sorted(found)) if found else "就绪 ready"
