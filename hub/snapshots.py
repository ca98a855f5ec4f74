"""Face snapshots arriving at the hub (PROTOCOL.md 2.7): JPEG bytes on `P/{hall}/{device}/snapshot`,
published by the edge just before the clock event that signs their SHA-256.

Snapshots are not signed themselves: the hash in the signed event is what makes one authentic. So a
snapshot waits here, in a small bounded memory (a stranger flooding the topic costs at most
MAX_WAITING of them, never disk), until the event that names its hash is stored; then it is kept
(hub/store/snapshots.py). One whose event never comes is forgotten.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from hub.domain import StoredEvent
from hub.store.snapshots import keep_snapshot, snapshot_hash
from hub.store.store import Store
from wire.bodies import MAX_PHOTO_BYTES
from wire.envelope import WireError

log = logging.getLogger(__name__)
MAX_WAITING = 64  # snapshots held for their event, at most (64 x 48 KiB = 3 MiB)


class WaitingSnapshots:
    def __init__(self, devices: set[str]) -> None:
        self._devices = devices
        self._waiting: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self.forgotten = 0  # snapshots pushed out before any event named them

    def take(self, device: str, jpeg: bytes) -> None:
        """A snapshot from `device`'s topic. Raises WireError for one the hub will never keep."""
        if device not in self._devices:
            raise WireError("unknown_device", f"device {device!r} is not registered")
        if len(jpeg) > MAX_PHOTO_BYTES:
            raise WireError("oversize", f"snapshot of {len(jpeg)} bytes, limit {MAX_PHOTO_BYTES}")
        key = (device, hashlib.sha256(jpeg).hexdigest())
        self._waiting[key] = jpeg
        self._waiting.move_to_end(key)
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popitem(last=False)
            self.forgotten += 1

    def attach(self, store: Store, event: StoredEvent, stored: bool) -> None:
        """After `event` is stored (or came again): keep the snapshot it signs, if it is here. A newly
        stored event whose snapshot did not come is logged: its hash stays, the picture is lost."""
        sha = snapshot_hash(event)
        if sha is None:
            return
        jpeg = self._waiting.pop((event.device, sha), None)
        if jpeg is not None:
            keep_snapshot(store, event, jpeg, event.received_at)
        elif stored:
            log.warning("clock event %s of %s stored without its snapshot %s (it did not arrive first)",
                        event.id, event.device, sha[:12])


