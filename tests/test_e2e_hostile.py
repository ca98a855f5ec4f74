"""End to end under attack: while a card is tapped every second, an intruder with a plain MQTT client
publishes over ten thousand hostile messages (malformed, oversize, unsigned, mis-signed, re-signed
with bad fields, random bytes, retained poison) on every topic the hub and the edge agent subscribe
to. Both processes stay up and every tap is stored exactly once."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from device_sims.card import CardReaderSim
from tests.hall_harness import Hall, StaffSpec, wait_for
from tests.mqtt_broker import Mosquitto, publish
from wire.envelope import canonical, format_ts, load_private_key

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
P = "hall/v1/h1"
EDGE_TOPICS = [f"{P}/roster", f"{P}/entrance/committed", f"{P}/entrance/cmd/show",
               f"{P}/entrance/cmd/invite", f"{P}/entrance/cmd/sync"]
HUB_TOPICS = [f"{P}/entrance/evt/clock", f"{P}/entrance/evt/sign", f"{P}/entrance/state",
              f"{P}/ghost/evt/clock", f"{P}/entrance/evt/clock/extra"]
MESSAGES = 10_500
SECONDS = 15


@pytest.fixture
def reader() -> Iterator[CardReaderSim]:
    sim = CardReaderSim()
    yield sim
    sim.close()


def _signed(private_hex: str, **fields: object) -> bytes:
    """Canonical bytes with a signature that holds over whatever the fields hold."""
    sig = load_private_key(private_hex).sign(canonical(fields)).signature.hex()
    return canonical({**fields, "sig": sig})


def poison(hall: Hall) -> list[bytes]:
    """One payload per case the hub and the edge must refuse without stopping."""
    now = datetime.now(TZ)
    ts = format_ts(now)
    edge, hub = hall.edge_keys.private_hex, hall.hub_keys.private_hex

    def event(**changes: object) -> dict[str, object]:
        fields: dict[str, object] = {"v": 1, "id": f"x-{random.getrandbits(40)}", "hall": "h1",
                                     "device": "entrance", "seq": 7, "ts": ts, "type": "clock",
                                     "body": {"method": "card", "card": "0A004A7B2C"}}
        return {**fields, **changes}

    good_shape = _signed(edge, **event(ts=format_ts(now + timedelta(days=3))))  # future_ts
    return [
        b"[" * 100_000, b"{" * 50_000, b"9" * 6000, b'"\\ud800"', b"NaN", b"null", b"[1,2]", b"",
        good_shape.replace(b'"card":"0A004A7B2C"', b'"card":"0A004A7B2C","x":NaN'),
        good_shape.replace(b'"seq":7', b'"seq":7,"seq":7'),
        good_shape.replace(b'"method":"card"', b'"method":"\\ud800"'),
        good_shape.replace(b'"seq":7', b'"seq":' + b"1" * 5000),
        json.dumps(json.loads(good_shape)).encode(),  # non_canonical
        good_shape,
        _signed(edge, **event(seq=2**53)),
        _signed(edge, **event(ts="2026-02-30T08:00:00.000+08:00")),
        _signed(edge, **event(ts="2026-11-24T25:00:00.000+08:00")),
        _signed(edge, **event(body={"method": "card", "card": "0A004A7B2C", "distance_milli": 2**60})),
        _signed(edge, **event(type="sign", body={"window": "01", "desk": "d1", "state": "away",
                                                  "reason": "break",
                                                  "back_at": "2026-02-30T10:00:00.000+08:00"})),
        _signed(hub, **event(device="entrance", type="committed", body={"seq": "all"})),
        _signed(hub, **event(device="entrance", type="committed", body={"seq": 2**60})),
        _signed(hub, **event(device="hub", type="roster", body={"staff": {"S001": ["x"]}})),
        _signed(hub, **event(device="hub", type="roster",
                             body={"gallery": [{"staff": "S001", "encoding": [1, 2]}]})),
        _signed(hub, **event(type="show", body={"window": "01", "mode": True})),
        _signed(hub, **event(type="invite", body={"window": ["01"], "seconds": 2**60})),
        b'{"online": true, "ts": "2026-02-30T08:00:00.000+08:00"}',
        b'{"online": "yes"}',
        b"x" * 140_000,  # over the hub's 128 KiB limit
    ]


def intrude(port: int, hall: Hall, stop: threading.Event, sent: list[int]) -> None:
    """Retained poison first, then MESSAGES messages spread over SECONDS seconds."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    cases = poison(hall)
    rng = random.Random(14)
    start = time.monotonic()
    try:
        for n in range(MESSAGES):
            if stop.is_set():
                return
            topic = rng.choice(EDGE_TOPICS + HUB_TOPICS)
            if n % 50 == 0:
                topic = f"{P}/intruder{n}/evt/clock"  # many topics: the collapser's "*" window
            payload = rng.choice(cases) if rng.random() < 0.7 else os.urandom(rng.randrange(300))
            client.publish(topic, payload, qos=1 if n % 10 == 0 else 0, retain=n % 97 == 0)
            sent[0] += 1
            if n % 100 == 99:
                time.sleep(max(0.0, start + SECONDS * n / MESSAGES - time.monotonic()))
    finally:
        client.disconnect()
        client.loop_stop()


def test_hub_and_edge_survive_a_flood_while_every_tap_is_stored(tmp_path: Path, broker: Mosquitto,
                                                                 reader: CardReaderSim) -> None:
    hall = Hall(tmp_path / "hall", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")])
    hall.write_edge_config(reader.path)
    poison = (b"[" * 100_000, b'"\\ud800"', b"9" * 6000)  # retained: waiting for both at their start
    publish(broker.port, [(topic, payload, True) for topic in EDGE_TOPICS + HUB_TOPICS for payload in poison],
            client_id="poisoner")
    hall.start_edge()
    hall.start_hub()
    stop, sent = threading.Event(), [0]
    intruder = threading.Thread(target=intrude, args=(broker.port, hall, stop, sent), name="intruder")
    cards = [f"5C{n:08X}" for n in range(1, SECONDS + 1)]
    try:
        intruder.start()
        for card in cards:
            reader.tap(card, hold_seconds=0.1)
            time.sleep(0.9)
        intruder.join(60)
        assert sent[0] >= 10_000
        wait_for(lambda: len(hall.stored("clock")) >= len(cards), 30, "every tap stored", hall)
        time.sleep(2 * hall.resend_seconds)  # resends must stay harmless
        assert sorted(str(body["card"]) for body in hall.stored("clock")) == cards  # exactly once
        assert hall.hub is not None and hall.hub.poll() is None, hall.logs()
        assert hall.edge is not None and hall.edge.poll() is None, hall.logs()
        edge_log = (hall.workdir / "edge.log").read_text(errors="replace")
        assert "rejected a message" in edge_log and "Traceback" not in edge_log
        hub_log = (hall.workdir / "hub.log").read_text(errors="replace")
        assert "Traceback" not in hub_log, hub_log[-3000:]
        verify = hall.cli("log", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        stop.set()
        intruder.join(10)
        hall.stop()
