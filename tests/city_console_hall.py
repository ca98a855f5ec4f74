"""A small city for the city console's tests: three halls, each its own database on the tests' real
PostgreSQL (tests/pg_server.py), a card punch and a few ratings stored as the hub stores a box's
events; the city's own database holds the console's users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pg_server import PostgresServer

from hub.city.config import CityConfig, load_city
from hub.domain import StoredEvent
from hub.ingest import Decoder
from hub.store.store import Store
from hub.store.users import add_user
from wire.clock import FixedClock
from wire.envelope import format_ts, generate_keypair, load_private_key, load_public_key, seal

DAY = "2026-11-24"
PASSWORD = "correct horse battery"
EDGE, HUB = generate_keypair(), generate_keypair()
# Each hall's ratings at window 01 today, an hour apart (never a repeat): h01 100%, h03 67%, h02 50%.
LEVELS = {"h01": (5, 5, 5), "h02": (5, 1), "h03": (5, 5, 2)}
RANKED = ["h01", "h03", "h02"]
OFFLINE = ("h02", "entrance")  # its box reported offline (its last device_state entry)
# name -> (role, staff, halls)
USERS: dict[str, tuple[str, str | None, list[str] | None]] = {
    "insp": ("inspector", None, None), "one": ("inspector", None, ["h02"]),
    "two": ("manager", None, ["h01", "h03"]), "s1": ("staff", "S001", ["h01"])}


def at(hm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hm}:00+08:00")


@dataclass
class SmallCity:
    city: CityConfig
    accounts: Store
    stores: dict[str, Store]

    def close(self) -> None:
        for store in [self.accounts, *self.stores.values()]:
            store.close()


def _hall_toml(hall: str, url: str) -> str:
    return (f'hall = "{hall}"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "mqtt://127.0.0.1:1883"\n'
            f'[store]\nurl = "{url}"\n'
            f'[[devices]]\nid = "entrance"\nname = "入口"\npublic_key = "{EDGE.public_hex}"\n'
            '[[staff]]\nid = "S001"\nname = "张伟"\nwindow = "01"\ncards = ["0A004A7B2C"]\n'
            '[ratings]\nrepeat_seconds = 30\n[schedule]\nrequire_leave_punch = false\n')


def store_events(store: Store, hall: str, script: list[tuple[str, str, dict[str, object]]]) -> None:
    """Each (hh:mm, type, body) sealed by the hall's entrance box, decoded as the hub does, stored."""
    decoder = Decoder(hall, "hall/v1", {"entrance": load_public_key(EDGE.public_hex)}, 131072)
    key = load_private_key(EDGE.private_hex)
    items = []
    for seq, (hm, type_, body) in enumerate(script, start=1):
        raw = seal(key, hall=hall, device="entrance", seq=seq, ts=format_ts(at(hm)), type=type_,
                   body=body).raw
        item = decoder.decode(f"hall/v1/{hall}/entrance/evt/{type_}", raw, at(hm))
        assert isinstance(item, StoredEvent), item
        items.append(item)
    assert store.ingest(items) == ["stored"] * len(items)


def make_city(tmp_path: Path, pg: PostgresServer) -> SmallCity:
    for hall in LEVELS:
        (tmp_path / f"{hall}.toml").write_text(_hall_toml(hall, pg.create_database()), encoding="utf-8")
    path = tmp_path / "city.toml"
    path.write_text(f'[city]\nname = "c1"\nstore = "{pg.create_database()}"\n'
                    + "".join(f'[[halls]]\ninclude = "{hall}.toml"\n' for hall in LEVELS), encoding="utf-8")
    city = load_city(path)
    clock = FixedClock(at("18:00"))
    stores = {}
    for hall in city.halls:
        store = stores[hall.hall] = Store(hall.store.url, clock, device_keys=hall.device_keys())
        ratings = [(f"{9 + i:02d}:30", "rating", {"window": "01", "level": level, "keys": 5, "invited": False,
                                                  "invite": None, "ticket": None})
                   for i, level in enumerate(LEVELS[hall.hall])]
        punch = ("08:20", "clock", {"method": "card", "card": "0A004A7B2C"})
        store_events(store, hall.hall, [punch, *ratings])
        store.append("device_state", {"device": "entrance", "online": (hall.hall, "entrance") != OFFLINE},
                     ref="entrance")
    accounts = Store(city.city.store, clock)
    for name, (role, staff, halls) in USERS.items():
        add_user(accounts, name, role, staff, PASSWORD, "test", halls)  # type: ignore[arg-type]
    return SmallCity(city, accounts, stores)
