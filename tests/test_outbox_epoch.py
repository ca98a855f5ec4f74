"""The outbox epoch (PROTOCOL.md 2.4): events carry their outbox's epoch in a version 2 envelope, the
hub keeps a watermark per device and epoch and echoes the epoch in `committed`, and an edge applies
only a watermark of its own outbox, so one for an earlier outbox never deletes a new one's readings.
The end-to-end part runs a real hub and a real edge agent through Mosquitto."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_agent import config as edge_config
from edge_agent.agent import EdgeAgent
from edge_agent.readings import UnitFault
from hub import config as hub_config
from hub.commands import HUB_SEQ
from hub.service import HubService
from hub.store.store import Store
from tests.hall_harness import hub_in_thread, wait_for
from tests.mqtt_broker import Mosquitto, publish
from wire.bodies import CommittedBody
from wire.clock import SystemClock
from wire.envelope import (
    WireError,
    canonical,
    format_ts,
    generate_keypair,
    load_private_key,
    load_public_key,
    open_signed,
    parse,
    public_hex_of,
    seal,
)

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
DEVICE, HUB = generate_keypair(), generate_keypair()
P = "hall/v1/h1/entrance"
TS = "2026-11-24T08:29:31.120+08:00"


# --- the envelope -------------------------------------------------------------------------------


def test_protocol_vector_matches_seal() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text[text.index("### 2.4 Outbox epoch"):text.index("### 2.5 Signed state")]
    table = dict(re.findall(r"^\| ([a-z ]+) \| `([^`]+)` \|$", section, re.M))
    signed_bytes, published = re.findall(r"^```\n(.+)\n```$", section, re.M)
    fields = json.loads(signed_bytes)
    key = load_private_key(table["seed"])
    envelope = seal(key, hall=fields["hall"], device=fields["device"], seq=fields["seq"], ts=fields["ts"],
                    type=fields["type"], body=fields["body"], id=table["id"], epoch=table["epoch"])
    assert canonical(envelope.unsigned()).decode() == signed_bytes
    assert envelope.sig == table["sig"]
    assert envelope.raw.decode() == published
    opened = open_signed(published.encode(), load_public_key(public_hex_of(key)))
    assert (opened.epoch, fields["v"]) == ("3f9a0c1d5e7b2a48", 2)
    committed = re.search(r"the body\n`(\{.+?\})`", section)
    assert committed is not None
    assert CommittedBody.model_validate(json.loads(committed.group(1))).epoch == table["epoch"]


def envelope_with(**changes: Any) -> bytes:
    obj = json.loads(seal(load_private_key(DEVICE.private_hex), hall="h1", device="entrance", seq=1, ts=TS,
                          type="clock", body={"method": "card", "card": "0A004A7B2C"},
                          epoch="00000000000000e1").raw)
    obj.update(changes)
    return canonical({key: value for key, value in obj.items() if value is not None})


@pytest.mark.parametrize(("changes", "why"), [
    ({"v": 1}, "a version 1 envelope with an epoch"),
    ({"epoch": None}, "a version 2 envelope without one"),
    ({"epoch": "00000000000000E1"}, "upper-case hex"),
    ({"epoch": "e1"}, "too short"),
    ({"epoch": 225}, "not a string"),
    ({"v": 3}, "an unknown version"),
])
def test_envelope_versions_hold_exactly_their_keys(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(WireError) as raised:
        parse(envelope_with(**changes))
    assert raised.value.reason == "malformed", why


def test_version_1_envelopes_are_still_accepted() -> None:
    raw = seal(load_private_key(DEVICE.private_hex), hall="h1", device="entrance", seq=1, ts=TS, type="clock",
               body={"method": "card", "card": "0A004A7B2C"}).raw
    assert json.loads(raw)["v"] == 1 and "epoch" not in json.loads(raw)
    assert parse(raw).epoch is None


def test_the_signature_covers_the_epoch() -> None:
    forged = json.loads(envelope_with())
    forged["epoch"] = "00000000000000e2"
    with pytest.raises(WireError) as raised:
        open_signed(canonical(forged), load_public_key(DEVICE.public_hex))
    assert raised.value.reason == "bad_signature"


# --- a real hub and a real edge through Mosquitto -----------------------------------------------


def hub_service(folder: Path, broker: Mosquitto) -> tuple[HubService, Store]:
    path = folder / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "{broker.url}"\n'
        f'[store]\nurl = "sqlite:///hub.db"\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{DEVICE.public_hex}"\n', encoding="utf-8")
    config = hub_config.load(path)
    store = Store(config.store.url, SystemClock(TZ))
    return HubService(config, SystemClock(TZ), store), store


def edge_agent(folder: Path, broker: Mosquitto) -> EdgeAgent:
    path = folder / "edge.toml"
    path.write_text(
        f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{DEVICE.private_hex}"\n'
        f'hub_public_key = "{HUB.public_hex}"\n[broker]\nurl = "{broker.url}"\n'
        '[outbox]\npath = "outbox.db"\nresend_seconds = 1\n', encoding="utf-8")
    return EdgeAgent(edge_config.load(path), SystemClock(TZ))


@contextmanager
def running(agent: EdgeAgent) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), name="edge")
    thread.start()
    try:
        assert agent.link.wait_connected(15), "the edge did not connect"
        yield
    finally:
        stop.set()
        thread.join(15)
        agent.outbox.close()


def publish_as_hub(port: int, topic: str, type_: str, body: dict[str, Any]) -> None:
    envelope = seal(load_private_key(HUB.private_hex), hall="h1", device="entrance", seq=HUB_SEQ.next(),
                    ts=format_ts(SystemClock(TZ).now()), type=type_, body=body)
    publish(port, [(topic, envelope.raw)], client_id="hub-stand-in")


def faults(agent: EdgeAgent, count: int) -> None:
    for n in range(count):
        agent.record(UnitFault("door", "bad_frame", n + 1, "test"))


def test_a_watermark_of_an_earlier_outbox_never_deletes_a_new_outboxs_readings(
        tmp_path: Path, broker: Mosquitto) -> None:
    service, store = hub_service(tmp_path, broker)
    first = edge_agent(tmp_path, broker)
    old_epoch = first.outbox.epoch
    with hub_in_thread(service), running(first):
        faults(first, 3)
        wait_for(lambda: first.outbox.size() == 0, 20, "the first outbox committed")
    assert {event.epoch for event in store.events()} == {old_epoch}
    store.close()

    (tmp_path / "outbox.db").unlink()  # a new SD card: a new outbox, numbered from 1 again
    second = edge_agent(tmp_path, broker)
    assert second.outbox.epoch != old_epoch
    with running(second):  # the hub is away: the readings wait in the outbox
        faults(second, 5)
        assert second.outbox.size() == 5
        # A live watermark of the earlier outbox (the hub working off its backlog), and one without
        # an epoch: both cover seq 5, neither is this outbox's.
        publish_as_hub(broker.port, f"{P}/committed", "committed", {"seq": 5, "epoch": old_epoch})
        publish_as_hub(broker.port, f"{P}/committed", "committed", {"seq": 5})
        publish_as_hub(broker.port, f"{P}/cmd/sync", "sync", {})  # delivered after them
        wait_for(lambda: second.outbox.size() == 6, 15, "the sync command's ack")
        assert [item.seq for item in second.outbox.pending()] == [1, 2, 3, 4, 5, 6]

        service, store = hub_service(tmp_path, broker)  # the hub is back, with its store
        with hub_in_thread(service):
            wait_for(lambda: second.outbox.size() == 0, 30, "the new outbox committed")
    events = store.events()
    assert len(events) == 3 + 6
    assert sorted(event.seq for event in events if event.epoch == second.outbox.epoch) == [1, 2, 3, 4, 5, 6]
    resets = [entry.data for entry in store.audit() if entry.kind == "seq_reset"]
    assert resets == [{"device": "entrance", "seq": 1, "previous_mark": 3, "epoch": second.outbox.epoch,
                       "previous_epoch": old_epoch}]
    store.close()
