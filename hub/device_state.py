"""Device states (`P/{hall}/{device}/state`): wire bytes to a DeviceState, or WireError.

A device with `protocol = 2` publishes signed states (PROTOCOL.md 2.5); anything else on its state
topic is refused, so nobody can say it is online or offline in its name. A version-1 device's plain
JSON state stays accepted. Signed states are checked against replay here, in memory: a state whose
seq is below the last accepted one is ignored, with one exception. The last will is sealed when a
session starts, so its seq is below the heartbeats of that session: an offline state is taken while
the device is online if its seq is above every seq accepted before the current online run began.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wire.bodies import StateBody, checked
from wire.envelope import PublicKey, WireError, format_ts, parse, parse_ts, strict_json, verify

FUTURE_LIMIT = timedelta(days=1)  # as for events: a state ts or seq this far ahead is `future_ts`
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DeviceState:
    device: str
    online: bool
    ts: datetime | None  # the device's clock, for the drift check (a version-1 state may omit it)
    witness: bool = False  # it signs the chain heads the hub sends it (PROTOCOL.md 2.10)


@dataclass(frozen=True)
class _Run:
    last: int  # the highest seq accepted
    online: bool
    floor: int  # the highest seq accepted before the current online run began


class DeviceStates:
    def __init__(self, hall: str, keys: Mapping[str, PublicKey], protocols: Mapping[str, int],
                 max_bytes: int) -> None:
        self.hall = hall
        self.keys = keys
        self.protocols = protocols
        self.max_bytes = max_bytes
        self._runs: dict[str, _Run] = {}

    def read(self, hall: str, device: str, payload: bytes, received_at: datetime) -> DeviceState | None:
        """The state on the topic of `hall`/`device`; None for a replayed (older) signed state.
        Raises WireError with the quarantine reason."""
        key = self.keys.get(device)
        if key is None:
            raise WireError("unknown_device", f"state from unregistered device {device!r}")
        if len(payload) > self.max_bytes:
            raise WireError("oversize", f"state of {len(payload)} bytes, limit {self.max_bytes}")
        if self.protocols.get(device, 2) == 1:
            return _plain(device, payload)
        envelope = parse(payload)
        verify(envelope, key)
        if envelope.type != "state" or (envelope.hall, envelope.device) != (hall, device):
            raise WireError("topic_mismatch", f"a {envelope.type!r} of {envelope.hall}/{envelope.device} "
                                              f"on the state topic of {hall}/{device}"[:300])
        sealed_at = EPOCH + timedelta(milliseconds=envelope.seq)  # a wrong clock must not block for long
        if max(envelope.timestamp, sealed_at) - received_at > FUTURE_LIMIT:
            raise WireError("future_ts", f"state ts {envelope.ts} or seq {envelope.seq} is more than "
                                         f"{FUTURE_LIMIT} after its receipt at {format_ts(received_at)}")
        body = checked(StateBody, envelope.body, "state")
        if not self._admit(device, envelope.seq, body.online):
            return None
        return DeviceState(device, body.online, envelope.timestamp, body.witness)

    def _admit(self, device: str, seq: int, online: bool) -> bool:
        run = self._runs.get(device)
        if run is not None and seq <= run.last and not (run.online and not online and seq > run.floor):
            return False
        if run is None:
            run = _Run(seq, online, 0)
        floor = run.last if online and not run.online else run.floor
        self._runs[device] = _Run(max(run.last, seq), online, floor)
        return True


def _plain(device: str, payload: bytes) -> DeviceState:
    """A version-1 state: `{"online": bool, "ts": ..., ...}`, unsigned."""
    try:
        state = strict_json(payload, floats=True)
        if not isinstance(state, dict):
            raise ValueError("state is not a JSON object")
        online = state.get("online")
        if not isinstance(online, bool):
            raise ValueError("online is not a boolean")
        device_ts = parse_ts(state["ts"]) if "ts" in state else None
    except ValueError as exc:  # WireError is one
        raise WireError("malformed", f"state: {exc}"[:500]) from exc
    return DeviceState(device, online, device_ts)
