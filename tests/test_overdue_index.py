"""The scheduler's overdue index finds exactly what the 60-day replay finds: generated hall weeks in
a real SQLite store (signed events, closures in time and late, an accepted appeal, complaints, an
event arriving days late from an offline box), compared pass after pass as the log grows."""

from __future__ import annotations

import contextlib
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hub import config as hub_config
from hub.appeals import appeal_rating, decide_appeal
from hub.complaints import NewComplaint, add_complaint, close_complaint
from hub.domain import StoredEvent
from hub.hall import CLOSURE_KIND, cases, replayed_overdue
from hub.ingest import Decoder
from hub.overdue_index import OverdueIndex
from hub.rules.attendance import is_workday
from hub.scheduler import HallScheduler
from hub.store.store import Store
from wire.clock import FixedClock
from wire.envelope import format_ts, generate_keypair, load_private_key, load_public_key, seal

TZ = ZoneInfo("Asia/Shanghai")
EDGE = generate_keypair()
CARDS = {"S001": "0A004A7B2C", "S002": "67003B51C6"}


class Hall:
    def __init__(self, tmp_path: Path) -> None:
        path = tmp_path / "hub.toml"
        path.write_text(
            f'hall = "h1"\n[store]\nurl = "sqlite:///hub.db"\n'
            f'[[devices]]\nid = "entrance"\npublic_key = "{EDGE.public_hex}"\n'
            '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ncards = ["0A004A7B2C"]\n'
            '[[staff]]\nid = "S002"\nname = "王芳"\nwindow = "02"\ncards = ["67003B51C6"]\n'
            '[cases]\ndeadline_days = 2\n[schedule]\nrequire_leave_punch = false\n', encoding="utf-8")
        self.config = hub_config.load(path)
        self.clock = FixedClock(datetime(2026, 11, 2, 7, 0, tzinfo=TZ))
        self.store = Store(self.config.store.url, self.clock)
        self.decoder = Decoder("h1", "hall/v1", {"entrance": load_public_key(EDGE.public_hex)}, 131072)
        self.key = load_private_key(EDGE.private_hex)
        self.seq = 0

    def at(self, moment: datetime) -> None:
        self.clock.advance((moment - self.clock.now()).total_seconds())

    def ingest(self, events: list[tuple[datetime, str, dict[str, object]]]) -> list[str]:
        items = []
        for moment, type_, body in sorted(events, key=lambda e: e[0]):
            self.seq += 1
            raw = seal(self.key, hall="h1", device="entrance", seq=self.seq, ts=format_ts(moment), type=type_,
                       body=body).raw
            item = self.decoder.decode(f"hall/v1/h1/entrance/evt/{type_}", raw, self.clock.now())
            assert isinstance(item, StoredEvent), item
            items.append(item)
        assert self.store.ingest(items) == ["stored"] * len(items)
        return [i.id for i in items if i.type == "rating"]


def day_events(rng: random.Random, day: date) -> list[tuple[datetime, str, dict[str, object]]]:
    def at(h: int, m: int, s: float = 0.0) -> datetime:
        return datetime.combine(day, time(h, m), tzinfo=TZ) + timedelta(seconds=s)

    events: list[tuple[datetime, str, dict[str, object]]] = []
    for staff, card in CARDS.items():
        if rng.random() < 0.8 or staff == "S001":
            events.append((at(8, 20, rng.uniform(0, 600)), "clock", {"method": "card", "card": card}))
    for window in ("01", "02"):
        for _ in range(rng.randint(2, 6)):
            level = rng.choices(range(1, 6), (3, 3, 2, 2, 4))[0]
            events.append((at(9, 0, rng.uniform(0, 10000)), "rating",
                           {"window": window, "level": level, "keys": 5, "invited": False, "invite": None,
                            "ticket": None}))
    return events


def same(index: OverdueIndex, hall: Hall, now: datetime) -> int:
    index.refresh(now)
    found = index.findings(now)
    assert found == replayed_overdue(hall.config, hall.store, now)
    return len(found)


def test_index_matches_the_replay_pass_after_pass(tmp_path: Path) -> None:
    rng = random.Random(8)
    hall = Hall(tmp_path)
    index = OverdueIndex(hall.config, hall.store)
    late_punch: tuple[datetime, str, dict[str, object]] | None = None
    compared = overdue_seen = 0
    day = date(2026, 11, 2)
    while day < date(2026, 12, 12):
        if is_workday(day, hall.config.schedule.to_domain()):
            events = day_events(rng, day)
            if day == date(2026, 11, 10):  # S002's punch of the 10th reaches the hub on the 13th
                late_punch = (datetime.combine(day, time(8, 25), tzinfo=TZ), "clock",
                              {"method": "card", "card": CARDS["S002"]})
                events = [e for e in events if e[2].get("card") != CARDS["S002"]]
            hall.at(datetime.combine(day, time(18, 0), tzinfo=TZ))
            hall.ingest(events)
            if day == date(2026, 11, 13) and late_punch is not None:
                hall.ingest([late_punch])
            hall.at(datetime.combine(day, time(19, 0), tzinfo=TZ))
            now = hall.clock.now()
            for case in cases(hall.config, hall.store, day - timedelta(days=10), day, now):
                if case.closed_at is None and rng.random() < 0.3:  # some in time, some late
                    hall.store.append(CLOSURE_KIND, {"case": case.id, "closed_at": format_ts(now),
                                                     "closed_by": "主任", "result": "已回访", "note": ""},
                                      ref=case.id)
            if rng.random() < 0.3:
                add_complaint(hall.config, hall.store, NewComplaint(
                    rng.choice(("oral", "written")), rng.choice(("01", "02")), "前台", "态度不好"))
            hall.at(datetime.combine(day, time(20, 0), tzinfo=TZ))
            open_ids = [str(e.data["id"]) for e in hall.store.entries("complaint_add")]
            if open_ids and rng.random() < 0.3:
                with contextlib.suppress(ValueError):  # already closed: refused, as at the desk
                    close_complaint(hall.store, rng.choice(open_ids), "主任", "已答复")
            if day == date(2026, 11, 16):  # an appeal of a bad rating accepted: its case is closed
                rated = next(e for e in hall.store.events(type="rating") if int(e.body["level"]) <= 2)
                appeal_rating(hall.store, rated.id, "S001", "误按")
                decide_appeal(hall.store, rated.id, "主任", True, "监控核实")
            for hour in (20, 23):
                compared += 1
                overdue_seen += same(index, hall, datetime.combine(day, time(hour, 30), tzinfo=TZ))
        day += timedelta(days=1)
    assert compared > 40 and overdue_seen > 50  # the comparison saw plenty of overdue findings
    kinds = {f.kind for f in index.findings(hall.clock.now())}
    assert kinds == {"case_overdue", "complaint_overdue"}
    hall.store.close()


def test_the_scheduler_records_what_the_replay_finds(tmp_path: Path) -> None:
    hall = Hall(tmp_path)
    rng = random.Random(3)
    for n in range(8):
        day = date(2026, 11, 2) + timedelta(days=n)
        if is_workday(day, hall.config.schedule.to_domain()):
            hall.at(datetime.combine(day, time(18, 0), tzinfo=TZ))
            hall.ingest(day_events(rng, day))
    hall.at(datetime.combine(date(2026, 11, 12), time(9, 0), tzinfo=TZ))
    now = hall.clock.now()
    scheduler = HallScheduler(hall.config, hall.store, hall.clock, devices_seen=dict)
    expected = replayed_overdue(hall.config, hall.store, now)
    found = scheduler.findings(now.date(), now)
    assert expected and all(f in found for f in expected)
    hall.store.close()
