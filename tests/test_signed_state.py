"""Signed device state (PROTOCOL.md 2.5): the hub takes a version-2 device's online/offline only from
states signed with its key, ignores replayed older ones, and still takes a version-1 device's plain
state; the edge's real last will is such a signed state. Through a real Mosquitto."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from device_sims.card import CardReaderSim
from edge_agent.state import StateSealer
from hub import config as hub_config
from hub.service import HubService
from hub.store.store import Store
from tests.hall_harness import Hall, StaffSpec, hub_in_thread, wait_for
from tests.mqtt_broker import Mosquitto, publish
from wire.bodies import StateBody
from wire.clock import FixedClock, SystemClock
from wire.envelope import (
    canonical,
    format_ts,
    generate_keypair,
    load_private_key,
    load_public_key,
    open_signed,
    public_hex_of,
    seal,
)

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
DEVICE, OTHER, PLAIN, HUB = (generate_keypair() for _ in range(4))
P = "hall/v1/h1"
BODY = {"online": True, "version": "0.1.0", "units": {}, "ready": True}


def signed_state(online: bool, seq: int, key_hex: str = DEVICE.private_hex, **fields: str) -> bytes:
    header = {"hall": "h1", "device": "entrance", "type": "state"} | fields
    return seal(load_private_key(key_hex), seq=seq, ts=format_ts(datetime.now(TZ)),
                body={**BODY, "online": online, "ready": online}, **header).raw  # type: ignore[arg-type]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the test vector of PROTOCOL.md 2.5 ---------------------------------------------------------


def test_protocol_vector_matches_seal() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text[text.index("### 2.5 Signed state"):text.index("### 2.6 ")]
    table = dict(re.findall(r"^\| ([a-z ]+) \| `([^`]+)` \|$", section, re.M))
    signed_bytes, published = re.findall(r"^```\n(.+)\n```$", section, re.M)
    fields = json.loads(signed_bytes)
    key = load_private_key(table["seed"])
    envelope = seal(key, hall=fields["hall"], device=fields["device"], seq=int(table["seq"]),
                    ts=table["ts"], type="state", body=fields["body"], id=table["id"])
    assert public_hex_of(key) == table["public key"]
    assert canonical(envelope.unsigned()).decode() == signed_bytes
    assert envelope.sig == table["sig"]
    assert envelope.raw.decode() == published
    assert open_signed(published.encode(), load_public_key(table["public key"])).type == "state"
    assert StateBody.model_validate(fields["body"]).online is False


def test_edge_state_seq_grows_while_the_clock_stands() -> None:
    sealer = StateSealer(load_private_key(DEVICE.private_hex), "h1", "entrance",
                         FixedClock(datetime(2026, 11, 24, 8, 30, tzinfo=TZ)), ms=lambda: 1000)
    body = StateBody(online=True, version="0.1.0", units={}, ready=True)
    envelopes = [open_signed(sealer.seal(body), load_public_key(DEVICE.public_hex)) for _ in range(3)]
    assert [e.seq for e in envelopes] == [1000, 1001, 1002]
    assert {e.type for e in envelopes} == {"state"}
    assert envelopes[0].body == {"online": True, "version": "0.1.0", "units": {}, "ready": True}


# --- the hub, driven through a real broker -------------------------------------------------------


@dataclass
class RunningHub:
    service: HubService
    store: Store
    port: int
    flips: int = 0  # plain states sent to the version-1 device by `settle`

    def publish(self, topic: str, payload: bytes) -> None:
        publish(self.port, [(topic, payload)])

    def settle(self) -> None:
        """Everything published before has been taken in: a version-1 state flip comes after it."""
        self.flips += 1
        online = self.flips % 2 == 1
        self.publish(f"{P}/window/state", json.dumps({"online": online}).encode())
        wait_for(lambda: self.states("window")[-1:] == [online], 15, "the settling state")

    def states(self, device: str) -> list[bool]:
        """The device's online/offline changes in the log."""
        return [e.data["online"] for e in self.store.audit() if e.kind == "device_state"
                and e.data["device"] == device]

    def online(self, device: str) -> bool | None:
        seen = self.service.devices_seen().get(device)
        return None if seen is None else seen[1]

    def quarantined(self, device: str) -> list[str]:
        return sorted(q.reason for q in self.store.quarantined() if q.topic == f"{P}/{device}/state")


@pytest.fixture
def hub(tmp_path: Path, broker: Mosquitto) -> Iterator[RunningHub]:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "{broker.url}"\n'
        f'[store]\nurl = "sqlite:///hub.db"\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{DEVICE.public_hex}"\n'
        f'[[devices]]\nid = "other"\npublic_key = "{OTHER.public_hex}"\n'
        f'[[devices]]\nid = "window"\npublic_key = "{PLAIN.public_hex}"\nprotocol = 1\n',
        encoding="utf-8")
    config = hub_config.load(path)
    clock = SystemClock(TZ)
    store = Store(config.store.url, clock)
    service = HubService(config, clock, store)
    try:
        with hub_in_thread(service):
            yield RunningHub(service, store, broker.port)
    finally:
        store.close()


def test_forged_unsigned_offline_is_quarantined_and_the_device_stays_online(hub: RunningHub) -> None:
    hub.publish(f"{P}/entrance/state", signed_state(True, now_ms()))
    wait_for(lambda: hub.online("entrance") is True, 15, "the signed online state")
    hub.publish(f"{P}/entrance/state", b'{"online": false}')
    hub.settle()
    assert hub.quarantined("entrance") == ["malformed"]
    assert hub.online("entrance") is True
    assert hub.states("entrance") == [True]


def test_states_signed_by_another_key_or_for_another_topic_are_quarantined(hub: RunningHub) -> None:
    seq = now_ms()
    hub.publish(f"{P}/entrance/state", signed_state(True, seq))
    wait_for(lambda: hub.online("entrance") is True, 15, "the signed online state")
    hub.publish(f"{P}/entrance/state", signed_state(False, seq + 1, OTHER.private_hex))  # names entrance
    hub.publish(f"{P}/other/state", signed_state(False, seq + 2))  # entrance's own, on other's topic
    hub.publish(f"{P}/entrance/state", signed_state(False, seq + 3, type="clock"))
    hub.settle()
    assert hub.quarantined("entrance") == ["bad_signature", "topic_mismatch"]
    assert hub.quarantined("other") == ["bad_signature"]
    assert hub.online("entrance") is True and hub.online("other") is None
    assert hub.states("entrance") == [True]


def test_a_version_1_device_plain_state_is_still_accepted(hub: RunningHub) -> None:
    hub.publish(f"{P}/window/state", json.dumps({"online": True, "ts": format_ts(datetime.now(TZ)),
                                                 "version": "1.0", "units": {}}).encode())
    wait_for(lambda: hub.states("window") == [True], 15, "the plain state taken")
    assert hub.quarantined("window") == []


def test_older_replayed_states_are_ignored_and_the_session_will_is_taken(hub: RunningHub) -> None:
    seq = now_ms()
    will, online = signed_state(False, seq), signed_state(True, seq + 1)
    heartbeat = signed_state(True, seq + 2)
    hub.publish(f"{P}/entrance/state", online)
    hub.publish(f"{P}/entrance/state", heartbeat)
    hub.publish(f"{P}/entrance/state", will)  # sealed before the session's heartbeats: still taken
    wait_for(lambda: hub.states("entrance") == [True, False], 15, "the will taken")
    hub.publish(f"{P}/entrance/state", heartbeat)  # a replay, hiding the offline: ignored
    hub.publish(f"{P}/entrance/state", online)
    hub.settle()
    assert hub.online("entrance") is False
    assert hub.states("entrance") == [True, False]
    assert hub.quarantined("entrance") == []
    hub.publish(f"{P}/entrance/state", signed_state(True, seq + 3))  # the next session, newer: taken
    wait_for(lambda: hub.states("entrance") == [True, False, True], 15, "the newer state taken")


# --- the real edge's last will ---------------------------------------------------------------------


def retained(port: int, topic: str) -> bytes:
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retained-reader")
    client.on_message = lambda c, u, message: got.append(bytes(message.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        wait_for(lambda: bool(got), 15, f"the retained {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


@pytest.mark.e2e
def test_the_edge_last_will_is_a_signed_offline_state_the_hub_takes(tmp_path: Path,
                                                                   broker: Mosquitto) -> None:
    reader = CardReaderSim()
    hall = Hall(tmp_path / "hall", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")])
    hall.write_edge_config(reader.path)
    stores: list[Store] = []

    def changes() -> list[bool]:
        return [e.data["online"] for e in stores[0].audit() if e.kind == "device_state"]

    try:
        hall.start_hub()
        hall.start_edge()  # returns once the hub has made its store too
        stores.append(store := Store(f"sqlite:///{hall.hub_db}", SystemClock(TZ), create=False))
        wait_for(lambda: changes() == [True], 20, "the edge online at the hub", hall)
        hall.kill_edge(signal.SIGKILL)  # no clean shutdown: only the will says offline
        wait_for(lambda: changes() == [True, False], 20, "the will taken as offline", hall)
        will = open_signed(retained(broker.port, f"{P}/entrance/state"),
                           load_public_key(hall.edge_keys.public_hex))
        assert (will.type, will.body["online"], will.body["ready"]) == ("state", False, False)
        assert [q.topic for q in store.quarantined()] == []
    finally:
        hall.stop()
        for opened in stores:
            opened.close()
        reader.close()
