"""The edge's signed `state` (PROTOCOL.md 2.5): every retained state, the last will included, is an
envelope of type "state" sealed with the device key, so nobody else can say the box is online or
offline. States are not outbox events: `seq` is milliseconds since the epoch on the box's clock (the
injected one, so a simulated hall agrees with its hub), only growing."""

from __future__ import annotations

import threading
from collections.abc import Callable

from wire.bodies import StateBody
from wire.clock import Clock
from wire.envelope import PrivateKey, format_ts, seal


class StateSealer:
    """Seals state bodies; safe to call from any thread (paho's, the run loop's, a unit's)."""

    def __init__(self, key: PrivateKey, hall: str, device: str, clock: Clock,
                 ms: Callable[[], int] | None = None) -> None:
        self._key = key
        self._hall = hall
        self._device = device
        self._clock = clock
        self._ms = ms or (lambda: int(clock.now().timestamp() * 1000))
        self._seq = 0
        self._lock = threading.Lock()

    def seal(self, body: StateBody) -> bytes:
        """The published bytes of a state envelope with a seq above every earlier one."""
        with self._lock:
            self._seq = max(self._seq + 1, self._ms())
            seq = self._seq
        envelope = seal(self._key, hall=self._hall, device=self._device, seq=seq,
                        ts=format_ts(self._clock.now()), type="state",
                        body=body.model_dump(exclude={"witness"} if not body.witness else None))
        return envelope.raw
