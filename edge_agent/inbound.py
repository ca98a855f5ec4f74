"""What the hub sends a box: the roster, the `committed` watermark and commands (PROTOCOL.md 1,
2.4, 2.6). Called on paho's network thread for every message from the broker.

Anyone who reaches the broker can publish on these topics, so nothing here raises (that would end
paho's loop, and the link with it): what cannot be used is counted in `rejected` by reason and
logged, as a warning the 1st, 2nd, 4th, 8th... time of a reason (a flood does not flood the log),
else at debug.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from edge_agent.hub_seq import HubSeqs
from edge_agent.link import Inbound
from edge_agent.outbox import Outbox
from edge_agent.witness import Witness
from wire import topics
from wire.bodies import CommittedBody, RosterBody, checked
from wire.envelope import Envelope, PublicKey, WireError, open_signed
from wire.faces import Gallery

log = logging.getLogger(__name__)
MAX_INBOUND_BYTES = 8 * 1024 * 1024  # the roster with a large face gallery stays well below this

# Runs one command; raises to answer ok=false; returns ANSWER_LATER when whoever took the command
# records its ack later (a print job, once printed: PROTOCOL.md 2.8).
RunCommand = Callable[[Envelope], "str | None"]
ANSWER_LATER = "answer later"
Answer = Callable[[Envelope, bool, str | None], None]  # records the `ack` of a command


class HubMessages:
    def __init__(self, prefix: str, hall: str, device: str, hub_key: PublicKey, outbox: Outbox,
                 run_command: RunCommand, answer: Answer, witness: Witness | None = None) -> None:
        self._prefix, self._hall, self._device = prefix, hall, device
        self._hub_key = hub_key
        self._outbox = outbox
        self._hub_seqs = HubSeqs(outbox)  # PROTOCOL.md 2.6: older hub messages are refused
        self._run_command = run_command
        self._answer = answer
        self._witness = witness
        self._seen_commands: set[str] = set()
        self.rejected: Counter[str] = Counter()  # messages refused, by reason
        self.gallery: Gallery | None = None
        self.roster_staff: list[dict[str, Any]] = []

    def handle(self, message: Inbound) -> None:
        try:
            if len(message.payload) > MAX_INBOUND_BYTES:
                raise WireError("oversize", f"{len(message.payload)} bytes, limit {MAX_INBOUND_BYTES}")
            if message.topic == topics.roster(self._prefix, self._hall):
                self._roster(message.payload)
                return
            parts = topics.split(self._prefix, message.topic)
            if parts is None or parts.device != self._device or parts.hall != self._hall:
                raise WireError("unexpected_topic", "not one of this device's topics")
            envelope = open_signed(message.payload, self._hub_key)
            if (envelope.hall, envelope.device) != (parts.hall, parts.device):
                raise WireError("topic_mismatch", f"envelope names {envelope.hall}/{envelope.device}")
            if parts.kind == "committed" and envelope.type == "committed":
                self._watermark(envelope, message.retained)
            elif parts.kind == "cmd" and parts.name == envelope.type:
                self._command(envelope)
            else:
                raise WireError("topic_mismatch", f"a {envelope.type} envelope on a {parts.kind} topic")
        except WireError as exc:
            reason, detail = exc.reason, exc.detail
        except Exception as exc:  # the last line of defence: paho's thread goes on
            log.exception("message on %s could not be handled", message.topic)
            reason, detail = "error", f"{type(exc).__name__}: {exc}"
        else:
            return
        self.rejected[reason] += 1
        count = self.rejected[reason]
        log.log(logging.WARNING if count & (count - 1) == 0 else logging.DEBUG,
                "rejected a message on %s: %s: %s (%d of this reason so far)", message.topic, reason,
                detail[:200], count)

    def _roster(self, payload: bytes) -> None:
        """The hub's signed roster: staff cards (card+face) and the face gallery, used at once. One
        that does not verify or hold together raises WireError; the last good roster stays."""
        envelope = open_signed(payload, self._hub_key)
        if envelope.type != "roster" or envelope.hall != self._hall:
            raise WireError("topic_mismatch", f"a {envelope.type} envelope of hall {envelope.hall}, "
                                              "not this hall's roster")
        body = checked(RosterBody, envelope.body, "roster")
        staff = [member.model_dump() for member in body.staff]
        try:
            gallery = Gallery.from_wire([entry.model_dump() for entry in body.gallery])
        except ValueError as exc:
            raise WireError("malformed", f"roster gallery: {exc}"[:200]) from exc
        self._hub_seqs.admit("roster", envelope.seq)
        self.roster_staff, self.gallery = staff, gallery
        log.info("roster: %d staff, %d face encoding(s)", len(staff), len(gallery) if gallery else 0)

    def _watermark(self, envelope: Envelope, retained: bool) -> None:
        """Applied only to the outbox it names (PROTOCOL.md 2.4): a watermark of an earlier outbox,
        or one without an epoch, is ignored (not counted: an earlier outbox's retained watermark is
        expected after a new outbox is made)."""
        body = checked(CommittedBody, envelope.body, "committed")
        if body.epoch != self._outbox.epoch:
            log.info("a watermark of outbox %s ignored: this outbox is %s", body.epoch,
                     self._outbox.epoch)
            return
        self._hub_seqs.admit("committed", envelope.seq)
        dropped = self._outbox.commit(body.seq, retained=retained)
        if body.head is not None and self._witness is not None:
            self._witness.offer(body.head)
        log.debug("hub committed up to #%d; %d event(s) left the outbox", body.seq, dropped)

    def _command(self, envelope: Envelope) -> None:
        """A hub-signed command, run once per id and answered with an `ack` event; one that cannot
        run is answered ok=false with the reason, and counted as `bad_command`. One whose hub seq is
        not above the last accepted is neither run nor answered (`replayed`, PROTOCOL.md 2.6)."""
        if envelope.id in self._seen_commands:
            return
        self._hub_seqs.admit("cmd", envelope.seq)
        self._seen_commands.add(envelope.id)
        ok, error = True, None
        try:
            if self._run_command(envelope) == ANSWER_LATER:
                return
        except Exception as exc:  # answered, not raised: the hub reads why in the ack
            ok, error = False, (str(exc) or type(exc).__name__)[:300]
            self.rejected["bad_command"] += 1
            log.warning("command %s %s not run: %s", envelope.type, envelope.id, error)
        self._answer(envelope, ok, error)
