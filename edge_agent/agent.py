"""The edge agent: unit threads read devices into the durable outbox; the main thread publishes.

Threads and who owns what:
- one `unit-<id>` thread per configured unit owns its port and driver, and only calls `record`;
- paho's network thread owns the socket and calls back into `hub.handle` (edge_agent/inbound.py);
- the thread that calls `run` owns publishing, resends and the heartbeat.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from edge_agent import __version__
from edge_agent.config import BusUnit, EdgeConfig, FaceUnit, PrinterUnit
from edge_agent.drivers import DRIVERS, ButtonBusDriver, OpenTransport, UnitConfig, open_serial
from edge_agent.drivers.faults import RecordError
from edge_agent.entrance import Entrance, card_owner
from edge_agent.inbound import ANSWER_LATER, HubMessages
from edge_agent.link import LinkState, MqttLink
from edge_agent.outbox import MIB, Outbox, OutboxError, RefusedWrites, Sweep
from edge_agent.printing import Printers, PrintQueue
from edge_agent.readings import ButtonPress, CardRead, DeviceError, DeviceHello, Reading, UnitFault
from edge_agent.slips import WindowSlips
from edge_agent.sound import voice_for
from edge_agent.state import StateSealer
from edge_agent.terminal import EntranceScreen
from edge_agent.window import INVITE, THANKS, WindowBoxes
from edge_agent.witness import Witness
from wire import topics
from wire.bodies import StateBody
from wire.clock import Clock
from wire.envelope import (
    Envelope,
    format_ts,
    load_private_key,
    load_public_key,
    seal,
)

if TYPE_CHECKING:
    from edge_agent.camera import CameraRunner

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0
FLUSH_BATCH = 500  # events handed to the broker in one pass of the loop, at most
OUTBOX_CHECK_SECONDS = 5.0  # how often the loop looks at the outbox's size and refused writes
SERIAL_FIRST_SECONDS = 5.0  # the camera's libraries load once the serial units opened, or after this
WRITE_ERRORS = (OutboxError, sqlite3.Error, OSError)  # what a refused outbox write raises


@dataclass
class UnitStatus:
    kind: str
    driver: str
    port: str
    status: str = "starting"  # starting, ok, lost
    detail: str = ""


class EdgeAgent:
    def __init__(
        self,
        config: EdgeConfig,
        clock: Clock,
        open_transport: OpenTransport = open_serial,
        monotonic: Callable[[], float] = time.monotonic,
        outbox: Outbox | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._open_transport = open_transport
        self._monotonic = monotonic
        self._key = load_private_key(config.private_key_hex())
        self.outbox = outbox if outbox is not None else Outbox(config.outbox.path)
        self._wake = threading.Event()
        self._resends = Sweep()
        self._status_lock = threading.Lock()
        self._status_changed = threading.Condition(self._status_lock)
        self.units = {
            unit.id: UnitStatus(unit.kind, unit.driver, getattr(unit, "port", None) or unit.source)
            for unit in config.units
        }
        face_unit = config.face_unit()
        require_live = face_unit.require_live if face_unit else True
        self.voice = voice_for(config.sound)
        self.screen = EntranceScreen(
            config.terminal, clock, ZoneInfo(config.timezone), lambda: self.hub.roster_staff, self.voice,
            camera=face_unit is not None, require_live=require_live, watermark=self.outbox.watermark,
            link_up=lambda: self.link.state is LinkState.CONNECTED, monotonic=monotonic,
        ) if config.is_entrance() else None
        self.entrance = Entrance(face_unit.card_face_seconds if face_unit else None, self._record_event,
                                 monotonic, require_live)
        if self.screen is not None:
            self.entrance.on_clock = self.screen.clocked
        prefix, hall, device = config.topic_prefix, config.hall, config.device
        # witness_seconds in hall time, as the hub measures coverage (a scripted clock runs faster)
        self.witness = Witness(self.outbox, config.witness_seconds, lambda: clock.now().timestamp(),
                               self._head_regressed)
        self.hub = HubMessages(prefix, hall, device, load_public_key(config.hub_public_key), self.outbox,
                               self._run_command, self._answer, self.witness)
        # display routing: window-device unit id -> (port unit id, bus address)
        self._routes: dict[str, tuple[str, int]] = {}
        for unit in config.units:
            if isinstance(unit, BusUnit):
                for m in unit.devices:
                    self._routes[m.id or f"{unit.id}-{m.addr}"] = (unit.id, m.addr)
            elif unit.kind in ("evaluator", "desk"):
                self._routes[unit.id] = (unit.id, getattr(unit, "addr", 1))
        self._drivers: dict[str, ButtonBusDriver] = {}
        self.printers = Printers(PrintQueue(self.outbox.path), config.printer_units(), self._ack_job,
                                 self._report, self._set_unit) if config.printer_units() else None
        # the away slip and the rating receipt, queued on the box's printer once the event is recorded
        slips = WindowSlips(config.window, ZoneInfo(config.timezone), self._record_event, self.printers)
        self.windows = WindowBoxes(
            config.window_devices(),
            away_minutes=dict(config.window.away_minutes),
            invite_seconds=config.window.invite_seconds,
            now=clock.now,
            monotonic=monotonic,
            record=slips.record,
            show=self._show,
        )
        self._state_topic = topics.state(prefix, hall, device)
        self._states = StateSealer(self._key, hall, device, clock)
        self.link = MqttLink(
            config.broker,
            client_id=config.broker.client_id or f"hall-edge-{hall}-{device}",
            will_topic=self._state_topic,
            subscriptions=[
                topics.committed(prefix, hall, device),
                topics.command(prefix, hall, device, "+"),
                topics.roster(prefix, hall),
            ],
            on_message=self.hub.handle,
            on_connected=self._connected,
            will_payload=functools.partial(self._state_payload, online=False),  # sealed per session
        )
        self._refused = RefusedWrites()
        self._strict = threading.local()  # `on` while `record` runs: a refused write raises RecordError
        self._ready = threading.Event()
        self._outbox_large = False
        if self.outbox.kept_corrupt is not None:
            self._record_event("fault", {"unit": "outbox", "code": "outbox_corrupt", "count": 1,
                                         "detail": self.outbox.corrupt_detail()}, format_ts(clock.now()))

    # --- recording -----------------------------------------------------------------------

    def record(self, reading: Reading) -> Envelope | None:
        """Commit what a reading makes to the outbox (durable) and wake the publisher.

        Raises RecordError when the outbox refused the write: nothing was stored, so the driver does
        not acknowledge the reading (a ButtonBus device sends its KEY again). The refusal is logged,
        and reported as one `outbox_write_failed` fault once the outbox takes writes again."""
        self._strict.on = True
        try:
            return self._record(reading)
        finally:
            self._strict.on = False

    def _report(self, reading: Reading) -> None:
        """`record` for what nobody can send again (faults): a refused write is logged and counted."""
        with contextlib.suppress(RecordError):
            self.record(reading)

    def _record(self, reading: Reading) -> Envelope | None:
        if isinstance(reading, ButtonPress):
            recorded = self.windows.press(reading)
            log.info("unit %s key 0x%02x -> %s", reading.unit, reading.key, recorded or "no event")
            return None
        if isinstance(reading, DeviceHello):
            log.info("unit %s (addr %d) says hello: kind %d, %d keys, firmware %s", reading.unit,
                     reading.addr, reading.kind, reading.keys, reading.firmware)
            self.windows.refresh()
            return None
        if isinstance(reading, CardRead):
            log.info("unit %s card %s (owner %s)", reading.unit, reading.card,
                     card_owner(reading.card, self.hub.roster_staff) or "not on the roster")
            self.entrance.card(reading.card, reading.at)
            return None
        else:
            type_, at = "fault", self.clock.now()
            body = {"unit": reading.unit, "code": reading.code, "count": reading.count,
                    "detail": reading.detail[:500]}
        envelope = self._record_event(type_, body, format_ts(at))
        if envelope is not None:
            log.info("recorded %s #%d %s", type_, envelope.seq, json.dumps(body, ensure_ascii=False))
        return envelope

    def _record_event(self, type_: str, body: dict[str, Any], ts: str,
                      attachment: bytes | None = None) -> Envelope | None:
        """Seal and commit one event (with the snapshot it signs the hash of, if any). A write the
        outbox refuses is logged and counted, then None is returned (on the MQTT and main threads) or
        RecordError raised (inside `record`)."""
        try:
            envelope = self._put(type_, body, ts, attachment)
        except WRITE_ERRORS as exc:
            refused = self._refused.note(type_, ts, str(exc))
            log.error("outbox refused a %s event (%d refused, not yet reported): %s", type_, refused, exc)
            if getattr(self._strict, "on", False):
                raise RecordError(f"{type_} event not recorded: {exc}") from exc
            return None
        self._report_refusals()
        return envelope

    def _put(self, type_: str, body: dict[str, Any], ts: str, attachment: bytes | None = None) -> Envelope:
        cfg = self.config
        head = self.witness.head()  # the chain head this box witnesses (PROTOCOL.md 2.10)
        envelope = self.outbox.put(
            lambda seq: seal(self._key, hall=cfg.hall, device=cfg.device, seq=seq, ts=ts,
                             type=type_, body=body, epoch=self.outbox.epoch, head=head),
            attachment,
        )
        self.witness.signed(head)
        self._wake.set()
        return envelope

    def _report_refusals(self) -> None:
        """Once the outbox takes writes again, report what it refused as one `outbox_write_failed`."""
        refused = self._refused.take()
        if refused is None:
            return
        body = {"unit": "outbox", "code": "outbox_write_failed", "count": refused.count,
                "detail": refused.detail()}
        try:
            envelope = self._put("fault", body, format_ts(self.clock.now()))
        except WRITE_ERRORS:
            self._refused.restore(refused)  # still refused: reported at a later write or check
            return
        log.warning("recorded fault #%d: %s", envelope.seq, body["detail"])

    def _check_outbox(self) -> None:
        """Report refused writes if the outbox takes writes again; warn once when it passes warn_mb
        (again only after it went below). Readings are never dropped for size."""
        self._report_refusals()
        try:
            usage = self.outbox.usage()
        except OutboxError as exc:
            log.warning("%s", exc)
            return
        over, limit = usage.used_bytes > self.config.outbox.warn_mb * MIB, self.config.outbox.warn_mb
        if over and not self._outbox_large:
            log.warning("%s", usage.detail(limit))
            self._record_event("fault", {"unit": "outbox", "code": "outbox_large", "count": usage.events,
                                         "detail": usage.detail(limit)}, format_ts(self.clock.now()))
        self._outbox_large = over

    # --- the main loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        threads = []
        for unit in sorted(self.config.units, key=lambda unit: isinstance(unit, FaceUnit)):  # serial first
            if isinstance(unit, PrinterUnit):
                assert self.printers is not None
                target = functools.partial(self.printers.run_unit, unit)
            else:
                target = functools.partial(
                    self._run_camera if isinstance(unit, FaceUnit) else self._supervise_unit, unit)
            threads.append(threading.Thread(target=target, args=(stop,), name=f"unit-{unit.id}"))
        self.link.start()
        if self.screen is not None:
            self.screen.start()
        for thread in threads:
            thread.start()
        next_heartbeat = self._monotonic() + self.config.heartbeat_seconds
        next_check = self._monotonic()
        try:
            while not stop.is_set():
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                self.windows.tick()
                self.entrance.tick()
                if self._monotonic() >= next_check:
                    self._check_outbox()
                    next_check = self._monotonic() + OUTBOX_CHECK_SECONDS
                if self.witness.due():
                    self._record_event("witness", {}, format_ts(self.clock.now()))
                if self.link.state is LinkState.CONNECTED:
                    if not self._ready.is_set() and self._units_open():
                        self._ready.set()  # the line demos and tests wait for before playing anything
                        log.info("ready: %d unit(s) open, connected to the broker", len(self.units))
                        self._publish_state()
                    if self._flush():
                        self._wake.set()  # more is due at once: come straight back, after the ticks
                    if self._monotonic() >= next_heartbeat:
                        self._publish_state()
                        next_heartbeat = self._monotonic() + self.config.heartbeat_seconds
        finally:
            stop.set()
            if self.printers is not None:
                self.printers.wake_all()
            for thread in threads:
                thread.join(timeout=5)
            if self.link.state is LinkState.CONNECTED:
                self._flush()
            self.link.close(self._state_payload(online=False), self._state_topic)
            if self.printers is not None:
                self.printers.queue.close()
            if self.screen is not None:
                self.screen.close()
            self.voice.close()
            self.outbox.close()
            log.info("stopped; %s", "outbox closed")

    def _units_open(self) -> bool:
        with self._status_lock:
            return all(status.status == "ok" for status in self.units.values())

    def _flush(self) -> bool:
        """Hand the broker, in seq order, at most FLUSH_BATCH events not yet sent in this sweep (see
        outbox.Sweep), never reading the backlog again on an idle pass. True when more may be due."""
        now = self._monotonic()
        try:
            after = self._resends.after(self.outbox.watermark(), now, self.config.outbox.resend_seconds)
            batch = self.outbox.pending(after_seq=after, limit=FLUSH_BATCH)  # idle: one index probe
        except WRITE_ERRORS as exc:
            log.warning("outbox %s: read failed: %s", self.outbox.path, exc)
            return False
        published = 0
        prefix, hall, device = self.config.topic_prefix, self.config.hall, self.config.device
        for item in batch:
            # A snapshot goes just before its event, on the same session: the hub has it when the
            # event comes (PROTOCOL.md 2.7).
            if item.attachment is not None and not self.link.publish(topics.snapshot(prefix, hall, device),
                                                                     item.attachment):
                break
            if not self.link.publish(topics.event(prefix, hall, device, item.type), item.payload):
                break  # the link went down: the reconnect starts over
            published += 1
        if published:
            self._resends.handed(batch[published - 1].seq, now)
        return published == FLUSH_BATCH

    # --- units ---------------------------------------------------------------------------

    def _run_camera(self, unit: FaceUnit, stop: threading.Event) -> None:
        """The face unit's thread. OpenCV and dlib take seconds to load and hold the GIL for most of a
        second at a time, so they load here once every serial unit has tried its port: the card
        reader opens and reads at once, whatever the camera does."""
        with self._status_changed:
            self._status_changed.wait_for(
                lambda: all(status.status != "starting" for uid, status in self.units.items()
                            if uid != unit.id), SERIAL_FIRST_SECONDS)
        if not stop.is_set():
            self._camera(unit).run(stop)

    def _camera(self, unit: FaceUnit) -> CameraRunner:
        from edge_agent.camera import CameraRunner  # OpenCV and dlib load only on a face terminal

        return CameraRunner(unit, self.clock, lambda: self.hub.gallery, self.entrance.face, self._report,
                            lambda status, detail: self._set_unit(unit.id, status, detail),
                            self._monotonic, self.screen.frame if self.screen else None)

    def _show(self, unit_id: str, mode: int, text: str) -> None:
        if mode in (INVITE, THANKS):  # the window box says it too, on its own speaker
            self.voice.play("invite" if mode == INVITE else "thanks")
        port_unit, addr = self._routes[unit_id]
        driver = self._drivers.get(port_unit)
        if driver is not None:  # a lost port gets the current displays again when reopened
            driver.show(addr, mode, text)

    def _supervise_unit(self, unit: UnitConfig, stop: threading.Event) -> None:
        """Open the port, run the driver; a lost port is reported and reopened with backoff."""
        backoff, lost = 1.0, False
        make_driver = DRIVERS[unit.driver]
        last_seqs: dict[int, int] = {}  # ButtonBus: a reopened port still knows the KEYs it recorded
        while not stop.is_set():
            try:
                transport = self._open_transport(unit.port, unit.baud)
            except DeviceError as exc:
                if not lost:
                    self._unit_lost(unit, str(exc))
                    lost = True
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if lost:
                self._report(UnitFault(unit.id, "port_restored", 1, f"{unit.port} 已恢复 reopened"))
            lost, backoff = False, 1.0
            log.info("unit %s: %s open", unit.id, unit.port)
            self._set_unit(unit.id, "ok", "")
            driver = make_driver(unit, transport, self.clock, self.record)
            if isinstance(driver, ButtonBusDriver):
                driver.adopt_last_seqs(last_seqs)
                self._drivers[unit.id] = driver
                self.windows.refresh()
            try:
                driver.run(stop)
            except DeviceError as exc:
                self._unit_lost(unit, str(exc))
                lost = True
            except Exception:  # the supervisor: log the unit, restart it with backoff
                log.exception("unit %s failed; restarting in %.0f s", unit.id, backoff)
                self._set_unit(unit.id, "lost", "driver error")
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                self._drivers.pop(unit.id, None)
                transport.close()

    def _unit_lost(self, unit: UnitConfig, detail: str) -> None:
        log.warning("unit %s: port %s lost: %s", unit.id, unit.port, detail)
        self._set_unit(unit.id, "lost", detail)
        self._report(UnitFault(unit.id, "port_lost", 1, f"{unit.port} 端口丢失: {detail}"))

    def _set_unit(self, unit_id: str, status: str, detail: str) -> None:
        with self._status_changed:
            self.units[unit_id].status = status
            self.units[unit_id].detail = detail[:200]
            self._status_changed.notify_all()
        self._publish_state()

    # --- state, watermark and commands ---------------------------------------------------

    def _state_payload(self, online: bool) -> bytes:
        """A signed state envelope (PROTOCOL.md 2.5)."""
        with self._status_lock:
            units = {uid: vars(status).copy() for uid, status in self.units.items()}
        return self._states.seal(StateBody(online=online, version=__version__, units=units,
                                           ready=online and self._ready.is_set(), witness=True))

    def _publish_state(self) -> None:
        self.link.publish(self._state_topic, self._state_payload(online=True), retain=True)

    def _connected(self) -> None:
        self._resends.sent.clear()  # a restarted broker may have lost what was in flight
        self._publish_state()
        self._wake.set()

    def _head_regressed(self, detail: str) -> None:
        self._record_event("fault", {"unit": "hub", "code": "hub_head_regressed", "count": 1,
                                     "detail": detail}, format_ts(self.clock.now()))

    def _answer(self, envelope: Envelope, ok: bool, error: str | None) -> None:
        self._record_event("ack", {"cmd": envelope.id, "ok": ok, "error": error},
                           format_ts(self.clock.now()))

    def _ack_job(self, job_id: str, ok: bool, error: str | None) -> bool:
        """The ack of a `print` command, recorded by its printer's thread once the job printed."""
        return self._record_event("ack", {"cmd": job_id, "ok": ok, "error": error},
                                  format_ts(self.clock.now())) is not None

    def _run_command(self, envelope: Envelope) -> str | None:
        body = envelope.body
        if envelope.type == "print":
            if self.printers is None:
                raise ValueError("print: 本设备没有打印机 this box has no printer unit")
            self.printers.submit(envelope.id, body)  # durable before anything else
            return ANSWER_LATER
        if envelope.type == "sync":
            self._publish_state()
            self._resends.sent.clear()
            self.windows.refresh()
            self._wake.set()
        elif envelope.type == "invite":
            window, ticket = body.get("window"), body.get("ticket")
            seconds = body.get("seconds", self.config.window.invite_seconds)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 600:
                raise ValueError("invite: seconds must be an integer from 1 to 600")
            if not isinstance(window, str) or (ticket is not None and not isinstance(ticket, str)):
                raise ValueError("invite: window must be a string, ticket a string or null")
            self.windows.invite(window, seconds, ticket, envelope.id)
        elif envelope.type == "show" and body.get("display") == "terminal":  # PROTOCOL.md 2.10
            if self.screen is None:
                raise ValueError("show: 本设备不是入口终端 (this box has no card reader or camera)")
            self.screen.hub_show(body)
        elif envelope.type == "show":
            window, mode, text = body.get("window"), body.get("mode"), body.get("text", "")
            if type(mode) is not int or not 0 <= mode <= 5 or not isinstance(text, str):
                raise ValueError("show: mode must be 0..5 and text a string")
            display = body.get("display", "evaluator")
            if not isinstance(window, str) or display not in ("evaluator", "desk"):
                raise ValueError("show: window must be a string, display evaluator or desk")
            self.windows.show(window, display, mode, text)
        else:
            raise ValueError(f"本设备不支持命令 {envelope.type} (unsupported command)")
        return None
