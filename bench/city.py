"""City benchmark: a real Mosquitto and PostgreSQL, 3 city workers (`hall-hub run --config
city.toml`, real processes), 30 simulated halls x 20 devices publishing signed events at about
1,000 events/s in all for 60 s (tests/city_harness.py: each device keeps its events until the hub
commits them, and resends); one worker is killed -9 at 20 s and a new one started at 40 s. Then
every event must be stored once, every hall's log must verify.

First, the single-hall ingest ratio (bench/ingest.py's measure: a hub against a bare paho subscriber
on the same broker in the same run), on SQLite and on PostgreSQL.

Run: .venv/bin/python bench/city.py [--halls 30] [--devices 20] [--rate 1000] [--seconds 60]
[--workers 3] [--no-single]. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from city_harness import City, wait_until  # noqa: E402
from ingest import count_rows, ratio_rounds  # noqa: E402
from mqtt_broker import Mosquitto  # noqa: E402
from pg_server import PostgresServer  # noqa: E402

from tests.hall_harness import Hall, StaffSpec  # noqa: E402
from wire.envelope import generate_keypair  # noqa: E402


def single_hall_ratio(workdir: Path, pg: PostgresServer | None, events: int, rounds: int) -> dict[str, Any]:
    """One hub (`hall-hub run --config hub.toml`) against a bare subscriber, as bench/ingest.py: the
    median of `rounds` alternating rounds, each hub on a fresh store."""
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()

    def make_hall(index: int) -> tuple[Hall, str, Callable[[], int]]:
        keys = generate_keypair()
        hall = Hall(workdir / f"hall{index}", broker.url, [StaffSpec("S001", "张伟", "01", "0A004A7B2C")],
                    resend_seconds=30.0, extra_devices={"bench": keys.public_hex})
        store_url = None if pg is None else pg.create_database()
        if store_url is not None:
            hall.write_hub_config(store_url)

        reader: list[psycopg.Connection[tuple[int]]] = []  # one connection for the polls (not 100/s)

        def count() -> int:
            if store_url is None:
                return count_rows(hall.hub_db)
            try:
                if not reader:
                    reader.append(psycopg.connect(store_url, autocommit=True))
                row = reader[0].execute("SELECT count(*) FROM events").fetchone()
            except psycopg.Error:  # the hub has not made the table yet
                return 0
            return int(row[0]) if row else 0
        return hall, keys.private_hex, count

    try:
        return ratio_rounds(make_hall, broker.port, events, rounds)
    finally:
        broker.stop()


def city_run(workdir: Path, args: argparse.Namespace) -> dict[str, object]:
    pg = PostgresServer.start(max_connections=40 * args.halls + 50)
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    city = City(workdir / "city", pg, broker, halls=args.halls, devices=args.devices,
                resend_seconds=5.0, balance_seconds=1.0)
    try:
        names = [chr(ord("a") + i) for i in range(args.workers)]
        for name in names:
            city.start_worker(name)
        wait_until(lambda: all(city.owners().values()), 180, "every hall owned", city)
        wait_until(lambda: all(city.ready_count(hall) for hall in city.halls), 180, "every hall ready", city)
        wait_until(lambda: len(set(city.owners().values())) == args.workers, 180, "balanced", city)
        city.start_sims()
        per_device = max(1, round(args.rate * args.seconds / (args.halls * args.devices)))
        burst = threading.Thread(target=city.burst, args=(per_device, args.rate), name="burst")
        started = time.monotonic()
        burst.start()
        time.sleep(max(0.0, started + args.seconds / 3 - time.monotonic()))
        victim = city.workers[names[0]].pid
        orphans = city.halls_of(names[0])
        killed = {holder.pid for h in orphans if (holder := city.holders()[h]) is not None}
        city.kill_worker(names[0], signal.SIGKILL)
        killed_at = time.monotonic()

        def owned_again() -> bool:
            owners = city.owners()
            return all(owners[h] not in (None, *killed) for h in orphans)

        wait_until(owned_again, 120, "the orphaned halls owned again", city)
        takeover = time.monotonic() - killed_at
        time.sleep(max(0.0, started + 2 * args.seconds / 3 - time.monotonic()))
        city.start_worker("new")
        burst.join()
        published_s = time.monotonic() - started
        settled = city.settle(300)
        tally = city.tally()
        total = args.halls * args.devices * per_device
    finally:
        city.stop()
        broker.stop()
        pg.stop()
    return {"halls": args.halls, "workers": args.workers, "devices_per_hall": args.devices,
            "events": tally.events, "issued": total, "lost": tally.lost, "duplicated": tally.duplicated,
            "verify_failed_halls": len(tally.verify_failed_halls), "seqs_exact": tally.seqs_exact,
            "settled": settled, "takeover_s": round(takeover, 2), "orphaned_halls": len(orphans),
            "killed_worker_pid": victim, "events_per_s": round(total / published_s, 1),
            "resent": sum(sim.resent for sim in city.sims.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halls", type=int, default=30)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s published in all")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--single-events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="single-hall rounds; the median ratio")
    parser.add_argument("--no-single", action="store_true", help="skip the single-hall ratios")
    args = parser.parse_args()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="hall-city-") as tmp:
        workdir = Path(tmp)
        if not args.no_single:
            sqlite = single_hall_ratio(workdir / "single-sqlite", None, args.single_events, args.rounds)
            pg = PostgresServer.start()
            try:
                postgres = single_hall_ratio(workdir / "single-pg", pg, args.single_events, args.rounds)
            finally:
                pg.stop()
            result["ingest_ratio_single_hall"] = sqlite["ratio"]
            result["single_hall_sqlite"] = sqlite
            result["single_hall_postgresql"] = postgres
            print(f"single hall: SQLite {sqlite}, PostgreSQL {postgres}")
        result = {**city_run(workdir, args), **result}
    print(f"{result['halls']} halls on {result['workers']} workers: {result['events']} events "
          f"({result['events_per_s']} events/s published), lost {result['lost']}, duplicated "
          f"{result['duplicated']}, halls failing verify {result['verify_failed_halls']}, takeover "
          f"{result['takeover_s']} s for {result['orphaned_halls']} halls")
    print(json.dumps(result))
    ok = (result["lost"] == 0 and result["duplicated"] == 0 and result["verify_failed_halls"] == 0
          and not math.isnan(float(str(result["takeover_s"]))))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
