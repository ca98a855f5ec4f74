"""The box as a witness of the hub's audit chain (PROTOCOL.md 2.10).

The hub's signed `committed` watermark carries the chain's head `N:HASH`. The box signs the latest
head it holds into the next event it records (the envelope's `head`), so the head is co-signed by a
key the hub does not hold: a rewrite of any entry at or before N changes the hash a verifier
recomputes at N, and contradicts the box's signature. When the box records nothing for
`witness_seconds` after a new head, it records a `witness` event (no body) to sign it.

A head that goes back (fewer entries than one the box already signed, kept in the outbox's meta
across restarts), or another hash at the same count, is not taken: the box keeps the head it had,
records one `hub_head_regressed` fault per episode, and goes on signing its old head, so the
contradiction is in the record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge_agent.outbox import Outbox

log = logging.getLogger(__name__)
SIGNED_META = "witness_entries"  # the highest entry count this outbox's events signed


class Witness:
    def __init__(self, outbox: Outbox, delay_s: float, monotonic: Callable[[], float],
                 fault: Callable[[str], None]) -> None:
        self._outbox = outbox
        self._delay_s = delay_s
        self._monotonic = monotonic
        self._fault = fault  # records a `hub_head_regressed` fault with this detail
        self._lock = threading.Lock()
        self._held: str | None = None  # the latest head taken, N:HASH
        self._signed: str | None = None  # the last head an event of this box signed
        self._signed_entries = outbox.read_meta(SIGNED_META)
        self._since = 0.0  # monotonic time the held head was taken
        self._regressed = False

    def offer(self, head: str) -> None:
        """A head from a hub-signed watermark (paho's thread)."""
        entries = int(head.partition(":")[0])
        with self._lock:
            held_entries = int(self._held.partition(":")[0]) if self._held else 0
            floor = max(held_entries, self._signed_entries)
            if head == self._held:
                return
            if entries < floor or (self._held is not None and entries == held_entries):
                report = not self._regressed
                self._regressed = True
            else:
                self._held, self._since, self._regressed = head, self._monotonic(), False
                return
        if report:
            detail = (f"中心链头回退 the hub sent head {head[:24]}…, but this box already signed "
                      f"{self._held[:24] if self._held else floor}…: entries removed or rewritten at the hub")
            log.error("%s", detail)
            self._fault(detail[:500])

    def head(self) -> str | None:
        """The head the next event signs."""
        with self._lock:
            return self._held

    def signed(self, head: str | None) -> None:
        """An event that signs `head` is in the outbox."""
        if head is None:
            return
        entries = int(head.partition(":")[0])
        with self._lock:
            self._signed = head
            raise_meta = entries > self._signed_entries
            self._signed_entries = max(self._signed_entries, entries)
        if raise_meta:
            try:
                self._outbox.write_meta(SIGNED_META, entries)
            except Exception:  # the event is recorded; only the regression floor is not raised
                log.exception("the witnessed entry count could not be kept")

    def due(self) -> bool:
        """A head taken `witness_seconds` ago that no event signed yet: record a `witness` event."""
        with self._lock:
            return (self._held is not None and self._held != self._signed
                    and self._monotonic() - self._since >= self._delay_s)
