"""A city of halls (hub/city/): its config, the store's fence, and end to end with two workers as real
processes on a real PostgreSQL and Mosquitto: a worker killed -9 mid-burst, PostgreSQL restarted,
the broker restarted. In every case each device's stored seqs are exactly 1..N."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from city_harness import City, wait_until
from mqtt_broker import Mosquitto
from pg_server import PostgresServer

from hub.city.config import hall_ids, is_city_config, load_city
from hub.city.locks import LockSession
from hub.store.store import Store, StoreFenced
from wire.clock import FixedClock
from wire.configfile import ConfigError
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://hall@127.0.0.1:5432"
CLOCK = FixedClock(datetime.fromisoformat("2026-11-24T08:00:00+08:00"))


def _hall_toml(hall: str, store: str, broker: str = "mqtt://127.0.0.1:1883") -> str:
    return (f'hall = "{hall}"\nprivate_key = "{generate_keypair().private_hex}"\n'
            f'[broker]\nurl = "{broker}"\n[store]\nurl = "{store}"\n')


def _city(tmp_path: Path, halls: str, city: str = f'[city]\nname = "c1"\nstore = "{PG}/city"\n') -> Path:
    path = tmp_path / "city.toml"
    path.write_text(city + halls, encoding="utf-8")
    return path


# --- config ---------------------------------------------------------------------------------


def test_city_config_takes_included_and_inline_halls(tmp_path: Path) -> None:
    (tmp_path / "halls").mkdir()
    (tmp_path / "halls" / "h01.toml").write_text(_hall_toml("h01", f"{PG}/h01"), encoding="utf-8")
    inline = _hall_toml("h02", f"{PG}/city?options=-csearch_path%3Dh02")
    inline = inline.replace("[broker]", "[halls.broker]").replace("[store]", "[halls.store]")
    path = _city(tmp_path, '[[halls]]\ninclude = "halls/h01.toml"\n[[halls]]\n' + inline)
    assert is_city_config(path)
    assert hall_ids(path) == ["h01", "h02"]
    assert load_city(path).hall("h02").store.url.endswith("csearch_path%3Dh02")


def test_city_config_errors_name_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "h01.toml").write_text(_hall_toml("h01", f"{PG}/h01") + "[schedule]\ngrace = 5\n",
                                       encoding="utf-8")
    halls = ('[[halls]]\ninclude = "h01.toml"\n'
             f'[[halls]]\nhall = "h02"\nprivate_key = "{"ab" * 32}"\n[halls.store]\nurl = "sqlite:///x.db"\n'
             f'[[halls]]\nhall = "h02"\nprivate_key = "{"ab" * 32}"\n[halls.store]\nurl = "{PG}/h02"\n'
             '[halls.broker]\nurl = "embedded"\n'
             f'[[halls]]\nhall = "h04"\nprivate_key = "{"ab" * 32}"\n[halls.store]\nurl = "{PG}/h02"\n'
             '[halls.broker]\nurl = "mqtt://broker:1883"\nlisten = 5\n')
    with pytest.raises(ConfigError) as caught:
        load_city(_city(tmp_path, halls, f'[city]\nname = "c1"\nstore = "{PG}/city"\nbalance = 1\n'))
    problems = "\n".join(caught.value.problems)
    assert f"{tmp_path / 'h01.toml'}: schedule.grace: Extra inputs are not permitted" in problems
    assert f"{tmp_path / 'city.toml'}: city.balance: Extra inputs" in problems
    assert f"{tmp_path / 'city.toml'}: halls[3].broker.listen: Input should be a valid string" in problems
    assert "halls[1].store.url: a city's halls are stored in PostgreSQL" in problems
    assert "halls[2].hall: 'h02' is also halls[1]" in problems
    assert 'halls[2].broker.url: "embedded" cannot move between workers' in problems


def test_city_config_refuses_a_shared_store_and_another_server(tmp_path: Path) -> None:
    halls = "".join(f'[[halls]]\nhall = "{h}"\nprivate_key = "{"ab" * 32}"\n[halls.store]\nurl = "{url}"\n'
                    '[halls.broker]\nurl = "mqtt://broker:1883"\n'
                    for h, url in (("h01", f"{PG}/h01"), ("h02", f"{PG}/h01"),
                                   ("h03", "postgresql://hall@other:5432/h03")))
    with pytest.raises(ConfigError) as caught:
        load_city(_city(tmp_path, halls))
    problems = "\n".join(caught.value.problems)
    assert "halls[1].store.url: the store of hall 'h01' too" in problems
    assert "halls[2].store.url: must be on the server of [city] store (127.0.0.1:5432)" in problems


def test_check_reads_a_city_and_other_commands_refuse_it(tmp_path: Path) -> None:
    path = _city(tmp_path, "[[halls]]\n" + _hall_toml("h01", f"{PG}/h01").replace(
        "[broker]", "[halls.broker]").replace("[store]", "[halls.store]"))
    check = subprocess.run([sys.executable, "-m", "hub.cli", "check", "--config", str(path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "ok, city c1: 1 hall(s) (h01)" in check.stdout
    show = subprocess.run([sys.executable, "-m", "hub.cli", "log", "show", "--config", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert show.returncode == 2
    assert "is a city config" in show.stderr


# --- the fence --------------------------------------------------------------------------------


def test_a_fenced_store_refuses_every_write(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}", CLOCK)

    def refuse(conn: object) -> None:
        raise StoreFenced("not the owner")

    store.append("roster", {"staff": []})
    store.fence = refuse
    with pytest.raises(StoreFenced):
        store.append("roster", {"staff": ["S001"]})
    assert [entry.data for entry in store.audit()] == [{"staff": []}]
    store.close()


@pytest.mark.postgres
def test_the_fence_holds_only_while_the_lock_session_holds_the_hall(
        postgres_server: PostgresServer) -> None:
    city_url = postgres_server.create_database()
    store = Store(f"{city_url}?options=-csearch_path%3Dh01", CLOCK)
    session = LockSession(city_url, "c1", "w1")
    other = LockSession(city_url, "c1", "w2")
    try:
        assert session.try_lock("h01")
        assert not other.try_lock("h01")
        assert set(other.live_workers().values()) == {"w1", "w2"}
        assert other.hall_holders(["h01", "h02"]) == {"h01": other.hall_holders(["h01"])["h01"]}
        store.fence = session.fence("h01")
        store.append("roster", {"staff": []})
        session.close()  # as a worker killed: PostgreSQL frees its locks (once its backend has ended)
        wait_until(lambda: other.try_lock("h01"), 30, "the lock freed by the ended session")
        with pytest.raises(StoreFenced):
            store.append("roster", {"staff": ["S001"]})
        store.fence = other.fence("h01")
        store.append("roster", {"staff": ["S002"]})
        assert [entry.data["staff"] for entry in store.audit()] == [[], ["S002"]]
    finally:
        other.close()
        store.close()


# --- end to end: 4 halls, 2 workers -------------------------------------------------------------

HALLS, DEVICES, EVENTS, RATE = 4, 3, 40, 60.0  # 480 events, about 8 s


@pytest.fixture
def city_parts(tmp_path: Path) -> Iterator[tuple[PostgresServer, Mosquitto]]:
    """A PostgreSQL of its own (one test restarts it) and a Mosquitto."""
    pg = PostgresServer.start(max_connections=100)
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield pg, broker
    broker.stop()
    pg.stop()


def _started(tmp_path: Path, pg: PostgresServer, broker: Mosquitto) -> City:
    city = City(tmp_path / "city", pg, broker, halls=HALLS, devices=DEVICES)
    city.start_worker("a")
    city.start_worker("b")
    wait_until(lambda: all(city.owners().values()), 120, "every hall owned", city)
    wait_until(lambda: all(city.ready_count(hall) for hall in city.halls), 120, "every hall ready", city)
    wait_until(lambda: len(set(city.owners().values())) == 2, 120, "both workers owning halls", city)
    city.start_sims()
    return city


def _mid_burst(city: City, action: object) -> None:
    """The burst on a thread; `action` once a third of it is published."""
    assert callable(action)
    burst = threading.Thread(target=city.burst, args=(EVENTS, RATE), name="burst")
    burst.start()
    total = HALLS * DEVICES * EVENTS
    wait_until(lambda: sum(sum(s.issued().values()) for s in city.sims.values()) >= total // 3, 120,
               "a third of the burst", city)
    action()
    burst.join()


def _assert_exact(city: City) -> None:
    assert city.settle(180), "events not committed\n" + city.logs()
    tally = city.tally()
    assert tally.lost == 0 and tally.duplicated == 0, (tally, city.logs())
    assert tally.seqs_exact, tally
    assert tally.events == HALLS * DEVICES * EVENTS
    assert tally.verify_failed_halls == []


@pytest.mark.postgres
def test_a_worker_killed_mid_burst_loses_and_doubles_nothing(
        tmp_path: Path, city_parts: tuple[PostgresServer, Mosquitto]) -> None:
    city = _started(tmp_path, *city_parts)
    try:
        _mid_burst(city, lambda: city.kill_worker("a", signal.SIGKILL))
        wait_until(lambda: len(set(city.owners().values()) - {None}) == 1 and all(city.owners().values()),
                   120, "the survivor owning every hall", city)
        _assert_exact(city)
        city.start_worker("c")  # a new worker takes its share from the survivor
        wait_until(lambda: sorted(list(city.owners().values()).count(p) for p in set(city.owners().values()))
                   == [2, 2], 120, "two halls each", city)
    finally:
        city.stop()


@pytest.mark.postgres
def test_postgresql_restarted_mid_burst(tmp_path: Path,
                                        city_parts: tuple[PostgresServer, Mosquitto]) -> None:
    pg, broker = city_parts
    city = _started(tmp_path, pg, broker)
    try:
        _mid_burst(city, lambda: pg.restart(down_seconds=2.0))
        wait_until(lambda: all(city.owners().values()), 120, "every hall owned again", city)
        _assert_exact(city)
        lost = [path.name for path in sorted(city.workdir.glob("worker-*.log"))
                if "lock session lost" in path.read_text(errors="replace")]
        assert lost == ["worker-a.log", "worker-b.log"], city.logs()  # both stopped their halls
    finally:
        city.stop()


@pytest.mark.postgres
def test_the_city_broker_restarted_mid_burst(tmp_path: Path,
                                             city_parts: tuple[PostgresServer, Mosquitto]) -> None:
    pg, broker = city_parts
    city = _started(tmp_path, pg, broker)

    def restart() -> None:
        broker.stop()
        broker.start()

    try:
        _mid_burst(city, restart)
        _assert_exact(city)
    finally:
        city.stop()
