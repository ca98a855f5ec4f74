"""City benchmark: a real Mosquitto and PostgreSQL, 3 city workers (`hall-hub run --config
city.toml`, real processes), 30 simulated halls x 20 devices publishing signed events at about
1,000 events/s in all for 60 s; one worker is killed -9 at 20 s and a new one started at 40 s. Then
every event must be stored once, every hall's log must verify.

The halls are simulated in `--sim-processes` processes of their own (tests/city_sim_process.py,
driven through tests/city_harness.py), each with a share of the halls and of the rate, one paho
client per hall; each device keeps its events until the hub commits them, and resends. Events are
signed when they are published (nothing is signed ahead: each event's ts is when it was sent).
`events_per_s` is the rate published; `committed_events_per_s` the events stored over the time
from the burst's start until the last was committed (`published_s` + `settle_s`). The CPU seconds
each role used during the burst (workers, sim processes, PostgreSQL with its backends, Mosquitto,
this process; the whole machine's busy and idle) are read from /proc and reported in `cpu_s`.

First, the single-hall ingest ratio (bench/ingest.py's measure: a hub against a bare paho subscriber
on the same broker in the same run), on SQLite and on PostgreSQL.

Run: .venv/bin/python bench/city.py [--halls 30] [--devices 20] [--rate 1000] [--seconds 60]
[--workers 3] [--sim-processes 3] [--no-single] [--keep DIR]. The last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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

from city_harness import City, WorkersNotStopped, wait_until  # noqa: E402
from ingest import RowCount, ratio_rounds  # noqa: E402
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

        if store_url is None:
            return hall, keys.private_hex, RowCount(hall.hub_db)
        reader: list[psycopg.Connection[tuple[int]]] = []  # one connection for the polls (not 100/s)

        def count() -> int:
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


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat from its third field (state) on; [] when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []


def cpu_seconds(pid: int | None, reaped: bool = False) -> float:
    """User and system CPU seconds of a process so far; with `reaped`, and of the children it has
    waited for (the postmaster's ended backends)."""
    fields = _stat(pid) if pid is not None else []
    if not fields:
        return 0.0
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return used / TICK


def children(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(pid)]]


def cpu_by_role(city: City, postmaster: int, broker: Mosquitto) -> dict[str, float]:
    """CPU seconds so far of each role's live processes (a worker's with its halls' decoder processes,
    if any), and the machine's busy and idle seconds."""
    machine = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = machine[3] + machine[4]  # idle, iowait
    workers = [process.pid for process in city.workers.values()]
    return {"workers": sum(cpu_seconds(pid) + sum(map(cpu_seconds, children(pid))) for pid in workers),
            "sims": sum(cpu_seconds(process.pid) for process in city.sim_processes),
            "postgresql": cpu_seconds(postmaster, reaped=True) + sum(map(cpu_seconds, children(postmaster))),
            "mosquitto": cpu_seconds(broker.process.pid if broker.process else None),
            "bench": cpu_seconds(os.getpid()),
            "machine_busy": (sum(machine) - idle) / TICK, "machine_idle": idle / TICK}


def city_run(workdir: Path, args: argparse.Namespace) -> dict[str, object]:
    pg = PostgresServer.start(max_connections=40 * args.halls + 50)
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    city = City(workdir / "city", pg, broker, halls=args.halls, devices=args.devices,
                resend_seconds=5.0, balance_seconds=1.0, sim_processes=args.sim_processes)
    try:
        names = [chr(ord("a") + i) for i in range(args.workers)]
        for name in names:
            city.start_worker(name)
        wait_until(lambda: all(city.owners().values()), 180, "every hall owned", city)
        wait_until(lambda: all(city.ready_count(hall) for hall in city.halls), 180, "every hall ready", city)
        wait_until(lambda: len(set(city.owners().values())) == args.workers, 180, "balanced", city)
        city.start_sims()  # returns once every sim process has said it is ready
        per_device = max(1, round(args.rate * args.seconds / (args.halls * args.devices)))
        published: list[float] = []
        burst = threading.Thread(target=lambda: published.append(city.burst(per_device, args.rate)),
                                 name="burst")
        cpu_before = cpu_by_role(city, postmaster, broker)
        load_before = round(os.getloadavg()[0], 2)
        started = time.monotonic()
        burst.start()
        time.sleep(max(0.0, started + args.seconds / 3 - time.monotonic()))
        victim = city.workers[names[0]].pid
        orphans = city.halls_of(names[0])
        killed = {holder.pid for h in orphans if (holder := city.holders()[h]) is not None}
        victim_cpu = cpu_seconds(victim)
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
        if not published:
            raise RuntimeError("the burst did not finish (its error is printed above)")
        cpu_after = cpu_by_role(city, postmaster, broker)
        resent_in_burst = city.resent()
        settle_started = time.monotonic()
        settled = city.settle(300)
        settle_s = time.monotonic() - settle_started
        resent = city.resent()
        tally = city.tally()
        total = args.halls * args.devices * per_device
    finally:
        try:
            city.stop()
        except WorkersNotStopped as exc:  # reported with the figures: the run itself is complete
            stuck = exc.names
        else:
            stuck = []
        finally:
            broker.stop()
            pg.stop()
    cpu = {role: round(cpu_after[role] - cpu_before[role], 1) for role in cpu_before}
    cpu["workers"] = round(cpu["workers"] + victim_cpu, 1)  # the killed worker's, to its end
    roles = ("workers", "sims", "postgresql", "mosquitto", "bench")
    cpu["other"] = round(cpu["machine_busy"] - sum(cpu[role] for role in roles), 1)  # not this run's
    return {"halls": args.halls, "workers": args.workers, "devices_per_hall": args.devices,
            "sim_processes": len(city.sim_processes),
            "events": tally.events, "issued": total, "lost": tally.lost, "duplicated": tally.duplicated,
            "verify_failed_halls": len(tally.verify_failed_halls), "seqs_exact": tally.seqs_exact,
            "settled": settled, "settle_s": round(settle_s, 1), "takeover_s": round(takeover, 2),
            "orphaned_halls": len(orphans), "killed_worker_pid": victim,
            "events_per_s": round(total / published[0], 1), "published_s": round(published[0], 1),
            "committed_events_per_s": round(tally.events / (published[0] + settle_s), 1),
            "resent": resent, "resent_in_burst": resent_in_burst, "cpu_s": cpu,
            "load_average_1m": [load_before, round(os.getloadavg()[0], 2)],
            "workers_killed_at_stop": stuck}


def run(workdir: Path, args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {}
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
    return {**city_run(workdir, args), **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halls", type=int, default=30)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s published in all")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--sim-processes", type=int, default=3, help="processes playing the halls")
    parser.add_argument("--single-events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="single-hall rounds; the median ratio")
    parser.add_argument("--no-single", action="store_true", help="skip the single-hall ratios")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (the processes' logs)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, args)
    else:
        with tempfile.TemporaryDirectory(prefix="hall-city-") as tmp:
            result = run(Path(tmp), args)
    print(f"{result['halls']} halls on {result['workers']} workers: {result['events']} events "
          f"({result['events_per_s']} events/s published), lost {result['lost']}, duplicated "
          f"{result['duplicated']}, halls failing verify {result['verify_failed_halls']}, takeover "
          f"{result['takeover_s']} s for {result['orphaned_halls']} halls; CPU seconds during the "
          f"{result['published_s']} s burst: {result['cpu_s']}")
    print(json.dumps(result))
    ok = (result["lost"] == 0 and result["duplicated"] == 0 and result["verify_failed_halls"] == 0
          and not math.isnan(float(str(result["takeover_s"]))))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
