"""Ingest benchmark: signed events through a real Mosquitto into the hub, against a bare paho
subscriber counting the same messages from the same broker in the same run; then the latency from
a card frame written to the pseudo-terminal to its row committed at the hub, at 100 events/s.

A round of 5,000 events lasts about half a second, and single rounds swing (on 2026-12-07 the bare
subscriber alone went from 8,280 to 10,160 events/s between the rounds of one run): the figure is the
median of the rounds, and `--events 20000` gives steadier rounds (8,850 to 9,650 in one run).

Run: `make bench` (or .venv/bin/python bench/ingest.py [--events N] [--rounds R] [--rate R]
[--seconds S]). The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoneinfo import ZoneInfo  # noqa: E402

from device_sims.card import CardReaderSim  # noqa: E402
from tests.hall_harness import Hall, StaffSpec, wait_for  # noqa: E402
from tests.mqtt_broker import Mosquitto  # noqa: E402
from wire.clock import SystemClock  # noqa: E402
from wire.envelope import format_ts, generate_keypair, load_private_key, seal  # noqa: E402

TOPIC = "hall/v1/h1/bench/evt/clock"


def signed_events(private_hex: str, first_seq: int, count: int) -> list[bytes]:
    key = load_private_key(private_hex)
    clock = SystemClock(ZoneInfo("Asia/Shanghai"))
    return [
        seal(key, hall="h1", device="bench", seq=seq, ts=format_ts(clock.now()), type="clock",
             body={"method": "card", "card": f"5B{seq:08X}"}).raw
        for seq in range(first_seq, first_seq + count)
    ]


def publish_all(port: int, payloads: list[bytes]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(TOPIC, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def baseline(port: int, payloads: list[bytes]) -> float:
    """A bare paho subscriber counting the messages: events per second, first to last."""
    done = threading.Event()
    seen: list[float] = []

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        seen.append(time.perf_counter())
        if len(seen) == len(payloads):
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("hall/v1/h1/+/evt/#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    start = time.perf_counter()
    publish_all(port, payloads)
    if not done.wait(120):
        raise RuntimeError(f"baseline saw {len(seen)} of {len(payloads)}")
    client.disconnect()
    client.loop_stop()
    return len(payloads) / (seen[-1] - start)


class RowCount:
    """The events stored in a hall's SQLite file, counted on one connection kept open: opening one
    for every poll cost the bench process as much CPU as a tenth of the hub's, on the same cores."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._conn: sqlite3.Connection | None = None

    def __call__(self) -> int:
        try:
            if self._conn is None:
                if not self.db.exists():
                    return 0
                self._conn = sqlite3.connect(self.db)
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error:  # the hub has not made the table yet
            return 0


def hub_throughput(hall: Hall, port: int, payloads: list[bytes],
                   count: Callable[[], int] | None = None) -> float:
    """Events per second from the first publish to the last row committed; `count` counts the
    stored events (default: the hall's SQLite file)."""
    count = count or RowCount(hall.hub_db)
    before = count()
    start = time.perf_counter()
    publish_all(port, payloads)
    target = before + len(payloads)
    while count() < target:
        if time.perf_counter() - start > 300:
            raise RuntimeError("hub did not store every event within 300 s")
        time.sleep(0.005)
    return len(payloads) / (time.perf_counter() - start)


HUB_CLIENT = "hall-hub-h1"  # the hub's persistent session: every round's hub is of hall h1


def forget_session(port: int, client_id: str) -> None:
    """End a stopped hub's persistent session at the broker (a clean-session connect under its id):
    kept, it would queue the next baseline round's events for the next hub, which would store them
    in its own round (before the fix, every round after the first counted a mix of both)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


MakeHall = Callable[[int], tuple[Hall, str, Callable[[], int] | None]]


def ratio_rounds(make_hall: MakeHall, port: int, events: int, rounds: int) -> dict[str, Any]:
    """`rounds` times, alternately: the bare subscriber, then a fresh hub (`make_hall(round)` returns
    the hall, the private key of its device "bench", and how to count its stored events); the figure
    is the median of the rounds' ratios, each a hub against the baseline measured just before it
    (the baseline alone swings by 10 to 20 % from run to run on a shared 2-core machine)."""
    rows: list[dict[str, float]] = []
    for index in range(rounds):
        hall, key, count = make_hall(index)
        base = baseline(port, signed_events(key, 1, events))
        hall.start_hub()
        try:
            wait_for(lambda h=hall: h.ready_lines("hub") > 0, 60, "hub ready", hall)  # subscribed
            rate = hub_throughput(hall, port, signed_events(key, 1, events), count)
        finally:
            hall.kill_hub(signal.SIGTERM)
            forget_session(port, HUB_CLIENT)
        rows.append({"events_per_s": round(rate, 1), "baseline_events_per_s": round(base, 1),
                     "ratio": round(rate / base, 3)})
    def median(key: str) -> float:
        return round(statistics.median(float(row[key]) for row in rows), 3)
    return {"ratio": median("ratio"), "events_per_s": median("events_per_s"),
            "baseline_events_per_s": median("baseline_events_per_s"), "rounds": rows}


def latency(hall: Hall, reader: CardReaderSim, rate: float, seconds: float) -> list[float]:
    """Write one card frame every 1/rate s; poll the hub's rows; latency per card in ms."""
    total = int(rate * seconds)
    cards = [f"6C{n:08X}" for n in range(1, total + 1)]
    written: dict[str, float] = {}
    committed: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        db = sqlite3.connect(hall.hub_db)
        last = db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
        while not stop.is_set():
            rows = db.execute("SELECT rowid, body FROM events WHERE rowid > ?", (last,)).fetchall()
            now = time.perf_counter()
            for rowid, body in rows:
                last = max(last, rowid)
                card = json.loads(body).get("card")
                if card in written:
                    committed.setdefault(card, now)
            time.sleep(0.001)
        db.close()

    poller = threading.Thread(target=poll, name="poller")
    poller.start()
    start = time.perf_counter()
    for index, card in enumerate(cards):
        time.sleep(max(0.0, start + index / rate - time.perf_counter()))
        written[card] = time.perf_counter()
        reader.tap(card, hold_seconds=0.0)
    deadline = time.perf_counter() + 30
    while len(committed) < total and time.perf_counter() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join()
    if len(committed) < total:
        raise RuntimeError(f"only {len(committed)} of {total} taps reached the hub")
    return [(committed[card] - written[card]) * 1000 for card in cards]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000, help="events a round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="baseline and hub, alternately; the median ratio is the figure")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hall-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        reader = CardReaderSim()

        def make_hall(index: int) -> tuple[Hall, str, None]:
            keys = generate_keypair()
            hall = Hall(workdir / f"hall{index}", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")],
                        resend_seconds=30.0, extra_devices={"bench": keys.public_hex})
            return hall, keys.private_hex, None

        try:
            ratio = ratio_rounds(make_hall, broker.port, args.events, args.rounds)
            hall, _, _ = make_hall(args.rounds)
            hall.write_edge_config(reader.path)
            hall.start_hub()
            wait_for(lambda: hall.ready_lines("hub") > 0, 60, "hub ready", hall)
            hall.start_edge()
            time.sleep(2.0)
            lat = latency(hall, reader, args.rate, args.seconds)
        finally:
            hall.kill_edge(signal.SIGTERM)
            hall.kill_hub(signal.SIGTERM)
            reader.close()
            broker.stop()
    lat.sort()
    result = {
        "events": args.events,
        "events_per_s": ratio["events_per_s"],
        "baseline_events_per_s": ratio["baseline_events_per_s"],
        "ratio": ratio["ratio"],
        "rounds": ratio["rounds"],
        "latency_p50_ms": round(statistics.median(lat), 2),
        "latency_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
        "latency_samples": len(lat),
        "store": "sqlite",
    }
    print(f"hub ingest {ratio['events_per_s']:.0f} ev/s vs bare subscriber "
          f"{ratio['baseline_events_per_s']:.0f} ev/s (medians of {args.rounds} rounds), "
          f"ratio {ratio['ratio']}; "
          f"pty->row p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
