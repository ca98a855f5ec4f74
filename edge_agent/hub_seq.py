"""The hub sequences an edge accepted (PROTOCOL.md 2.6), so a replayed hub message does nothing.

Everything the hub signs carries a `seq` that only grows (milliseconds since the epoch, raised past
the previous one). The edge keeps the highest it accepted per kind in the outbox's meta table, so it
survives restarts, and refuses older ones: a replayed command does not run twice, a replayed roster
does not roll back the face gallery, a replayed watermark does not matter. A refusal raises
WireError("replayed") with both numbers, so the agent counts and logs it (a hub whose clock was
set back is ignored until its clock passes what the edge accepted).
"""

from __future__ import annotations

from typing import Literal

from edge_agent.outbox import Outbox, OutboxError
from wire.envelope import WireError

Kind = Literal["cmd", "roster", "committed"]


class HubSeqs:
    """The highest hub seq accepted per kind. Used on paho's network thread only."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def admit(self, kind: Kind, seq: int) -> None:
        """Returns when a `kind` message with hub seq `seq` may be used; its seq is then kept as the
        highest accepted. A seq equal to the highest is the same message delivered again: a roster or
        a watermark is used again (harmless, and a restarted edge holds its roster only in memory: the
        broker's retained copy is what gives it back), a command refused (it ran already). Refused:
        raises WireError("replayed"). Raises WireError("store_error") when the outbox cannot read or
        keep the seq: the message is not used then."""
        try:
            highest = self._outbox.read_meta(_key(kind))
            if seq < highest or (seq == highest and kind == "cmd"):
                raise WireError("replayed", f"{kind} with hub seq {seq}, not above {highest}, the "
                                            "highest accepted (replayed, or the hub's clock was set back)")
            if seq > highest:
                self._outbox.write_meta(_key(kind), seq)
        except OutboxError as exc:
            raise WireError("store_error", f"hub seq of {kind} not checked: {exc}") from exc


def _key(kind: Kind) -> str:
    return f"hub_seq_{kind}"
