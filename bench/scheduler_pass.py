"""One scheduler pass of a 60-window hall with a year of history in a SQLite store, timed two ways
in the same run: the overdue index (hub/overdue_index.py, the scheduler's way) against the 60-day
replay it replaced (the baseline). Imported by bench/rules.py; run alone with
`.venv/bin/python bench/scheduler_pass.py [--seed N] [--days N]`.

History: 60 windows, 120 staff; each workday two card punches per staff member and
RATINGS_PER_WINDOW_DAY signed rating events per window (levels weighted as in bench/rules.py, about
7% bad: each opens a follow-up case), 95% of the cases closed the next morning (`case_closed`
entries), the others left open (they fall overdue). Events are sealed with a device key and stored
as the hub stores them; the store is opened without device keys (no signature check on reading, as
in the tests), which favours the baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub import config as hub_config  # noqa: E402
from hub.domain import StoredEvent  # noqa: E402
from hub.hall import CLOSURE_KIND, day_findings  # noqa: E402
from hub.rules.attendance import is_workday  # noqa: E402
from hub.rules.cases import case_id  # noqa: E402
from hub.scheduler import HallScheduler  # noqa: E402
from hub.store.store import Store  # noqa: E402
from wire.clock import FixedClock  # noqa: E402
from wire.envelope import format_ts, generate_keypair, load_private_key, seal  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
WINDOWS, STAFF_PER_WINDOW = 60, 2
RATINGS_PER_WINDOW_DAY = 10
LEVEL_WEIGHTS = (4, 3, 10, 20, 63)


def build(
    folder: Path, seed: int, days: int
) -> tuple[hub_config.HubConfig, Store, FixedClock, dict[str, int]]:
    rng = random.Random(seed)
    edge = generate_keypair()
    staff = "".join(
        f'[[staff]]\nid = "S{w * 2 + k + 1:03d}"\nname = "员工{w * 2 + k + 1}"\nwindow = "{w + 1:02d}"\n'
        f'cards = ["{w * 2 + k + 1:010d}"]\n'
        for w in range(WINDOWS)
        for k in range(STAFF_PER_WINDOW)
    )
    path = folder / "hub.toml"
    path.write_text(
        f'hall = "h1"\n[store]\nurl = "sqlite:///hub.db"\n[[devices]]\nid = "entrance"\n'
        f'public_key = "{edge.public_hex}"\n{staff}[schedule]\nrequire_leave_punch = false\n',
        encoding="utf-8",
    )
    config = hub_config.load(path)
    first = date(2025, 12, 1)
    ticking = FixedClock(datetime.combine(first, clock(7, 0), tzinfo=TZ))
    store = Store(config.store.url, ticking)
    key = load_private_key(edge.private_hex)
    seq, counts = 0, {"events": 0, "cases": 0, "closures": 0}
    open_cases: list[str] = []
    for n in range(days):
        day = first + timedelta(days=n)
        if not is_workday(day, config.schedule.to_domain()):
            continue
        bodies: list[tuple[datetime, str, dict[str, object]]] = []
        for member in config.staff:
            for hour, minute in ((8, 20), (14, 20)):
                moment = datetime.combine(day, clock(hour, minute), tzinfo=TZ) + timedelta(
                    seconds=rng.uniform(0, 500)
                )
                bodies.append((moment, "clock", {"method": "card", "card": member.cards[0]}))
        for w in range(WINDOWS):
            for _ in range(RATINGS_PER_WINDOW_DAY):
                moment = datetime.combine(day, clock(9, 0), tzinfo=TZ) + timedelta(
                    seconds=rng.uniform(0, 28000)
                )
                level = rng.choices(range(1, 6), LEVEL_WEIGHTS)[0]
                bodies.append(
                    (
                        moment,
                        "rating",
                        {
                            "window": f"{w + 1:02d}",
                            "level": level,
                            "keys": 5,
                            "invited": False,
                            "invite": None,
                            "ticket": None,
                        },
                    )
                )
        ticking.advance((datetime.combine(day, clock(18, 0), tzinfo=TZ) - ticking.now()).total_seconds())
        items = []
        for moment, type_, body in sorted(bodies, key=lambda b: b[0]):
            seq += 1
            env = seal(
                key, hall="h1", device="entrance", seq=seq, ts=format_ts(moment), type=type_, body=body
            )
            items.append(
                StoredEvent(
                    env.id,
                    env.hall,
                    env.device,
                    env.seq,
                    env.type,
                    env.timestamp,
                    ticking.now(),
                    env.body,
                    env.raw,
                )
            )
            if type_ == "rating" and int(body["level"]) <= 2:  # type: ignore[call-overload]
                open_cases.append(case_id(env.id))
        store.ingest(items)
        counts["events"] += len(items)
        counts["cases"] += len(open_cases)
        ticking.advance(3600)
        for case in open_cases:
            if rng.random() < 0.95:
                store.append(
                    CLOSURE_KIND,
                    {
                        "case": case,
                        "closed_at": format_ts(ticking.now()),
                        "closed_by": "主任",
                        "result": "已回访",
                        "note": "",
                    },
                    ref=case,
                )
                counts["closures"] += 1
        open_cases = []
    return config, store, ticking, counts


def measure(seed: int, days: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        config, store, ticking, counts = build(Path(folder), seed, days)
        built = time.perf_counter() - started
        ticking.advance(14 * 3600)  # the next morning, 09:00 or so
        now = ticking.now()
        today = now.astimezone(TZ).date()
        scheduler = HallScheduler(config, store, ticking, devices_seen=dict)
        started = time.perf_counter()
        first = scheduler.findings(today, now)  # builds the index
        index_build = time.perf_counter() - started
        passes = []
        for _ in range(5):
            ticking.advance(30)
            started = time.perf_counter()
            found = scheduler.findings(today, ticking.now())
            passes.append(time.perf_counter() - started)
        started = time.perf_counter()
        baseline = day_findings(config, store, today, ticking.now())
        replay = time.perf_counter() - started
        assert sorted(map(repr, found)) == sorted(map(repr, baseline)), "index and replay disagree"
        store.close()
    steady = sorted(passes)[len(passes) // 2]
    return {
        "days": days,
        **counts,
        "build_s": round(built, 1),
        "findings": len(first),
        "index_build_ms": round(index_build * 1000, 1),
        "pass_ms": round(steady * 1000, 1),
        "replay_pass_ms": round(replay * 1000, 1),
        "speedup": round(replay / steady, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    print(json.dumps(measure(args.seed, args.days), ensure_ascii=False))


if __name__ == "__main__":
    main()
