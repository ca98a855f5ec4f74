"""The hub daemon: consumes device topics, stores what verifies, quarantines the rest, publishes the
signed `committed` watermarks and the roster.

Threads: paho's network thread only enqueues; the thread that calls `run` owns the store, the
watermarks and every decision. The embedded broker, when configured, has its own thread.

Untrusted input: anyone who reaches the broker can publish anything, so every message is handled
inside its own guard and nothing a message holds can stop the hub or its loop. The inbox is bounded
and repeated rejects are collapsed (hub/inbox.py).

Witnesses (PROTOCOL.md 2.10): the `committed` watermark of a device that witnesses carries the audit
chain's head, re-sent whenever the head moves; the device signs it into what it sends next.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from sqlalchemy.exc import OperationalError

from hub.broker import EmbeddedBroker
from hub.commands import HUB_SEQ
from hub.config import HubConfig
from hub.decoder_process import DecoderProcess, Ticket
from hub.device_state import DeviceStates
from hub.domain import Quarantined, StoredEvent
from hub.faces import gallery_version, roster_body
from hub.inbox import Inbox, Message, RejectCollapser
from hub.ingest import Decoder
from hub.mqtt_client import HubClient
from hub.roster_log import ensure_logged
from hub.scheduler import HallScheduler
from hub.snapshots import WaitingSnapshots
from hub.store.store import Outcome, Store, StoreFenced
from hub.terminal_show import show_verdicts
from hub.watermark import Notice, Watermarks
from wire import topics
from wire.clock import Clock
from wire.envelope import WireError, format_ts, load_private_key, load_public_key, seal

log = logging.getLogger(__name__)
DRIFT_LIMIT_S = 300
BATCH = 200  # group commit: at most this many messages in one transaction,
BATCH_WAIT_S = 0.05  # gathered for at most this long after the first,
BATCH_IDLE_S = 0.005  # ending sooner once nothing more arrived for this long (a lone reading waits little)
HEAD_CHECK_S = 5.0  # how often (hall clock) the chain's head is read for entries appended elsewhere
STOP_DRAIN_S = 5.0  # how long a stopping hub stores what its inbox still holds
INBOX_WAIT_S = 5.0  # how long paho's thread waits for room before it drops a message


class Opened(NamedTuple):
    """A batch opened: its messages in order, the topic of each the hub takes in itself (a state, a
    snapshot; None: an event, the decoder's), and the ticket of the events' decoding."""

    messages: list[Message]
    taken: list[topics.TopicParts | None]
    ticket: Ticket


class HubService:
    def __init__(
        self,
        config: HubConfig,
        clock: Clock,
        store: Store,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self._monotonic = monotonic
        self._key = load_private_key(config.private_key_hex())
        keys = {device: load_public_key(key) for device, key in config.device_keys().items()}
        self.decoder = Decoder(config.hall, config.topic_prefix, keys, config.ingest.max_message_bytes)
        self.decoding = DecoderProcess(self.decoder)  # started by `run` ([ingest] decode_process)
        self.states = DeviceStates(config.hall, keys, {d.id: d.protocol for d in config.devices},
                                   config.ingest.max_message_bytes)
        self.watermarks = Watermarks()
        self.snapshots = WaitingSnapshots(set(keys))
        self._inbox = Inbox()
        self._opened: Opened | None = None  # a batch opened, its events being decoded
        self.rejects = RejectCollapser()
        self.dropped = 0  # messages paho's thread could not hand over (see _on_message)
        self._drifting: set[str] = set()
        self._online: dict[str, bool] = {}
        self._seen: dict[str, tuple[float, bool]] = {}  # device -> (monotonic last state, online)
        self.broker: EmbeddedBroker | None = None
        self.connected = threading.Event()
        self._republish = threading.Event()
        self._next_gallery_check = 0.0
        self._witnessing: set[str] = set()  # devices whose signed state says they witness (2.10)
        self._head: str | None = None  # the chain head the witnessing devices are sent
        self._sent_head: dict[str, str] = {}  # device -> the head its last watermark carried
        self._next_head_check = 0.0
        self._gallery_seq = -1
        self._client = self._make_client()

    # --- lifecycle -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._rebuild_watermarks()
        self._log_roster_if_changed()
        if self.config.broker.url == "embedded":
            self.broker = EmbeddedBroker.for_hub(self.config)
            self.broker.start()
            host, port = self.broker.host, self.broker.port
        else:
            parts = urlsplit(self.config.broker.url)
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        if self.config.ingest.decode_process:
            self.decoding.start()
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        gap_limit = self.config.ingest.resend_seconds * self.config.ingest.gap_after_resends
        scheduler = HallScheduler(self.config, self.store, self.clock, self.devices_seen, self._monotonic)
        scheduler.start()
        try:
            while not stop.is_set():
                try:
                    self._turn(gap_limit)
                except Exception:  # the last line of defence: the loop goes on
                    log.exception("hub loop failed; going on in 1 s")
                    stop.wait(1.0)
        finally:
            scheduler.shutdown()
            self._client.disconnect()
            self._client.loop_stop()
            self._drain()
            self.decoding.close()
            self._close_reject_windows(everything=True)
            if self.broker is not None:
                self.broker.stop()

    def _drain(self) -> None:
        """At stop, what paho already handed over is stored, for STOP_DRAIN_S at most: a backlog
        larger than that (a hall handed over in a flood, hub/city/) is left to the edges, which
        resend every event no watermark covers (its states come again with their heartbeats)."""
        end = time.monotonic() + STOP_DRAIN_S
        self._finish_waiting()
        while not self._inbox.empty() and time.monotonic() < end:
            self._ingest_batch(timeout=0)
        left = self._inbox.qsize_messages()
        if left:
            log.warning("stopping: %d message(s) not stored within %.0f s, left to the edges' resends",
                        left, STOP_DRAIN_S)

    def _turn(self, gap_limit: float) -> None:
        """One pass of the run loop: roster and watermarks when due, a batch of messages, overdue
        gaps, closed reject windows."""
        if self._gallery_changed():
            self._republish.set()
        if self._republish.is_set():
            self._republish.clear()
            self._publish_roster()
            for device, epoch in self.watermarks.current():
                self._publish_watermark(device, epoch)
        self._ingest_batch(timeout=0.2)
        if self.clock.now().timestamp() >= self._next_head_check:  # entries appended elsewhere
            self._refresh_head()
        for notice in self.watermarks.overdue_gaps(self._monotonic(), gap_limit):
            self._report(notice)
        self._close_reject_windows()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config.broker
        client = HubClient(  # paho's, without a wake-up per PUBACK (hub/mqtt_client.py)
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"hall-hub-{self.config.hall}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if cfg.passwd_file is not None and cfg.password is None:
            raise ValueError(f"[broker] passwd_file: the hub's broker password {cfg.hub_secret_file} does "
                             "not exist yet: `hall-hub broker add-device` makes it with a device's login")
        if cfg.username is not None:  # with passwd_file: "hub" and the secret in <passwd_file>.hub
            client.username_pw_set(cfg.username, cfg.password)
        tls = cfg.client_tls()
        if tls is not None:
            client.tls_set_context(tls)
        client.reconnect_delay_set(min_delay=1, max_delay=120)
        client.max_inflight_messages_set(200)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = _no_delay
        return client

    def _gallery_changed(self) -> bool:
        """An enrollment by another process: checked every few seconds, then the roster goes out."""
        now = self._monotonic()
        if now < self._next_gallery_check:
            return False
        self._next_gallery_check = now + 3.0
        seq = gallery_version(self.store)
        changed, self._gallery_seq = seq != self._gallery_seq, seq
        return changed

    def devices_seen(self) -> dict[str, tuple[float, bool]]:
        return dict(self._seen)

    # --- paho callbacks (network thread) -------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            log.warning("broker refused the hub: %s", reason)
            return
        for topic in topics.hub_subscriptions(self.config.topic_prefix, self.config.hall):
            client.subscribe(topic, qos=1)
        self._republish.set()  # the run thread republishes the roster and the watermarks
        self.connected.set()
        log.info("hub connected (session present: %s)", flags.session_present)
        log.info("ready: subscribed to %s/%s", self.config.topic_prefix, self.config.hall)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: mqtt.ReasonCode, properties: object) -> None:
        self.connected.clear()
        log.warning("hub lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """Hand the message to the run thread; never raise (that would end paho's loop). A full inbox
        blocks this thread up to INBOX_WAIT_S: paho stops reading its socket meanwhile, so a flood
        waits in TCP buffers and the broker's queue for this session (back-pressure), not in the
        hub's memory. Still full after that (the run thread is stuck), the message is dropped and
        counted: an event comes back with its edge's resend (only stored events are committed), a
        device state with the next heartbeat."""
        try:
            self._inbox.put(Message(message.topic, bytes(message.payload), self.clock.now()),
                            timeout=INBOX_WAIT_S)
        except queue.Full:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8...: a flood does not flood the log
                log.warning("inbox full for %.0f s: %d message(s) dropped so far", INBOX_WAIT_S,
                            self.dropped)
        except Exception:  # the last line of defence: paho's thread goes on
            log.exception("a message from the broker could not be taken in")

    # --- ingest (run thread) -------------------------------------------------------------

    def _ingest_batch(self, timeout: float) -> int:
        """Group commit in two steps that overlap: the messages that came within BATCH_WAIT_S of the
        first (at most BATCH, ending sooner after BATCH_IDLE_S of quiet) are opened: their events
        handed to the decoder process (hub/decoder_process.py); then the batch opened before them is
        finished and stored in one transaction, its watermarks sent after the commit. While a batch
        waits, only what the inbox already holds is taken: a lone reading is stored at the next pass.
        `timeout` 0 (at stop): only what is here, and nothing is left waiting. The messages taken."""
        waiting = self._opened is not None
        messages = self._inbox.take_batch(0 if waiting else timeout, BATCH,
                                          BATCH_WAIT_S if timeout and not waiting else 0.0, BATCH_IDLE_S)
        opened = self._open(messages) if messages else None
        before, self._opened = self._opened, opened
        if before is not None:
            self._finish(before)
        if not timeout:
            self._finish_waiting()
        return len(messages)

    def _finish_waiting(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            self._finish(opened)

    def _open(self, messages: list[Message]) -> Opened:
        """The batch's events handed to the decoder process; states and snapshots wait for
        `_finish`, which takes every message in its order."""
        taken = [self._taken_here(message) for message in messages]
        events = [message for message, parts in zip(messages, taken, strict=True) if parts is None]
        return Opened(messages, taken, self.decoding.submit(events))

    def _finish(self, opened: Opened) -> None:
        decoded = iter(self.decoding.results(opened.ticket))
        now = self._monotonic()
        items: list[StoredEvent | Quarantined] = []
        for message, parts in zip(opened.messages, opened.taken, strict=True):
            item = next(decoded) if parts is None else self._take(message, parts)
            if item is not None and (isinstance(item, StoredEvent) or self.rejects.admit(item, now)):
                items.append(item)
        outcomes = self._store(items)
        touched: set[tuple[str, str | None]] = set()
        punches: list[StoredEvent] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(item, StoredEvent):
                touched.add((item.device, item.epoch))
                if outcome in ("stored", "duplicate"):
                    self._attach_snapshot(item, outcome == "stored")
                if outcome == "stored":
                    punches.append(item)
                    notice = self.watermarks.accept(item.device, item.seq, now, item.epoch)
                    if notice is not None:
                        self._report(notice)
            elif outcome is not None:
                log.warning("quarantined %s: %s %s", item.topic, item.reason, item.detail)
        if self._witnessing and any(o in ("stored", "quarantined", "tamper") for o in outcomes):
            self._refresh_head(publish=False)  # the batch appended to the log: its head moved
        for device, epoch in touched:
            self._publish_watermark(device, epoch)
        self._show_verdicts(punches)

    def _show_verdicts(self, stored: list[StoredEvent]) -> None:
        """The entrance terminal's `show` of each new punch (PROTOCOL.md 2.11), best effort."""
        def send(device: str, name: str, body: dict[str, Any]) -> None:
            topic = topics.command(self.config.topic_prefix, self.config.hall, device, name)
            self._client.publish(topic, self._sealed(device, name, body), qos=1)
        try:
            show_verdicts(self.config, self.store, stored, self.clock.now(), send)
        except Exception:  # the punches are stored; only the terminal's line misses its judgement
            log.exception("the show of %d punch(es) not sent", len(stored))

    def _taken_here(self, message: Message) -> topics.TopicParts | None:
        """The topic of a state, or of a snapshot of this hall, which the hub takes in itself; None
        for anything else, the decoder's (which quarantines a stray topic)."""
        parts = topics.split(self.config.topic_prefix, message.topic)
        if parts is not None and (parts.kind == "state" or
                                  (parts.kind == "snapshot" and parts.hall == self.config.hall)):
            return parts
        return None

    def _take(self, message: Message, parts: topics.TopicParts) -> Quarantined | None:
        """A state (taken in, or a reject) or a snapshot (kept for its event)."""
        try:
            if parts.kind == "state":
                return self._device_state(parts.hall, parts.device, message)
            self.snapshots.take(parts.device, message.payload)
            return None
        except WireError as exc:
            return Quarantined(message.received_at, message.topic, exc.reason, exc.detail[:500],
                               message.payload)
        except Exception as exc:  # the last line of defence: quarantined, and the hub goes on
            log.exception("message on %s could not be handled", message.topic)
            return Quarantined(message.received_at, message.topic, "internal_error",
                               f"{type(exc).__name__}: {exc}"[:500], message.payload)

    def _store(self, items: list[StoredEvent | Quarantined]) -> list[Outcome | None]:
        """The batch in one transaction. If the store refuses it for its content, item by item, so
        that an item it refuses is quarantined as `store_error` and holds back nothing else; if the
        database is unavailable, nothing (None: not stored; the edges resend, as after an outage)."""
        if not items:
            return []
        try:
            return list(self.store.ingest(items))
        except OperationalError:
            log.exception("the store is unavailable: a batch of %d not stored", len(items))
            return [None] * len(items)
        except StoreFenced as exc:  # another worker owns the hall now (hub/city/): it stores them
            log.warning("a batch of %d not stored: %s", len(items), exc)
            return [None] * len(items)
        except Exception:
            log.exception("storing a batch of %d failed; storing them one by one", len(items))
        outcomes: list[Outcome | None] = []
        for item in items:
            try:
                outcomes.extend(self.store.ingest([item]))
            except Exception as exc:
                log.exception("%s on %s not stored", type(item).__name__, _topic_of(item))
                outcomes.append(None)
                if isinstance(item, StoredEvent):
                    self._store_refused(item, exc)
        return outcomes

    def _attach_snapshot(self, item: StoredEvent, stored: bool) -> None:
        try:
            self.snapshots.attach(self.store, item, stored)
        except Exception:  # the event is stored; only its picture is lost
            log.exception("the snapshot of %s not kept", item.id)

    def _store_refused(self, item: StoredEvent, exc: Exception) -> None:
        reject = Quarantined(item.received_at, _topic_of(item), "store_error",
                             f"{type(exc).__name__}: {exc}"[:500], item.raw)
        try:
            self.store.ingest([reject])
        except Exception:
            log.exception("the store refused quarantining %s too", item.id)

    def _close_reject_windows(self, everything: bool = False) -> None:
        for data in self.rejects.close(self._monotonic(), everything):
            log.warning("quarantined %d more %s on %s from %s to %s (counted, not stored)",
                        data["repeats"], data["reason"], data["topic"], data["first_at"], data["last_at"])
            try:
                self.store.append("quarantine", data)
            except Exception:  # the count is in the journal (the line above); the others still go
                log.exception("the count of repeated %s on %s not written to the log", data["reason"],
                              data["topic"])

    def _report(self, notice: Notice) -> None:
        log.warning("%s on %s: %s", notice.kind, notice.device, notice.detail)
        try:
            self.store.append(notice.kind, notice.log_data(), ref=notice.device)
        except Exception:  # the notice is in the journal; the watermark still goes out
            log.exception("%s on %s not written to the log", notice.kind, notice.device)
        self._publish_watermark(notice.device, notice.epoch)

    def _device_state(self, hall: str, device: str, message: Message) -> Quarantined | None:
        """Retained device state (hub/device_state.py): online/offline and clock drift go into the
        log; what is refused is quarantined and changes nothing, a replayed older state is ignored."""
        try:
            state = self.states.read(hall, device, message.payload, message.received_at)
        except WireError as exc:
            return Quarantined(message.received_at, message.topic, exc.reason, exc.detail[:500],
                               message.payload)
        if state is None:
            log.info("an older state of %s ignored (replayed or out of order)", device)
            return None
        online = state.online
        self._seen[device] = (self._monotonic(), online)
        if state.witness and online and device not in self._witnessing:
            self._witnessing.add(device)
            self._refresh_head(publish=False)
            for known, epoch in self.watermarks.current():
                if known == device:
                    self._publish_watermark(device, epoch)
        if self._online.get(device) != online:
            self._online[device] = online
            self.store.append("device_state", {"device": device, "online": online}, ref=device)
        if state.ts is not None and online:
            drift = abs((state.ts - message.received_at).total_seconds())
            if drift > DRIFT_LIMIT_S and device not in self._drifting:
                self._drifting.add(device)
                self.store.append("clock_drift", {"device": device, "seconds": int(drift)}, ref=device)
            elif drift <= DRIFT_LIMIT_S:
                self._drifting.discard(device)
        return None

    # --- publishing (hub-signed) ---------------------------------------------------------

    def _sealed(self, device: str, type_: str, body: dict[str, Any]) -> bytes:
        envelope = seal(self._key, hall=self.config.hall, device=device, seq=HUB_SEQ.next(),
                        ts=format_ts(self.clock.now()), type=type_, body=body)
        return envelope.raw

    def _publish_watermark(self, device: str, epoch: str | None) -> None:
        """The watermark of one outbox; with its epoch unless the device's events carry none."""
        body: dict[str, Any] = {"seq": self.watermarks.mark(device, epoch)}
        if epoch is not None:
            body["epoch"] = epoch
            if device in self._witnessing and self._head is not None:
                body["head"] = self._sent_head[device] = self._head
        payload = self._sealed(device, "committed", body)
        topic = topics.committed(self.config.topic_prefix, self.config.hall, device)
        self._client.publish(topic, payload, qos=1, retain=True)

    def _publish_roster(self) -> None:
        body = roster_body(self.config, self.store)
        topic = topics.roster(self.config.topic_prefix, self.config.hall)
        self._client.publish(topic, self._sealed("hub", "roster", body), qos=1, retain=True)

    def _refresh_head(self, publish: bool = True) -> None:
        """Read the chain's head. With `publish`, send it to every witnessing device that has not had
        it yet (with its current watermarks): after a stored batch only the devices it touched get
        the new head at once, the others at this check, every HEAD_CHECK_S."""
        if publish:
            # the hall clock: coverage (`[audit] witness_minutes`) is measured in it
            self._next_head_check = self.clock.now().timestamp() + HEAD_CHECK_S
        if not self._witnessing:
            return
        try:
            self._head = self.store.witness_head()
        except Exception:  # the store is down: the head goes out once it is back
            log.exception("the chain's head could not be read")
            return
        if publish:
            for device, epoch in self.watermarks.current():
                if device in self._witnessing and self._sent_head.get(device) != self._head:
                    self._publish_watermark(device, epoch)

    # --- start-up ------------------------------------------------------------------------

    def _rebuild_watermarks(self) -> None:
        now = self._monotonic()
        for _hall, device, seq, epoch in self.store.device_history():
            self.watermarks.accept(device, seq, now, epoch)

    def _log_roster_if_changed(self) -> None:
        """The first roster of a new store; a roster changed in hub.toml but not logged (`hall-hub
        roster apply`) raises RosterNotLogged (hub/roster_log.py)."""
        ensure_logged(self.config, self.store)


def _topic_of(item: StoredEvent | Quarantined) -> str:
    return item.topic if isinstance(item, Quarantined) else f"{item.hall}/{item.device}/evt/{item.type}"


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    """Small QoS 1 packets both ways: without TCP_NODELAY, Nagle waits for delayed ACKs (~40 ms)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
