"""A city worker: serves the halls whose advisory locks it holds, one HubService each.

Threads: the thread calling `run` is the supervisor; it alone takes and frees locks, starts and
stops halls. Each hall runs its HubService on a thread named `hall-{id}` (with the service's own
paho and scheduler threads), exactly as `hall-hub run` runs one hall.

Every `balance_seconds` the supervisor:
1. checks its lock session; lost (PostgreSQL restarted, network gone), every hall stops at once
   (their stores are fenced already: nothing of theirs is written after the session ended) and the
   session is opened again with backoff;
2. frees the halls whose service ended on an error, so that any worker may retry them;
3. counts the live workers (their liveness locks) and computes its share, ceil(halls / workers);
4. frees its halls above the share (the service finishes its batch and disconnects, keeping its
   persistent MQTT session, before the lock is freed), or takes free halls up to it.
A hall taken resumes the hall's MQTT session (`hall-hub-{hall}`, clean_session false): what the
broker queued meanwhile arrives; watermarks are rebuilt from the store; edges resend the rest.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass, field

from hub.city.config import CityConfig
from hub.city.locks import LockLost, LockSession
from hub.config import HubConfig
from hub.service import HubService
from hub.store.store import Store
from wire import clock as clocks

log = logging.getLogger(__name__)
RETRY_AFTER_S = 10.0  # a hall whose service failed is not taken again by this worker before this
RECONNECT_MAX_S = 10.0


@dataclass
class HallRun:
    """One hall served by this worker: its store, service, stop event and thread."""

    config: HubConfig
    store: Store
    service: HubService
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    failed: bool = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"hall-{self.config.hall}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.service.run(self.stop)
        except Exception:  # the supervisor frees the hall and may take it again later
            log.exception("hall %s stopped on an error", self.config.hall)
            self.failed = True

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def finish(self, timeout: float) -> bool:
        """Stop the service (it stores what it holds and disconnects, the session kept); True once
        it has ended."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
        ended = not self.alive
        if ended:
            self.store.close()
        return ended


class CityWorker:
    def __init__(self, config: CityConfig, clock_spec: str | None = None) -> None:
        self.config = config
        self.name = config.city.worker_name
        self._clock_spec = clock_spec
        self._halls = [hall.hall for hall in config.halls]
        self._session: LockSession | None = None
        self._owned: dict[str, HallRun] = {}
        self._not_before: dict[str, float] = {}  # hall -> monotonic time it may be retried
        self._backoff = 1.0
        self._next_connect = 0.0
        # Each worker walks the free halls from its own starting point, so that workers starting
        # together do not all race for the same halls first.
        self._offset = zlib.crc32(self.name.encode()) % max(1, len(self._halls))

    @property
    def owned(self) -> list[str]:
        return sorted(self._owned)

    # --- the supervisor loop ---------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        log.info("city %s worker %s: %d hall(s) in the config", self.config.city.name, self.name,
                 len(self._halls))
        gc.freeze()  # what start-up made lives as long as the worker: the collector no longer walks it
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.config.city.balance_seconds)
        finally:
            for hall in sorted(self._owned):
                self._free(hall)
            if self._session is not None:
                self._session.close()
            log.info("city worker %s stopped", self.name)

    def step(self) -> None:
        """One supervisor pass (see the module's docstring)."""
        if self._session is None and not self._connect():
            return
        assert self._session is not None
        try:
            self._session.check()
            self._free_failed()
            self._balance(self._session)
        except LockLost as exc:
            log.error("lock session lost (%s): stopping all %d hall(s) now", exc, len(self._owned))
            self._lose_all()

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_connect:
            return False
        try:
            self._session = LockSession(self.config.city.store, self.config.city.name, self.name)
        except LockLost as exc:
            self._next_connect = now + self._backoff
            log.warning("cannot open the lock session (%s); again in %.0f s", exc, self._backoff)
            self._backoff = min(self._backoff * 2, RECONNECT_MAX_S)
            return False
        self._backoff = 1.0
        log.info("lock session open (backend pid %d)", self._session.pid)
        return True

    def _lose_all(self) -> None:
        """The session is gone and with it every lock: stop every hall, then open a new session."""
        for hall in sorted(self._owned):
            run = self._owned.pop(hall)
            if not run.finish(self.config.city.stop_seconds):
                log.error("hall %s did not stop within %.0f s (its writes are fenced)", hall,
                          self.config.city.stop_seconds)
        if self._session is not None:
            try:
                self._session.close()
            except Exception:  # the connection is broken already; closing it is all that is left
                log.debug("closing the lost lock session failed", exc_info=True)
        self._session = None
        log.info("owns: (none)")

    def _free_failed(self) -> None:
        for hall, run in sorted(self._owned.items()):
            if not run.alive:
                log.warning("hall %s ended; freeing it for any worker", hall)
                self._not_before[hall] = time.monotonic() + RETRY_AFTER_S
                self._free(hall)

    def _balance(self, session: LockSession) -> None:
        live = max(1, len(session.live_workers()))
        share = math.ceil(len(self._halls) / live)
        changed = False
        for hall in sorted(self._owned, reverse=True)[: max(0, len(self._owned) - share)]:
            self._free(hall)
            changed = True
        if len(self._owned) < share:
            held = session.hall_holders(self._halls)
            now = time.monotonic()
            order = self._halls[self._offset:] + self._halls[: self._offset]
            for hall in order:
                if len(self._owned) >= share:
                    break
                if hall in held or hall in self._owned or self._not_before.get(hall, 0) > now:
                    continue
                if session.try_lock(hall):
                    changed |= self._take(session, hall)
        if changed:
            log.info("owns: %s (share %d of %d halls, %d live worker(s))",
                     " ".join(self.owned) or "(none)", share, len(self._halls), live)

    def _take(self, session: LockSession, hall: str) -> bool:
        config = served_by_a_worker(self.config.hall(hall))
        try:
            clock = clocks.from_spec(self._clock_spec, config.timezone)
            store = Store(config.store.url, clock, device_keys=config.device_keys(), clock_policy="clamp")
            store.fence = session.fence(hall)
            service = HubService(config, clock, store)
        except Exception:
            log.exception("hall %s could not be started; freeing it", hall)
            self._not_before[hall] = time.monotonic() + RETRY_AFTER_S
            session.unlock(hall)
            return False
        if config.web.listen:
            log.warning("hall %s: [web] listen is not served by a city worker", hall)
        run = HallRun(config, store, service)
        self._owned[hall] = run
        run.start()
        log.info("took hall %s", hall)
        return True

    def _free(self, hall: str) -> None:
        """Stop the hall's service (its batch stored, MQTT disconnected with the session kept), then
        free its lock."""
        run = self._owned.pop(hall)
        if not run.finish(self.config.city.stop_seconds):
            log.error("hall %s did not stop within %.0f s; freeing its lock anyway (its writes are "
                      "fenced from now on)", hall, self.config.city.stop_seconds)
        if self._session is not None:
            try:
                self._session.unlock(hall)
            except LockLost:
                log.warning("lock session lost while freeing hall %s", hall)
        log.info("freed hall %s", hall)


def served_by_a_worker(config: HubConfig) -> HubConfig:
    """A hall as a worker serves it: its events decoded in the worker's thread, not in a decoder
    process of its own, unless its config says `[ingest] decode_process` itself. A worker serves many
    halls of tens of events a second each: their batches are an event or two, for which the child's
    pipe round trip costs more than the decoding it takes off the worker (the city bench: the
    workers' CPU 49 s without children, 56 s with them)."""
    if "decode_process" in config.ingest.model_fields_set:
        return config
    return config.model_copy(update={"ingest": config.ingest.model_copy(update={"decode_process": False})})
