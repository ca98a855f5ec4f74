"""The hub sequence (PROTOCOL.md 2.6): everything the hub signs carries a seq that only grows, and an
edge refuses what is older than the highest it accepted per kind, also after it restarts. So a
replayed command does not run twice, a replayed roster does not roll back the gallery, and a
replayed watermark does not move anything back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_agent import config as edge_config
from edge_agent.agent import EdgeAgent
from edge_agent.link import Inbound
from edge_agent.outbox import Outbox
from hub.commands import HubSequence
from wire.clock import FixedClock
from wire.envelope import format_ts, generate_keypair, load_private_key, seal

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 8, 30, tzinfo=TZ)
DEVICE, HUB = generate_keypair(), generate_keypair()
T0 = 1_795_480_200_000  # a hub sequence: milliseconds since the epoch
CMD, ROSTER, COMMITTED = ("hall/v1/h1/entrance/cmd/sync", "hall/v1/h1/roster",
                          "hall/v1/h1/entrance/committed")


def hub_signed(device: str, type_: str, body: dict[str, Any], seq: int, id_: str | None = None) -> bytes:
    return seal(load_private_key(HUB.private_hex), hall="h1", device=device, seq=seq,
                ts=format_ts(NOW), type=type_, body=body, id=id_).raw


def roster(staff_id: str, seq: int) -> bytes:
    body = {"staff": [{"id": staff_id, "name": staff_id, "window": "03", "cards": []}],
            "windows": ["03"], "gallery": [{"staff": staff_id, "encoding": [7] * 128}]}
    return hub_signed("hub", "roster", body, seq)


def make_agent(folder: Path) -> EdgeAgent:
    path = folder / "edge.toml"
    path.write_text(
        f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{DEVICE.private_hex}"\n'
        f'hub_public_key = "{HUB.public_hex}"\n[outbox]\npath = "outbox.db"\n'
        '[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "/dev/hall-card"\n',
        encoding="utf-8")
    return EdgeAgent(edge_config.load(path), FixedClock(NOW))


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[EdgeAgent]:
    made = make_agent(tmp_path)
    yield made
    made.outbox.close()


def acks(outbox: Outbox) -> list[str]:
    """The ids of the commands the outbox holds an ack for, in order."""
    return [json.loads(item.payload)["body"]["cmd"] for item in outbox.pending() if item.type == "ack"]


def test_the_hub_sequence_grows_when_the_clock_stands_still() -> None:
    sequence = HubSequence(now_ms=lambda: T0)
    assert [sequence.next() for _ in range(3)] == [T0, T0 + 1, T0 + 2]


def test_the_hub_sequence_follows_the_clock_and_never_goes_back() -> None:
    clock = [T0]
    sequence = HubSequence(now_ms=lambda: clock[0])
    first = sequence.next()
    clock[0] = T0 + 5_000
    assert sequence.next() == T0 + 5_000 > first
    clock[0] = T0 - 60_000  # the hub's clock set back: still above the last
    assert sequence.next() == T0 + 5_001


def test_the_hub_sequence_is_unique_across_threads() -> None:
    sequence = HubSequence(now_ms=lambda: T0)
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [sequence.next() for _ in range(500)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(T0, T0 + 2000))


def test_a_replayed_command_does_not_run_again_also_after_a_restart(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    command = hub_signed("entrance", "sync", {}, T0, id_="cmd-1")
    agent.hub.handle(Inbound(CMD, command, False))
    agent.hub.handle(Inbound(CMD, command, False))  # a QoS 1 redelivery: ignored silently
    assert acks(agent.outbox) == ["cmd-1"]
    assert agent.hub.rejected["replayed"] == 0
    agent.outbox.close()

    restarted = make_agent(tmp_path)  # the same outbox: what ran before is remembered
    restarted.hub.handle(Inbound(CMD, command, False))
    older = hub_signed("entrance", "sync", {}, T0 - 1, id_="cmd-0")
    restarted.hub.handle(Inbound(CMD, older, False))
    assert acks(restarted.outbox) == ["cmd-1"]  # neither run nor answered
    assert restarted.hub.rejected["replayed"] == 2
    restarted.hub.handle(Inbound(CMD, hub_signed("entrance", "sync", {}, T0 + 1, id_="cmd-2"), False))
    assert acks(restarted.outbox) == ["cmd-1", "cmd-2"]
    restarted.outbox.close()


def test_a_command_with_a_new_id_but_the_same_seq_is_refused(agent: EdgeAgent) -> None:
    agent.hub.handle(Inbound(CMD, hub_signed("entrance", "sync", {}, T0, id_="cmd-1"), False))
    agent.hub.handle(Inbound(CMD, hub_signed("entrance", "sync", {}, T0, id_="cmd-x"), False))
    assert acks(agent.outbox) == ["cmd-1"]
    assert agent.hub.rejected["replayed"] == 1


def test_an_older_roster_does_not_replace_the_gallery(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.hub.handle(Inbound(ROSTER, roster("OLD", T0), True))
    agent.hub.handle(Inbound(ROSTER, roster("NEW", T0 + 10), True))
    agent.hub.handle(Inbound(ROSTER, roster("NEW", T0 + 10), True))  # the retained copy again: harmless
    assert agent.hub.rejected["replayed"] == 0
    agent.hub.handle(Inbound(ROSTER, roster("OLD", T0), False))  # replayed
    assert agent.hub.gallery is not None and agent.hub.gallery.staff_ids == ["NEW"]
    assert [member["id"] for member in agent.hub.roster_staff] == ["NEW"]
    assert agent.hub.rejected["replayed"] == 1
    agent.outbox.close()

    restarted = make_agent(tmp_path)
    restarted.hub.handle(Inbound(ROSTER, roster("OLD", T0), True))
    assert restarted.hub.gallery is None and restarted.hub.rejected["replayed"] == 1
    restarted.hub.handle(Inbound(ROSTER, roster("NEW", T0 + 10), True))  # the broker's retained roster
    # equal: the same roster again; a restarted edge held it only in memory, so it is applied
    assert restarted.hub.gallery is not None and restarted.hub.gallery.staff_ids == ["NEW"]
    assert restarted.hub.rejected["replayed"] == 1
    restarted.hub.handle(Inbound(ROSTER, roster("NEWER", T0 + 20), True))
    assert restarted.hub.gallery is not None and restarted.hub.gallery.staff_ids == ["NEWER"]
    restarted.outbox.close()


def test_an_older_watermark_does_nothing(agent: EdgeAgent) -> None:
    for _ in range(5):
        agent.hub.handle(Inbound(CMD, hub_signed("entrance", "sync", {}, T0 + agent.outbox.last_seq()),
                                 False))  # five acks: outbox seqs 1..5
    assert agent.outbox.last_seq() == 5

    def committed(seq: int, hub_seq: int) -> bytes:
        return hub_signed("entrance", "committed", {"seq": seq, "epoch": agent.outbox.epoch}, hub_seq)

    agent.hub.handle(Inbound(COMMITTED, committed(2, T0 + 100), False))
    assert agent.outbox.watermark() == 2
    agent.hub.handle(Inbound(COMMITTED, committed(2, T0 + 100), True))
    assert agent.hub.rejected["replayed"] == 0  # the retained copy of the one applied: harmless
    agent.hub.handle(Inbound(COMMITTED, committed(4, T0 + 50), False))
    assert agent.outbox.watermark() == 2 and agent.outbox.size() == 3
    assert agent.hub.rejected["replayed"] == 1
    agent.hub.handle(Inbound(COMMITTED, committed(4, T0 + 200), True))
    assert agent.outbox.watermark() == 4 and agent.outbox.size() == 1


def test_outbox_meta_values_survive_a_reopen(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    assert outbox.read_meta("hub_seq_cmd") == 0
    outbox.write_meta("hub_seq_cmd", T0)
    outbox.write_meta("hub_seq_cmd", T0 + 1)
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.db")
    assert reopened.read_meta("hub_seq_cmd") == T0 + 1
    reopened.close()
