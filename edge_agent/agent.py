"""The edge agent: unit threads read devices into the durable outbox; the main thread publishes.

Threads and who owns what:
- one `unit-<id>` thread per configured unit owns its port and driver, and only calls `record`;
- paho's network thread owns the socket and calls back into `_inbound`;
- the thread that calls `run` owns publishing, resends and the heartbeat.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_agent import __version__
from edge_agent.config import BusUnit, EdgeConfig, FaceUnit
from edge_agent.drivers import DRIVERS, ButtonBusDriver, OpenTransport, UnitConfig, open_serial
from edge_agent.entrance import Entrance, card_owner
from edge_agent.link import Inbound, LinkState, MqttLink
from edge_agent.outbox import Outbox
from edge_agent.readings import ButtonPress, CardRead, DeviceError, DeviceHello, Reading, UnitFault
from edge_agent.window import WindowBoxes
from wire import topics
from wire.bodies import CommittedBody
from wire.clock import Clock
from wire.envelope import (
    Envelope,
    WireError,
    format_ts,
    load_private_key,
    load_public_key,
    open_signed,
    seal,
)
from wire.faces import Gallery

if TYPE_CHECKING:
    from edge_agent.camera import CameraRunner

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0


@dataclass
class UnitStatus:
    kind: str
    driver: str
    port: str
    status: str = "starting"  # starting, ok, lost
    detail: str = ""


@dataclass
class _Resends:
    """When each outbox seq was last handed to the broker, on the monotonic clock."""

    sent: dict[int, float] = field(default_factory=dict)


class EdgeAgent:
    def __init__(
        self,
        config: EdgeConfig,
        clock: Clock,
        open_transport: OpenTransport = open_serial,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self._open_transport = open_transport
        self._monotonic = monotonic
        self._key = load_private_key(config.private_key_hex())
        self._hub_key = load_public_key(config.hub_public_key)
        self.outbox = Outbox(config.outbox.path)
        self._wake = threading.Event()
        self._resends = _Resends()
        self._status_lock = threading.Lock()
        self.units = {
            unit.id: UnitStatus(unit.kind, unit.driver, getattr(unit, "port", None) or unit.source)
            for unit in config.units
        }
        face_unit = config.face_unit()
        self.entrance = Entrance(face_unit.card_face_seconds if face_unit else None,
                                 self._record_event, monotonic,
                                 require_live=face_unit.require_live if face_unit else True)
        self._gallery: Gallery | None = None
        self._roster_staff: list[dict[str, Any]] = []
        self._seen_commands: set[str] = set()
        # display routing: window-device unit id -> (port unit id, bus address)
        self._routes: dict[str, tuple[str, int]] = {}
        for unit in config.units:
            if isinstance(unit, BusUnit):
                for m in unit.devices:
                    self._routes[m.id or f"{unit.id}-{m.addr}"] = (unit.id, m.addr)
            elif unit.kind in ("evaluator", "desk"):
                self._routes[unit.id] = (unit.id, getattr(unit, "addr", 1))
        self._drivers: dict[str, ButtonBusDriver] = {}
        self.windows = WindowBoxes(
            config.window_devices(),
            away_minutes=dict(config.window.away_minutes),
            invite_seconds=config.window.invite_seconds,
            now=clock.now,
            monotonic=monotonic,
            record=self._record_event,
            show=self._show,
        )
        prefix, hall, device = config.topic_prefix, config.hall, config.device
        self._state_topic = topics.state(prefix, hall, device)
        self.link = MqttLink(
            config.broker,
            client_id=config.broker.client_id or f"hall-edge-{hall}-{device}",
            will_topic=self._state_topic,
            subscriptions=[
                topics.committed(prefix, hall, device),
                topics.command(prefix, hall, device, "+"),
                topics.roster(prefix, hall),
            ],
            on_message=self._inbound,
            on_connected=self._connected,
        )

    # --- recording -----------------------------------------------------------------------

    def record(self, reading: Reading) -> Envelope | None:
        """Commit a reading to the outbox (durable) and wake the publisher."""
        if isinstance(reading, ButtonPress):
            recorded = self.windows.press(reading)
            log.info("unit %s key 0x%02x -> %s", reading.unit, reading.key, recorded or "no event")
            return None
        if isinstance(reading, DeviceHello):
            log.info("unit %s (addr %d) powered up: kind %d, %d keys, firmware %s", reading.unit,
                     reading.addr, reading.kind, reading.keys, reading.firmware)
            self.windows.refresh()
            return None
        if isinstance(reading, CardRead):
            log.info("unit %s card %s (owner %s)", reading.unit, reading.card,
                     card_owner(reading.card, self._roster_staff) or "not on the roster")
            self.entrance.card(reading.card, reading.at)
            return None
        else:
            type_, at = "fault", self.clock.now()
            body = {"unit": reading.unit, "code": reading.code, "count": reading.count,
                    "detail": reading.detail[:500]}
        envelope = self._record_event(type_, body, format_ts(at))
        log.info("recorded %s #%d %s", type_, envelope.seq, json.dumps(body, ensure_ascii=False))
        return envelope

    def _record_event(self, type_: str, body: dict[str, Any], ts: str) -> Envelope:
        cfg = self.config
        envelope = self.outbox.put(
            lambda seq: seal(self._key, hall=cfg.hall, device=cfg.device, seq=seq, ts=ts,
                             type=type_, body=body)
        )
        self._wake.set()
        return envelope

    # --- the main loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        threads = []
        for unit in self.config.units:
            target = (self._camera(unit).run if isinstance(unit, FaceUnit)
                      else functools.partial(self._supervise_unit, unit))
            threads.append(threading.Thread(target=target, args=(stop,), name=f"unit-{unit.id}"))
        self.link.start()
        for thread in threads:
            thread.start()
        next_heartbeat = self._monotonic() + self.config.heartbeat_seconds
        ready = False
        try:
            while not stop.is_set():
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                self.windows.tick()
                self.entrance.tick()
                if self.link.state is LinkState.CONNECTED:
                    if not ready and self._units_open():
                        ready = True  # the line demos and tests wait for before playing anything
                        log.info("ready: %d unit(s) open, connected to the broker", len(self.units))
                    self._flush()
                    if self._monotonic() >= next_heartbeat:
                        self._publish_state()
                        next_heartbeat = self._monotonic() + self.config.heartbeat_seconds
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
            if self.link.state is LinkState.CONNECTED:
                self._flush()
            self.link.close(self._state_payload(online=False), self._state_topic)
            self.outbox.close()
            log.info("stopped; %s", "outbox closed")

    def _units_open(self) -> bool:
        with self._status_lock:
            return all(status.status == "ok" for status in self.units.values())

    def _flush(self) -> None:
        """Publish every outbox event not yet sent, or sent longer ago than the resend interval."""
        now = self._monotonic()
        resend = self.config.outbox.resend_seconds
        sent = self._resends.sent
        still_pending: set[int] = set()
        after = 0
        while True:
            batch = self.outbox.pending(after_seq=after, limit=500)
            if not batch:
                break
            for item in batch:
                still_pending.add(item.seq)
                last = sent.get(item.seq)
                if last is not None and now - last < resend:
                    continue
                topic = topics.event(self.config.topic_prefix, self.config.hall,
                                     self.config.device, item.type)
                if not self.link.publish(topic, item.payload):
                    return
                sent[item.seq] = now
            after = batch[-1].seq
        for seq in set(sent) - still_pending:
            del sent[seq]

    # --- units ---------------------------------------------------------------------------

    def _camera(self, unit: FaceUnit) -> CameraRunner:
        from edge_agent.camera import CameraRunner  # OpenCV and dlib load only on a face terminal

        return CameraRunner(unit, self.clock, lambda: self._gallery, self.entrance.face, self.record,
                            lambda status, detail: self._set_unit(unit.id, status, detail),
                            self._monotonic)

    def _show(self, unit_id: str, mode: int, text: str) -> None:
        port_unit, addr = self._routes[unit_id]
        driver = self._drivers.get(port_unit)
        if driver is not None:  # a lost port gets the current displays again when reopened
            driver.show(addr, mode, text)

    def _supervise_unit(self, unit: UnitConfig, stop: threading.Event) -> None:
        """Open the port, run the driver; a lost port is reported and reopened with backoff."""
        backoff, lost = 1.0, False
        make_driver = DRIVERS[unit.driver]
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
                self.record(UnitFault(unit.id, "port_restored", 1, f"{unit.port} 已恢复 reopened"))
            lost, backoff = False, 1.0
            log.info("unit %s: %s open", unit.id, unit.port)
            self._set_unit(unit.id, "ok", "")
            driver = make_driver(unit, transport, self.clock, self.record)
            if isinstance(driver, ButtonBusDriver):
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
        self.record(UnitFault(unit.id, "port_lost", 1, f"{unit.port} 端口丢失: {detail}"))

    def _set_unit(self, unit_id: str, status: str, detail: str) -> None:
        with self._status_lock:
            self.units[unit_id].status = status
            self.units[unit_id].detail = detail[:200]
        self._publish_state()

    # --- state, watermark and commands ---------------------------------------------------

    def _state_payload(self, online: bool) -> bytes:
        with self._status_lock:
            units = {uid: vars(status).copy() for uid, status in self.units.items()}
        state = {"online": online, "ts": format_ts(self.clock.now()), "version": __version__,
                 "units": units}
        return json.dumps(state, ensure_ascii=False, sort_keys=True).encode()

    def _publish_state(self) -> None:
        self.link.publish(self._state_topic, self._state_payload(online=True), retain=True)

    def _connected(self) -> None:
        self._resends.sent.clear()  # a restarted broker may have lost what was in flight
        self._publish_state()
        self._wake.set()

    def _inbound(self, message: Inbound) -> None:
        if message.topic == topics.roster(self.config.topic_prefix, self.config.hall):
            self._roster(message.payload)
            return
        parts = topics.split(self.config.topic_prefix, message.topic)
        if parts is None or parts.device != self.config.device or parts.hall != self.config.hall:
            log.warning("ignored message on unexpected topic %s", message.topic)
            return
        try:
            envelope = open_signed(message.payload, self._hub_key)
        except WireError as exc:
            log.warning("ignored %s: %s (not signed by the hub key)", message.topic, exc)
            return
        if (envelope.hall, envelope.device) != (parts.hall, parts.device):
            log.warning("ignored %s: envelope names %s/%s", message.topic, envelope.hall,
                        envelope.device)
            return
        if parts.kind == "committed":
            self._watermark(envelope, message.retained)
        elif parts.kind == "cmd" and parts.name == envelope.type:
            self._command(envelope)

    def _roster(self, payload: bytes) -> None:
        """The hub's signed roster: staff cards (card+face) and the face gallery, used at once."""
        try:
            envelope = open_signed(payload, self._hub_key)
            if envelope.type != "roster" or envelope.hall != self.config.hall:
                raise WireError("malformed", "not this hall's roster")
            staff = list(envelope.body.get("staff", []))
            gallery = Gallery.from_wire(list(envelope.body.get("gallery", [])))
        except (WireError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignored roster: %s", exc)
            return
        self._roster_staff, self._gallery = staff, gallery
        log.info("roster: %d staff, %d face encoding(s)", len(staff), len(gallery) if gallery else 0)

    def _watermark(self, envelope: Envelope, retained: bool) -> None:
        try:
            seq = CommittedBody.model_validate(envelope.body).seq
        except ValueError as exc:
            log.warning("ignored malformed watermark: %s", exc)
            return
        dropped = self.outbox.commit(seq, retained=retained)
        log.debug("hub committed up to #%d; %d event(s) left the outbox", seq, dropped)

    def _command(self, envelope: Envelope) -> None:
        if envelope.id in self._seen_commands:
            return
        self._seen_commands.add(envelope.id)
        ok, error = True, None
        try:
            self._run_command(envelope)
        except (ValueError, KeyError, TypeError) as exc:
            ok, error = False, str(exc)[:300]
        self._record_event("ack", {"cmd": envelope.id, "ok": ok, "error": error},
                           format_ts(self.clock.now()))

    def _run_command(self, envelope: Envelope) -> None:
        body = envelope.body
        if envelope.type == "sync":
            self._publish_state()
            self._resends.sent.clear()
            self.windows.refresh()
            self._wake.set()
        elif envelope.type == "invite":
            seconds = body.get("seconds", self.config.window.invite_seconds)
            ticket = body.get("ticket")
            if not isinstance(seconds, int) or not 0 < seconds <= 600:
                raise ValueError("invite: seconds must be an integer from 1 to 600")
            if ticket is not None and not isinstance(ticket, str):
                raise ValueError("invite: ticket must be a string")
            self.windows.invite(str(body["window"]), seconds, ticket, envelope.id)
        elif envelope.type == "show":
            mode, text = body["mode"], body.get("text", "")
            if not isinstance(mode, int) or not 0 <= mode <= 5 or not isinstance(text, str):
                raise ValueError("show: mode must be 0..5 and text a string")
            display = body.get("display", "evaluator")
            if display not in ("evaluator", "desk"):
                raise ValueError("show: display must be evaluator or desk")
            self.windows.show(str(body["window"]), display, mode, text)
        else:
            raise ValueError(f"本设备不支持命令 {envelope.type} (unsupported command)")
