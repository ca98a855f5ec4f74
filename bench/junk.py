"""Junk benchmark: what a flood of junk costs the hub. Mosquitto and the hub (SQLite) as in
bench/ingest.py; one publisher sends N junk messages (random bytes, unsigned JSON, envelopes with a
bad signature, oversize ones) over a few topics, then one good signed event as a sentinel: when it is
stored, the hub has taken everything before it. The hub is stopped (SIGTERM, so the open reject
windows are written to the log) and the figures printed: database growth, messages per second, and
every junk message accounted for (quarantine rows plus the repeats counted in the log).

Run: .venv/bin/python bench/junk.py [--messages N] [--topics T]. The last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoneinfo import ZoneInfo  # noqa: E402

from tests.hall_harness import Hall, StaffSpec, wait_for  # noqa: E402
from tests.mqtt_broker import Mosquitto  # noqa: E402
from wire.clock import SystemClock  # noqa: E402
from wire.envelope import format_ts, generate_keypair, load_private_key, seal  # noqa: E402

MAX_MESSAGE_BYTES = 131072  # the hub's default [ingest] max_message_bytes
MIX = (("random", 0.30), ("unsigned", 0.30), ("bad_signature", 0.38), ("oversize", 0.02))


def junk(count: int, topics: int, seed: int = 14) -> list[tuple[str, bytes]]:
    """`count` junk messages in the MIX, on `topics` topics in turn (the first two: the registered
    device's clock and state topics; the others unknown devices)."""
    rng = random.Random(seed)
    forger = load_private_key(generate_keypair().private_hex)
    clock = SystemClock(ZoneInfo("Asia/Shanghai"))
    oversize = os.urandom(16) * ((MAX_MESSAGE_BYTES + 1024) // 16)  # one object, sent many times
    names = ["hall/v1/h1/bench/evt/clock", "hall/v1/h1/bench/state"]
    names += [f"hall/v1/h1/dev{n}/evt/clock" for n in range(max(0, topics - len(names)))]
    kinds = rng.choices([kind for kind, _ in MIX], [weight for _, weight in MIX], k=count)
    messages = []
    for n, kind in enumerate(kinds):
        if kind == "random":
            payload = os.urandom(rng.randrange(1, 400))
        elif kind == "unsigned":
            payload = json.dumps({"v": 1, "id": f"j{n}", "hall": "h1", "device": "bench", "seq": n + 1,
                                  "type": "clock", "body": {"method": "card", "card": "0A004A7B2C"}}
                                 ).encode()
        elif kind == "bad_signature":
            payload = seal(forger, hall="h1", device="bench", seq=n + 1, ts=format_ts(clock.now()),
                           type="clock", body={"method": "card", "card": "0A004A7B2C"}).raw
        else:
            payload = oversize
        messages.append((names[n % len(names)], payload))
    return messages


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


def scalar(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0] or 0)


def publish(port: int, messages: list[tuple[str, bytes]], sentinel: tuple[str, bytes]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-junk")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    everything = [*messages, sentinel]
    for start in range(0, len(everything), 20_000):  # QoS 1 message ids wrap at 65535
        infos = [client.publish(topic, payload, qos=1) for topic, payload in everything[start:start + 20_000]]
        for info in infos:
            info.wait_for_publish(300)
    client.disconnect()
    client.loop_stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--topics", type=int, default=20, help="distinct topics the junk comes on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hall-junk-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        bench_keys = generate_keypair()
        hall = Hall(workdir / "hall", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")],
                    resend_seconds=30.0, extra_devices={"bench": bench_keys.public_hex})
        messages = junk(args.messages, args.topics)
        key = load_private_key(bench_keys.private_hex)
        sentinel = ("hall/v1/h1/bench/evt/clock",
                    seal(key, hall="h1", device="bench", seq=1, type="clock",
                         ts=format_ts(SystemClock(ZoneInfo("Asia/Shanghai")).now()),
                         body={"method": "card", "card": "0A004A7B2C"}).raw)
        try:
            hall.start_hub()
            wait_for(lambda: (hall.workdir / "hub.log").exists()
                     and "ready:" in (hall.workdir / "hub.log").read_text(errors="replace"), 30, "hub up")
            time.sleep(1.0)
            baseline = db_bytes(hall.hub_db)
            start = time.perf_counter()
            publish(broker.port, messages, sentinel)
            wait_for(lambda: scalar(hall.hub_db, "SELECT count(*) FROM events") == 1, 600, "sentinel")
            seconds = time.perf_counter() - start
        finally:
            hall.kill_hub(signal.SIGTERM)
            broker.stop()
        growth = db_bytes(hall.hub_db) - baseline
        rows = scalar(hall.hub_db, "SELECT count(*) FROM quarantine")
        with sqlite3.connect(hall.hub_db) as conn:
            repeats = sum(json.loads(data).get("repeats", 0) for (data,) in conn.execute(
                "SELECT data FROM audit WHERE kind = 'quarantine'"))
            reasons = dict(conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall())
    result = {
        "messages": args.messages,
        "topics": args.topics,
        "messages_per_s": round(args.messages / seconds, 1),
        "empty_db_mb": round(baseline / 1e6, 3),
        "db_growth_mb": round(growth / 1e6, 3),
        "quarantine_rows": rows,
        "repeats_counted": repeats,
        "accounted": rows + repeats,
        "rows_by_reason": reasons,
        "store": "sqlite",
    }
    print(f"{args.messages} junk messages on {args.topics} topic(s): {result['messages_per_s']:.0f}/s, "
          f"database {result['empty_db_mb']} MB empty, grew {result['db_growth_mb']} MB")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
